"""Small utilities every module uses: device resolution, atomic writers, distributed rank, content hashes.

Atomic writers write to a temp file in the destination folder and rename it into place, so a reader never sees a
half-written file (an interrupted run leaves the previous version or nothing).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

__all__ = ["resolve_device", "atomic_torch_save", "atomic_write_text", "atomic_save_npy", "dist_info",
           "sha256_files", "state_hash"]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; ``"cuda"`` fails clearly without a GPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} requested but no CUDA device is available; use --device cpu or auto")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device: expected 'auto', 'cpu' or 'cuda[:N]', got {device!r}") from e


def file_sha256(path) -> str:
    """sha256 (hex) of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def usual_mode(path) -> None:
    """Give a file made by :func:`tempfile.mkstemp` (mode 0600) the mode an ordinary ``open(path, "w")`` gives:
    0666 less the process's umask, so files renamed into place are readable by others as usual."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def _atomic(path: Path, write) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        usual_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_torch_save(obj, path: Path) -> None:
    """``torch.save`` to a temp file in the same folder, then rename."""
    _atomic(path, lambda tmp: torch.save(obj, tmp))


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    _atomic(path, write)


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save`` atomically (the temp name keeps no ``.npy`` suffix games: written through a file object)."""
    def write(tmp):
        with open(tmp, "wb") as f:
            np.save(f, array)
    _atomic(path, write)


def dist_info() -> tuple[int, int]:
    """``(rank, world_size)`` from torchrun's environment (``(0, 1)`` when not distributed)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def barrier() -> None:
    """Wait for every rank under torchrun (nothing otherwise): after rank 0 writes a file the others then read."""
    import torch.distributed as dist

    if dist_info()[1] > 1 and dist.is_available() and dist.is_initialized():
        dist.barrier()


def shutdown_distributed() -> None:
    """End a torchrun process group cleanly (barrier, then destroy; nothing when not distributed). A process that
    exits with gloo's threads still running can abort ("terminate called without an active exception")."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def sha256_files(files: Iterable[Path], length: int = 16) -> str:
    """Content hash of ``files`` (in the given order, names excluded): identifies the exact weights a result was
    computed from, independently of where the run directory lies."""
    h = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:length]


def state_hash(net: torch.nn.Module, length: int | None = None) -> str:
    """sha256 (hex, the first ``length`` digits) of a network's state dict: names, shapes, dtypes and bytes of every
    tensor in order. Results are keyed by it (the classifiers' weights), independently of the file format."""
    h = hashlib.sha256()
    for k, v in net.state_dict().items():
        t = v.detach().cpu().contiguous()
        h.update(f"{k}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:length] if length else h.hexdigest()
