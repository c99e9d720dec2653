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


@pytest.fixture
def envi_cube():
    """``write(path, rows, cols, seed)``: a 12-band, 3-endmember ENVI cube (int16, BSQ) of random positive
    endmembers mixed by Dirichlet(0.3) abundances, written to ``path`` (a ``.hdr``); a user's cube with no class map."""
    def write(path, rows: int, cols: int, seed: int):
        import numpy as np
        import spectral.io.envi as envi

        rng = np.random.default_rng(seed)
        E = rng.random((12, 3)) + 0.1
        X = rng.dirichlet(np.ones(3) * 0.3, size=(rows, cols)).transpose(2, 0, 1)
        envi.save_image(str(path), (np.einsum("bp,prc->rcb", E, X) * 1000).astype(np.int16), interleave="bsq")
        return path
    return write
