"""HUD-cond: HUD conditioned on a label layout, with classifier-free guidance and a held-out region it never sees.

The generator is HUD (VCA endmembers → frozen UAE → Z = ln(X + e) → DDPM on 32×32 patches → softmax → A, eqs. 4-6)
whose U-Net also reads the crop's label map: the scene's K classes and "unlabelled" (label 0) as K + 1 one-hot
channels concatenated to Z_t, ``UNet(in_channels=d + K + 1, out_channels=d)`` (:class:`CondUNet`). The null map
(all K + 1 channels zero, distinct from "unlabelled") replaces a training crop's map with probability
``cond.p_uncond``, so one network is both f(z, t, L) and f(z, t, ∅), and sampling can use classifier-free guidance
(Ho & Salimans 2022): f̃ = (1 + w) f(z, t, L) − w f(z, t, ∅) (:class:`GuidedDenoiser`); the combination is affine
with weights summing to one, so it is the same for an ε- or a v-network (ε = √(1 − ᾱ_t) Z_t + √ᾱ_t v).

No leakage: with ``cond.split_seed`` (not None), :func:`hudlib.classifier.spatial_split` (seed, ``holdout``,
``block``, crops of ``train.patch_size``) gives a held-out region of labelled pixels. VCA sees only the pixels
outside it (arranged as a ``(bands, N, 1)`` cube), and every training crop is drawn among the top-left corners
whose crop holds no held-out pixel (:func:`allowed_corners`, :func:`hudlib.train.train_loop`'s ``corners``); the
held-out pixels of the training array are NaN besides, so a crop that touched one would turn the loss into NaN
instead of learning from it. The latent's statistics are the identity (``diffusion.z_scale="none"``; another
scaling, computed by HUD over the whole scene, is refused with a split), and HUD-cond unmixes in our units only
(``unmixing.space="ours"``) with a split.

Run directory: HUD's (``uae.pt``, ``latent.pt``, ``checkpoint.pt``, ``ema.pt``, ...) plus ``split.json`` (seed,
holdout, block, pixel counts and the sha256 of the held-out mask; an artefact file, so shipped with the weights).
The split seed is in the config, hence in the training hash and ``config.json``.

Sources of the facts used here: docs/methods.md (Classifier-free guidance).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import merge_layers, sampling
from ..data import SCENES, DataError
from ..train import build_diffusion, build_unet, train_diffusion
from ..utils import atomic_write_text, dist_info
from .hud import HUD

__all__ = ["HUDCond", "CondConfig", "CondUNet", "GuidedDenoiser", "one_hot", "allowed_corners", "cond_split",
           "layout_digest"]


@dataclass
class CondConfig:
    """Layout conditioning and the held-out region of HUD-cond.

    ``p_uncond``: probability that a training crop's label map is replaced by the null map (classifier-free
    guidance, Ho & Salimans 2022). ``split_seed``: the seed of :func:`hudlib.classifier.spatial_split`, whose
    held-out region (``holdout`` of the labelled pixels, made of ``block`` × ``block`` blocks) the generator never
    sees; None: no hold-out, the whole scene. ``guidance``: the default guidance weight w ≥ 0 of conditional
    sampling (sampling only; 0 = the plain conditional model).
    """

    p_uncond: float = 0.15
    split_seed: int | None = 0
    holdout: float = 0.2
    block: int = 8
    guidance: float = sampling(0.0)


# ----------------------------------------------------------------------------------------------------- helpers
def one_hot(labels, n_classes: int) -> torch.Tensor:
    """Label ids ``(..., h, w)`` in 0..K as float32 one-hot channels ``(..., K + 1, h, w)``; channel 0 is
    "unlabelled" (label 0), channel k the class k. (The null map is all zeros, a map no label gives.)"""
    L = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    return F.one_hot(L, int(n_classes) + 1).movedim(-1, -3).to(torch.float32).contiguous()


def allowed_corners(held: np.ndarray, size: int) -> np.ndarray:
    """The top-left corners ``(m, 2)`` int64 (rows, cols; row-major) of the ``size`` × ``size`` crops of a
    ``(rows, cols)`` scene that contain no pixel of the bool mask ``held`` (counted with an integral image)."""
    held = np.asarray(held, dtype=bool)
    if held.ndim != 2 or min(held.shape) < int(size):
        raise ValueError(f"held: expected a (rows, cols) mask of at least {size} x {size}, got shape {held.shape}")
    s = int(size)
    S = np.zeros((held.shape[0] + 1, held.shape[1] + 1), np.int64)
    S[1:, 1:] = held.cumsum(0).cumsum(1)
    count = S[s:, s:] - S[:-s, s:] - S[s:, :-s] + S[:-s, :-s]  # held pixels of the crop at each corner
    return np.argwhere(count == 0).astype(np.int64)


def cond_split(scene, cfg) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(train, held, region)`` bool masks ``(rows, cols)`` of ``cfg.cond``'s split of ``scene`` (held: the
    held-out labelled pixels; region: every pixel of the held-out blocks, what the generator never sees)
    (:func:`hudlib.classifier.spatial_split` on ``scene.gt`` with crops of ``cfg.train.patch_size``); None without
    a split (``cond.split_seed=None``). The downstream benchmark evaluates on ``held``."""
    from ..classifier import spatial_split  # heavy imports (the classifiers), only where a split is made

    c = cfg.cond
    if c.split_seed is None:
        return None
    return spatial_split(scene.gt, size=cfg.train.patch_size, holdout=c.holdout, block=c.block,
                         random_state=c.split_seed, return_region=True)


def layout_digest(layout: np.ndarray) -> str:
    """10-hex content hash of an int layout (its shape and ids): sample caches of other layouts never mix."""
    L = np.ascontiguousarray(layout, dtype=np.int64)
    return hashlib.sha256(repr(L.shape).encode() + L.tobytes()).hexdigest()[:10]


def _mask_sha256(mask: np.ndarray) -> str:
    """sha256 of a bool mask's shape and C-order bytes (``split.json``'s ``held_sha256``)."""
    m = np.ascontiguousarray(mask, dtype=np.uint8)
    return hashlib.sha256(repr(m.shape).encode() + m.tobytes()).hexdigest()


# ---------------------------------------------------------------------------------------------------- networks
class CondUNet(nn.Module):
    """ε_θ(Z_t, t, L) (or v): a :class:`~hudlib.unet.UNet` on Z_t ``(n, d, h, w)`` with the one-hot label map
    ``cond`` ``(n, K + 1, h, w)`` concatenated as input channels (``in_channels = d + K + 1``, ``out_channels =
    d``). ``cond=None`` is the null map (zeros). ``config`` is the U-Net's plus ``cond_channels`` (= K + 1)."""

    def __init__(self, unet: nn.Module, cond_channels: int):
        super().__init__()
        if unet.in_channels <= int(cond_channels) or unet.out_channels != unet.in_channels - int(cond_channels):
            raise ValueError(f"unet: expected d + {cond_channels} input and d output channels, got "
                             f"{unet.in_channels} in, {unet.out_channels} out")
        self.unet, self.cond_channels = unet, int(cond_channels)
        self.config = {**unet.config, "cond_channels": self.cond_channels}

    def forward(self, z: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if cond is None:
            cond = z.new_zeros((z.shape[0], self.cond_channels) + tuple(z.shape[2:]))
        if cond.shape != (z.shape[0], self.cond_channels) + tuple(z.shape[2:]):
            raise ValueError(f"cond: expected {(z.shape[0], self.cond_channels, *z.shape[2:])} one-hot maps, got "
                             f"{tuple(cond.shape)}")
        return self.unet(torch.cat([z, cond.to(z.dtype)], dim=1), t)


class GuidedDenoiser(nn.Module):
    """Classifier-free guidance: (1 + w) f(z, t, cond) − w f(z, t, ∅) with ∅ the null map (Ho & Salimans 2022),
    both halves in one network call on the batch doubled. For w = 0 use ``net`` itself (one call, bit for bit
    the conditional model): :meth:`HUDCond.model_for` does."""

    def __init__(self, net: CondUNet, guidance: float):
        super().__init__()
        self.net, self.guidance = net, float(guidance)

    def forward(self, z: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        n = z.shape[0]
        t = torch.as_tensor(t, device=z.device)
        t = t.expand(n) if t.ndim == 0 else t
        out = self.net(torch.cat([z, z]), torch.cat([t, t]), torch.cat([cond, torch.zeros_like(cond)]))
        w = self.guidance
        return (1.0 + w) * out[:n] - w * out[n:]


# --------------------------------------------------------------------------------------------------- generator
class HUDCond(HUD):
    """HUD conditioned on a label layout (module docstring). After ``fit``/``load``: HUD's attributes, with
    ``unet_`` a :class:`CondUNet`, and ``n_classes_`` (K).

    Sampling: ``sample(n, random_state, layout=L, guidance=w)`` with ``L`` int ``(n, 32, 32)`` class ids in 0..K
    (0 = unlabelled) and w ≥ 0 (default ``cond.guidance``); without ``layout`` the null map (unconditional; then
    ``guidance`` is refused). ``synthesize(H, W, layout=M)`` conditions each window on its crop of the class map
    ``M`` ``(H, W)``."""

    name = "HUD-cond"
    sections = {**HUD.sections, "cond": CondConfig}
    # quick: a smaller U-Net (a shipped checkpoint fits 100 MB; the downstream benchmark trains one per split seed)
    profiles = merge_layers(HUD.profiles, {
        "quick": {"unet": dict(model_channels=24), "train": dict(steps=2000)},
    })
    sampler_options = HUD.sampler_options + ("layout", "guidance")
    _held: np.ndarray | None = None  # the held-out mask while _fit prepares the UAE (what VCA must not see)

    # ---------------------------------------------------------------- config and data checks
    @staticmethod
    def _check_config(cfg) -> None:
        """One-line errors for ``cfg.cond`` and for what a split cannot keep off the held-out region."""
        c = cfg.cond
        if isinstance(c.p_uncond, bool) or not isinstance(c.p_uncond, numbers.Real) or not 0 <= c.p_uncond <= 1:
            raise ValueError(f"cond.p_uncond: expected a probability in [0, 1], got {c.p_uncond!r}")
        if c.split_seed is not None and (isinstance(c.split_seed, bool) or not isinstance(c.split_seed, int)):
            raise ValueError(f"cond.split_seed: expected None or an int seed, got {c.split_seed!r}")
        if c.split_seed is None:
            defaults = CondConfig()
            for k in ("holdout", "block"):
                if getattr(c, k) != getattr(defaults, k):
                    raise ValueError(f"cond.{k}: has no effect without a split (cond.split_seed=None); leave it at "
                                     f"{getattr(defaults, k)!r}")
            return
        if cfg.unmixing.space != "ours":
            raise ValueError(f"unmixing.space: HUD-cond with a split unmixes in our units only ('ours'), got "
                             f"{cfg.unmixing.space!r}")
        if cfg.diffusion.z_scale != "none":
            raise ValueError(f"diffusion.z_scale: HUD's latent statistics span the whole scene, held-out region "
                             f"included; with a split only 'none', got {cfg.diffusion.z_scale!r}")

    @staticmethod
    def _check_labels(scene) -> int:
        """K = ``scene.n_classes`` after checking ``scene.gt`` (an int ``(rows, cols)`` map of ids in 0..K)."""
        gt, K = np.asarray(scene.gt), int(scene.n_classes)
        if K < 1:
            raise DataError(f"scene.n_classes: expected at least one class, got {K}")
        if gt.shape != tuple(scene.cube.shape[1:]) or gt.dtype.kind not in "iu":
            raise DataError(f"scene.gt: expected an int (rows, cols) = {tuple(scene.cube.shape[1:])} label map, "
                            f"got {gt.dtype} {gt.shape}")
        if gt.min() < 0 or gt.max() > K:
            raise DataError(f"scene.gt: expected labels in 0..{K} (0 = unlabelled), got [{gt.min()}, {gt.max()}]")
        return K

    def _layout(self, layout, shape: tuple | None = None, what: str = "") -> np.ndarray:
        """``layout`` as int64 after checking its dtype, its ids (0..K) and, if given, its ``shape``."""
        K = self.n_classes_
        if isinstance(layout, torch.Tensor):
            layout = layout.detach().cpu().numpy()
        L = np.asarray(layout)
        if L.dtype.kind not in "iu":
            raise ValueError(f"layout: expected an integer array of class ids in 0..{K}, got dtype {L.dtype}")
        if shape is not None and L.shape != tuple(shape):
            raise ValueError(f"layout: expected {what}{tuple(shape)}, got shape {L.shape}")
        if shape is None and L.ndim not in (2, 3):
            raise ValueError(f"layout: expected (n, h, w) or (h, w) class ids, got shape {L.shape}")
        if L.size and (L.min() < 0 or L.max() > K):
            raise ValueError(f"layout: expected class ids in 0..{K} (0 = unlabelled), got values in "
                             f"[{L.min()}, {L.max()}]")
        return L.astype(np.int64)

    def _guidance(self, guidance, conditional: bool) -> float:
        """The guidance weight w (``guidance``, else the run's ``cond.guidance``), checked: a real w ≥ 0, and
        only with a layout."""
        if guidance is not None and not conditional:
            raise ValueError("guidance: needs a layout; without one HUD-cond samples unconditionally (the null map)")
        name, w = ("cond.guidance", self.config_.cond.guidance) if guidance is None else ("guidance", guidance)
        if isinstance(w, bool) or not isinstance(w, numbers.Real) or not math.isfinite(w) or w < 0:
            raise ValueError(f"{name}: expected a finite guidance weight w >= 0, got {w!r}")
        return float(w)

    # ---------------------------------------------------------------- fitting
    def _uae_input(self, scene, space):
        """HUD's, with VCA (and everything HUD computes from its second entry) restricted to the pixels outside
        the held-out region, as a ``(bands, N, 1)`` cube."""
        Y, Y_stats, to_ours = super()._uae_input(scene, space)
        held = self._held
        if held is None:
            return Y, Y_stats, to_ours
        return Y, np.ascontiguousarray(Y[:, ~held][:, :, None]), to_ours

    def _fit(self, scene, cfg, run_dir, resume, device, progress):
        self._check_config(cfg)
        K = self._check_labels(scene)
        split = cond_split(scene, cfg)
        held = None if split is None else split[2]  # the whole held-out region, unlabelled pixels included
        self._held = held
        try:
            Z = self._prepare(scene, cfg, run_dir)  # VCA outside the held-out region
        finally:
            self._held = None
        d, size = int(Z.shape[0]), cfg.train.patch_size
        corners = None if held is None else allowed_corners(held, size)
        if corners is not None and len(corners) == 0:
            raise ValueError(f"cond.split_seed: the held-out region leaves no {size} x {size} training crop free "
                             f"of held-out pixels; lower cond.holdout or use another seed")
        data = torch.cat([Z, one_hot(scene.gt, K)])  # (d + K + 1, rows, cols): random crops stay aligned
        if held is not None:
            data[:, torch.from_numpy(held)] = float("nan")  # never read (corners); NaN losses if it were
        if dist_info()[0] == 0:
            atomic_write_text(Path(run_dir) / "split.json", json.dumps(
                self._split_record(scene, cfg, split, corners), indent=2))
        p_uncond = float(cfg.cond.p_uncond)

        def condition(ctx, batch):
            """Split the crops into Z_0 and their maps; each map is the null map with probability p_uncond."""
            keep = (ctx.rand(batch.shape[0]) >= p_uncond).to(batch.dtype).view(-1, 1, 1, 1)
            return batch[:, :d].contiguous(), {"cond": batch[:, d:] * keep}

        self.train_info_ = train_diffusion(cfg, data, run_dir, device=device, resume=resume, progress=progress,
                                           corners=corners, make_net=lambda: self._build_net(cfg, d, K),
                                           condition=condition)
        self._load_state(run_dir, scene)

    @staticmethod
    def _build_net(cfg, d: int, K: int) -> CondUNet:
        return CondUNet(build_unet(cfg, d, K + 1), K + 1)

    @staticmethod
    def _split_record(scene, cfg, split, corners) -> dict:
        """``split.json``: the split's settings, its pixel counts and the held-out mask's sha256."""
        c, (rows, cols) = cfg.cond, scene.gt.shape
        size = cfg.train.patch_size
        if split is None:
            return {"seed": None, "holdout": None, "block": None, "patch_size": size, "shape": [rows, cols],
                    "train_pixels": int((scene.gt > 0).sum()), "held_pixels": 0, "unmixing_pixels": rows * cols,
                    "crop_corners": (rows - size + 1) * (cols - size + 1), "held_sha256": None}
        train, held, region = split
        return {"seed": c.split_seed, "holdout": c.holdout, "block": c.block, "patch_size": size,
                "shape": [rows, cols], "train_pixels": int(train.sum()), "held_pixels": int(held.sum()),
                "region_pixels": int(region.sum()), "unmixing_pixels": int((~region).sum()),
                "crop_corners": len(corners), "held_sha256": _mask_sha256(held),
                "region_sha256": _mask_sha256(region)}

    def split_masks(self, scene) -> tuple[np.ndarray, np.ndarray] | None:
        """The fitted run's ``(train, held)`` masks of ``scene`` (None without a split), checked against the
        held-out mask recorded in ``split.json`` where the run has one."""
        split = cond_split(scene, self.config_)
        path = Path(self.run_dir_) / "split.json"
        if split is not None and path.is_file():
            rec = json.loads(path.read_text())
            if rec["held_sha256"] != _mask_sha256(split[1]):
                raise DataError(f"scene: {scene.name!r} gives another held-out region than the run recorded in {path}")
        return None if split is None else split[:2]

    @classmethod
    def artefact_files(cls, run_dir):
        """HUD's and ``split.json``: the held-out region travels with the weights (and keys their hash)."""
        return super().artefact_files(run_dir) + [Path(run_dir) / "split.json"]

    def _load_state(self, run_dir: Path, scene=None):
        cfg = self.config_
        self._prepare(scene, cfg, run_dir, latent=False)
        st = torch.load(Path(run_dir) / "ema.pt", map_location="cpu", weights_only=True)
        self.n_classes_ = int(st["unet_config"]["cond_channels"]) - 1
        self.unet_ = self._build_net(cfg, self.uae_.d, self.n_classes_)
        self.unet_.load_state_dict(st["ema"])
        self.unet_.eval()
        self.diffusion_ = build_diffusion(cfg)

    @classmethod
    def complexity_spec(cls, cfg, bands, d):
        """HUD's, with the U-Net reading the K + 1 one-hot channels too (K: the registered scene's classes, else
        d); one evaluation per step (w = 0; guidance doubles the batch)."""
        K = SCENES[cfg.scene].n_classes if cfg.scene in SCENES else d
        return dataclasses.replace(
            super().complexity_spec(cfg, bands, d), net=cls._build_net(cfg, d, K),
            inputs=lambda b, px, dev: (torch.empty(b, d, px, px, device=dev),
                                       torch.zeros(b, dtype=torch.long, device=dev),
                                       torch.zeros(b, K + 1, px, px, device=dev)))

    # ---------------------------------------------------------------- sampling
    def model_for(self, dev, layout=None, guidance=None):
        """``(model, kwargs_for)``: without ``layout`` the network on the null map (``kwargs_for`` gives
        nothing); with ``layout`` (int ``(n, h, w)``, or ``(h, w)`` for one sample) the network itself for w = 0
        (one call per step) or :class:`GuidedDenoiser` for w > 0, and ``kwargs_for(i0, i1)`` the one-hot maps
        ``{"cond": (i1 - i0, K + 1, h, w)}`` of samples i0..i1."""
        w = self._guidance(guidance, layout is not None)
        net = self.denoiser().to(dev)
        if layout is None:
            return net, lambda i0, i1: {}
        L = self._layout(layout)
        L = L[None] if L.ndim == 2 else L
        K = self.n_classes_
        return (net if w == 0 else GuidedDenoiser(net, w)), lambda i0, i1: {"cond": one_hot(L[i0:i1], K).to(dev)}

    def sample_latent(self, n: int, random_state=0, *, device="auto", progress: bool = False,
                      batch_size: int | None = None, **options) -> np.ndarray:
        """HUD's latents ``(n, d, 32, 32)``, after checking that a ``layout`` is ``(n, 32, 32)``."""
        if options.get("layout") is not None:
            size = self.config_.train.patch_size
            self._layout(options["layout"], (int(n), size, size), what=f"one {size} x {size} map per sample: ")
        return super().sample_latent(n, random_state, device=device, progress=progress, batch_size=batch_size,
                                     **options)

    def window_kwargs_for(self, dev, height: int, width: int, layout=None, guidance=None):
        """``window_kwargs(origins) -> {"cond": (k, K + 1, p, p)}``: the one-hot crops of the class map ``layout``
        ``(H, W)`` at the call's k window corners, for the one canvas :meth:`synthesize` draws (window-major with
        n = 1). Naive tiling's rounded-up canvas sees the map edge-padded. None without a layout."""
        if layout is None:
            return None
        L = self._layout(layout, (int(height), int(width)), what="the canvas's class map (H, W) = ")
        p = self.config_.train.patch_size
        L = np.pad(L, ((0, -L.shape[0] % p), (0, -L.shape[1] % p)), mode="edge")
        maps = one_hot(L, self.n_classes_)  # (K + 1, H', W')

        def window_kwargs(origins):
            return {"cond": torch.stack([maps[:, r:r + p, c:c + p] for r, c in origins]).to(dev)}

        return window_kwargs

    def sampler_settings(self, **options) -> dict:
        """HUD's settings plus the conditioning: ``layout`` (:func:`layout_digest`, None = unconditional) and
        ``guidance`` (w; None when unconditional)."""
        st = super().sampler_settings(**options)
        o = self.sampler_overrides(options)
        if o.get("layout") is None:
            self._guidance(o.get("guidance"), False)
            return {**st, "layout": None, "guidance": None}
        return {**st, "layout": layout_digest(self._layout(o["layout"])),
                "guidance": self._guidance(o.get("guidance"), True)}

    def sampling_key(self, **options) -> str:
        """HUD's tag plus ``-uncond``, or ``-layout<digest>-w<w>``: caches of other conditions never mix."""
        st = self.sampler_settings(**options)
        base = super().sampling_key(**options)
        return f"{base}-uncond" if st["layout"] is None else f"{base}-layout{st['layout']}-w{st['guidance']}"
