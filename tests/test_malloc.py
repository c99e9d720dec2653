"""hudlib._malloc: the glibc settings are applied on import, HUD_MALLOC=off is honoured, a bad value is refused."""
import os
import platform
import subprocess
import sys

import pytest

PROBE = ("import hudlib, hudlib._malloc as A\n"
         "print(A._applied)\n")


def _run(flag):
    env = {k: v for k, v in os.environ.items() if k != "HUD_MALLOC"}
    if flag is not None:
        env["HUD_MALLOC"] = flag
    return subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the settings exist only in glibc")
def test_applied_by_default_and_off_is_honoured():
    assert _run(None).stdout.split() == ["True"]
    assert _run("on").stdout.split() == ["True"]
    for off in ("off", "0", "False"):
        assert _run(off).stdout.split() == ["False"]


def test_bad_value_is_refused_with_one_line():
    r = _run("sometimes")
    assert r.returncode != 0
    assert r.stderr.strip().splitlines()[-1] == "ValueError: HUD_MALLOC: expected on or off, got 'sometimes'"


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the settings exist only in glibc")
def test_freed_blocks_stay_in_the_process():
    """Three 8 MiB arrays made and freed 50 times: with the settings their memory is reused without a page fault;
    with the C library's defaults (HUD_MALLOC=off) the freed top of the heap goes back to the kernel and is faulted
    in again. The measure is the process's minor page faults (getrusage), not time."""
    loop = ("import resource, numpy as np, hudlib\n"
            "for _ in range(3):\n"
            "    a = [np.ones(1 << 20) for _ in range(3)]; del a\n"
            "f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
            "for _ in range(50):\n"
            "    a = [np.ones(1 << 20) for _ in range(3)]; del a\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)\n")
    faults = {}
    for flag in ("on", "off"):
        r = subprocess.run([sys.executable, "-c", loop], capture_output=True, text=True,
                           env={**os.environ, "HUD_MALLOC": flag}, timeout=120)
        assert r.returncode == 0, r.stderr
        faults[flag] = int(r.stdout.split()[-1])
    assert faults["on"] < 100 and faults["off"] > 10_000, faults
