"""Trained weights on disk as safetensors (the convention for released weights: no pickle, nothing executes on load).

A generator's artefact is a tree: dicts (and lists, tuples) whose leaves are tensors or plain values (ints, floats,
strings, booleans, None), e.g. ``{"ema": state_dict, "unet_config": {...}, "step": 3000}``. :func:`save_weights`
writes the tensors flat under their path in the tree (``ema/input_blocks.0.0.weight``) and the tree itself, with
each tensor replaced by its key, as JSON in the file's metadata; :func:`load_weights` rebuilds the same tree (tuples
stay tuples). Files written before this format (``torch.save``) still load through :func:`load_weights` with
``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .errors import DataError
from .utils import _atomic

__all__ = ["save_weights", "load_weights", "SUFFIX", "weights_file"]

SUFFIX = ".safetensors"
_TREE = "hud_tree"


def _encode(obj, path: str, tensors: dict):
    if isinstance(obj, torch.Tensor):
        key = path or "tensor"
        if key in tensors:
            raise DataError(f"{key}: two tensors at the same path")
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        if not all(isinstance(k, str) and "/" not in k for k in obj):
            raise DataError(f"{path or '(root)'}: expected string keys without '/', got {list(obj)[:5]}")
        return {"__dict__": {k: _encode(v, f"{path}/{k}" if path else k, tensors) for k, v in obj.items()}}
    if isinstance(obj, (list, tuple)):
        items = [_encode(v, f"{path}/{i}" if path else str(i), tensors) for i, v in enumerate(obj)]
        return {"__tuple__" if isinstance(obj, tuple) else "__list__": items}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise DataError(f"{path or '(root)'}: {type(obj).__name__} cannot be stored in weights; expected tensors, "
                    f"dicts, lists, tuples or plain values")


def _decode(node, tensors):
    if isinstance(node, dict):
        if "__tensor__" in node:
            return tensors[node["__tensor__"]]
        if "__dict__" in node:
            return {k: _decode(v, tensors) for k, v in node["__dict__"].items()}
        if "__tuple__" in node:
            return tuple(_decode(v, tensors) for v in node["__tuple__"])
        if "__list__" in node:
            return [_decode(v, tensors) for v in node["__list__"]]
    return node


def weights_file(run_dir, stem: str) -> Path:
    """``<run_dir>/<stem>.safetensors``, or the older ``<stem>.pt`` when only that exists (runs trained before the
    format changed keep loading, with their weights hash)."""
    st, pt = Path(run_dir) / f"{stem}{SUFFIX}", Path(run_dir) / f"{stem}.pt"
    return pt if pt.is_file() and not st.is_file() else st


def save_weights(obj, path) -> None:
    """Write the tree ``obj`` to ``path`` (``.safetensors``) atomically."""
    path = Path(path)
    if path.suffix != SUFFIX:
        raise DataError(f"{path}: expected a {SUFFIX} file name")
    tensors: dict[str, torch.Tensor] = {}
    tree = _encode(obj, "", tensors)
    _atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata={_TREE: json.dumps(tree)}))


def load_weights(path, map_location: str = "cpu"):
    """The tree :func:`save_weights` wrote (or a ``torch.save`` file's, read with ``weights_only=True``)."""
    path = Path(path)
    if path.suffix != SUFFIX:
        return torch.load(path, map_location=map_location, weights_only=True)
    try:
        with safe_open(str(path), framework="pt", device=str(map_location)) as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own types for a bad header
        raise DataError(f"{path}: not a readable safetensors file ({type(e).__name__}: {e})") from e
    if _TREE not in meta:
        return tensors
    return _decode(json.loads(meta[_TREE]), tensors)
