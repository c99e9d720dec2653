"""MPRNet (Zamir et al., CVPR 2021) as the HUD authors ran it as a baseline (experiments/models/MPRNet.py,
docs/authors_code.md §D): a 3 → B input convolution lifts the pseudo-RGB of a real 32 × 32 crop to B bands, then
the three-stage multi-patch network restores all B bands.

Architecture (written from the paper's description and the public swz30/MPRNet code's structure):
stage 1 runs a shared encoder-decoder on the 4 quadrants, stage 2 on the 2 halves with cross-stage feature fusion
(stage-1 encoder and decoder features added through 1 × 1 convolutions), stage 3 an original-resolution subnetwork
(ORSNet: channel-attention blocks at full resolution, fed the upsampled stage-2 features); supervised attention
modules (SAM) pass each stage's image estimate and attention-weighted features on. Every stage predicts a residual
on the lifted input. Encoder levels have ``n_feat``, ``n_feat + s``, ``n_feat + 2s`` channels
(``s = scale_unetfeats``), two channel-attention blocks (CAB) each; the ORSNet has 3 blocks of ``num_cab`` CABs at
``n_feat + scale_orsnetfeats``.

As the authors: n_feat = scale_unetfeats = scale_orsnetfeats = B (200 for Indian Pines, hard-coded there; here
``None`` = bands) and num_cab 4 in the ``paper`` profile; loss RMSE; Adam with cosine annealing. We apply the RMSE to
each stage's output and sum, as Zamir et al. supervise every stage. Departure: the authors trained on bands
[46, 27, 10] of every scene but sampled with the scene's visual bands; here training and sampling both use
``scene.rgb_bands``.

Conditional: ``sample(n, random_state)`` = MPRNet(pseudo-RGB of n random real crops), so its samples keep the real
layout and its diversity is bounded by the scene's crops.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..config import merge_layers
from ..data import crop, load_scene, patch_corners
from ..train import TrainPlan
from ..utils import resolve_device
from ..weights import load_weights, weights_file
from .base import ComplexitySpec, NetworkGenerator

__all__ = ["MPRNet", "MPRNetConfig", "MPRNetNet"]


@dataclass
class MPRNetConfig:
    """MPRNet (Zamir et al. 2021) behind a 3 → bands input convolution, as the authors ran it
    (experiments/models/MPRNet.py). ``n_feat=None`` means the band count (the authors hard-coded 200);
    ``scale_unetfeats`` / ``scale_orsnetfeats``: the widths added per encoder level / in the ORSNet
    (None: n_feat, as theirs); cosine-annealed learning rate from ``train.lr`` down to ``lr_min``."""

    n_feat: int | None = None
    scale_unetfeats: int | None = None
    scale_orsnetfeats: int | None = None
    num_cab: int = 4
    reduction: int = 4
    lr_min: float = 1e-7


def _conv(cin, cout, k=3):
    return nn.Conv2d(cin, cout, k, padding=k // 2, bias=False)


class _CAB(nn.Module):
    """Channel-attention block: conv–PReLU–conv, squeeze-excitation weighting, residual."""

    def __init__(self, c, reduction):
        super().__init__()
        self.body = nn.Sequential(_conv(c, c), nn.PReLU(), _conv(c, c))
        r = max(1, c // reduction)
        self.att = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, r, 1), nn.ReLU(True), nn.Conv2d(r, c, 1),
                                 nn.Sigmoid())

    def forward(self, x):
        y = self.body(x)
        return x + y * self.att(y)


def _cabs(c, reduction, n):
    return nn.Sequential(*[_CAB(c, reduction) for _ in range(n)])


class _Down(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False))


class _Up(nn.Module):
    def __init__(self, cin, cout, scale=2):
        super().__init__()
        self.conv, self.scale = nn.Conv2d(cin, cout, 1, bias=False), scale

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False))


class _Encoder(nn.Module):
    def __init__(self, n, s, red, csff):
        super().__init__()
        ch = [n, n + s, n + 2 * s]
        self.levels = nn.ModuleList([_cabs(c, red, 2) for c in ch])
        self.down = nn.ModuleList([_Down(ch[0], ch[1]), _Down(ch[1], ch[2])])
        self.csff = csff
        if csff:  # cross-stage feature fusion from the previous stage's encoder and decoder
            self.f_enc = nn.ModuleList([nn.Conv2d(c, c, 1, bias=False) for c in ch])
            self.f_dec = nn.ModuleList([nn.Conv2d(c, c, 1, bias=False) for c in ch])

    def forward(self, x, enc=None, dec=None):
        out = []
        for i, level in enumerate(self.levels):
            x = level(x if i == 0 else self.down[i - 1](x))
            if self.csff:
                x = x + self.f_enc[i](enc[i]) + self.f_dec[i](dec[i])
            out.append(x)
        return out


class _Decoder(nn.Module):
    def __init__(self, n, s, red):
        super().__init__()
        ch = [n, n + s, n + 2 * s]
        self.levels = nn.ModuleList([_cabs(c, red, 2) for c in ch])
        self.skips = nn.ModuleList([_CAB(c, red) for c in ch[:2]])
        self.up = nn.ModuleList([_Up(ch[1], ch[0]), _Up(ch[2], ch[1])])

    def forward(self, enc):
        d3 = self.levels[2](enc[2])
        d2 = self.levels[1](self.up[1](d3) + self.skips[1](enc[1]))
        d1 = self.levels[0](self.up[0](d2) + self.skips[0](enc[0]))
        return [d1, d2, d3]


class _SAM(nn.Module):
    """Supervised attention: an image estimate (residual on the input) and features gated by it."""

    def __init__(self, n, bands):
        super().__init__()
        self.c1, self.c2, self.c3 = _conv(n, n), _conv(n, bands), _conv(bands, n)

    def forward(self, x, x_img):
        img = self.c2(x) + x_img
        return self.c1(x) * torch.sigmoid(self.c3(img)) + x, img


class _ORSNet(nn.Module):
    def __init__(self, n, s_ors, s_unet, red, num_cab):
        super().__init__()
        c = n + s_ors
        self.orbs = nn.ModuleList([nn.Sequential(_cabs(c, red, num_cab), _conv(c, c)) for _ in range(3)])
        ch = [n, n + s_unet, n + 2 * s_unet]
        self.from_enc = nn.ModuleList([nn.Conv2d(ch[0], c, 1, bias=False), _Up(ch[1], c, 2), _Up(ch[2], c, 4)])
        self.from_dec = nn.ModuleList([nn.Conv2d(ch[0], c, 1, bias=False), _Up(ch[1], c, 2), _Up(ch[2], c, 4)])

    def forward(self, x, enc, dec):
        for i, orb in enumerate(self.orbs):
            x = x + orb(x)
            x = x + self.from_enc[i](enc[i]) + self.from_dec[i](dec[i])
        return x


class MPRNetNet(nn.Module):
    """``forward(rgb (n, 3, H, W)) -> [stage 3, stage 2, stage 1]`` estimates ``(n, bands, H, W)``; H, W multiples
    of 8 (stage 1 halves the patch, its encoder downsamples twice)."""

    def __init__(self, bands: int, n_feat: int | None = None, scale_unetfeats: int | None = None,
                 scale_orsnetfeats: int | None = None, num_cab: int = 4, reduction: int = 4):
        super().__init__()
        n = n_feat or bands
        s, so = scale_unetfeats or n, scale_orsnetfeats or n
        self.bands = bands
        self.conv_in = nn.Conv2d(3, bands, 3, padding=1)  # the authors' 3 → B lift
        self.shallow = nn.ModuleList([nn.Sequential(_conv(bands, n), _CAB(n, reduction)) for _ in range(3)])
        self.enc1, self.dec1 = _Encoder(n, s, reduction, False), _Decoder(n, s, reduction)
        self.enc2, self.dec2 = _Encoder(n, s, reduction, True), _Decoder(n, s, reduction)
        self.sam12, self.sam23 = _SAM(n, bands), _SAM(n, bands)
        self.concat12, self.concat23 = _conv(2 * n, n), _conv(2 * n, n + so)
        self.orsnet = _ORSNet(n, so, s, reduction, num_cab)
        self.tail = _conv(n + so, bands)

    def forward(self, rgb):
        H, W = rgb.shape[-2:]
        if rgb.dim() != 4 or rgb.shape[1] != 3 or H % 8 or W % 8:
            raise ValueError(f"MPRNet input: expected (n, 3, H, W) with H and W multiples of 8, got "
                             f"{tuple(rgb.shape)}")
        x3 = self.conv_in(rgb)
        h, w = H // 2, W // 2
        halves = [x3[..., :h, :], x3[..., h:, :]]
        quads = [[q[..., :w], q[..., w:]] for q in halves]
        # stage 1: quadrants; features of left and right quadrants joined along width per half
        f1 = [[self.enc1(self.shallow[0](q)) for q in row] for row in quads]
        f1 = [[torch.cat([row[0][i], row[1][i]], 3) for i in range(3)] for row in f1]
        r1 = [self.dec1(f) for f in f1]
        sam = [self.sam12(r[0], x) for r, x in zip(r1, halves)]
        img1 = torch.cat([sam[0][1], sam[1][1]], 2)
        # stage 2: halves, fused with stage 1's encoder and decoder features
        f2 = [self.enc2(self.concat12(torch.cat([self.shallow[1](x), sf], 1)), f, r)
              for x, (sf, _), f, r in zip(halves, sam, f1, r1)]
        f2 = [torch.cat([f2[0][i], f2[1][i]], 2) for i in range(3)]
        r2 = self.dec2(f2)
        feats3, img2 = self.sam23(r2[0], x3)
        # stage 3: original resolution
        x = self.orsnet(self.concat23(torch.cat([self.shallow[2](x3), feats3], 1)), f2, r2)
        return [self.tail(x) + x3, img2, img1]


def _rmse(a, b):
    return torch.sqrt(F.mse_loss(a.float(), b.float()) + 1e-12)


class MPRNet(NetworkGenerator):
    """After ``fit``: ``nets_["mprnet"]`` (:class:`MPRNetNet`) and the scene's cube ``cube_`` (it conditions on
    real crops)."""

    name = "MPRNet"
    synthesizes = False  # conditioned on real crops: it cannot make a scene the data do not have
    sections = {"mprnet": MPRNetConfig}
    profiles = merge_layers({
        "smoke": {"train": dict(steps=10, batch_size=2, ckpt_every=5, lr=1e-3),
                  "mprnet": dict(n_feat=8, scale_unetfeats=4, scale_orsnetfeats=4, num_cab=1)},
        # a budget comparable to HUD quick's on a 2-core CPU (docs/scenes_and_profiles.md, benchmarks/training.py)
        "quick": {"train": dict(steps=1100, batch_size=8, ckpt_every=250, lr=2e-4),
                  "mprnet": dict(n_feat=32, scale_unetfeats=16, scale_orsnetfeats=16, num_cab=2, lr_min=1e-6)},
        # 30 epochs of Indian Pines' 12,996 windows at batch 40, Adam 1e-6 (theirs), n_feat = bands
        "paper": {"train": dict(steps=9_750, batch_size=40, ckpt_every=1000, lr=1e-6), "mprnet": dict(lr_min=1e-8)},
    }, {p: {"train": dict(grad_clip=0.0)} for p in ("smoke", "quick", "paper")})
    sample_nets = ("mprnet",)

    @classmethod
    def _build_nets(cls, cfg, bands):
        m = cfg.mprnet
        return {"mprnet": MPRNetNet(bands, m.n_feat, m.scale_unetfeats, m.scale_orsnetfeats, m.num_cab,
                                    m.reduction)}

    def _plan(self, scene, cfg, device):
        net = self._build_nets(cfg, scene.bands)["mprnet"].to(device)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.train.lr)
        rgb = list(scene.rgb_bands)
        T, ratio = cfg.train.steps, cfg.mprnet.lr_min / cfg.train.lr

        def step(ctx):
            y = ctx.batch()
            with ctx.autocast():
                outs = ctx.net("mprnet")(y[:, rgb])
                losses = [_rmse(o, y) for o in outs]
            ctx.update("mprnet", sum(losses))
            return {"rmse": losses[0].item(), "rmse_all_stages": sum(losses).item()}

        def cosine(s):  # from lr to lr_min over the run
            return ratio + (1 - ratio) * 0.5 * (1 + math.cos(math.pi * s / max(1, T)))

        return TrainPlan(nets={"mprnet": net}, optimizers={"mprnet": opt}, step=step, lr_factor=cosine)

    def _load_state(self, run_dir, scene=None):
        super()._load_state(run_dir, scene)
        scene = scene or load_scene(self.config_.scene)
        st = load_weights(weights_file(run_dir, "weights"))
        if scene.sha256 != st["scene_sha256"]:
            raise ValueError(f"{run_dir}: trained on another cube than scene {scene.name!r} (sha256 differs)")
        self.cube_, self.rgb_bands_ = scene.cube, list(scene.rgb_bands)

    def _sample(self, n, random_state, device, progress, batch_size: int = 64, **options):
        device = resolve_device(device)
        net, p = self.nets_["mprnet"].to(device), self.config_.train.patch_size
        real = crop(self.cube_, patch_corners(self.cube_.shape, p, n, np.random.default_rng(random_state)), p)
        out = []
        with torch.no_grad():
            for i in range(0, n, batch_size):
                rgb = torch.from_numpy(real[i:i + batch_size][:, self.rgb_bands_]).to(device)
                out.append(net(rgb)[0].clamp(0, 1).float().cpu().numpy())
        return np.concatenate(out) if out else np.empty((0, self.bands_, p, p), np.float32), None

    @classmethod
    def complexity_spec(cls, cfg, bands, d):
        net = cls._build_nets(cfg, bands)["mprnet"]
        return ComplexitySpec(net, lambda b, px, dev: (torch.empty(b, 3, px, px, device=dev),), 1)
