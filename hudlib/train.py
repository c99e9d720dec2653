"""The training loop (Algorithm 1): AdamW, EMA, gradient clipping, bf16 autocast on CUDA, exact resume, DDP.

The loop is generic over what is diffused: it gets a float32 tensor ``Z_scene`` ``(d, rows, cols)`` (the relaxed
abundances of the whole scene), crops random ``size`` x ``size`` patches from it with a numpy ``Generator`` and
minimises eq. 15 through :class:`hudlib.diffusion.GaussianDiffusion`.

Exact resume: a checkpoint holds model, EMA, optimiser, step, loss history and every RNG state (python, numpy's
global and the crop sampler's ``Generator``, torch's CPU and CUDA states and the loss's ``torch.Generator``), so a run
interrupted at any step and resumed from its last checkpoint ends, on CPU, with weights bit-identical to an
uninterrupted run (tests/test_train.py).

Multi-GPU: under ``torchrun`` (``WORLD_SIZE > 1``) the model is wrapped in DistributedDataParallel (gloo on CPU, nccl
on CUDA); every rank draws its own crops (seed + rank); rank 0 writes checkpoints.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import random
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .config import RunConfig
from .data import crop, patch_corners
from .diffusion import GaussianDiffusion, linear_beta_schedule
from .unet import UNet
from .utils import atomic_torch_save, atomic_write_text, dist_info, resolve_device

__all__ = ["build_unet", "build_diffusion", "train_diffusion"]


def build_unet(cfg: RunConfig, d: int) -> UNet:
    """The U-Net of a run for ``d`` channels (d in = d out)."""
    return UNet(in_channels=d, image_size=cfg.train.patch_size, **dataclasses.asdict(cfg.unet))


def build_diffusion(cfg: RunConfig) -> GaussianDiffusion:
    c = cfg.diffusion
    return GaussianDiffusion(linear_beta_schedule(c.T, c.beta_start, c.beta_end), prediction=c.prediction)


def _rng_states(data_rng: np.random.Generator, loss_gen: torch.Generator) -> dict:
    st = {
        "python": random.getstate(),
        "numpy_global": _np_state_to_tensor(np.random.get_state()),
        "data_rng": json.dumps(data_rng.bit_generator.state),
        "torch_cpu": torch.get_rng_state(),
        "loss_gen": loss_gen.get_state(),
    }
    if torch.cuda.is_available():
        st["torch_cuda"] = torch.cuda.get_rng_state_all()
    return st


def _np_state_to_tensor(state) -> dict:
    name, keys, pos, has_gauss, cached = state
    return {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
            "cached": float(cached), "name": name}


def _set_rng_states(st: dict, data_rng: np.random.Generator, loss_gen: torch.Generator) -> None:
    random.setstate(st["python"])
    g = st["numpy_global"]
    np.random.set_state((g["name"], g["keys"].numpy().astype(np.uint32), g["pos"], g["has_gauss"], g["cached"]))
    data_rng.bit_generator.state = json.loads(st["data_rng"])
    torch.set_rng_state(st["torch_cpu"])
    loss_gen.set_state(st["loss_gen"])
    if "torch_cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["torch_cuda"])


@torch.no_grad()
def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.mul_(decay).add_(pm.detach(), alpha=1 - decay)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


def _init_distributed(dev: torch.device, world: int) -> torch.device:
    """Under torchrun: one GPU per local rank (CUDA) and the process group (nccl on CUDA, gloo on CPU)."""
    if world > 1 and dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(dev)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return dev


def train_diffusion(cfg: RunConfig, Z_scene: torch.Tensor, run_dir: Path, device: str | None = "auto",
                    resume: bool = False, progress: bool = True,
                    on_step: Callable[[int, float], None] | None = None) -> dict:
    """Train the U-Net (ε- or v-prediction, ``cfg.diffusion.prediction``) on random crops of ``Z_scene`` ``(d, rows, cols)``.

    Writes ``run_dir/checkpoint.pt`` every ``cfg.train.ckpt_every`` steps and at the end, and ``run_dir/ema.pt``
    (EMA weights) plus ``run_dir/train_info.json`` when finished. With ``resume`` it continues from the checkpoint.

    Args:
        on_step: called after every optimiser step with ``(step, loss)``; a test uses it to interrupt training.
    Returns:
        info dict: steps, final loss (mean of the last 50), wall time, device, world size.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    rank, world = dist_info()
    dev = _init_distributed(resolve_device(device), world)
    distributed = world > 1
    tc = cfg.train
    d = Z_scene.shape[0]
    diffusion = build_diffusion(cfg)
    random.seed(tc.seed)
    np.random.seed(tc.seed)
    torch.manual_seed(tc.seed)  # same initial weights on every rank
    model = build_unet(cfg, d).to(dev)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    data_rng = np.random.default_rng([tc.seed, rank])
    loss_gen = torch.Generator().manual_seed(tc.seed * 7919 + rank)
    torch.manual_seed(tc.seed + 1000 * rank)  # dropout differs per rank
    ckpt_path = run_dir / "checkpoint.pt"
    step, losses = _resume(ckpt_path, model, ema, opt, data_rng, loss_gen, rank, world) if resume else (0, [])
    net = nn.parallel.DistributedDataParallel(model) if distributed else model

    Z_scene = Z_scene.float().contiguous()
    Zn = Z_scene.numpy()
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else contextlib.nullcontext()
    bar = tqdm(total=tc.steps, initial=step, desc=f"train {cfg.model}/{cfg.scene}/{cfg.profile}",
               disable=not progress or rank != 0, dynamic_ncols=True)
    t0 = time.perf_counter()
    model.train()
    while step < tc.steps:
        corners = patch_corners(Zn.shape, tc.patch_size, tc.batch_size, data_rng)
        z0 = torch.from_numpy(crop(Zn, corners, tc.patch_size)).to(dev, non_blocking=True)
        t = torch.randint(0, diffusion.T, (tc.batch_size,), generator=loss_gen)
        noise = torch.randn(z0.shape, generator=loss_gen)
        with amp:
            loss = diffusion.training_loss(net, z0, t=t.to(dev), noise=noise.to(dev),  # eq. 15
                                           weighting=cfg.diffusion.loss_weighting,
                                           min_snr_gamma=cfg.diffusion.min_snr_gamma)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if tc.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        opt.step()
        _ema_update(ema, model, tc.ema_decay)
        step += 1
        lv = float(loss.detach())
        losses.append(lv)
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        if step % tc.ckpt_every == 0 or step == tc.steps:
            _save_checkpoint(ckpt_path, cfg, model, ema, opt, step, losses, data_rng, loss_gen, rank, world)
        if on_step is not None:
            on_step(step, lv)
    bar.close()
    wall = time.perf_counter() - t0
    info = {"steps": step, "final_loss": float(np.mean(losses[-50:])) if losses else None,
            "wall_time_s": wall, "device": str(dev), "world_size": world, "torch": torch.__version__,
            "threads": torch.get_num_threads()}
    if rank == 0:
        atomic_torch_save({"ema": ema.state_dict(), "unet_config": model.config, "step": step}, run_dir / "ema.pt")
        atomic_write_text(run_dir / "losses.json", json.dumps(losses))
        atomic_write_text(run_dir / "train_info.json", json.dumps(info, indent=2))
    if distributed:
        torch.distributed.barrier()
    return info


def _resume(path: Path, model, ema, opt, data_rng, loss_gen, rank: int, world: int) -> tuple[int, list]:
    """Restore model, EMA, optimiser and every RNG state from ``path``; ``(step, losses)`` (0, [] without one)."""
    if not path.exists():
        return 0, []
    ck = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(ck["model"])
    ema.load_state_dict(ck["ema"])
    opt.load_state_dict(ck["optimizer"])
    _set_rng_states(ck["rng"] if world == 1 else ck["rng_per_rank"][rank], data_rng, loss_gen)
    return int(ck["step"]), list(ck["losses"])


def _save_checkpoint(path, cfg, model, ema, opt, step, losses, data_rng, loss_gen, rank, world) -> None:
    states = _rng_states(data_rng, loss_gen)
    if world > 1:
        gathered = [None] * world
        torch.distributed.all_gather_object(gathered, states)
        if rank != 0:
            return
        extra = {"rng_per_rank": gathered, "rng": gathered[0]}
    else:
        extra = {"rng": states}
    atomic_torch_save({"model": model.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(),
                       "step": step, "losses": torch.tensor(losses, dtype=torch.float64).tolist(),
                       "config": cfg.to_json(), **extra}, path)
