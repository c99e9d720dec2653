"""HUD-cond: HUD conditioned on a label layout, with classifier-free guidance and a held-out region it never sees.

The generator is HUD (VCA endmembers → frozen UAE → Z = ln(X + e) → DDPM on 32×32 patches → softmax → A, eqs. 4-6)
whose U-Net also reads the crop's label map: the scene's K classes and "unlabelled" (label 0) as K + 1 one-hot
channels concatenated to Z_t, ``UNet(in_channels=d + K + 1, out_channels=d)`` (:class:`CondUNet`). The null map
(all K + 1 channels zero, distinct from "unlabelled") replaces a training crop's map with probability
``cond.p_uncond``, so one network is both f(z, t, L) and f(z, t, ∅), and sampling can use classifier-free guidance
(Ho & Salimans 2022): f̃ = (1 + w) f(z, t, L) − w f(z, t, ∅) (:class:`GuidedDenoiser`); the combination is affine
with weights summing to one, so it is the same for an ε- or a v-network (ε = √(1 − ᾱ_t) Z_t + √ᾱ_t v).

No leakage: with ``cond.fold`` (not None) the generator trains on fold ``cond.fold`` of the spatial k-fold
``cond.split`` (:class:`hudlib.splits.SpatialKFold`, the same object that decides what the downstream benchmark's
classifiers may see and are scored on) and reads the scene only through :meth:`hudlib.splits.Fold.view`: the
spectra of the buffer and held-out pixels are NaN and their labels 0 there. VCA sees the training ground's pixels
(arranged as a ``(bands, N, 1)`` cube), the UAE encodes only them, and every training crop is drawn among the
top-left corners whose crop lies wholly on the training ground (:meth:`hudlib.splits.Fold.corners`,
:func:`hudlib.train.train_loop`'s ``corners``); any other pixel of the training array is NaN, so a crop that
touched one would turn the loss into NaN instead of learning from it. The latent's statistics are the identity
(``diffusion.z_scale="none"``; another scaling, computed by HUD over the whole scene, is refused with a fold), and
HUD-cond unmixes in our units only (``unmixing.space="ours"``) with a fold. The scene's normalisation (raw / the
file's maximum, :func:`hudlib.data.load_scene`) is the file's, shared by every pixel a classifier reads too.

Run directory: HUD's (``uae.safetensors``, ``latent.pt``, ``checkpoint.pt``, ``ema.safetensors``, ...) plus ``split.json`` (the
fold's record: split spec, pixel counts and the sha256 of its held-out and training-ground masks; an artefact
file, so shipped with the weights). The fold and the split spec are in the config, hence in the training hash.

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
from ..data import SCENES
from ..errors import DataError
from ..splits import KFOLD, SpatialKFold, crop_corners_inside, mask_sha256, pack_mask
from ..train import build_diffusion, build_unet, train_diffusion
from ..utils import atomic_write_text, dist_info
from ..weights import load_weights, weights_file
from .hud import HUD

__all__ = ["HUDCond", "CondConfig", "CondUNet", "GuidedDenoiser", "one_hot", "allowed_corners", "cond_fold",
           "layout_digest"]


@dataclass
class CondConfig:
    """Layout conditioning and the fold HUD-cond trains on.

    ``p_uncond``: probability that a training crop's label map is replaced by the null map (classifier-free
    guidance, Ho & Salimans 2022). ``fold``: the index of the fold of ``split`` (a
    :attr:`hudlib.splits.SpatialKFold.spec`, by default the project's :data:`hudlib.splits.KFOLD`) whose training
    ground is all the generator sees; None: the whole scene. ``guidance``: the default guidance weight w ≥ 0 of
    conditional sampling (sampling only; 0 = the plain conditional model).
    """

    p_uncond: float = 0.15
    fold: int | None = 0
    split: str = KFOLD.spec
    guidance: float = sampling(0.0)


# ----------------------------------------------------------------------------------------------------- helpers
def one_hot(labels, n_classes: int) -> torch.Tensor:
    """Label ids ``(..., h, w)`` in 0..K as float32 one-hot channels ``(..., K + 1, h, w)``; channel 0 is
    "unlabelled" (label 0), channel k the class k. (The null map is all zeros, a map no label gives.)"""
    L = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    return F.one_hot(L, int(n_classes) + 1).movedim(-1, -3).to(torch.float32).contiguous()


def allowed_corners(excluded: np.ndarray, size: int) -> np.ndarray:
    """The top-left corners ``(m, 2)`` int64 (rows, cols; row-major) of the ``size`` × ``size`` crops of a
    ``(rows, cols)`` scene that contain no pixel of the bool mask ``excluded``."""
    return crop_corners_inside(~np.asarray(excluded, dtype=bool), size)


def cond_fold(scene, cfg):
    """The :class:`hudlib.splits.Fold` ``cfg.cond.fold`` of ``cfg.cond.split`` on ``scene.gt``; None without a fold
    (``cond.fold=None``: the whole scene)."""
    c = cfg.cond
    if c.fold is None:
        return None
    return SpatialKFold.from_spec(c.split).split(scene.gt)[c.fold]


def layout_digest(layout: np.ndarray) -> str:
    """10-hex content hash of an int layout (its shape and ids): sample caches of other layouts never mix."""
    L = np.ascontiguousarray(layout, dtype=np.int64)
    return hashlib.sha256(repr(L.shape).encode() + L.tobytes()).hexdigest()[:10]


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
    # quick: a smaller U-Net (a shipped checkpoint fits 100 MB; the downstream benchmark trains one per fold)
    profiles = merge_layers(HUD.profiles, {
        "quick": {"unet": dict(model_channels=24), "train": dict(steps=2000)},
    })
    sampler_options = HUD.sampler_options + ("layout", "guidance")
    _ground: np.ndarray | None = None  # the fold's training ground while _fit prepares the UAE (all VCA may see)

    # ---------------------------------------------------------------- config and data checks
    @classmethod
    def unsupported(cls, scene, cfg):
        """A fold whose training ground holds no ``patch_size`` crop cannot be trained on (e.g. a small scene under
        the project's split, whose buffers leave the ground in pieces)."""
        fold = cond_fold(scene, cfg)
        size = cfg.train.patch_size
        if fold is not None and len(fold.corners(size)) == 0:
            return f"the training ground of {fold.name} holds no {size} x {size} crop"
        return None

    @staticmethod
    def _check_config(cfg) -> None:
        """One-line errors for ``cfg.cond`` and for what a split cannot keep off the held-out region."""
        c = cfg.cond
        if isinstance(c.p_uncond, bool) or not isinstance(c.p_uncond, numbers.Real) or not 0 <= c.p_uncond <= 1:
            raise ValueError(f"cond.p_uncond: expected a probability in [0, 1], got {c.p_uncond!r}")
        if c.fold is None:
            if c.split != CondConfig.split:
                raise ValueError(f"cond.split: has no effect without a fold (cond.fold=None); leave it at "
                                 f"{CondConfig.split!r}")
            return
        try:
            n = SpatialKFold.from_spec(c.split).n_folds
        except DataError as e:
            raise ValueError(f"cond.{e}") from None
        if isinstance(c.fold, bool) or not isinstance(c.fold, int) or not 0 <= c.fold < n:
            raise ValueError(f"cond.fold: expected None or a fold index in 0..{n - 1}, got {c.fold!r}")
        if cfg.unmixing.space != "ours":
            raise ValueError(f"unmixing.space: HUD-cond with a fold unmixes in our units only ('ours'), got "
                             f"{cfg.unmixing.space!r}")
        if cfg.diffusion.z_scale != "none":
            raise ValueError(f"diffusion.z_scale: HUD's latent statistics span the whole scene, held-out region "
                             f"included; with a fold only 'none', got {cfg.diffusion.z_scale!r}")

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
        """HUD's, with VCA (and everything HUD computes from its second entry) restricted to the fold's training
        ground, as a ``(bands, N, 1)`` cube."""
        Y, Y_stats, to_ours = super()._uae_input(scene, space)
        ground = self._ground
        if ground is None:
            return Y, Y_stats, to_ours
        return Y, np.ascontiguousarray(Y[:, ground][:, :, None]), to_ours

    def _encode_scene(self, Y: np.ndarray) -> np.ndarray:
        """HUD's, encoding only the training ground's pixels with a fold (NaN elsewhere)."""
        ground = self._ground
        if ground is None:
            return super()._encode_scene(Y)
        X = np.full((self.uae_.d,) + ground.shape, np.nan)
        X[:, ground] = self.uae_.encode(np.ascontiguousarray(Y[:, ground][:, :, None]))[:, :, 0]
        return X

    def _fit(self, scene, cfg, run_dir, resume, device, progress):
        self._check_config(cfg)
        K = self._check_labels(scene)
        fold = cond_fold(scene, cfg)
        view = scene if fold is None else fold.view(scene)  # buffer and held-out pixels do not exist in it
        self._ground = None if fold is None else fold.train
        try:
            Z = self._prepare(view, cfg, run_dir)  # VCA and the UAE on the training ground only
        finally:
            self._ground = None
        d, size = int(Z.shape[0]), cfg.train.patch_size
        corners = None if fold is None else fold.corners(size)
        if corners is not None and len(corners) == 0:
            raise ValueError(f"cond.fold: {self.unsupported(scene, cfg)}; use another split (cond.split) or "
                             f"cond.fold=None")
        data = torch.cat([Z, one_hot(view.gt, K)])  # (d + K + 1, rows, cols): random crops stay aligned
        if fold is not None:
            data[:, torch.from_numpy(~fold.train)] = float("nan")  # never read (corners); NaN losses if it were
        if dist_info()[0] == 0:
            atomic_write_text(Path(run_dir) / "split.json", json.dumps(
                self._split_record(scene, cfg, fold, corners), indent=2))
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
    def _split_record(scene, cfg, fold, corners) -> dict:
        """``split.json``: the fold's record (:meth:`hudlib.splits.Fold.record`: spec, pixel counts, class coverage,
        the sha256 of its held-out and training-ground masks), the pixels VCA/the UAE read, the crop corners and the
        training-ground mask itself (:func:`hudlib.splits.pack_mask`: what every read of the training was limited
        to, for audits)."""
        (rows, cols), size = scene.gt.shape, cfg.train.patch_size
        if fold is None:
            return {"fold": None, "spec": None, "patch_size": size, "shape": [rows, cols],
                    "train_labelled_pixels": int((scene.gt > 0).sum()), "held_pixels": 0,
                    "unmixing_pixels": rows * cols, "crop_corners": (rows - size + 1) * (cols - size + 1),
                    "held_sha256": None, "train_sha256": None}
        return {"fold": fold.index, **fold.record(scene.gt), "patch_size": size, "shape": [rows, cols],
                "unmixing_pixels": int(fold.train.sum()), "crop_corners": len(corners),
                "train_mask": pack_mask(fold.train)}

    def fold_of(self, scene):
        """The fitted run's :class:`hudlib.splits.Fold` of ``scene`` (None without a fold), checked against the
        masks recorded in ``split.json`` where the run has one."""
        fold = cond_fold(scene, self.config_)
        path = Path(self.run_dir_) / "split.json"
        if fold is not None and path.is_file():
            rec = json.loads(path.read_text())
            if (rec.get("held_sha256"), rec.get("train_sha256")) != (mask_sha256(fold.held), mask_sha256(fold.train)):
                raise DataError(f"scene: {scene.name!r} gives another fold than the run recorded in {path}")
        return fold

    @classmethod
    def artefact_files(cls, run_dir):
        """HUD's and ``split.json``: the held-out region travels with the weights (and keys their hash)."""
        return super().artefact_files(run_dir) + [Path(run_dir) / "split.json"]

    def _load_state(self, run_dir: Path, scene=None):
        cfg = self.config_
        self._prepare(scene, cfg, run_dir, latent=False)
        st = load_weights(weights_file(run_dir, "ema"))
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
