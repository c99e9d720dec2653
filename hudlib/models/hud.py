"""HUD: VCA endmembers → frozen UAE → Z = ln(X + e^(−ln d − 8)) → DDPM on 32×32 patches of Z → softmax → decode.

Run directory contents (``runs/<scene>/HUD/<profile>-<hash>/``): ``config.json``, ``uae.pt`` (endmembers, encoder,
Z scaling, the scene's Z), ``checkpoint.pt`` (resumable), ``ema.pt`` (EMA weights used for sampling),
``losses.json``, ``train_info.json``, ``DONE``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .. import uae as uae_mod
from ..train import build_diffusion, build_unet, train_diffusion
from ..utils import atomic_torch_save, resolve_device
from .base import ComplexitySpec, Generator

__all__ = ["HUD"]


class HUD(Generator):
    """The paper's generator. After ``fit``: ``uae_`` (UnmixingAutoEncoder), ``unet_`` (EMA weights),
    ``diffusion_``, ``z_shift_``/``z_scale_`` (identity unless ``diffusion.z_scale == "standardize"``)."""

    name = "HUD"
    has_abundances = True

    def _prepare(self, scene, cfg, run_dir: Path) -> torch.Tensor:
        """The frozen UAE and the scene's relaxed abundances Z ``(d, rows, cols)`` in network units (cached)."""
        u = cfg.unmixing
        path = run_dir / "uae.pt"
        if path.exists():
            st = torch.load(path, map_location="cpu", weights_only=True)
            self.uae_ = uae_mod.UnmixingAutoEncoder(st["E"].numpy(), encoder=st["encoder"])
            self.z_shift_, self.z_scale_ = float(st["z_shift"]), float(st["z_scale"])
            return st["Z"]
        self.uae_ = uae_mod.UnmixingAutoEncoder.from_scene(scene, d=u.d, random_state=u.random_state,
                                                           encoder=u.encoder)
        X = self.uae_.encode(scene.cube)  # (d, rows, cols), on the simplex
        Z = uae_mod.relax(X)  # eq. 4
        if cfg.diffusion.z_scale == "standardize":
            self.z_shift_, self.z_scale_ = float(Z.mean()), float(Z.std())
        elif cfg.diffusion.z_scale == "none":
            self.z_shift_, self.z_scale_ = 0.0, 1.0
        else:
            raise ValueError(f"diffusion.z_scale: expected 'none' or 'standardize', got {cfg.diffusion.z_scale!r}")
        Zt = torch.from_numpy(((Z - self.z_shift_) / self.z_scale_).astype(np.float32))
        atomic_torch_save({"E": torch.from_numpy(self.uae_.endmembers), "encoder": u.encoder,
                           "z_shift": self.z_shift_, "z_scale": self.z_scale_, "Z": Zt}, path)
        return Zt

    def _fit(self, scene, cfg, run_dir, resume, device, progress):
        Z = self._prepare(scene, cfg, run_dir)
        self.train_info_ = train_diffusion(cfg, Z, run_dir, device=device, resume=resume, progress=progress)
        self._load_state(run_dir, scene)

    def _load_state(self, run_dir: Path, scene=None):
        cfg = self.config_
        self._prepare(scene, cfg, run_dir)
        st = torch.load(run_dir / "ema.pt", map_location="cpu", weights_only=True)
        self.unet_ = build_unet(cfg, self.uae_.d)
        self.unet_.load_state_dict(st["ema"])
        self.unet_.eval()
        self.diffusion_ = build_diffusion(cfg)

    @classmethod
    def artefact_files(cls, run_dir):
        return [Path(run_dir) / "uae.pt", Path(run_dir) / "ema.pt"]

    def endmember_matrix(self):
        return self.uae_.endmembers

    def sampling_key(self) -> str:
        return self.config_.sampling_key()

    def sampler_settings(self) -> dict:
        c = self.config_.diffusion
        return {"sampler": c.sampler, "steps": c.sample_steps if c.sampler == "ddim" else c.T, "eta": c.eta,
                "clip_z0": c.clip_z0}

    @classmethod
    def complexity_spec(cls, cfg, bands, d) -> ComplexitySpec:
        # the U-Net on d channels, T evaluations (ancestral sampling), plus the UAE: 2·bands·d parameters
        # (encoder and decoder) and the decoder's 2·d·bands FLOPs per pixel once per sample
        return ComplexitySpec(build_unet(cfg, d), lambda b, px, dev: (torch.empty(b, d, px, px, device=dev),
                                                                      torch.zeros(b, dtype=torch.long, device=dev)),
                              cfg.diffusion.T, extra_flops_per_px=2 * d * bands, extra_params=2 * bands * d)

    def sample_abundances(self, n: int, random_state=0, sampler: str | None = None, steps: int | None = None,
                          eta: float | None = None, clip_z0: bool | None = None, batch_size: int = 64,
                          device: str = "auto", progress: bool = False) -> np.ndarray:
        """X̂ ``(n, d, 32, 32)`` on the simplex: reverse diffusion (Algorithm 2 or DDIM) then softmax (eq. 5).

        Sampler settings default to the run's config; ``clip_z0`` clips Ẑ_0 to :meth:`z0_range`.
        """
        dc = self.config_.diffusion
        sampler = sampler or dc.sampler
        steps = steps or (dc.sample_steps if sampler == "ddim" else dc.T)
        eta = dc.eta if eta is None else eta
        clip_z0 = dc.clip_z0 if clip_z0 is None else bool(clip_z0)
        dev = resolve_device(device)
        net = self.unet_.to(dev)
        gen = torch.Generator().manual_seed(int(random_state))
        size = self.config_.train.patch_size
        out = []
        for i in range(0, n, batch_size):
            m = min(batch_size, n - i)
            kw = dict(steps=steps, eta=eta) if sampler == "ddim" else {}
            z = self.diffusion_.sample(net, (m, self.uae_.d, size, size), sampler=sampler, generator=gen,
                                       device=dev, progress=progress,
                                       z0_range=self.z0_range() if clip_z0 else None, **kw)
            z = z.float().cpu() * self.z_scale_ + self.z_shift_
            out.append(uae_mod.constrain(z.double()).numpy())  # eq. 5
        return np.concatenate(out).astype(np.float32)

    def z0_range(self) -> tuple[float, float]:
        """Z's exact support [ln e, ln(1 + e)], e = e^(−ln d − 8) (eq. 4), in the network's (scaled) units."""
        e = uae_mod.relax_epsilon(self.uae_.d)
        lo, hi = np.log(e), np.log1p(e)
        return (float((lo - self.z_shift_) / self.z_scale_), float((hi - self.z_shift_) / self.z_scale_))

    def _sample(self, n, random_state, device, progress, **options):
        X = self.sample_abundances(n, random_state, device=device, progress=progress, **options)
        return self.uae_.decode(X.astype(np.float64)).astype(np.float32), X  # decoder A (eq. 6)
