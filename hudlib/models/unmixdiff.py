"""UD: UnmixDiff (Yu et al., TGRS 2024) as the HUD authors ran it (docs/authors_code.md §D; yuyang95/UnmixingDM),
and what UBF shares with it. The paper's claim is that HUD's *fixed* VCA/FCLS unmixing beats a *learned* one; these
two baselines are the learned side.

Stage 1, a learned unmixing autoencoder (:class:`UnmixingNet`): an SSPN-style convolutional encoder (a 3×3 conv, then
SSPN groups of spatial residual blocks and channel-attention residual blocks, each group ending in a conv to the next
width, the last to p channels) with a softmax over the p abundance channels, and a bias-free 1×1 convolution decoder
whose weight ``(bands, p)`` is the learned endmember matrix. Loss: Charbonnier(Ŷ, Y) + w_sad · SAD(Ŷ, Y) + w_tv ·
TV(endmembers) (:func:`charbonnier`, :func:`sad_loss`, :func:`tv_loss`); Adam with a step learning-rate decay.

Stage 2, abundance diffusion: the frozen encoder's abundances A of the whole scene, scaled to x = 2A − 1 ∈ [−1, 1],
learned by hudlib's U-Net and :class:`~hudlib.diffusion.GaussianDiffusion` (T = 2000, linear β 1e-6 → 1e-2,
ε-prediction with an L1 loss) on random 32×32 crops. Sampling: ancestral (``paper``) or DDIM (CPU profiles), x̂₀
clamped to [−1, 1] at every step as SR3 does. Departure: the U-Net is conditioned on the integer timestep, not on
SR3's continuous noise level.

Decoding (``unmixdiff.decode``, a sampling setting):

- ``"simplex"`` (default): A = (x̂ + 1)/2, projected onto the probability simplex (non-negative, sums to one), decoded
  with the decoder as trained: Ŷ = E A.
- ``"authors"``: A = (x̂ + 1)/2 with no sum-to-one, decoded with the decoder weight min–max normalised over the whole
  matrix, (E − min E)/(max E − min E), as the authors' Synthesis.py. Their outputs are then in another range than the
  data (the paper's "shift in absolute value").

Run directory: ``uae/`` (stage 1's loop: checkpoint, losses), ``diffusion/`` (stage 2's loop),
``weights.safetensors`` (what sampling reads: the autoencoder and the U-Net, its EMA where one is kept), ``losses.json`` and
``train_info.json`` of both stages, ``DONE``. Each stage resumes exactly.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..config import DiffusionConfig, UNetConfig, merge_layers, sampling
from ..train import TrainPlan, build_diffusion, build_unet, train_loop, windows_per_epoch
from ..uae import project_simplex
from ..utils import atomic_save_npy, atomic_write_text, barrier, dist_info, resolve_device
from ..weights import SUFFIX, load_weights, save_weights, weights_file
from .base import ComplexitySpec, DiffusionGenerator, NetworkGenerator

__all__ = ["UD", "UnmixDiffConfig", "UnmixDiffGenerator", "UnmixingNet", "charbonnier", "sad_loss", "tv_loss",
           "DECODERS"]

DECODERS = ("simplex", "authors")


@dataclass
class UnmixDiffConfig:
    """UD (UnmixDiff, Yu et al. TGRS 2024) and UBF (Unmixing-before-fusion, Yu et al. CVPR 2024) as the HUD authors
    ran them (docs/authors_code.md §D; yuyang95/UnmixingDM): a *learned* unmixing autoencoder, then a diffusion
    model on its abundances scaled to [−1, 1]. The diffusion stage uses the run's ``unet``/``diffusion``/``train``
    sections (set per profile in MODEL_PROFILES); this section holds the autoencoder and what is specific to them.

    ``p``: abundance channels (None: the scene's class count, HUD's d; the authors used 5).
    ``widths``/``n_blocks``/``res_scale``/``reduction``: the SSPN-style encoder (a 3×3 conv to widths[0], then one
    SSPN group per width, each of ``n_blocks`` spatial residual + channel-attention blocks, ending in p channels).
    ``w_sad``, ``w_tv``, ``charbonnier_eps``: loss Charbonnier + w_sad·SAD + w_tv·TV(endmembers); ``tv_axis``:
    ``"endmembers"`` (the authors' code differences neighbouring endmembers) or ``"bands"`` (neighbouring bands of
    each endmember: spectral smoothness). ``uae_*``: stage 1's optimisation (Adam), learning rate × ``lr_gamma``
    every ``lr_step_epochs`` epochs (one epoch = every ``uae_patch`` window once). ``diffusion_loss``: ``"l1"``
    (theirs) or ``"l2"`` on ε. ``decode`` (a sampling setting, not hashed): ``"simplex"`` (project the sampled
    abundances onto the simplex and decode with the trained decoder) or ``"authors"`` ((x̂+1)/2 with no sum-to-one,
    decoded with min–max-normalised decoder weights, as their Synthesis.py)."""

    p: int | None = None
    widths: tuple[int, ...] = (32, 64, 128, 96, 48)
    n_blocks: int = 3
    res_scale: float = 0.1
    reduction: int = 16
    charbonnier_eps: float = 1e-3
    w_sad: float = 0.1
    w_tv: float = 0.015
    tv_axis: str = "endmembers"
    uae_steps: int = 500
    uae_batch: int = 64
    uae_lr: float = 2e-4
    uae_patch: int = 128
    lr_step_epochs: int = 40
    lr_gamma: float = 0.5
    diffusion_loss: str = "l1"
    decode: str = sampling("simplex")


# The authors' diffusion in every profile: T = 2000, linear β 1e-6 → 1e-2, ε-prediction with L1, x̂₀ clamped to
# [−1, 1] (docs/authors_code.md §D).
_UD_DIFFUSION = dict(T=2000, beta_start=1e-6, beta_end=1e-2, prediction="eps", clip_z0=True)
_UD_PROFILES = {
    "smoke": {"diffusion": dict(_UD_DIFFUSION, sample_steps=10),
              "train": dict(steps=20, batch_size=4, ckpt_every=10, lr=1e-3, ema_decay=0.9),
              "unmixdiff": dict(widths=(8, 8), n_blocks=1, reduction=4, uae_steps=20, uae_batch=4, uae_patch=32,
                                uae_lr=2e-3)},
    # 2-core CPU (benchmarks/training.py): stage 1 (encoder 16-32-32-24-16, one block per group, batch 16 at
    # 32 px) and stage 2 (HUD quick's U-Net) together about HUD quick's training time
    "quick": {"unet": dict(model_channels=32, channel_mult=(1, 2, 2), num_res_blocks=1, attention_resolutions=(8,),
                           num_heads=2),
              # v-prediction at quick, as HUD quick and for the same measured reason (docs/results.md); sampler:
              # docs/running.md "Sampler parity"
              "diffusion": dict(_UD_DIFFUSION, sampler="ddim", sample_steps=50, eta=1.0, prediction="v"),
              "train": dict(steps=2500, batch_size=16, ckpt_every=250, lr=5e-4, ema_decay=0.995),
              "unmixdiff": dict(widths=(16, 32, 32, 24, 16), n_blocks=1, reduction=4, uae_steps=800, uae_batch=16,
                                uae_patch=32, uae_lr=1e-3)},
    # the authors' settings: UAE 100 epochs at batch 64 on 128-px windows (Indian Pines: 324 windows, 5 steps per
    # epoch), SR3 U-Net 64 ch 1-2-4-8-8, attention at 16 px, dropout 0.2, Adam 1e-4 batch 64 without EMA, ancestral
    # sampling over all 2000 steps; p = 5. The diffusion stage trains on 32-px crops (theirs: 128 px).
    "paper": {"unet": dict(model_channels=64, channel_mult=(1, 2, 4, 8, 8), num_res_blocks=2,
                           attention_resolutions=(16,), dropout=0.2, num_heads=1),
              "diffusion": dict(_UD_DIFFUSION, sampler="ddpm"),
              "train": dict(steps=100_000, batch_size=64, ckpt_every=5000, lr=1e-4, ema_decay=0.0),
              "unmixdiff": dict(p=5, uae_steps=500, uae_batch=64, uae_patch=128, uae_lr=2e-4)},
}


# ------------------------------------------------------------------------------------------------------ losses
def charbonnier(y_hat: torch.Tensor, y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """mean √((ŷ − y)² + ε²) over every element."""
    d = y_hat - y
    return torch.sqrt(d * d + eps * eps).mean()


def sad_loss(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean spectral angle (radians) between ``y_hat`` and ``y`` ``(n, bands, h, w)`` over every pixel:
    arccos(⟨ŷ, y⟩ / (‖ŷ‖ ‖y‖)), the cosine clamped to [−1 + 1e-7, 1 − 1e-7] so its gradient stays finite."""
    cos = F.cosine_similarity(y_hat, y, dim=1, eps=1e-8)
    return torch.acos(cos.clamp(-1 + 1e-7, 1 - 1e-7)).mean()


def tv_loss(E: torch.Tensor, axis: str = "endmembers") -> torch.Tensor:
    """2 · mean of squared differences of neighbouring entries of the endmember matrix ``E`` ``(bands, p)``: between
    neighbouring endmembers (``"endmembers"``, the authors' TVLossEndmembers applied to the decoder weight) or
    neighbouring bands of each endmember (``"bands"``, spectral smoothness)."""
    if axis == "endmembers":
        d = E[:, 1:] - E[:, :-1]
    elif axis == "bands":
        d = E[1:] - E[:-1]
    else:
        raise ValueError(f"unmixdiff.tv_axis: expected 'endmembers' or 'bands', got {axis!r}")
    return 2 * d.pow(2).mean() if d.numel() else E.sum() * 0


# ------------------------------------------------------------------------------------------------------ network
class _ResBlock(nn.Module):
    """x + res_scale · conv(ReLU(conv(x))) (k × k)."""

    def __init__(self, c: int, k: int, res_scale: float):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, k, padding=k // 2), nn.ReLU(True), nn.Conv2d(c, c, k, padding=k // 2))
        self.res_scale = res_scale

    def forward(self, x):
        return x + self.res_scale * self.body(x)


class _AttentionResBlock(_ResBlock):
    """A 1 × 1 residual block whose output is reweighted per channel (squeeze-excitation) before the residual sum."""

    def __init__(self, c: int, res_scale: float, reduction: int):
        super().__init__(c, 1, res_scale)
        r = max(1, c // reduction)
        self.att = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, r, 1), nn.ReLU(True), nn.Conv2d(r, c, 1),
                                 nn.Sigmoid())

    def forward(self, x):
        y = self.body(x)
        return x + self.res_scale * y * self.att(y)


class _SSPN(nn.Module):
    """``n_blocks`` (spatial residual block → spectral attention block), a group skip, then a 3 × 3 conv to ``out``."""

    def __init__(self, c: int, out: int, n_blocks: int, res_scale: float, reduction: int):
        super().__init__()
        self.blocks = nn.Sequential(*[nn.Sequential(_ResBlock(c, 3, res_scale),
                                                    _AttentionResBlock(c, res_scale, reduction))
                                      for _ in range(n_blocks)])
        self.tail = nn.Conv2d(c, out, 3, padding=1)

    def forward(self, x):
        return self.tail(self.blocks(x) + x)


class UnmixingNet(nn.Module):
    """Learned unmixing autoencoder.

    ``encode(Y (n, bands, h, w)) -> A (n, p, h, w)``: softmax over p, so A ≥ 0 and sums to one at every pixel; the
    encoder reads only the bands ``in_bands`` (all when None; UBF: the 3 pseudo-RGB bands).
    ``decode(A) -> Ŷ (n, bands, h, w)`` = E A, a bias-free 1 × 1 convolution; :attr:`endmembers` is E ``(bands, p)``.
    ``forward(Y) -> (A, Ŷ)``.
    """

    def __init__(self, bands: int, p: int, widths=(32, 64, 128, 96, 48), n_blocks: int = 3, res_scale: float = 0.1,
                 reduction: int = 16, in_bands=None):
        super().__init__()
        if p < 1 or not widths:
            raise ValueError(f"UnmixingNet: expected p >= 1 and at least one width, got p={p}, widths={widths}")
        self.bands, self.p = int(bands), int(p)
        self.in_bands = None if in_bands is None else [int(b) for b in in_bands]
        cin = self.bands if self.in_bands is None else len(self.in_bands)
        widths = list(widths)
        self.head = nn.Conv2d(cin, widths[0], 3, padding=1)
        outs = widths[1:] + [self.p]
        self.groups = nn.Sequential(*[_SSPN(c, o, n_blocks, res_scale, reduction) for c, o in zip(widths, outs)])
        self.decoder = nn.Conv2d(self.p, self.bands, 1, bias=False)

    @property
    def endmembers(self) -> torch.Tensor:
        """E ``(bands, p)``: the decoder's weight."""
        return self.decoder.weight[:, :, 0, 0]

    def encode(self, Y: torch.Tensor) -> torch.Tensor:
        x = Y if self.in_bands is None else Y[:, self.in_bands]
        return torch.softmax(self.groups(self.head(x)), dim=1)

    def decode(self, A: torch.Tensor) -> torch.Tensor:
        return self.decoder(A)

    def forward(self, Y):
        A = self.encode(Y)
        return A, self.decode(A)


# ------------------------------------------------------------------------------------------------------ generator
class UnmixDiffGenerator(DiffusionGenerator, NetworkGenerator):
    """Two-stage generator (learned unmixing autoencoder, then abundance diffusion); subclasses say which bands the
    encoder reads (:meth:`encoder_bands`).

    After ``fit``/``load``: ``nets_["uae"]`` (:class:`UnmixingNet`), ``nets_["unet"]`` (the U-Net, EMA weights where
    kept), ``diffusion_``, ``p_``; ``train_info_`` holds both stages' info when fitted in this process.
    """

    sections = {"unmixdiff": UnmixDiffConfig, "unet": UNetConfig, "diffusion": DiffusionConfig}
    profiles = merge_layers(DiffusionGenerator.profiles, _UD_PROFILES)
    sampler_options = DiffusionGenerator.sampler_options + ("decode",)
    decode_options = ("decode",)
    ddpm_sigma = "posterior"  # SR3's ancestral sampler
    sample_nets = ("uae", "unet")
    has_abundances = True
    variants = {"authors-decoding": {"unmixdiff": {"decode": "authors"}}, "p5": {"unmixdiff": {"p": 5}},
                "p5-authors-decoding": {"unmixdiff": {"p": 5, "decode": "authors"}}}
    authors_variant = "p5-authors-decoding"
    rgb_encoder = False  # UBF: the encoder reads only the scene's 3 pseudo-RGB bands

    @classmethod
    def encoder_bands(cls, scene) -> list[int] | None:
        """The bands the encoder reads (None: all)."""
        return list(scene.rgb_bands) if cls.rgb_encoder else None

    # ---------------------------------------------------------------- configs and networks
    @staticmethod
    def resolve_p(cfg, n_classes: int) -> int:
        return int(cfg.unmixdiff.p or n_classes)

    @staticmethod
    def uae_config(cfg):
        """Stage 1's config: ``cfg`` with the ``train`` section replaced by the autoencoder's optimisation."""
        u = cfg.unmixdiff
        train = dataclasses.replace(cfg.train, steps=u.uae_steps, batch_size=u.uae_batch, lr=u.uae_lr,
                                    patch_size=u.uae_patch, ema_decay=0.0, grad_clip=0.0,
                                    ckpt_every=max(1, min(cfg.train.ckpt_every, u.uae_steps)))
        return cfg.replace(train=train)

    @classmethod
    def training_iterations(cls, cfg):
        return {"uae": cfg.unmixdiff.uae_steps, "diffusion": cfg.train.steps}

    @classmethod
    def _build_uae(cls, cfg, bands: int, p: int, in_bands) -> UnmixingNet:
        u = cfg.unmixdiff
        return UnmixingNet(bands, p, u.widths, u.n_blocks, u.res_scale, u.reduction, in_bands)

    def _uae_plan(self, scene, cfg, device) -> TrainPlan:
        """Stage 1 (``cfg`` is :meth:`uae_config`'s): Charbonnier + w_sad·SAD + w_tv·TV, Adam, step decay."""
        u = cfg.unmixdiff
        net = self._build_uae(cfg, scene.bands, self.resolve_p(cfg, scene.n_classes),
                              self.encoder_bands(scene)).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.train.lr)
        epoch = max(1, windows_per_epoch(scene.cube.shape, u.uae_patch) // u.uae_batch)

        def step(ctx):
            y = ctx.batch()
            with ctx.autocast():
                _, y_hat = ctx.net("uae")(y)
                y_hat = y_hat.float()
                ch, sad = charbonnier(y_hat, y, u.charbonnier_eps), sad_loss(y_hat, y)
            tv = tv_loss(net.endmembers.float(), u.tv_axis)
            loss = ch + u.w_sad * sad + u.w_tv * tv
            ctx.update("uae", loss)
            return {"uae_loss": loss.item(), "charbonnier": ch.item(), "sad": sad.item(), "tv": tv.item()}

        return TrainPlan(nets={"uae": net}, optimizers={"uae": opt}, step=step,
                         lr_factor=lambda s: u.lr_gamma ** (s // (u.lr_step_epochs * epoch)))

    def _diffusion_plan(self, cfg, p: int, device) -> TrainPlan:
        """Stage 2: ε-prediction on x = 2A − 1 with the ``unmixdiff.diffusion_loss`` norm (L1), Adam."""
        diffusion = build_diffusion(cfg)
        net = build_unet(cfg, p).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.train.lr)
        norm = cfg.unmixdiff.diffusion_loss

        def step(ctx):
            x0 = ctx.batch()
            t = ctx.randint(diffusion.T, x0.shape[0])
            noise = ctx.randn(*x0.shape)
            with ctx.autocast():
                loss = diffusion.training_loss(ctx.net("unet"), x0, t=t, noise=noise, norm=norm)
            ctx.update("unet", loss)
            return {"diffusion_loss": float(loss.detach())}

        ema = {"unet": cfg.train.ema_decay} if cfg.train.ema_decay > 0 else {}
        return TrainPlan(nets={"unet": net}, optimizers={"unet": opt}, step=step, ema=ema)

    @classmethod
    def _build_nets(cls, cfg, bands, p: int | None = None, in_bands=None):
        p = p or cfg.unmixdiff.p
        return {"uae": cls._build_uae(cfg, bands, p, in_bands), "unet": build_unet(cfg, p)}

    # ---------------------------------------------------------------- training
    @staticmethod
    def scene_abundances(uae: UnmixingNet, cube: np.ndarray, device) -> np.ndarray:
        """The encoder's abundances of the whole scene ``(p, rows, cols)`` float32 (one forward pass)."""
        uae = uae.to(device).eval()
        with torch.no_grad():
            return uae.encode(torch.from_numpy(np.ascontiguousarray(cube, np.float32))[None].to(device))[0].cpu().numpy()

    def _fit(self, scene, cfg, run_dir, resume, device, progress):
        run_dir = Path(run_dir)
        rank = dist_info()[0]
        ucfg = self.uae_config(cfg)
        info1, plan1, _ = train_loop(ucfg, lambda dev: self._uae_plan(scene, ucfg, dev), scene.cube, run_dir / "uae",
                                     device=device, resume=resume, progress=progress)
        uae = plan1.nets["uae"]
        dev = resolve_device(device)
        A = self.scene_abundances(uae, scene.cube, dev)  # training is over: eval mode is what is saved next
        p = A.shape[0]
        x = 2.0 * A - 1.0  # [0, 1] -> [-1, 1]
        info2, plan2, emas = train_loop(cfg, lambda d: self._diffusion_plan(cfg, p, d), x, run_dir / "diffusion",
                                        device=device, resume=resume, progress=progress)
        if rank == 0:
            unet = emas.get("unet", plan2.nets["unet"])
            in_bands = self.encoder_bands(scene)
            save_weights({"nets": {"uae": uae.state_dict(), "unet": unet.state_dict()},
                          "bands": int(scene.bands), "p": p, "in_bands": in_bands, "scene_sha256": scene.sha256,
                          "step": info2["steps"], "uae_step": info1["steps"]}, run_dir / f"weights{SUFFIX}")
            losses = {}
            for sub in ("uae", "diffusion"):
                losses.update(json.loads((run_dir / sub / "losses.json").read_text()))
            atomic_write_text(run_dir / "losses.json", json.dumps(losses))
            info = {"steps": info2["steps"], "uae_steps": info1["steps"],
                    "final_losses": {**info1["final_losses"], **info2["final_losses"]},
                    "wall_time_s": info1["wall_time_s"] + info2["wall_time_s"],
                    "stages": {"uae": info1, "diffusion": info2},
                    **{k: info2[k] for k in ("device", "world_size", "torch", "threads")}}
            info["final_loss"] = info2["final_loss"]
            atomic_write_text(run_dir / "train_info.json", json.dumps(info, indent=2))
            self.train_info_ = info
        barrier()  # every rank then reads weights.safetensors
        self._load_state(run_dir, scene)

    def _load_state(self, run_dir, scene=None):
        st = load_weights(weights_file(run_dir, "weights"))
        self.p_, self.bands_ = int(st["p"]), int(st["bands"])
        self.nets_ = self._build_nets(self.config_, self.bands_, self.p_, st["in_bands"])
        for k, m in self.nets_.items():
            m.load_state_dict(st["nets"][k])
            m.eval()
        self.diffusion_ = build_diffusion(self.config_)

    def endmember_matrix(self):
        return self.nets_["uae"].endmembers.detach().double().cpu().numpy()

    # ---------------------------------------------------------------- sampling
    def denoiser(self):
        return self.nets_["unet"]

    def latent_channels(self) -> int:
        return self.p_

    def z0_range(self):
        return (-1.0, 1.0)  # x = 2A - 1

    def sampler_settings(self, **options) -> dict:
        """:meth:`DiffusionGenerator.sampler_settings` and the decoding (``decode``, default the config's)."""
        st = super().sampler_settings(**options)
        decode = options.get("decode") or self.config_.unmixdiff.decode
        if decode not in DECODERS:
            raise ValueError(f"decode: expected one of {DECODERS}, got {decode!r}")
        return {**st, "decode": decode}

    def sampling_key(self, **options) -> str:
        return f"{super().sampling_key(**options)}-{self.sampler_settings(**options)['decode']}"

    def decode_latent(self, z, decode=None):
        return self.decode(z, decode)

    def decode(self, x: np.ndarray, mode: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(Ŷ ``(n, bands, h, w)``, A ``(n, p, h, w)``) from x̂ in [−1, 1] by ``mode`` (default: the config's
        ``unmixdiff.decode``; see the module docstring)."""
        mode = mode or self.config_.unmixdiff.decode
        if mode not in DECODERS:
            raise ValueError(f"unmixdiff.decode: expected one of {DECODERS}, got {mode!r}")
        A = (torch.from_numpy(np.asarray(x, np.float64)) + 1) / 2
        E = self.nets_["uae"].endmembers.detach().double().cpu()
        if mode == "simplex":
            A = project_simplex(A, axis=1)
        else:
            E = (E - E.min()) / (E.max() - E.min())
        Y = torch.einsum("bp,nphw->nbhw", E, A)
        return Y.float().numpy(), A.float().numpy()

    def _sample(self, n, random_state, device, progress, decode=None, **options):
        # x̂ is cached in the run directory: the decodings share one diffusion sampling
        cache = self.run_dir_ / (f"xhat_{self.weights_hash()}_n{n}_seed{random_state}_b{self.sample_batch}_"
                                 f"{DiffusionGenerator.sampling_key(self, **options)}.npy")
        if cache.is_file():
            x = np.load(cache)
        else:
            x = self.sample_latent(n, random_state, device=device, progress=progress, **options)
            if isinstance(random_state, (int, np.integer)):
                atomic_save_npy(cache, x)
        return self.decode_latent(x, decode)

    def encode(self, Y: np.ndarray, device="auto") -> np.ndarray:
        """The trained encoder's abundances ``(n, p, h, w)`` of patches ``Y`` ``(n, bands, h, w)``."""
        dev = resolve_device(device)
        net = self.nets_["uae"].to(dev)
        with torch.no_grad():
            return net.encode(torch.from_numpy(np.asarray(Y, np.float32)).to(dev)).cpu().numpy()

    @classmethod
    def complexity_spec(cls, cfg, bands, d):
        p = cfg.unmixdiff.p or d
        unet = build_unet(cfg, p)
        uae = cls._build_uae(cfg, bands, p, [0, 1, 2] if cls.rgb_encoder else None)
        return ComplexitySpec(unet, lambda b, px, dev: (torch.empty(b, p, px, px, device=dev),
                                                        torch.zeros(b, dtype=torch.long, device=dev)),
                              cfg.diffusion.T, extra_flops_per_px=2 * p * bands,
                              extra_params=sum(q.numel() for q in uae.parameters()))


class UD(UnmixDiffGenerator):
    """UnmixDiff: the encoder reads every band."""

    name = "UD"
