"""Weights as safetensors (hudlib.weights): a generator's artefact tree round-trips exactly (tensors of several
dtypes, nested dicts, lists, tuples, plain values), files written with torch.save still load, and what cannot be
stored or read is refused with one line naming it."""
import pytest
import torch

from hudlib.errors import DataError
from hudlib.weights import load_weights, save_weights, weights_file


def test_round_trip_is_exact(tmp_path):
    g = torch.Generator().manual_seed(0)
    tree = {"ema": {"in.0.weight": torch.randn(3, 4, generator=g), "in.0.bias": torch.zeros(3),
                    "steps": torch.tensor(7, dtype=torch.int64)},
            "unet_config": {"channel_mult": (1, 2, 2), "attention": [8], "dropout": 0.0, "name": "u", "x": None},
            "mask": torch.rand(5, generator=g) > 0.5, "half": torch.randn(2, generator=g).to(torch.bfloat16),
            "step": 3000, "flag": True, "pair": (torch.ones(2), 1.5)}
    save_weights(tree, tmp_path / "w.safetensors")
    back = load_weights(tmp_path / "w.safetensors")

    def same(a, b):
        if isinstance(a, torch.Tensor):
            return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
        if isinstance(a, dict):
            return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        if isinstance(a, (list, tuple)):
            return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
        return type(a) is type(b) and a == b

    assert same(tree, back)
    assert not list(tmp_path.glob(".*")) and not list(tmp_path.glob("*.tmp*"))  # nothing half-written left


def test_older_torch_files_still_load_and_are_found(tmp_path):
    torch.save({"state": torch.arange(3)}, tmp_path / "ema.pt")
    assert weights_file(tmp_path, "ema") == tmp_path / "ema.pt"
    assert torch.equal(load_weights(weights_file(tmp_path, "ema"))["state"], torch.arange(3))
    save_weights({"state": torch.arange(4)}, tmp_path / "ema.safetensors")
    assert weights_file(tmp_path, "ema") == tmp_path / "ema.safetensors"  # the new format wins once written


def test_bad_weights_are_refused(tmp_path):
    with pytest.raises(DataError, match=r"w\.pt: expected a \.safetensors file name"):
        save_weights({}, tmp_path / "w.pt")
    with pytest.raises(DataError, match="opt: set cannot be stored"):
        save_weights({"opt": {1, 2}}, tmp_path / "w.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(DataError, match=r"bad\.safetensors: not a readable safetensors file"):
        load_weights(tmp_path / "bad.safetensors")
