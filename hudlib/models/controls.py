"""Reference generators (controls). Trivial by construction; every table carries them to show which metrics
discriminate a real generator from a copy, a shuffle, a constant or noise.

All draw from ``np.random.default_rng(random_state)`` and return ``(n, bands, size, size)`` float32 in the scene's
normalised units. ``fit`` needs no training; the run directory holds ``config.json`` and ``state.safetensors`` (what sampling
reads besides the scene, and a content hash of the scene's cube, so the weights hash changes with the data).
Controls carry HUD's config sections (UAECopy and RandomMixture unmix as HUD does), so their run hash follows HUD's.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data import crop, load_scene, patch_corners
from ..uae import UnmixingAutoEncoder
from ..unmixing import vca
from ..weights import SUFFIX, load_weights, save_weights, weights_file
from .base import Generator
from .hud import HUD

__all__ = ["RealCopy", "UAECopy", "PixelShuffle", "MeanSpectrum", "RandomMixture", "Noise"]


class _Control(Generator):
    sections = HUD.sections
    profiles = HUD.profiles

    def _fit(self, scene, cfg, run_dir: Path, resume, device, progress):
        save_weights({**self._state(scene), "cube_sha256_": scene.sha256}, run_dir / f"state{SUFFIX}")
        self._load_state(run_dir, scene)

    @classmethod
    def artefact_files(cls, run_dir):
        return [weights_file(run_dir, "state")]

    def _sample(self, n, random_state, device, progress, **options):
        return self._draw(n, np.random.default_rng(random_state)), None

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def _state(self, scene) -> dict:
        return {}

    def _load_state(self, run_dir: Path, scene=None):
        self.cube_ = (scene or load_scene(self.config_.scene)).cube
        st = load_weights(weights_file(run_dir, "state"))
        for k, v in st.items():
            setattr(self, k, v.numpy() if isinstance(v, torch.Tensor) else v)

    @property
    def size(self) -> int:
        return self.config_.train.patch_size if self.config_ else 32


class RealCopy(_Control):
    """Random real ``size`` × ``size`` crops: F_p = D_b = 1, copy rate 1."""

    name = "RealCopy"

    def _draw(self, n, rng):
        return crop(self.cube_, patch_corners(self.cube_.shape, self.size, n, rng), self.size).astype(np.float32)


class UAECopy(_Control):
    """Random real crops passed through the frozen Unmixing AutoEncoder HUD uses (same VCA endmembers, same encoder,
    ``config.unmixing``): Ŷ = A·encode(Y). The best a HUD sample can be: it shows what the UAE alone costs on every
    metric (its spectra lie in the endmembers' cone, so the unmixing residual stays visible to k-NN metrics)."""

    name = "UAECopy"
    has_abundances = True

    def _state(self, scene):
        u = self.config_.unmixing
        m = UnmixingAutoEncoder.from_scene(scene, d=u.d, random_state=u.random_state, encoder=u.encoder)
        return {"E_": torch.from_numpy(m.endmembers), "X_": torch.from_numpy(m.encode(scene.cube))}

    def _sample(self, n, random_state, device, progress, **options):
        rng = np.random.default_rng(random_state)
        X = crop(self.X_, patch_corners(self.X_.shape, self.size, n, rng), self.size)  # (n, d, s, s)
        return np.einsum("bd,ndhw->nbhw", self.E_, X).astype(np.float32), X.astype(np.float32)  # decoder A, eq. 6


class PixelShuffle(_Control):
    """Every pixel is a real pixel drawn uniformly from the whole scene: real spectra, no spatial structure."""

    name = "PixelShuffle"

    def _draw(self, n, rng):
        flat = self.cube_.reshape(self.cube_.shape[0], -1)
        idx = rng.integers(0, flat.shape[1], n * self.size * self.size)
        return flat[:, idx].reshape(-1, n, self.size, self.size).transpose(1, 0, 2, 3).astype(np.float32)


class MeanSpectrum(_Control):
    """The scene's mean spectrum at every pixel (the paper's F_p gives it ≈ 0.999 on Indian Pines)."""

    name = "MeanSpectrum"

    def _draw(self, n, rng):
        mu = self.cube_.reshape(self.cube_.shape[0], -1).mean(axis=1)
        return np.broadcast_to(mu[None, :, None, None], (n, mu.size, self.size, self.size)).astype(np.float32)


class RandomMixture(_Control):
    """I.i.d. Dirichlet(1) abundances per pixel of the scene's VCA endmembers (d = n_classes), decoded: physically
    valid spectra, no spatial structure, no learned abundance distribution."""

    name = "RandomMixture"
    has_abundances = True

    def _state(self, scene):
        u = self.config_.unmixing
        E, _ = vca(scene.cube, u.d or scene.n_classes, random_state=u.random_state)
        return {"E_": torch.from_numpy(E)}

    def _sample(self, n, random_state, device, progress, **options):
        rng = np.random.default_rng(random_state)
        X = rng.dirichlet(np.ones(self.E_.shape[1]), size=(n, self.size, self.size))  # (n, s, s, d)
        Y = np.einsum("bd,nhwd->nbhw", self.E_, X).astype(np.float32)
        return Y, np.ascontiguousarray(X.transpose(0, 3, 1, 2), dtype=np.float32)


class Noise(_Control):
    """Gaussian noise around the mean spectrum with the scene's per-band standard deviation."""

    name = "Noise"

    def _draw(self, n, rng):
        flat = self.cube_.reshape(self.cube_.shape[0], -1)
        mu, sd = flat.mean(axis=1), flat.std(axis=1)
        z = rng.standard_normal((n, mu.size, self.size, self.size))
        return (mu[None, :, None, None] + sd[None, :, None, None] * z).astype(np.float32)
