"""One training loop for every trainable generator: optimisers, EMA, gradient clipping, bf16 autocast on CUDA,
periodic atomic checkpoints, exact resume, DDP through torchrun, a tqdm bar with the losses.

A model contributes a :class:`TrainPlan`: its networks, its optimisers (the GAN has two), which networks keep an EMA,
an optional learning-rate schedule and one training-step function. The step function gets a :class:`StepContext`
(random crops of the model's data, noise from the loop's generators, :meth:`StepContext.update` = zero-grad,
backward, clip, optimiser step) and returns its losses; it never copies the loop. HUD's diffusion step
(:func:`train_diffusion`, Algorithm 1 / eq. 15) is the first such plan; the baselines in :mod:`hudlib.models` bring
theirs.

Exact resume: a checkpoint holds every network, EMA, optimiser, the step, the loss history and every RNG state
(python, numpy's global and the crop sampler's ``Generator``, torch's CPU and CUDA states and the loop's
``torch.Generator``), so a run interrupted at any step and resumed from its last checkpoint ends, on CPU, with weights
bit-identical to an uninterrupted run (tests/test_train.py, tests/test_baselines.py).

Multi-GPU: under ``torchrun`` (``WORLD_SIZE > 1``) every network is wrapped in DistributedDataParallel (gloo on CPU,
nccl on CUDA); every rank draws its own crops (seed + rank); rank 0 writes checkpoints.
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
from .diffusion import GaussianDiffusion, beta_schedule
from .unet import UNet
from .utils import atomic_torch_save, atomic_write_text, barrier, dist_info, resolve_device
from .weights import SUFFIX, save_weights

__all__ = ["TrainPlan", "StepContext", "train_loop", "load_losses", "windows_per_epoch", "build_unet",
           "build_diffusion", "diffusion_plan", "train_diffusion", "check_corners"]


@dataclasses.dataclass
class TrainPlan:
    """What one model brings to :func:`train_loop`.

    Attributes:
        nets: the trained networks by name, already on the device (saved in every checkpoint).
        optimizers: by name; :meth:`StepContext.update` steps one of them.
        step: ``step(ctx) -> {loss name: float}``, one training iteration (may call ``ctx.update`` several times:
            the GAN's critic steps).
        ema: ``{net name: decay}`` for the networks that keep an exponential moving average (HUD's U-Net).
        lr_factor: ``lr_factor(step) -> float``, multiplies every optimiser's initial learning rate before each step
            (a pure function of the step, so resume needs no scheduler state); None keeps it constant.
    """

    nets: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    step: Callable[["StepContext"], dict[str, float]]
    ema: dict[str, float] = dataclasses.field(default_factory=dict)
    lr_factor: Callable[[int], float] | None = None


class StepContext:
    """The loop's services to a model's step function (one instance per run)."""

    def __init__(self, plan: TrainPlan, wrapped: dict[str, nn.Module], data: np.ndarray, patch_size: int,
                 batch_size: int, data_rng: np.random.Generator, gen: torch.Generator, device: torch.device,
                 grad_clip: float | None, corners: np.ndarray | None = None):
        self.plan, self._wrapped, self._data, self._corners = plan, wrapped, data, corners
        self.patch_size, self.batch_size = patch_size, batch_size
        self._data_rng, self._gen, self.device, self._clip = data_rng, gen, device, grad_clip
        self.step = 0  # the number of completed iterations before this one
        self._params = {k: [p for g in o.param_groups for p in g["params"]] for k, o in plan.optimizers.items()}
        self._amp = device.type == "cuda"

    def net(self, name: str) -> nn.Module:
        """The network to call in the step (the DistributedDataParallel wrapper under torchrun)."""
        return self._wrapped[name]

    def batch(self, n: int | None = None) -> torch.Tensor:
        """``(n, C, p, p)`` random crops of the model's data (``n`` defaults to the config's batch size): top-left
        corners uniform over the whole scene, or uniform among the loop's allowed ``corners`` where it has them
        (both drawn with the loop's ``data_rng``, so resume is exact)."""
        n = self.batch_size if n is None else int(n)
        if self._corners is None:
            corners = patch_corners(self._data.shape, self.patch_size, n, self._data_rng)
        else:
            corners = self._corners[self._data_rng.integers(0, len(self._corners), n)]
        return torch.from_numpy(crop(self._data, corners, self.patch_size)).to(self.device, non_blocking=True)

    def randn(self, *shape) -> torch.Tensor:
        return torch.randn(shape, generator=self._gen).to(self.device)

    def rand(self, *shape) -> torch.Tensor:
        return torch.rand(shape, generator=self._gen).to(self.device)

    def randint(self, high: int, *shape) -> torch.Tensor:
        return torch.randint(0, high, shape, generator=self._gen).to(self.device)

    def autocast(self):
        """bf16 autocast on CUDA, nothing on CPU (wrap the forward pass and the loss)."""
        return torch.autocast("cuda", dtype=torch.bfloat16) if self._amp else contextlib.nullcontext()

    def update(self, optimizer: str, loss: torch.Tensor) -> None:
        """Zero the optimiser's gradients, backpropagate ``loss``, clip the optimiser's parameters' gradient norm
        to the config's ``grad_clip`` and step."""
        opt = self.plan.optimizers[optimizer]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self._clip:
            nn.utils.clip_grad_norm_(self._params[optimizer], self._clip)
        opt.step()


def windows_per_epoch(shape, patch_size: int) -> int:
    """The number of stride-1 ``patch_size`` windows of a ``(C, rows, cols)`` scene: the authors' epoch (their data
    set is every window; an epoch of ``B``-crops is ``windows / B`` steps)."""
    return max(1, (shape[-2] - patch_size + 1) * (shape[-1] - patch_size + 1))


def train_loop(cfg: RunConfig, build: Callable[[torch.device], TrainPlan], data: np.ndarray | torch.Tensor,
               run_dir: Path, device: str | None = "auto", resume: bool = False, progress: bool = True,
               on_step: Callable[[int, float], None] | None = None,
               corners: np.ndarray | None = None) -> tuple[dict, TrainPlan, dict]:
    """Run ``cfg.train.steps`` iterations of the plan ``build(device)`` makes, on random crops of ``data``
    ``(C, rows, cols)``.

    Seeds python, numpy and torch with ``cfg.train.seed`` before ``build`` (same initial weights on every rank).
    Writes ``run_dir/checkpoint.pt`` every ``cfg.train.ckpt_every`` steps and at the end, ``losses.json`` and
    ``train_info.json`` when finished. With ``resume`` it continues from the checkpoint.

    Args:
        on_step: called after every iteration with ``(step, first loss)``; a test uses it to interrupt training.
        corners: None (crops anywhere in ``data``, as always), or the allowed top-left corners ``(m, 2)`` of the
            crops (rows, cols); :meth:`StepContext.batch` then draws uniformly among them (HUD-cond keeps its crops
            off a held-out region). Checked by :func:`check_corners`.
    Returns:
        ``(info, plan, emas)``: info (steps, final losses = mean of the last 50, wall time, device, world size),
        the plan with its trained networks, and the EMA copies by network name (rank 0 saves what it needs).
    """
    run_dir = Path(run_dir)
    tc = cfg.train
    if corners is not None:
        corners = check_corners(corners, np.shape(data), tc.patch_size)
    run_dir.mkdir(parents=True, exist_ok=True)
    rank, world = dist_info()
    dev = _init_distributed(resolve_device(device), world)
    random.seed(tc.seed)
    np.random.seed(tc.seed)
    torch.manual_seed(tc.seed)  # same initial weights on every rank
    plan = build(dev)
    emas = {k: copy.deepcopy(plan.nets[k]).requires_grad_(False) for k in plan.ema}
    base_lr = {k: [g["lr"] for g in o.param_groups] for k, o in plan.optimizers.items()}
    data_rng = np.random.default_rng([tc.seed, rank])
    gen = torch.Generator().manual_seed(tc.seed * 7919 + rank)
    torch.manual_seed(tc.seed + 1000 * rank)  # dropout differs per rank
    ckpt_path = run_dir / "checkpoint.pt"
    step, history = _resume(ckpt_path, plan, emas, data_rng, gen, rank, world) if resume else (0, {})
    wrapped = {k: nn.parallel.DistributedDataParallel(m) if world > 1 else m for k, m in plan.nets.items()}
    data = data.numpy() if isinstance(data, torch.Tensor) else data
    data = np.ascontiguousarray(data, dtype=np.float32)
    ctx = StepContext(plan, wrapped, data, tc.patch_size, tc.batch_size, data_rng, gen, dev, tc.grad_clip, corners)
    bar = tqdm(total=tc.steps, initial=step, desc=f"train {cfg.model}/{cfg.scene}/{cfg.profile}",
               disable=not progress or rank != 0, dynamic_ncols=True)
    t0 = time.perf_counter()
    for m in plan.nets.values():
        m.train()
    while step < tc.steps:
        if plan.lr_factor is not None:
            f = plan.lr_factor(step)
            for k, o in plan.optimizers.items():
                for g, lr in zip(o.param_groups, base_lr[k]):
                    g["lr"] = lr * f
        ctx.step = step
        losses = plan.step(ctx)
        for k, decay in plan.ema.items():
            _ema_update(emas[k], plan.nets[k], decay)
        step += 1
        for k, v in losses.items():
            history.setdefault(k, []).append(float(v))
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix({k: f"{np.mean(v[-50:]):.4g}" for k, v in history.items()})
        if step % tc.ckpt_every == 0 or step == tc.steps:
            _save_checkpoint(ckpt_path, cfg, plan, emas, step, history, data_rng, gen, rank, world)
        if on_step is not None:
            on_step(step, float(next(iter(losses.values()))) if losses else float("nan"))
    bar.close()
    wall = time.perf_counter() - t0
    info = {"steps": step, "final_losses": {k: float(np.mean(v[-50:])) for k, v in history.items()},
            "wall_time_s": wall, "device": str(dev), "world_size": world, "torch": torch.__version__,
            "threads": torch.get_num_threads()}
    info["final_loss"] = next(iter(info["final_losses"].values()), None)
    if rank == 0:
        atomic_write_text(run_dir / "losses.json", json.dumps(history))
        atomic_write_text(run_dir / "train_info.json", json.dumps(info, indent=2))
    if world > 1:
        torch.distributed.barrier()
    for m in plan.nets.values():
        m.eval()
    return info, plan, emas


def check_corners(corners, shape, patch_size: int) -> np.ndarray:
    """``corners`` as an int64 ``(m, 2)`` array of top-left crop corners (rows, cols) of a ``(C, rows, cols)``
    array, each crop of side ``patch_size`` inside it; a one-line ``ValueError`` otherwise."""
    a = np.asarray(corners)
    if a.ndim != 2 or a.shape[1] != 2 or len(a) == 0 or a.dtype.kind not in "iu":
        raise ValueError(f"corners: expected a non-empty integer array (m, 2) of crop corners, got "
                         f"{a.dtype} {a.shape}")
    rows, cols = int(shape[-2]) - int(patch_size), int(shape[-1]) - int(patch_size)
    if a.min() < 0 or a[:, 0].max() > rows or a[:, 1].max() > cols:
        raise ValueError(f"corners: expected rows in [0, {rows}] and cols in [0, {cols}] (crops of "
                         f"{patch_size} inside {tuple(shape[-2:])}), got rows [{a[:, 0].min()}, {a[:, 0].max()}] "
                         f"cols [{a[:, 1].min()}, {a[:, 1].max()}]")
    return np.ascontiguousarray(a, dtype=np.int64)


def load_losses(run_dir) -> dict[str, np.ndarray]:
    """``{loss name: (steps,)}`` from a finished run's ``losses.json`` (a bare list, as runs before the shared loop
    wrote it, is HUD's ``"loss"``)."""
    h = json.loads((Path(run_dir) / "losses.json").read_text())
    return {"loss": np.asarray(h, float)} if isinstance(h, list) else {k: np.asarray(v, float) for k, v in h.items()}


# --------------------------------------------------------------------------------------------------- diffusion
def build_unet(cfg: RunConfig, d: int, cond_channels: int = 0) -> UNet:
    """The U-Net of a run for ``d`` channels (d in = d out), with ``cond_channels`` more input channels
    concatenated to the d (a condition, e.g. HUD-cond's one-hot label map): ``d + cond_channels`` in, d out."""
    return UNet(in_channels=d + int(cond_channels), out_channels=d, image_size=cfg.train.patch_size,
                **dataclasses.asdict(cfg.unet))


def build_diffusion(cfg: RunConfig) -> GaussianDiffusion:
    c = cfg.diffusion
    return GaussianDiffusion(beta_schedule(c.schedule, c.T, c.beta_start, c.beta_end), prediction=c.prediction)


def diffusion_plan(cfg: RunConfig, d: int, device: torch.device,
                   make_net: Callable[[], nn.Module] | None = None,
                   condition: Callable[[StepContext, torch.Tensor], tuple[torch.Tensor, dict]] | None = None,
                   init: dict | None = None) -> TrainPlan:
    """Algorithm 1: a U-Net on ``d`` channels, AdamW, EMA, loss eq. 15 (ε or v, ``cfg.diffusion.prediction``).

    ``init``: a state dict the network starts from instead of its seeded random weights (fine-tuning a prior
    trained on another scene, :mod:`hudlib.transfer`); the EMA starts from it too, the optimiser afresh.

    A conditioned denoiser (HUD-cond) brings ``make_net() -> module`` (called here, after the loop's seeding;
    default :func:`build_unet`) and ``condition(ctx, batch) -> (z0, model_kwargs)``, which splits each batch of
    crops into the diffused channels and the network's extra arguments (its random draws from ``ctx``); with both
    None the plan is the unconditional one, draw for draw."""
    tc, dc = cfg.train, cfg.diffusion
    diffusion = build_diffusion(cfg)
    model = build_unet(cfg, d) if make_net is None else make_net()
    if init is not None:
        model.load_state_dict(init)  # strict: a prior of another shape is refused by torch, naming the tensors
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)

    def step(ctx: StepContext) -> dict[str, float]:
        z0, kwargs = ctx.batch(), None
        if condition is not None:
            z0, kwargs = condition(ctx, z0)
        t = ctx.randint(diffusion.T, z0.shape[0])
        noise = ctx.randn(*z0.shape)
        with ctx.autocast():
            loss = diffusion.training_loss(ctx.net("unet"), z0, t=t, noise=noise, model_kwargs=kwargs,  # eq. 15
                                           weighting=dc.loss_weighting, min_snr_gamma=dc.min_snr_gamma)
        ctx.update("unet", loss)
        return {"loss": float(loss.detach())}

    return TrainPlan(nets={"unet": model}, optimizers={"unet": opt}, step=step, ema={"unet": tc.ema_decay})


def train_diffusion(cfg: RunConfig, Z_scene: torch.Tensor, run_dir: Path, device: str | None = "auto",
                    resume: bool = False, progress: bool = True,
                    on_step: Callable[[int, float], None] | None = None, corners: np.ndarray | None = None,
                    make_net: Callable[[], nn.Module] | None = None,
                    condition: Callable[[StepContext, torch.Tensor], tuple[torch.Tensor, dict]] | None = None,
                    init: dict | None = None) -> dict:
    """Train the U-Net on random crops of ``Z_scene`` ``(d, rows, cols)`` (HUD's relaxed abundances) with
    :func:`train_loop`; rank 0 writes the EMA weights used for sampling to ``run_dir/ema.safetensors``. Returns the info.

    ``corners``: the crops' allowed top-left corners (:func:`train_loop`); ``make_net``, ``condition``: a
    conditioned denoiser (:func:`diffusion_plan`; ``Z_scene`` then stacks the latent and the condition, and
    ``make_net()`` must have a JSON-able ``config``). ``init``: the U-Net's starting weights (:func:`diffusion_plan`;
    ignored on resume, where the checkpoint's weights win). All None: HUD's training, unchanged."""
    d = Z_scene.shape[0]
    info, plan, emas = train_loop(cfg, lambda dev: diffusion_plan(cfg, d, dev, make_net, condition, init), Z_scene,
                                  run_dir, device=device, resume=resume, progress=progress, on_step=on_step,
                                  corners=corners)
    if dist_info()[0] == 0:
        save_weights({"ema": emas["unet"].state_dict(), "unet_config": plan.nets["unet"].config,
                      "step": info["steps"]}, Path(run_dir) / f"ema{SUFFIX}")
    barrier()  # every rank then reads ema.safetensors
    return info


# --------------------------------------------------------------------------------------------------- internals
def _rng_states(data_rng: np.random.Generator, gen: torch.Generator) -> dict:
    st = {
        "python": random.getstate(),
        "numpy_global": _np_state_to_tensor(np.random.get_state()),
        "data_rng": json.dumps(data_rng.bit_generator.state),
        "torch_cpu": torch.get_rng_state(),
        "loss_gen": gen.get_state(),
    }
    if torch.cuda.is_available():
        st["torch_cuda"] = torch.cuda.get_rng_state_all()
    return st


def _np_state_to_tensor(state) -> dict:
    name, keys, pos, has_gauss, cached = state
    return {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
            "cached": float(cached), "name": name}


def _set_rng_states(st: dict, data_rng: np.random.Generator, gen: torch.Generator) -> None:
    random.setstate(st["python"])
    g = st["numpy_global"]
    np.random.set_state((g["name"], g["keys"].numpy().astype(np.uint32), g["pos"], g["has_gauss"], g["cached"]))
    data_rng.bit_generator.state = json.loads(st["data_rng"])
    torch.set_rng_state(st["torch_cpu"])
    gen.set_state(st["loss_gen"])
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


def _resume(path: Path, plan: TrainPlan, emas: dict, data_rng, gen, rank: int, world: int) -> tuple[int, dict]:
    """Restore networks, EMAs, optimisers and every RNG state from ``path``; ``(step, history)`` (0, {} without)."""
    if not path.exists():
        return 0, {}
    ck = torch.load(path, map_location="cpu", weights_only=True)
    for k, m in plan.nets.items():
        m.load_state_dict(ck["nets"][k])
    for k, m in emas.items():
        m.load_state_dict(ck["emas"][k])
    for k, o in plan.optimizers.items():
        o.load_state_dict(ck["optimizers"][k])
    _set_rng_states(ck["rng"] if world == 1 else ck["rng_per_rank"][rank], data_rng, gen)
    return int(ck["step"]), {k: list(v) for k, v in ck["history"].items()}


def _save_checkpoint(path, cfg, plan: TrainPlan, emas, step, history, data_rng, gen, rank, world) -> None:
    states = _rng_states(data_rng, gen)
    if world > 1:
        gathered = [None] * world
        torch.distributed.all_gather_object(gathered, states)
        if rank != 0:
            return
        extra = {"rng_per_rank": gathered, "rng": gathered[0]}
    else:
        extra = {"rng": states}
    atomic_torch_save({"nets": {k: m.state_dict() for k, m in plan.nets.items()},
                       "emas": {k: m.state_dict() for k, m in emas.items()},
                       "optimizers": {k: o.state_dict() for k, o in plan.optimizers.items()},
                       "step": step, "history": history, "config": cfg.to_json(), **extra}, path)
