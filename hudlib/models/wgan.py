"""WGAN-GP (Gulrajani et al. 2017) with the authors' DCGAN-style networks (experiments/models/WGANGP.py,
docs/authors_code.md §D): the paper's "GAN" baseline.

Generator: z (100) → transposed conv to 4 × 4 × g → one stride-2 transposed conv per doubling, halving the channels
(g → g/2 → g/4 at 8, 16 px), batch norm + ReLU → a last stride-2 transposed conv to B bands at p × p. Critic: stride-2
4 × 4 convolutions d → 2d → 4d (→ … at larger p) with InstanceNorm and LeakyReLU(0.2), no batch norm (the penalty
is per sample), then a 4 × 4 convolution to one score. One training iteration = ``n_critic`` critic updates, each on a
fresh batch, then one generator update; Adam β = (0, 0.9), generator lr ``train.lr``, critic ``wgan.lr_critic``.

Departures, each a config option: the interpolation weight of the gradient penalty is drawn uniformly on [0, 1] as in
Gulrajani et al.; the authors' code draws it with ``randn`` (``interpolation="normal"``, the ``paper`` profile).
The authors' generator ends in Tanh for their [−1, 1] data space; ours ends in a sigmoid for our [0, 1] data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..config import merge_layers
from ..train import TrainPlan
from ..utils import resolve_device
from .base import ComplexitySpec, NetworkGenerator

__all__ = ["WGANGP", "WGANConfig", "Generator32", "Critic", "gradient_penalty"]


@dataclass
class WGANConfig:
    """WGAN-GP (Gulrajani et al. 2017) with the authors' DCGAN-style networks (experiments/models/WGANGP.py).
    ``g_width``: the generator's widest channel count (g_width → g_width/2 → g_width/4 → bands);
    ``d_width``: the critic's first (d_width → 2·d_width → 4·d_width). The generator's lr is ``train.lr``.
    ``interpolation``: the gradient penalty's interpolation weight, ``"uniform"`` on [0, 1] (the paper of WGAN-GP)
    or ``"normal"`` (the authors' code draws it with randn)."""

    z_dim: int = 100
    g_width: int = 128
    d_width: int = 32
    n_critic: int = 5
    gp_lambda: float = 10.0
    lr_critic: float = 5e-5
    beta1: float = 0.0
    beta2: float = 0.9
    interpolation: str = "uniform"


def _doublings(size: int) -> int:
    k = math.log2(size / 4) if size >= 8 else 0
    if size < 8 or k != int(k):
        raise ValueError(f"patch_size: WGAN-GP needs 4·2^k with k ≥ 1 (8, 16, 32, 64 …), got {size}")
    return int(k)


class Generator32(nn.Module):
    """z ``(n, z_dim)`` → ``(n, bands, size, size)`` in [0, 1]."""

    def __init__(self, bands: int, size: int = 32, z_dim: int = 100, width: int = 128):
        super().__init__()
        k = _doublings(size)
        self.bands, self.size, self.z_dim = bands, size, z_dim
        layers = [nn.ConvTranspose2d(z_dim, width, 4, 1, 0), nn.BatchNorm2d(width), nn.ReLU(True)]
        c = width
        for _ in range(k - 1):
            layers += [nn.ConvTranspose2d(c, max(c // 2, 8), 4, 2, 1), nn.BatchNorm2d(max(c // 2, 8)), nn.ReLU(True)]
            c = max(c // 2, 8)
        layers += [nn.ConvTranspose2d(c, bands, 4, 2, 1), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(z[:, :, None, None])


class Critic(nn.Module):
    """``(n, bands, size, size)`` → one score per sample ``(n,)``."""

    def __init__(self, bands: int, size: int = 32, width: int = 32):
        super().__init__()
        layers, c = [], bands
        for i in range(_doublings(size)):
            w = width * 2 ** i
            layers += [nn.Conv2d(c, w, 4, 2, 1)] + ([nn.InstanceNorm2d(w, affine=True)] if i else []) + \
                [nn.LeakyReLU(0.2, True)]
            c = w
        layers.append(nn.Conv2d(c, 1, 4, 1, 0))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x).flatten()


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """mean over samples of (‖∇ₓ̂ D(x̂)‖₂ − 1)², x̂ = α·real + (1 − α)·fake, ``alpha`` ``(n,)`` (Gulrajani et al.,
    eq. 3, without λ). Differentiable (create_graph) so the critic's update sees it."""
    a = alpha.view(-1, *([1] * (real.dim() - 1))).to(real.dtype)
    xh = (a * real + (1 - a) * fake).requires_grad_(True)
    (g,) = torch.autograd.grad(critic(xh).sum(), xh, create_graph=True)
    return (g.flatten(1).norm(dim=1) - 1).pow(2).mean()


class WGANGP(NetworkGenerator):
    """After ``fit``: ``nets_["generator"]`` (:class:`Generator32`)."""

    name = "WGAN-GP"
    sections = {"wgan": WGANConfig}
    profiles = merge_layers({
        "smoke": {"train": dict(steps=10, batch_size=4, ckpt_every=5, lr=1e-3),
                  "wgan": dict(g_width=16, d_width=8, n_critic=2, lr_critic=1e-3)},
        # halved widths at batch 16: a budget comparable to HUD quick's on a 2-core CPU (measured:
        # docs/scenes_and_profiles.md, benchmarks/training.py); lr 2e-4 for both nets
        "quick": {"train": dict(steps=1150, batch_size=16, ckpt_every=250, lr=2e-4),
                  "wgan": dict(g_width=64, d_width=16, lr_critic=2e-4)},
        # 200 epochs of Indian Pines' 12,996 windows at batch 32, one generator step per 5 critic batches
        "paper": {"train": dict(steps=16_300, batch_size=32, ckpt_every=1000, lr=1e-4),
                  "wgan": dict(interpolation="normal")},
    }, {p: {"train": dict(grad_clip=0.0)} for p in ("smoke", "quick", "paper")})
    sample_nets = ("generator",)

    @classmethod
    def _build_nets(cls, cfg, bands):
        w = cfg.wgan
        return {"generator": Generator32(bands, cfg.train.patch_size, w.z_dim, w.g_width)}

    def _plan(self, scene, cfg, device):
        w = cfg.wgan
        if w.interpolation not in ("uniform", "normal"):
            raise ValueError(f"wgan.interpolation: expected 'uniform' or 'normal', got {w.interpolation!r}")
        G = self._build_nets(cfg, scene.bands)["generator"].to(device)
        D = Critic(scene.bands, cfg.train.patch_size, w.d_width).to(device)
        betas = (w.beta1, w.beta2)
        opts = {"critic": torch.optim.Adam(D.parameters(), lr=w.lr_critic, betas=betas),
                "generator": torch.optim.Adam(G.parameters(), lr=cfg.train.lr, betas=betas)}

        def step(ctx):
            for _ in range(w.n_critic):
                real = ctx.batch()
                n = real.shape[0]
                z = ctx.randn(n, w.z_dim)
                alpha = ctx.rand(n) if w.interpolation == "uniform" else ctx.randn(n)
                with ctx.autocast():
                    with torch.no_grad():
                        fake = ctx.net("generator")(z).float()
                    wdist = ctx.net("critic")(real).mean() - ctx.net("critic")(fake).mean()
                    gp = gradient_penalty(ctx.net("critic"), real, fake, alpha)
                ctx.update("critic", -wdist + w.gp_lambda * gp)
            z = ctx.randn(ctx.batch_size, w.z_dim)
            with ctx.autocast():
                g_loss = -ctx.net("critic")(ctx.net("generator")(z)).mean()
            ctx.update("generator", g_loss)
            return {"wasserstein": wdist.item(), "gp": gp.item(), "generator": g_loss.item()}

        return TrainPlan(nets={"generator": G, "critic": D}, optimizers=opts, step=step)

    def _sample(self, n, random_state, device, progress, batch_size: int = 256, **options):
        G = self.nets_["generator"].to(resolve_device(device))
        return self._decode_latents(G, G.z_dim, (G.bands, G.size, G.size), n, random_state, device, batch_size), None

    @classmethod
    def complexity_spec(cls, cfg, bands, d):
        G = cls._build_nets(cfg, bands)["generator"]
        both = _Both(G, Critic(bands, cfg.train.patch_size, cfg.wgan.d_width))
        return ComplexitySpec(G, lambda b, px, dev: (torch.empty(b, G.z_dim, device=dev),), 1, train_net=both,
                              train_inputs=lambda b, px, dev: (torch.empty(b, G.z_dim, device=dev),
                                                               torch.empty(b, bands, px, px, device=dev)))


class _Both(nn.Module):
    """Generator and critic, for Table IV's parameter count and training memory (one critic pass on real and fake)."""

    def __init__(self, G, D):
        super().__init__()
        self.G, self.D = G, D

    def forward(self, z, real):
        return self.D(self.G(z)), self.D(real)
