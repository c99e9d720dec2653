"""The paper's VAE baseline as the authors built it (experiments/models/VAE.py, docs/authors_code.md §D).

Encoder: three stride-2 4×4 convolutions B → w₀ → w₁ → w₂ (128 → 64 → 32), each followed by a residual block,
flattened (w₂·(p/8)², 512 at p = 32), fc → ``fc`` (256) → (μ, log σ²) of size ``latent`` (20). Decoder: fc latent →
flattened size, transposed convolutions w₂ → w₁ → w₀ → B with batch norm + LeakyReLU(0.2). Loss: the summed squared
error + ``kl_weight`` · KL(N(μ, σ²) ‖ N(0, I)); Adam with the learning rate × ``lr_gamma`` per epoch.

Departure: the authors' decoder ends in Tanh for their [−1, 1] data space; ours ends in a sigmoid, since our data are
in [0, 1] (outputs are always in the data range). ``sample`` decodes z ~ N(0, I).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..config import merge_layers
from ..train import TrainPlan, windows_per_epoch
from ..utils import resolve_device
from .base import ComplexitySpec, NetworkGenerator

__all__ = ["VAE", "VAEConfig", "VAENet", "VAEDecoder", "kl_divergence"]


@dataclass
class VAEConfig:
    """The authors' VAE (experiments/models/VAE.py): stride-2 conv encoder with a residual block after each
    convolution, flattened (widths[-1]·(p/8)² = 512 at p = 32), fc to ``fc`` then to (μ, log σ²) of size
    ``latent``; the decoder mirrors it (fc latent → flattened size, transposed convs). ``widths`` are the encoder's
    channels (the decoder uses them reversed). Loss: MSE (sum) + ``kl_weight``·KL.
    Learning rate × ``lr_gamma`` per epoch (one epoch = every 32×32 window of the scene once)."""

    latent: int = 20
    widths: tuple[int, ...] = (128, 64, 32)
    fc: int = 256
    kl_weight: float = 1.0
    lr_gamma: float = 0.95


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) summed over every element: ½ Σ (μ² + σ² − log σ² − 1)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum()


class _Res(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.LeakyReLU(0.2),
                                  nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c))

    def forward(self, x):
        return F.leaky_relu(x + self.body(x), 0.2)


class VAEDecoder(nn.Module):
    """z ``(n, latent)`` → x̂ ``(n, B, p, p)`` in [0, 1]: fc latent → flattened size, transposed convolutions
    w₂ → w₁ → w₀ → B (what sampling reads)."""

    def __init__(self, bands: int, size: int, latent: int = 20, widths=(128, 64, 32)):
        super().__init__()
        self.bands, self.size, self.latent, self.widths = bands, size, latent, tuple(widths)
        self.side = size // 8
        self.fc = nn.Linear(latent, widths[-1] * self.side ** 2)
        dec, outs = [], list(widths[::-1][1:]) + [bands]
        c = widths[-1]
        for i, w in enumerate(outs):
            dec.append(nn.ConvTranspose2d(c, w, 4, 2, 1))
            if i < len(outs) - 1:
                dec += [nn.BatchNorm2d(w), nn.LeakyReLU(0.2)]
            c = w
        self.net = nn.Sequential(*dec)

    def forward(self, z):
        h = self.fc(z).view(z.shape[0], self.widths[-1], self.side, self.side)
        return torch.sigmoid(self.net(F.leaky_relu(h, 0.2)))


class VAENet(nn.Module):
    """Encoder and decoder (:class:`VAEDecoder`, ``.dec``); ``forward(x (n, B, p, p)) -> (x̂, μ, log σ²)``;
    ``decode(z (n, latent))``."""

    def __init__(self, bands: int, size: int, latent: int = 20, widths=(128, 64, 32), fc: int = 256):
        super().__init__()
        if size % 8:
            raise ValueError(f"patch_size: the VAE needs a multiple of 8, got {size}")
        self.bands, self.size, self.latent = bands, size, latent
        flat = widths[-1] * (size // 8) ** 2
        enc, c = [], bands
        for w in widths:
            enc += [nn.Conv2d(c, w, 4, 2, 1), nn.BatchNorm2d(w), nn.LeakyReLU(0.2), _Res(w)]
            c = w
        self.encoder = nn.Sequential(*enc, nn.Flatten(), nn.Linear(flat, fc), nn.LeakyReLU(0.2))
        self.mu, self.logvar = nn.Linear(fc, latent), nn.Linear(fc, latent)
        self.dec = VAEDecoder(bands, size, latent, widths)

    def encode(self, x):
        h = self.encoder(x)
        return self.mu(h), self.logvar(h)

    def decode(self, z):
        return self.dec(z)

    def forward(self, x, eps=None):
        mu, logvar = self.encode(x)
        eps = torch.randn_like(mu) if eps is None else eps
        return self.decode(mu + eps * (0.5 * logvar).exp()), mu, logvar


class VAE(NetworkGenerator):
    """After ``fit``: ``nets_["vae.dec"]`` (:class:`VAEDecoder`: sampling reads only the decoder of the trained
    :class:`VAENet`)."""

    name = "VAE"
    sections = {"vae": VAEConfig}
    profiles = merge_layers({
        "smoke": {"train": dict(steps=30, batch_size=4, ckpt_every=10, lr=1e-3), "vae": dict(widths=(16, 16, 8), fc=32)},
        # a budget comparable to HUD quick's on a 2-core CPU (docs/scenes_and_profiles.md, benchmarks/training.py);
        # lr 5e-4 (authors 1e-4) so that 4 epochs can converge
        "quick": {"train": dict(steps=2600, batch_size=20, ckpt_every=250, lr=5e-4)},
        # 100 epochs of Indian Pines' 12,996 windows at batch 20 (the authors' setting)
        "paper": {"train": dict(steps=65_000, batch_size=20, ckpt_every=5000, lr=1e-4)},
    }, {p: {"train": dict(grad_clip=0.0)} for p in ("smoke", "quick", "paper")})
    sample_nets = ("vae.dec",)

    @staticmethod
    def _vae(cfg, bands) -> VAENet:
        v = cfg.vae
        return VAENet(bands, cfg.train.patch_size, v.latent, v.widths, v.fc)

    @classmethod
    def _build_nets(cls, cfg, bands):
        v = cfg.vae
        return {"vae.dec": VAEDecoder(bands, cfg.train.patch_size, v.latent, v.widths)}

    def _plan(self, scene, cfg, device):
        net = self._vae(cfg, scene.bands).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.train.lr)
        epoch = max(1, windows_per_epoch(scene.cube.shape, cfg.train.patch_size) // cfg.train.batch_size)
        gamma, w_kl = cfg.vae.lr_gamma, cfg.vae.kl_weight

        def step(ctx):
            x = ctx.batch()
            eps = ctx.randn(x.shape[0], net.latent)
            with ctx.autocast():
                xh, mu, logvar = ctx.net("vae")(x, eps)
                rec = F.mse_loss(xh.float(), x, reduction="sum")
                kl = kl_divergence(mu.float(), logvar.float())
            loss = rec + w_kl * kl
            ctx.update("vae", loss)
            n = x.shape[0]  # reported per sample
            return {"loss": loss.item() / n, "recon": rec.item() / n, "kl": kl.item() / n}

        return TrainPlan(nets={"vae": net}, optimizers={"vae": opt}, step=step,
                         lr_factor=lambda s: gamma ** (s // epoch))

    def _sample(self, n, random_state, device, progress, batch_size: int = 256, **options):
        net = self.nets_["vae.dec"].to(resolve_device(device))
        return self._decode_latents(net, net.latent, (net.bands, net.size, net.size), n, random_state,
                                    device, batch_size), None

    @classmethod
    def complexity_spec(cls, cfg, bands, d):
        net = cls._vae(cfg, bands)
        return ComplexitySpec(net.dec, lambda b, px, dev: (torch.empty(b, net.latent, device=dev),), 1,
                              train_net=net,
                              train_inputs=lambda b, px, dev: (torch.empty(b, bands, px, px, device=dev),
                                                               torch.empty(b, net.latent, device=dev)))
