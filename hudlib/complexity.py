"""Table IV (v1 of the paper): parameters, peak training memory at batch 4, FLOPs per network evaluation and per
generated sample, at 32 and 256 px, for every registered generator with a network plus the paper's hypothetical
"DDPM in pixel space" (the HUD U-Net applied to the raw bands).

How it is measured, on CPU in well under a minute:

- FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` over one forward pass of batch 1 on the ``meta`` device (shape
  arithmetic only, no computation). Counted are matmuls/convolutions/attention (2 FLOPs per multiply-add), the way
  the counter defines them; normalisations and activations are not counted. Per sample = per evaluation × number of
  sampling steps (+ the UAE decoder for HUD).
- Peak training memory at batch 4: on CUDA, ``torch.cuda.max_memory_allocated`` around one real AdamW step. On CPU a
  measured estimate: parameters + gradients + two AdamW moments + every tensor autograd saves for the backward pass
  in one forward pass at batch 4 (counted with ``torch.autograd.graph.saved_tensors_hooks`` on ``meta`` tensors; a
  tensor saved twice is counted twice, so this errs high) + the input batch.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from . import models
from .config import make_config
from .data import SCENES
from .models import ComplexitySpec

__all__ = ["network_flops", "training_memory_bytes", "complexity_table", "format_table"]


def _out_loss(out) -> torch.Tensor:
    """A scalar from a network's output (a tensor or a tuple of them, e.g. the VAE's (x̂, μ, log σ²))."""
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return sum(o.float().pow(2).mean() for o in outs if isinstance(o, torch.Tensor))


def network_flops(net: torch.nn.Module, inputs) -> int:
    """FLOPs of one forward pass of ``net`` on ``inputs(1, …)``: a tuple of tensors on the meta device."""
    net = net.to("meta")
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        net(*inputs)
    return int(fc.get_total_flops())


def training_memory_bytes(net: torch.nn.Module, inputs: Callable, batch: int, px: int,
                          device: str = "cpu") -> tuple[int, str]:
    """Peak memory of one training step of ``net`` on ``inputs(batch, px, device)``: ``(bytes, method)``."""
    return _memory_and_flops(net, inputs, batch, px, device)[:2]


def _memory_and_flops(net: torch.nn.Module, inputs: Callable, batch: int, px: int,
                      device: str = "cpu") -> tuple[int, str, int | None]:
    """:func:`training_memory_bytes` and, on CPU, the FLOPs of that same forward pass at ``batch`` (counted in
    the one meta pass; every counted op is linear in the batch, so ``flops / batch`` = :func:`network_flops`)."""
    if device.startswith("cuda") and torch.cuda.is_available():
        net = net.to(device)
        opt = torch.optim.AdamW(net.parameters())
        torch.cuda.reset_peak_memory_stats()
        _out_loss(net(*inputs(batch, px, device))).backward()
        opt.step()
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated()), "CUDA max_memory_allocated over one AdamW step", None
    net = net.to("meta")
    n_param_bytes = sum(p.numel() * p.element_size() for p in net.parameters())
    saved = 0

    def pack(tensor):
        nonlocal saved
        saved += tensor.numel() * tensor.element_size()
        return tensor

    args = inputs(batch, px, "meta")
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t_: t_), FlopCounterMode(display=False) as fc:
        net(*args)
    in_bytes = sum(a.numel() * a.element_size() for a in args if isinstance(a, torch.Tensor))
    total = 4 * n_param_bytes + saved + in_bytes
    return (int(total), "CPU estimate: 4x parameter bytes (weights, grads, AdamW moments) + autograd-saved tensors",
            int(fc.get_total_flops()))


def _row(name, spec: ComplexitySpec, px, steps, device="cpu"):
    train_net = spec.train_net or spec.net
    mem, how, flops = _memory_and_flops(train_net, spec.train_inputs or spec.inputs, 4, px, device)
    if flops is not None and spec.train_net is None and spec.train_inputs is None:
        if flops % 4:
            raise RuntimeError(f"{name}: {flops} FLOPs at batch 4 are not 4x those of batch 1")
        per_eval = flops // 4  # the same network and inputs: one meta pass serves both columns
    else:
        per_eval = network_flops(spec.net, spec.inputs(1, px, "meta"))
    n_params = sum(p.numel() for p in train_net.parameters()) + spec.extra_params
    return {"model": name, "px": px, "params": n_params, "params_MB": n_params * 4 / 2**20,
            "train_memory_GB": mem / 2**30, "memory_method": how, "flops_per_eval": per_eval,
            "sampling_steps": steps, "flops_per_sample": per_eval * steps + spec.extra_flops_per_px * px * px}


def complexity_table(scene: str = "IndianPines", profile: str = "paper", sizes=(32, 256), device: str = "cpu",
                     sampler_steps: int | None = None) -> list[dict]:
    """Rows of Table IV for ``scene`` under ``profile``: every registered generator (its
    :meth:`~hudlib.models.Generator.complexity_spec`; controls and other network-free generators are listed with
    zeros) plus the paper's hypothetical "DDPM (pixel space)", HUD's U-Net on all bands.

    Per-sample FLOPs use the generator's evaluations per sample (T for ancestral sampling) unless
    ``sampler_steps`` is given. Networks are built for each size (``image_size = px``) so self-attention sits at the
    same absolute feature-map sizes (16 px in the paper profile, plus the middle block) as a U-Net designed for that
    input would have; the 32-px network run unchanged on 256 px would put attention on 128x128 maps (16384
    positions, ~17 GB of attention weights per block at batch 4).
    """
    if scene in SCENES:
        bands, d = SCENES[scene].bands, SCENES[scene].n_classes
    else:  # a user's cube named for this run (hudlib.data.register_user_scene)
        from .data import load_scene

        s = load_scene(scene)
        bands, d = s.bands, s.n_classes
    rows = []
    for px in sizes:
        for name in models.names():
            cfg = make_config(scene, name, profile, {"train": {"patch_size": px}})
            with torch.device("meta"):  # shapes only: no weight initialisation (seconds for the paper networks)
                spec = models.get(name).complexity_spec(cfg, bands, d)
            if spec is None:
                rows.append({"model": name, "px": px, "params": 0, "params_MB": 0.0, "train_memory_GB": 0.0,
                             "memory_method": "no network", "flops_per_eval": 0, "sampling_steps": 0,
                             "flops_per_sample": 0, "control": models.is_control(name)})
                continue
            # iterative samplers: sampler_steps evaluations if given; one-shot generators keep theirs (1)
            steps = sampler_steps if sampler_steps and spec.steps > 1 else spec.steps
            rows.append(_row(name, spec, px, steps, device=device))
        ref = models.reference_name()
        cfg = make_config(scene, ref, profile, {"train": {"patch_size": px}})
        with torch.device("meta"):  # the reference's U-Net on every band, no decoder
            pixel = models.get(ref).complexity_spec(cfg, bands, bands)
        pixel = dataclasses.replace(pixel, extra_flops_per_px=0, extra_params=0)
        rows.append(_row("DDPM (pixel space)", pixel, px, sampler_steps or cfg.diffusion.T, device=device))
    return rows


def format_table(rows: list[dict]) -> str:
    """Markdown table of :func:`complexity_table` rows."""
    head = ("| px | model | params | params MB | train memory GB (batch 4) | GFLOPs / eval | steps | "
            "GFLOPs / sample |\n|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        lines.append(f"| {r['px']} | {r['model']} | {r['params']:,} | {r['params_MB']:.2f} | "
                     f"{r['train_memory_GB']:.3f} | {r['flops_per_eval'] / 1e9:.2f} | {r['sampling_steps']} | "
                     f"{r['flops_per_sample'] / 1e9:,.1f} |")
    return "\n".join(lines)
