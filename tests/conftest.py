"""Shared test helpers."""
import os
import subprocess
import sys

import pytest


@pytest.fixture(scope="session")
def scene():
    """Indian Pines (the tensorly copy: every test machine has it), loaded once; tests must not modify it."""
    from hudlib.data import load_scene

    return load_scene("IndianPines")


@pytest.fixture
def torchrun(tmp_path):
    """``torchrun(script_text, *args)``: run a script under ``torch.distributed.run`` with 2 CPU processes (gloo, one
    thread each) and assert it succeeded; returns the CompletedProcess."""
    def run(script_text: str, *args) -> subprocess.CompletedProcess:
        script = tmp_path / "ddp_script.py"
        script.write_text(script_text)
        r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                            str(script), *map(str, args)], capture_output=True, text=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        return r
    return run
