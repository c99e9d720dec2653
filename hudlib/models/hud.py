"""HUD: VCA endmembers → frozen UAE → Z = ln(X + e^(−ln d − 8)) → DDPM on 32×32 patches of Z → softmax → decode.

Run directory contents (``runs/<scene>/HUD/<profile>-<hash>/``): ``config.json``, ``uae.safetensors`` (endmembers, encoder,
Z scaling: what sampling reads besides the EMA), ``latent.pt`` (the scene's Z, the training data), ``checkpoint.pt`` (resumable), ``ema.safetensors`` (EMA weights used for sampling),
``losses.json``, ``train_info.json``, ``DONE``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .. import uae as uae_mod
from ..config import UnmixingConfig, merge_layers
from ..data import centre_square
from ..train import build_diffusion, build_unet, train_diffusion
from ..runstore import reuse_or_install, run_dir_for
from ..utils import atomic_torch_save, atomic_write_text
from ..weights import SUFFIX, load_weights, save_weights, weights_file
from .base import ComplexitySpec, DiffusionGenerator

__all__ = ["HUD", "clip_renormalise"]


class HUD(DiffusionGenerator):
    """The paper's generator. After ``fit``: ``uae_`` (UnmixingAutoEncoder), ``unet_`` (EMA weights),
    ``diffusion_``, ``z_shift_``/``z_scale_`` (``(d, 1, 1)`` arrays; identity unless ``diffusion.z_scale`` or
    ``diffusion.scale_factor`` say otherwise).

    The latent follows ``cfg.unmixing`` (see :class:`hudlib.config.UnmixingConfig`): by default the paper's
    Z = ln(X + e) and softmax (eqs. 4-5); ``projection="clip"`` / ``"none"`` diffuse X itself (the ablation and
    :class:`~hudlib.models.hud_asrun.HUDAsRun`)."""

    name = "HUD"
    has_abundances = True
    sections = {"unmixing": UnmixingConfig, **DiffusionGenerator.sections}
    profiles = merge_layers(DiffusionGenerator.profiles, {
        "smoke": {"train": dict(steps=30, batch_size=4, ckpt_every=10, lr=1e-3)},
        # the quick budget on a 2-core CPU (docs/scenes_and_profiles.md, benchmarks/diffusion.py)
        "quick": {"train": dict(steps=3000, batch_size=16, ckpt_every=250, lr=5e-4)},
        "paper": {"train": dict(steps=100_000, batch_size=64, ckpt_every=5000, lr=2e-4)},
    })

    def _uae_input(self, scene, space: str) -> tuple[np.ndarray, np.ndarray, float]:
        """(cube the UAE reads, the part VCA and the statistics see, factor back to our units)."""
        if space == "ours":
            return scene.cube, scene.cube, 1.0
        if space == "authors":
            Y = scene.to_authors_space(scene.cube) + 1.0  # their x + 1 in [0, 2]
            return Y, centre_square(Y), scene.authors_V / (2.0 * float(scene.raw_range[1]))
        raise ValueError(f"unmixing.space: expected 'ours' or 'authors', got {space!r}")

    def _prepare(self, scene, cfg, run_dir: Path, latent: bool = True) -> torch.Tensor | None:
        """The frozen UAE (``uae.safetensors``: what sampling reads) and, with ``latent``, the scene's Z ``(d, rows, cols)``
        in network units (the training data, cached in ``latent.pt``; rebuilt from the UAE when absent, e.g. in a
        shipped checkpoint)."""
        u, dc = cfg.unmixing, cfg.diffusion
        if u.projection not in ("softmax", "clip", "none"):
            raise ValueError(f"unmixing.projection: expected 'softmax', 'clip' or 'none', got {u.projection!r}")
        self.projection_, self.space_ = u.projection, u.space
        path, zpath = weights_file(run_dir, "uae"), run_dir / "latent.pt"
        if path.exists():
            st = load_weights(path)
            self.uae_ = uae_mod.UnmixingAutoEncoder(st["E"].numpy(), encoder=st["encoder"],
                                                   simplex=bool(st.get("simplex", True)))
            d = self.uae_.d
            self.z_shift_ = np.broadcast_to(np.asarray(st["z_shift"], dtype=np.float64).reshape(-1, 1, 1), (d, 1, 1))
            self.z_scale_ = np.broadcast_to(np.asarray(st["z_scale"], dtype=np.float64).reshape(-1, 1, 1), (d, 1, 1))
            self.to_ours_ = float(st.get("to_ours", 1.0))
            if not latent:
                return None
            if zpath.exists():
                return torch.load(zpath, map_location="cpu", weights_only=True)["Z"]
            Y, _, _ = self._uae_input(scene, u.space)
            return self._latent(self._encode_scene(Y))
        Y, Y_stats, self.to_ours_ = self._uae_input(scene, u.space)
        d = u.d or scene.n_classes
        self.uae_ = uae_mod.UnmixingAutoEncoder.from_cube(Y_stats, d, random_state=u.random_state,
                                                         encoder=u.encoder, simplex=u.simplex)
        X = self._encode_scene(Y)  # (d, rows, cols)
        Z = uae_mod.relax(X) if u.projection == "softmax" else X  # eq. 4
        Zs = centre_square(Z) if u.space == "authors" else Z
        if dc.z_scale == "standardize":
            shift, scale = np.full(d, Zs.mean()), np.full(d, Zs.std())
        elif dc.z_scale == "per_endmember":
            shift, scale = Zs.mean(axis=(1, 2)), Zs.std(axis=(1, 2))
        elif dc.z_scale == "none":
            shift, scale = np.zeros(d), np.ones(d)
        else:
            raise ValueError(f"diffusion.z_scale: expected 'none', 'standardize' or 'per_endmember', "
                             f"got {dc.z_scale!r}")
        scale = scale / float(dc.scale_factor)  # network units = (Z - shift) / std * scale_factor
        self.z_shift_, self.z_scale_ = shift.reshape(d, 1, 1), scale.reshape(d, 1, 1)
        uniform = bool(np.all(shift == shift[0]) and np.all(scale == scale[0]))
        save_weights({"E": torch.from_numpy(self.uae_.endmembers), "encoder": u.encoder,
                           "z_shift": float(shift[0]) if uniform else torch.from_numpy(shift),
                           "z_scale": float(scale[0]) if uniform else torch.from_numpy(scale),
                           **({} if u.simplex else {"simplex": False}),
                           **({} if u.space == "ours" else {"to_ours": self.to_ours_})}, run_dir / f"uae{SUFFIX}")
        Zt = self._latent(X)
        atomic_torch_save({"Z": Zt}, zpath)
        return Zt if latent else None

    def unmix(self, scene, profile=None, out_dir="runs", overrides=None) -> torch.Tensor:
        """Only the per-scene half of HUD: fit (or reload) the frozen UAE of the config in its run directory and
        return the scene's latent Z ``(d, rows, cols)`` in network units, without training a diffusion prior (a
        finished or shipped run of the same config lends its UAE, so both halves stay one run).
        What a prior shared across scenes needs of each scene (:mod:`hudlib.transfer`); afterwards
        :meth:`decode_latent` and :meth:`z0_range` work, sampling needs ``unet_`` and ``diffusion_`` set."""
        cfg = self._resolve_config(scene, profile, overrides)
        run_dir = run_dir_for(cfg, out_dir)
        self.config_, self.run_dir_ = cfg, run_dir
        reuse_or_install(cfg, out_dir)  # a finished or shipped run of this config brings its UAE
        run_dir.mkdir(parents=True, exist_ok=True)
        if not (run_dir / "config.json").exists():
            atomic_write_text(run_dir / "config.json", cfg.to_json())
        return self._prepare(scene, cfg, run_dir)

    def _encode_scene(self, Y: np.ndarray) -> np.ndarray:
        """The abundances X ``(d, rows, cols)`` of the cube the UAE reads (every pixel)."""
        return self.uae_.encode(Y)

    def _latent(self, X: np.ndarray) -> torch.Tensor:
        """Network-unit latent ``(d, rows, cols)`` float32 of abundances X: (relax(X) − shift) / scale (eq. 4)."""
        Z = uae_mod.relax(X) if self.projection_ == "softmax" else X
        return torch.from_numpy(((Z - self.z_shift_) / self.z_scale_).astype(np.float32))

    def _fit(self, scene, cfg, run_dir, resume, device, progress):
        Z = self._prepare(scene, cfg, run_dir)
        self.train_info_ = train_diffusion(cfg, Z, run_dir, device=device, resume=resume, progress=progress)
        self._load_state(run_dir, scene)

    def _load_state(self, run_dir: Path, scene=None):
        cfg = self.config_
        self._prepare(scene, cfg, run_dir, latent=False)
        st = load_weights(weights_file(run_dir, "ema"))
        self.unet_ = build_unet(cfg, self.uae_.d)
        self.unet_.load_state_dict(st["ema"])
        self.unet_.eval()
        self.diffusion_ = build_diffusion(cfg)

    @classmethod
    def artefact_files(cls, run_dir):
        return [weights_file(run_dir, "uae"), weights_file(run_dir, "ema")]

    def endmember_matrix(self):
        return self.uae_.endmembers

    def denoiser(self):
        return self.unet_

    def latent_channels(self) -> int:
        return self.uae_.d

    @classmethod
    def complexity_spec(cls, cfg, bands, d) -> ComplexitySpec:
        # the U-Net on d channels, T evaluations (ancestral sampling), plus the UAE: 2·bands·d parameters
        # (encoder and decoder) and the decoder's 2·d·bands FLOPs per pixel once per sample
        return ComplexitySpec(build_unet(cfg, d), lambda b, px, dev: (torch.empty(b, d, px, px, device=dev),
                                                                      torch.zeros(b, dtype=torch.long, device=dev)),
                              cfg.diffusion.T, extra_flops_per_px=2 * d * bands, extra_params=2 * bands * d)

    def decode_latent(self, z):
        """X̂ from the reverse process's output: softmax (eq. 5; on the simplex), or with
        ``unmixing.projection="clip"`` negatives clipped and each pixel renormalised, or with ``"none"`` the
        de-standardised output as it is (may be negative and off the simplex); then Ŷ = A X̂ (eq. 6)."""
        z = np.asarray(z, np.float64) * self.z_scale_ + self.z_shift_
        if self.projection_ == "softmax":
            X = uae_mod.constrain(z)  # eq. 5
        elif self.projection_ == "clip":
            X = clip_renormalise(z)
        else:
            X = z
        X = X.astype(np.float32)
        return self.decode(X), X  # decoder A (eq. 6)

    def z0_range(self) -> tuple[float, float]:
        """The latent's exact support in the network's units (``clip_z0``): Z ∈ [ln e, ln(1 + e)],
        e = e^(−ln d − 8) (eq. 4) with the projection, X ∈ [0, 1] with ``"clip"``. Needs one affine map for every
        endmember channel."""
        if self.projection_ == "none":
            raise ValueError("clip_z0: the latent of unmixing.projection='none' has no bounded support")
        if np.ptp(self.z_shift_) > 0 or np.ptp(self.z_scale_) > 0:
            raise ValueError("clip_z0: needs one affine map for every endmember (diffusion.z_scale != "
                             "'per_endmember')")
        if self.projection_ == "softmax":
            e = uae_mod.relax_epsilon(self.uae_.d)
            lo, hi = np.log(e), np.log1p(e)
        else:
            lo, hi = 0.0, 1.0
        sh, sc = float(self.z_shift_.flat[0]), float(self.z_scale_.flat[0])
        return (float((lo - sh) / sc), float((hi - sh) / sc))

    def decode(self, X: np.ndarray) -> np.ndarray:
        """Ŷ in our units from abundances ``(n, d, h, w)``: A X (eq. 6); in the authors' space clamped to their
        data range [−1, 1] (here [0, 2] before the shift) and mapped back to our units."""
        Y = self.uae_.decode(np.asarray(X, dtype=np.float64))
        if self.space_ == "authors":
            Y = np.clip(Y, 0.0, 2.0) * self.to_ours_
        return Y.astype(np.float32)


def clip_renormalise(X: np.ndarray, axis: int = -3) -> np.ndarray:
    """max(X, 0) divided by its sum over ``axis``; a pixel with no positive entry becomes uniform (1/d)."""
    P = np.maximum(np.asarray(X, dtype=np.float64), 0.0)
    s = P.sum(axis=axis, keepdims=True)
    d = P.shape[axis]
    return np.where(s > 0, P / np.where(s > 0, s, 1.0), 1.0 / d)
