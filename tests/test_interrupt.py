"""Ctrl-C typed in a real terminal (a pty whose foreground process group is ./run_all.sh's runner): the run stops
within seconds with exit status 130, names the notebook and cell, leaves no process and no half-written file, and
the next run with --retrain resumes the interrupted training from its last checkpoint."""
import json
import os
import pty
import re
import select
import signal
import sys
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _kernels() -> set[int]:
    out = set()
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if b"ipykernel_launcher" in (p / "cmdline").read_bytes():
                    out.add(int(p.name))
            except OSError:
                pass
    return out


def _spawn(args, env):
    """(pid, master fd) of ``args`` run with a pty as its controlling terminal (pty.fork: the child leads its
    session and is the terminal's foreground process group, so a typed Ctrl-C reaches it as a terminal's does)."""
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.chdir(env["HUD_ROOT"])
        os.execvpe(sys.executable, [sys.executable, *args], env)
    return pid, fd


def _read_until(fd, pattern, timeout):
    buf, t0 = b"", time.monotonic()
    while time.monotonic() - t0 < timeout:
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            if re.search(pattern, buf.decode(errors="replace")):
                return buf.decode(errors="replace")
    raise AssertionError(f"{pattern!r} not seen in {timeout} s; output tail:\n{buf.decode(errors='replace')[-3000:]}")


def _drain(fd, pid, timeout):
    """Read until the child exits; (output, exit status, seconds)."""
    buf, t0 = b"", time.monotonic()
    while True:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            buf += chunk
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return buf.decode(errors="replace"), os.waitstatus_to_exitcode(status), time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"the run did not stop within {timeout} s after Ctrl-C; its terminal showed:\n"
                                 + buf.decode(errors="replace")[-3000:])


@pytest.mark.slow
def test_ctrl_c_in_a_terminal_stops_within_seconds_and_retrain_resumes(tmp_path):
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    nb = nbformat.read(ROOT / "notebooks" / "03_train.ipynb", as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source = params.source.replace("steps = None", "steps = 200")  # long enough to be interrupted
    nbformat.write(nb, nb_dir / "03_train.ipynb")
    env = {**os.environ, "HUD_ROOT": str(tmp_path), "COLUMNS": "200"}
    args = ["-m", "hudlib.runner", "--profile", "smoke", "--scenes", "IndianPines", "--models", "HUD",
            "--notebooks", str(nb_dir), "--build", str(tmp_path / "build")]
    before = _kernels()
    pid, fd = _spawn(args, env)
    # step 35 shown: the checkpoint of step 30 (every 10 steps at smoke) is on disk
    _read_until(fd, r"train HUD/IndianPines/smoke (3[5-9]|[4-9][0-9]|1[0-9][0-9])/200", 600)
    os.write(fd, b"\x03")  # Ctrl-C, through the terminal's line discipline
    out, code, wall = _drain(fd, pid, 60)
    assert code == 130, out[-3000:]
    assert wall < 10, f"stopped {wall:.1f} s after Ctrl-C"
    assert re.search(r"INTERRUPTED: 03_train\.ipynb \[IndianPines\] interrupted \(Ctrl-C\) in cell \d+/\d+", out), \
        out[-3000:]
    assert "Traceback" not in out
    summary = json.loads((tmp_path / "build" / "run_summary.json").read_text())
    assert summary["interrupted"] and not summary["ok"] and summary["steps"][-1]["interrupted"]
    time.sleep(1)
    assert not (_kernels() - before), "a kernel of the run is still alive"
    runs = tmp_path / "runs"
    assert not [p for p in runs.rglob(".*") if p.is_file()], "a temporary file was left behind"
    run = next((runs / "IndianPines" / "HUD").iterdir())
    assert (run / "checkpoint.pt").is_file() and not (run / "DONE").exists()
    # the next run with --retrain resumes from the last checkpoint and finishes
    pid, fd = _spawn(args + ["--retrain"], env)
    out, code, _ = _drain(fd, pid, 900)
    assert code == 0, out[-3000:]
    log = (tmp_path / "build" / "logs" / "03_train_IndianPines.log").read_text()
    first = re.search(r"train HUD/IndianPines/smoke:\s+\d+%\|[^|]*\|\s*(\d+)/200", log)
    assert first and int(first.group(1)) >= 30 and int(first.group(1)) % 10 == 0, log[:2000]  # a checkpoint's step
    assert (run / "DONE").is_file()
