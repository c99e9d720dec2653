"""Gaussian diffusion on the relaxed abundance space Z (paper III-C, eqs. 7-15, Algorithms 1-2).

The diffusion object holds the noise schedule only; the ε-prediction network is passed in as an
argument (``model(z_t, t, **model_kwargs) -> eps`` with eps shaped like ``z_t``), in the style of
improved-diffusion's ``GaussianDiffusion``. Nothing here imports the U-Net.

Conventions
-----------
* Batches are channel-first: ``z`` is ``(n, d, h, w)`` (d = number of endmembers). Any tensor whose
  first axis is the batch works; the schedule is broadcast over the remaining axes.
* Timesteps are **0-indexed**: ``t ∈ {0, ..., T-1}``; the code's ``t`` is the paper's ``t + 1``.
  So ``betas[0]`` is the paper's β_1, ``alphas_cumprod[t]`` is ᾱ_{t+1}, and ``alphas_cumprod_prev[0] = 1``
  stands for ᾱ_0. The network receives these 0-indexed integers.
* Schedules are float64 numpy arrays; they are cast to the input's dtype/device where used.
* Ẑ_0 is never clamped to [-1, 1]: Z = ln(X + e^{-ln d - 8}) (eq. 4) lives in [ln e, ln(1 + e)] with
  e = e^{-ln d - 8}, about [-8 - ln d, 0]. The samplers take an optional ``z0_range=(lo, hi)``: Ẑ_0 is then
  clipped to that interval at every step (DDPM's "clip to the data range", with Z's exact support as the
  range) and ε is recomputed from the clipped Ẑ_0. The samplers return Z; the caller applies the softmax
  of eq. 5.
* Full scenes: :meth:`GaussianDiffusion.sample_tiled` samples canvases larger than the training patches by
  averaging the network's outputs over overlapping windows at every step (MultiDiffusion); :func:`tile_origins`
  gives the windows.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

__all__ = ["linear_beta_schedule", "sqrt_linear_beta_schedule", "beta_schedule", "tile_origins", "GaussianDiffusion",
           "SIGMA_CHOICES", "SAMPLERS", "STEPPED_SAMPLERS", "ETA_SAMPLERS", "GRIDS", "DDIM_GRID", "TILINGS"]

SIGMA_CHOICES = ("beta", "posterior")
SAMPLERS = ("ddpm", "ddim", "ddim-lambda", "dpmpp2m", "dpmpp2m-sde")
STEPPED_SAMPLERS = ("ddim", "ddim-lambda", "dpmpp2m", "dpmpp2m-sde")  # take a number of steps (ddpm always takes T)
GRIDS = ("time", "lambda")  # DDIM's step grids: evenly spaced timesteps, or evenly spaced λ (logsnr_timesteps)
DDIM_GRID = {"ddim": "time", "ddim-lambda": "lambda"}  # the DDIM samplers and the step grid each runs on
ETA_SAMPLERS = tuple(DDIM_GRID)  # the samplers with an η (DDIM's update on either grid)
LOSS_WEIGHTINGS = ("uniform", "min_snr")
PREDICTIONS = ("eps", "v")
NORMS = ("l2", "l1")
TILINGS = ("multidiffusion", "naive")


def linear_beta_schedule(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> np.ndarray:
    """Linear variance schedule β_1..β_T of DDPM (the paper uses T = 1000, IV-A).

    Returns a float64 array of shape ``(T,)`` going linearly from ``beta_start`` to ``beta_end``.
    """
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 1:
        raise ValueError(f"T must be a positive integer, got {T!r}")
    if not (0.0 < beta_start <= beta_end < 1.0):
        raise ValueError(f"beta_start, beta_end must satisfy 0 < beta_start <= beta_end < 1, "
                         f"got {beta_start!r}, {beta_end!r}")
    return np.linspace(beta_start, beta_end, int(T), dtype=np.float64)


def sqrt_linear_beta_schedule(T: int = 1000, beta_start: float = 0.0015, beta_end: float = 0.0155) -> np.ndarray:
    """Latent diffusion's "linear" schedule (the authors' run): β_t = linspace(√β_start, √β_end, T)².

    Returns float64 ``(T,)``. With the defaults ᾱ_T = 6.7e-4 (DDPM's linear 1e-4 → 0.02: 4.0e-5).
    """
    if not (0.0 < beta_start <= beta_end < 1.0):
        raise ValueError(f"beta_start, beta_end must satisfy 0 < beta_start <= beta_end < 1, "
                         f"got {beta_start!r}, {beta_end!r}")
    return np.linspace(np.sqrt(beta_start), np.sqrt(beta_end), int(T), dtype=np.float64) ** 2


def beta_schedule(name: str, T: int, beta_start: float, beta_end: float) -> np.ndarray:
    """``"linear"`` (:func:`linear_beta_schedule`) or ``"sqrt_linear"`` (:func:`sqrt_linear_beta_schedule`)."""
    if name == "linear":
        return linear_beta_schedule(T, beta_start, beta_end)
    if name == "sqrt_linear":
        return sqrt_linear_beta_schedule(T, beta_start, beta_end)
    raise ValueError(f"diffusion.schedule: expected 'linear' or 'sqrt_linear', got {name!r}")


def _axis_origins(n: int, window: int, stride: int) -> list[int]:
    """Window starts along one axis of length ``n``: 0, stride, 2 stride, ..., then ``n - window`` if not hit."""
    starts = list(range(0, n - window + 1, stride))
    if starts[-1] != n - window:
        starts.append(n - window)  # the last window is aligned to the border
    return starts


def tile_origins(height: int, width: int, window: int, stride: int) -> list[tuple[int, int]]:
    """Top-left corners ``(row, col)`` of square windows of side ``window`` covering a ``height x width`` canvas.

    Along each axis the starts are 0, stride, 2 stride, ... and the last window is moved to end exactly at the
    canvas border (start ``n - window``), so every pixel is covered at least once and no window sticks out; the
    last step is then shorter than ``stride``. Row-major order (rows outer). ``stride == window`` with a canvas
    that is a multiple of ``window`` gives the naive, non-overlapping tiling.
    """
    for name, v in (("height", height), ("width", width), ("window", window), ("stride", stride)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"{name}: expected an integer, got {v!r}")
    if window < 1:
        raise ValueError(f"window: expected a positive integer, got {window!r}")
    if stride <= 0:
        raise ValueError(f"stride: expected a positive integer, got {stride!r}")
    if stride > window:
        raise ValueError(f"stride: expected at most window={window} (a larger stride leaves gaps), got {stride!r}")
    if height < window:
        raise ValueError(f"height: expected at least window={window}, got {height!r}")
    if width < window:
        raise ValueError(f"width: expected at least window={window}, got {width!r}")
    rows = _axis_origins(int(height), int(window), int(stride))
    cols = _axis_origins(int(width), int(window), int(stride))
    return [(r, c) for r in rows for c in cols]


Model = Callable[..., torch.Tensor]


class GaussianDiffusion:
    """Fixed forward process q (eqs. 7-8) and the ε-parameterised reverse process (eqs. 9-14).

    Parameters
    ----------
    betas : 1-D array ``(T,)`` of variances β_1..β_T in (0, 1); stored as float64.
    prediction : what the network outputs: ``"eps"`` (the paper's ε_θ, eq. 15) or ``"v"``
        (v = sqrt(ᾱ_t) ε - sqrt(1 - ᾱ_t) Z_0, Salimans & Ho 2022). With ``"v"`` the samplers convert the output
        to ε and Ẑ_0 exactly; at large t, Ẑ_0 then no longer divides the network's error by sqrt(ᾱ_t) (≈ 0.006
        at t = T), which is what lets an under-trained ε-network drift far outside Z's range.

    Attributes (all float64 numpy arrays of shape ``(T,)``, indexed by the 0-based ``t``)
    ----------
    T, betas, alphas (α_t = 1 - β_t), alphas_cumprod (ᾱ_t), alphas_cumprod_prev (ᾱ_{t-1}, with
    ᾱ_0 = 1), sqrt_alphas_cumprod, sqrt_one_minus_alphas_cumprod, sqrt_recip_alphas_cumprod,
    sqrt_recipm1_alphas_cumprod, posterior_variance (β̃_t), posterior_log_variance_clipped
    (log β̃_t with the first entry, β̃ = 0, replaced by the second), posterior_mean_coef1/2 (the
    coefficients of Z_0 and Z_t in μ̃_t).
    """

    def __init__(self, betas, prediction: str = "eps"):
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        self.prediction = prediction
        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or betas.size < 1:
            raise ValueError(f"betas must be a non-empty 1-D array, got shape {betas.shape}")
        if not np.all(np.isfinite(betas)) or np.any(betas <= 0) or np.any(betas >= 1):
            raise ValueError("betas must all lie in the open interval (0, 1)")
        self.T = int(betas.shape[0])
        self.betas = betas
        self.alphas = 1.0 - betas                                   # α_t := 1 - β_t
        self.alphas_cumprod = np.cumprod(self.alphas)               # ᾱ_t := Π_{s<=t} α_s
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])  # ᾱ_{t-1}, ᾱ_0 = 1
        self.sqrt_alphas_cumprod = np.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - self.alphas_cumprod)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod - 1.0)
        # β̃_t = (1 - ᾱ_{t-1}) / (1 - ᾱ_t) β_t   (eq. 12, q(Z_{t-1}|Z_t, Z_0))
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        # β̃ is 0 at the first step; clip the log like improved-diffusion.
        first = self.posterior_variance[1] if self.T > 1 else self.betas[0]
        self.posterior_log_variance_clipped = np.log(np.append(first, self.posterior_variance[1:]))
        # μ̃_t = sqrt(ᾱ_{t-1}) β_t / (1 - ᾱ_t) Z_0 + sqrt(α_t) (1 - ᾱ_{t-1}) / (1 - ᾱ_t) Z_t   (eq. 12)
        self.posterior_mean_coef1 = betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * np.sqrt(self.alphas) / (1.0 - self.alphas_cumprod)

    @classmethod
    def linear(cls, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02,
               prediction: str = "eps") -> "GaussianDiffusion":
        """Diffusion with :func:`linear_beta_schedule` (the paper's T = 1000 by default)."""
        return cls(linear_beta_schedule(T, beta_start, beta_end), prediction=prediction)

    def __repr__(self) -> str:
        return (f"GaussianDiffusion(T={self.T}, beta_1={self.betas[0]:.3g}, "
                f"beta_T={self.betas[-1]:.3g}, prediction={self.prediction!r})")

    # ------------------------------------------------------------------ helpers
    def _check_t(self, t: torch.Tensor, x: torch.Tensor, name: str = "t") -> torch.Tensor:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a LongTensor of shape (n,), got {type(t).__name__}")
        if t.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
            raise TypeError(f"{name} must be an integer tensor of 0-indexed timesteps, got dtype {t.dtype}")
        if t.shape != (x.shape[0],):
            raise ValueError(f"{name} must have shape ({x.shape[0]},) matching the batch, got {tuple(t.shape)}")
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.T):
            raise ValueError(f"{name} must lie in [0, {self.T - 1}] (0-indexed), got range "
                             f"[{int(t.min())}, {int(t.max())}]")
        return t.to(device=x.device, dtype=torch.long)

    @staticmethod
    def _check_x(x, name: str) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor shaped (n, d, h, w), got {type(x).__name__}")
        if x.ndim < 2 or not x.is_floating_point():
            raise ValueError(f"{name} must be a floating tensor shaped (n, d, h, w), got "
                             f"shape {tuple(x.shape)} dtype {x.dtype}")
        return x

    @staticmethod
    def _extract(arr: np.ndarray, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``arr[t]`` as a tensor of x's dtype/device shaped ``(n, 1, 1, ...)`` to broadcast over x."""
        vals = torch.from_numpy(arr).to(device=x.device, dtype=x.dtype)[t]
        return vals.reshape((x.shape[0],) + (1,) * (x.ndim - 1))

    @staticmethod
    def _check_same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
        if a.shape != b.shape:
            raise ValueError(f"{name_a} must have the shape of {name_b} {tuple(b.shape)}, got {tuple(a.shape)}")

    # ------------------------------------------------------------------ forward process
    def q_sample(self, z0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Draw Z_t ~ q(Z_t | Z_0) by reparameterisation: Z_t = sqrt(ᾱ_t) Z_0 + sqrt(1 - ᾱ_t) ε.

        z0, noise: ``(n, d, h, w)``; t: LongTensor ``(n,)`` (0-indexed). Returns ``(n, d, h, w)``.
        If ``noise`` is None it is drawn with ``torch.randn_like``.
        """
        z0 = self._check_x(z0, "z0")
        t = self._check_t(t, z0)
        if noise is None:
            noise = torch.randn_like(z0)
        self._check_same_shape(noise, z0, "noise", "z0")
        # eq. 12, q(Z_t|Z_0) = N(sqrt(ᾱ_t) Z_0, (1 - ᾱ_t) I)
        return (self._extract(self.sqrt_alphas_cumprod, t, z0) * z0
                + self._extract(self.sqrt_one_minus_alphas_cumprod, t, z0) * noise)

    def q_posterior_mean_variance(self, z0: torch.Tensor, zt: torch.Tensor, t: torch.Tensor):
        """Mean, variance and clipped log-variance of q(Z_{t-1} | Z_t, Z_0) (eq. 12).

        z0, zt: ``(n, d, h, w)``; t: LongTensor ``(n,)``. Returns ``(mean, var, log_var)``; mean is
        ``(n, d, h, w)``, var and log_var are ``(n, 1, 1, 1)`` (broadcastable).
        """
        z0 = self._check_x(z0, "z0")
        zt = self._check_x(zt, "zt")
        self._check_same_shape(zt, z0, "zt", "z0")
        t = self._check_t(t, z0)
        mean = (self._extract(self.posterior_mean_coef1, t, zt) * z0
                + self._extract(self.posterior_mean_coef2, t, zt) * zt)  # μ̃_t, eq. 12
        var = self._extract(self.posterior_variance, t, zt)             # β̃_t, eq. 12
        log_var = self._extract(self.posterior_log_variance_clipped, t, zt)
        return mean, var, log_var

    def predict_z0_from_eps(self, zt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Invert the reparameterisation: Ẑ_0 = (Z_t - sqrt(1 - ᾱ_t) ε) / sqrt(ᾱ_t). Not clamped.

        zt, eps: ``(n, d, h, w)``; t: LongTensor ``(n,)``. Returns ``(n, d, h, w)``.
        """
        zt = self._check_x(zt, "zt")
        self._check_same_shape(eps, zt, "eps", "zt")
        t = self._check_t(t, zt)
        return (self._extract(self.sqrt_recip_alphas_cumprod, t, zt) * zt
                - self._extract(self.sqrt_recipm1_alphas_cumprod, t, zt) * eps)

    def predict_mean_from_eps(self, zt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Reverse-process mean μ_θ(Z_t, t) = (Z_t - β_t / sqrt(1 - ᾱ_t) ε) / sqrt(α_t)  (eq. 14).

        zt, eps: ``(n, d, h, w)``; t: LongTensor ``(n,)``. Returns ``(n, d, h, w)``.
        """
        zt = self._check_x(zt, "zt")
        self._check_same_shape(eps, zt, "eps", "zt")
        t = self._check_t(t, zt)
        coef = self._extract(self.betas / self.sqrt_one_minus_alphas_cumprod, t, zt)
        return (zt - coef * eps) / self._extract(np.sqrt(self.alphas), t, zt)  # eq. 14

    # ------------------------------------------------------------------ training
    def training_loss(self, model: Model, z0: torch.Tensor, t: torch.Tensor | None = None,
                      noise: torch.Tensor | None = None, generator: torch.Generator | None = None,
                      model_kwargs: dict | None = None, weighting: str = "uniform",
                      min_snr_gamma: float = 5.0, norm: str = "l2") -> torch.Tensor:
        """Simplified objective L of eq. 15 (Algorithm 1): mean of (ε - ε_θ(Z_t, t))².

        ``weighting="uniform"`` is eq. 15 as printed. ``"min_snr"`` multiplies each sample's squared error by
        min(SNR_t, γ) / SNR_t with SNR_t = ᾱ_t / (1 - ᾱ_t) (Hang et al. 2023, "Min-SNR weighting", for
        ε-prediction): timesteps whose noise is too small to be told apart from the data's own texture get
        less weight; every t with SNR_t <= γ keeps weight 1. The network still predicts ε.
        ``norm="l1"`` replaces the square by the absolute error (SR3 / UnmixDiff's L1 on ε).

        z0: ``(n, d, h, w)`` projected abundances Z_0 (eq. 4); t: optional LongTensor ``(n,)``, else
        drawn uniformly from {0..T-1} (the paper's U[1:T]); noise: optional ``(n, d, h, w)``, else
        standard normal. Random draws use ``generator`` if given (on its device, then moved to z0's).
        ``model(z_t, t, **model_kwargs)`` must return ε_θ shaped like z_t.
        Returns a scalar tensor: the squared norm of eq. 15 averaged over all elements (a constant
        rescaling of eq. 15, as in DDPM's implementation).
        """
        z0 = self._check_x(z0, "z0")
        n = z0.shape[0]
        gen_device = generator.device if generator is not None else torch.device("cpu")
        if t is None:
            t = torch.randint(0, self.T, (n,), generator=generator, device=gen_device)  # t ~ U[1:T]
        t = self._check_t(t, z0)
        if noise is None:
            noise = torch.randn(z0.shape, generator=generator, device=gen_device, dtype=z0.dtype)
        noise = noise.to(device=z0.device, dtype=z0.dtype)
        self._check_same_shape(noise, z0, "noise", "z0")
        zt = self.q_sample(z0, t, noise)
        eps = model(zt, t, **(model_kwargs or {}))
        self._check_same_shape(eps, zt, "model output", "z_t")
        target = noise if self.prediction == "eps" else self.v_target(z0, t, noise)
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        err = (target - eps) ** 2 if norm == "l2" else (target - eps).abs()
        if weighting == "uniform":
            return torch.mean(err)  # eq. 15
        w = self._extract(self.loss_weights(weighting, min_snr_gamma), t, zt)
        return torch.mean(w * err)

    def v_target(self, z0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """v = sqrt(ᾱ_t) ε - sqrt(1 - ᾱ_t) Z_0, ``(n, d, h, w)``."""
        return (self._extract(self.sqrt_alphas_cumprod, t, z0) * noise
                - self._extract(self.sqrt_one_minus_alphas_cumprod, t, z0) * z0)

    def snr(self) -> np.ndarray:
        """SNR_t = ᾱ_t / (1 - ᾱ_t), float64 ``(T,)``."""
        return self.alphas_cumprod / (1.0 - self.alphas_cumprod)

    def loss_weights(self, weighting: str = "uniform", min_snr_gamma: float = 5.0) -> np.ndarray:
        """Per-timestep weights ``(T,)`` of :meth:`training_loss` (float64): ones, or min(SNR_t, γ) / SNR_t
        (ε-prediction), min(SNR_t, γ) / (SNR_t + 1) (v-prediction) — both give the x̂_0 error the weight
        min(SNR_t, γ)."""
        if weighting == "uniform":
            return np.ones(self.T)
        if weighting == "min_snr":
            if not (float(min_snr_gamma) > 0):
                raise ValueError(f"min_snr_gamma must be > 0, got {min_snr_gamma!r}")
            snr = self.snr()
            return np.minimum(snr, float(min_snr_gamma)) / (snr if self.prediction == "eps" else snr + 1.0)
        raise ValueError(f"weighting must be one of {LOSS_WEIGHTINGS}, got {weighting!r}")

    # ------------------------------------------------------------------ sampling helpers
    @staticmethod
    def _check_shape(shape) -> tuple[int, ...]:
        try:
            shape = tuple(int(s) for s in shape)
        except TypeError:
            raise TypeError(f"shape must be a tuple of ints like (n, d, h, w), got {shape!r}") from None
        if len(shape) < 2 or any(s < 1 for s in shape):
            raise ValueError(f"shape must be positive ints like (n, d, h, w), got {shape!r}")
        return shape

    @staticmethod
    def _resolve_device(model, device) -> torch.device:
        if device is not None:
            return torch.device(device)
        if isinstance(model, torch.nn.Module):
            for p in model.parameters():
                return p.device
        return torch.device("cpu")

    @staticmethod
    def _randn(shape, generator, device, dtype) -> torch.Tensor:
        gen_device = generator.device if generator is not None else torch.device("cpu")
        return torch.randn(shape, generator=generator, device=gen_device, dtype=dtype).to(device)

    def _model_out(self, model, z, t_int: int, model_kwargs) -> torch.Tensor:
        """The network's raw output (ε or v, per ``prediction``) at ``z`` ``(n, d, h, w)``, checked, in z's dtype."""
        t = torch.full((z.shape[0],), t_int, dtype=torch.long, device=z.device)
        out = model(z, t, **model_kwargs)
        if not isinstance(out, torch.Tensor) or out.shape != z.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"model must return {self.prediction} shaped like its input {tuple(z.shape)}, got {got}")
        return out.to(z.dtype)

    def _to_eps(self, z, out, t_int: int) -> torch.Tensor:
        """ε from the network's output ``out`` at ``z`` (both ``(n, d, h, w)``): ``out`` itself for an ε-network,
        ε = sqrt(1-ᾱ_t) Z_t + sqrt(ᾱ_t) v for a v-network."""
        if self.prediction == "eps":
            return out
        return self.sqrt_one_minus_alphas_cumprod[t_int] * z + self.sqrt_alphas_cumprod[t_int] * out

    def _eps(self, model, z, t_int: int, model_kwargs) -> torch.Tensor:
        """ε_θ(Z_t, t) ``(n, d, h, w)``; a v-network's output is converted: ε = sqrt(1-ᾱ_t) Z_t + sqrt(ᾱ_t) v."""
        return self._to_eps(z, self._model_out(model, z, t_int, model_kwargs), t_int)

    @staticmethod
    def _check_range(z0_range):
        if z0_range is None:
            return None
        try:
            lo, hi = (float(v) for v in z0_range)
        except (TypeError, ValueError):
            raise ValueError(f"z0_range must be None or a pair (lo, hi), got {z0_range!r}") from None
        if not lo < hi:
            raise ValueError(f"z0_range must satisfy lo < hi, got {z0_range!r}")
        return lo, hi

    # ------------------------------------------------------------------ samplers
    # Each sampler is a public method that checks its arguments and a private loop that takes an "ε function"
    # ``eps_fn(z_t, t) -> ε`` (``t`` a python int): the ordinary samplers pass the network evaluated on the whole
    # batch, :meth:`sample_tiled` the window average on a canvas. The loops draw all noise, in the same shapes
    # and order for both, so the two share every update and every random draw.
    @torch.no_grad()
    def ddpm_sample(self, model: Model, shape: Sequence[int], generator: torch.Generator | None = None,
                    device=None, progress: bool = False, sigma: str = "beta",
                    model_kwargs: dict | None = None, dtype: torch.dtype = torch.float32,
                    z0_range: tuple[float, float] | None = None) -> torch.Tensor:
        """Ancestral sampler of Algorithm 2 with the eq. 14 mean; T network evaluations.

        Z_T ~ N(0, I); for t = T..1: Z_{t-1} = μ_θ(Z_t, t) + σ_t ε (no noise at the last step).
        (Algorithm 2 as printed drops the parentheses of eq. 14; eq. 14 is what is implemented.)

        shape: ``(n, d, h, w)``; returns Z_0 of that shape (unclamped; softmax gives X̂, eq. 5). ``sigma``:
        ``"beta"`` (σ_t² = β_t, Algorithm 2; closer than β̃_t for data spread over several units, as Z is) or
        ``"posterior"`` (σ_t² = β̃_t, = DDIM with η = 1). Noise comes from ``generator`` (seeded: deterministic);
        ``device`` defaults to the model's. ``z0_range=(lo, hi)``: clip Ẑ_0 to it and take μ̃_t(Ẑ_0, Z_t) of
        eq. 12 (eq. 14's mean when nothing is clipped). No gradients; the caller sets eval mode.
        """
        z0_range = self._check_range(z0_range)
        self._check_sigma(sigma)
        shape = self._check_shape(shape)
        device = self._resolve_device(model, device)
        model_kwargs = model_kwargs or {}
        return self._ddpm_loop(lambda z, t: self._eps(model, z, t, model_kwargs), shape, generator, device,
                               dtype, sigma, z0_range, progress)

    @staticmethod
    def _check_sigma(sigma) -> None:
        if sigma not in SIGMA_CHOICES:
            raise ValueError(f"sigma must be one of {SIGMA_CHOICES}, got {sigma!r}")

    def _ddpm_loop(self, eps_fn, shape, generator, device, dtype, sigma, z0_range, progress,
                   desc: str = "DDPM") -> torch.Tensor:
        """The loop of :meth:`ddpm_sample` on ``eps_fn(z_t, t) -> ε`` (arguments already checked)."""
        variance = self.betas if sigma == "beta" else self.posterior_variance
        z = self._randn(shape, generator, device, dtype)  # Z_T ~ N(0, I)
        for t in tqdm(range(self.T - 1, -1, -1), desc=desc, disable=not progress):
            eps = eps_fn(z, t)
            # eq. 14: μ_θ = (Z_t - β_t / sqrt(1 - ᾱ_t) ε_θ) / sqrt(α_t)
            if z0_range is None:
                mean = (z - (self.betas[t] / self.sqrt_one_minus_alphas_cumprod[t]) * eps) / math.sqrt(self.alphas[t])
            else:
                z0_hat = (z * self.sqrt_recip_alphas_cumprod[t] - self.sqrt_recipm1_alphas_cumprod[t] * eps)
                z0_hat = z0_hat.clamp(*z0_range)
                # eq. 12: μ̃_t(Ẑ_0, Z_t)
                mean = self.posterior_mean_coef1[t] * z0_hat + self.posterior_mean_coef2[t] * z
            if t > 0:
                z = mean + math.sqrt(variance[t]) * self._randn(shape, generator, device, dtype)
            else:
                z = mean  # no noise at the final step
        return z

    def ddim_timesteps(self, steps: int) -> np.ndarray:
        """The DDIM sub-sequence: ``steps`` 0-indexed timesteps evenly spaced from T-1 down to 0.

        ``round(linspace(T-1, 0, steps))`` — both ends included (just ``[T-1]`` when steps = 1);
        for steps <= T the spacing is >= 1, so the values are distinct. Returns int64 ``(steps,)``,
        descending. steps = T gives every timestep.
        """
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= self.T:
            raise ValueError(f"steps must be an integer in [1, {self.T}], got {steps!r}")
        return np.round(np.linspace(self.T - 1, 0, int(steps))).astype(np.int64)

    @torch.no_grad()
    def ddim_sample(self, model: Model, shape: Sequence[int], steps: int,
                    eta: float = 0.0, generator: torch.Generator | None = None, device=None,
                    progress: bool = False, model_kwargs: dict | None = None,
                    dtype: torch.dtype = torch.float32,
                    z0_range: tuple[float, float] | None = None, grid: str = "time") -> torch.Tensor:
        """DDIM sampler (Song et al. 2021, eq. 12 there) on the same ε-network; ``steps`` evaluations.

        Timesteps: ``grid="time"`` (default) :meth:`ddim_timesteps`, evenly spaced from T-1 down to 0 (Song et al.'s
        choice); ``grid="lambda"`` :meth:`logsnr_timesteps`, evenly spaced in λ (the sampler ``"ddim-lambda"``): the
        same update on DPM-Solver's grid, which spends the steps where the log-SNR moves, near the data end, instead
        of on the nearly pure-noise stretch the time grid crosses evenly. For a step t -> s
        (s the next timestep, ᾱ_s = 1 after the last):
        Ẑ_0 = (Z_t - sqrt(1-ᾱ_t) ε_θ)/sqrt(ᾱ_t),
        σ = η sqrt((1-ᾱ_s)/(1-ᾱ_t)) sqrt(1-ᾱ_t/ᾱ_s),
        Z_s = sqrt(ᾱ_s) Ẑ_0 + sqrt(1-ᾱ_s-σ²) ε_θ + σ ε.
        η = 0 is deterministic given Z_T; η = 1 with steps = T is the ancestral sampler with
        σ_t² = β̃_t (same noise draws, so the same sample for the same seed up to rounding). Noise is
        drawn only when η > 0, and not at the last step (where σ = 0). Ẑ_0 is not clamped unless
        ``z0_range=(lo, hi)`` is given: then Ẑ_0 is clipped to it and ε re-derived from the clipped Ẑ_0,
        ε = (Z_t - sqrt(ᾱ_t) Ẑ_0)/sqrt(1-ᾱ_t), before the update.

        shape: ``(n, d, h, w)``; eta in [0, 1]; returns Z_0 shaped ``shape``. Other arguments as in
        :meth:`ddpm_sample`.
        """
        timesteps = self._grid_timesteps(grid, steps)
        eta = self._check_eta(eta)
        z0_range = self._check_range(z0_range)
        shape = self._check_shape(shape)
        device = self._resolve_device(model, device)
        model_kwargs = model_kwargs or {}
        return self._ddim_loop(lambda z, t: self._eps(model, z, t, model_kwargs), shape, timesteps, eta,
                               generator, device, dtype, z0_range, progress)

    def _grid_timesteps(self, grid: str, steps: int) -> np.ndarray:
        if grid not in GRIDS:
            raise ValueError(f"grid: expected one of {GRIDS}, got {grid!r}")
        return self.ddim_timesteps(steps) if grid == "time" else self.logsnr_timesteps(steps)

    @staticmethod
    def _check_eta(eta) -> float:
        if not (0.0 <= float(eta) <= 1.0):
            raise ValueError(f"eta must lie in [0, 1], got {eta!r}")
        return float(eta)

    def _ddim_loop(self, eps_fn, shape, timesteps, eta, generator, device, dtype, z0_range, progress,
                   desc: str = "DDIM") -> torch.Tensor:
        """The loop of :meth:`ddim_sample` on ``eps_fn(z_t, t) -> ε`` (arguments already checked)."""
        z = self._randn(shape, generator, device, dtype)  # Z_T ~ N(0, I)
        for i in tqdm(range(len(timesteps)), desc=desc, disable=not progress):
            t = int(timesteps[i])
            last = i == len(timesteps) - 1
            abar_t = self.alphas_cumprod[t]
            abar_s = 1.0 if last else self.alphas_cumprod[int(timesteps[i + 1])]
            eps = eps_fn(z, t)
            z0_hat = (z - math.sqrt(1.0 - abar_t) * eps) / math.sqrt(abar_t)
            if z0_range is not None:
                z0_hat = z0_hat.clamp(*z0_range)
                eps = (z - math.sqrt(abar_t) * z0_hat) / math.sqrt(1.0 - abar_t)
            sigma = eta * math.sqrt((1.0 - abar_s) / (1.0 - abar_t) * (1.0 - abar_t / abar_s))
            dir_coef = math.sqrt(max(1.0 - abar_s - sigma ** 2, 0.0))
            z = math.sqrt(abar_s) * z0_hat + dir_coef * eps
            if sigma > 0 and not last:
                z = z + sigma * self._randn(shape, generator, device, dtype)
        return z

    def logsnr_timesteps(self, steps: int) -> np.ndarray:
        """``steps`` 0-indexed timesteps from T-1 down to 0 evenly spaced in λ_t = ln(sqrt(ᾱ_t)/sqrt(1-ᾱ_t)) (half
        the log-SNR): the grid DPM-Solver recommends for low-resolution data. Each λ is rounded to the nearest
        timestep; near t = 0, where λ moves fastest, equal neighbours are pushed one timestep up so the values stay
        distinct. Returns int64 ``(steps,)``, descending, first T-1, last 0 (steps = T: every timestep). Why not the
        DDIM grid: on the linear schedule its last steps are huge in λ, where the multistep extrapolation factor is
        large (docs/methods.md "DPM-Solver++(2M)").
        """
        self.ddim_timesteps(steps)  # validates steps
        lam = 0.5 * np.log(self.alphas_cumprod / (1.0 - self.alphas_cumprod))  # decreasing in t
        targets = np.linspace(lam[-1], lam[0], int(steps))
        ts = np.searchsorted(-lam, -targets)  # first t with λ_t <= target
        ts = np.clip(ts, 0, self.T - 1)
        lower = np.maximum(ts - 1, 0)
        ts = np.where(np.abs(lam[lower] - targets) < np.abs(lam[ts] - targets), lower, ts)  # nearest
        k = len(ts)
        ts = np.clip(ts, np.arange(k - 1, -1, -1), np.arange(self.T - 1, self.T - 1 - k, -1))  # room for the rest
        ts[-1], ts[0] = 0, self.T - 1  # (just [T-1] when steps = 1, as DDIM)
        for i in range(k - 2, -1, -1):  # ascending from the data end: strictly increasing
            ts[i] = max(ts[i], ts[i + 1] + 1)
        return ts.astype(np.int64)

    @torch.no_grad()
    def dpmpp2m_sample(self, model: Model, shape: Sequence[int], steps: int, generator: torch.Generator | None = None,
                       device=None, progress: bool = False, model_kwargs: dict | None = None,
                       dtype: torch.dtype = torch.float32,
                       z0_range: tuple[float, float] | None = None, sde: bool = False) -> torch.Tensor:
        """DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2 there): the probability-flow ODE of the
        same ε- (or v-) network solved by a second-order multistep method in Ẑ_0 ("data prediction") form;
        ``steps`` network evaluations on the timesteps of :meth:`logsnr_timesteps`.

        With α_t = sqrt(ᾱ_t), σ_t = sqrt(1-ᾱ_t), λ_t = ln(α_t/σ_t) and h = λ_s - λ_t for a step t -> s:
        D = Ẑ_0(t) + (Ẑ_0(t) - Ẑ_0(t_prev)) / (2 r), r = (λ_t - λ_{t_prev}) / h   (the multistep correction),
        Z_s = (σ_s/σ_t) Z_t - α_s (e^{-h} - 1) D.
        The first step has no previous Ẑ_0 and takes D = Ẑ_0(t) (first order = DDIM with η = 0); the last step goes
        to σ = 0 (ᾱ = 1) and returns Ẑ_0 of the last timestep, as DDIM does. This is diffusers'
        ``DPMSolverMultistepScheduler`` with ``algorithm_type="dpmsolver++"``, ``solver_order=2``,
        ``solver_type="midpoint"``, ``final_sigmas_type="zero"`` on the same timesteps (the tests compare the two).
        ``z0_range=(lo, hi)`` clips every Ẑ_0 to it before it enters the update (diffusers has only a symmetric,
        quantile-based thresholding, which does not express Z's asymmetric support; the reason this is our own).
        Deterministic given Z_T: ``generator`` draws Z_T only.

        ``sde=True``: SDE-DPM-Solver++(2M) (same paper, the solver of the reverse SDE in the same form), which injects
        fresh noise at every step like DDIM with η > 0: Z_s = (σ_s/σ_t) e^{-h} Z_t + α_s (1 - e^{-2h}) D
        + σ_s sqrt(1 - e^{-2h}) ε (diffusers' ``algorithm_type="sde-dpmsolver++"``); one draw shaped like Z per step
        but the last, after Z_T, from ``generator``.

        shape: ``(n, d, h, w)``; returns Z_0 shaped ``shape``. Other arguments as in :meth:`ddim_sample`.
        """
        timesteps = self.logsnr_timesteps(steps)
        z0_range = self._check_range(z0_range)
        shape = self._check_shape(shape)
        device = self._resolve_device(model, device)
        model_kwargs = model_kwargs or {}
        return self._dpmpp2m_loop(lambda z, t: self._eps(model, z, t, model_kwargs), shape, timesteps, generator,
                                  device, dtype, z0_range, progress, sde=bool(sde))

    def _dpmpp2m_loop(self, eps_fn, shape, timesteps, generator, device, dtype, z0_range, progress,
                      desc: str = "DPM-Solver++(2M)", sde: bool = False) -> torch.Tensor:
        """The loop of :meth:`dpmpp2m_sample` on ``eps_fn(z_t, t) -> ε`` (arguments already checked)."""
        z = self._randn(shape, generator, device, dtype)  # Z_T ~ N(0, I)
        z0_prev, lam_prev = None, None
        for i in tqdm(range(len(timesteps)), desc=desc, disable=not progress):
            t = int(timesteps[i])
            a_t, s_t = self.sqrt_alphas_cumprod[t], self.sqrt_one_minus_alphas_cumprod[t]
            eps = eps_fn(z, t)
            z0_hat = (z - s_t * eps) / a_t
            if z0_range is not None:
                z0_hat = z0_hat.clamp(*z0_range)
            if i == len(timesteps) - 1:
                return z0_hat  # σ_s = 0: the step to ᾱ = 1 lands on Ẑ_0
            s = int(timesteps[i + 1])
            a_s, s_s = self.sqrt_alphas_cumprod[s], self.sqrt_one_minus_alphas_cumprod[s]
            lam_t, lam_s = math.log(a_t / s_t), math.log(a_s / s_s)
            h = lam_s - lam_t
            if z0_prev is None:
                d = z0_hat
            else:
                r = (lam_t - lam_prev) / h
                d = z0_hat + (z0_hat - z0_prev) / (2.0 * r)
            if sde:  # e^{-h} on the carried state, 1 - e^{-2h} on D, the rest of the variance as fresh noise
                m = -math.expm1(-2.0 * h)
                z = (s_s / s_t * math.exp(-h)) * z + (a_s * m) * d
                z = z + (s_s * math.sqrt(m)) * self._randn(shape, generator, device, dtype)
            else:
                z = (s_s / s_t) * z - (a_s * math.expm1(-h)) * d
            z0_prev, lam_prev = z0_hat, lam_t
        return z

    # ------------------------------------------------------------------ dispatch
    def _resolve_steps(self, sampler: str, steps: int | None) -> int:
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        if sampler == "ddpm":
            if steps is not None and steps != self.T:
                raise ValueError(f"steps must be None or T={self.T} for the ddpm sampler, got {steps!r}")
            return self.T
        if steps is None:
            raise ValueError(f"steps: the {sampler} sampler needs its number of steps (a run's "
                             f"diffusion.sample_steps)")
        self.ddim_timesteps(steps)  # validates
        return int(steps)

    def network_evals(self, sampler: str = "ddpm", steps: int | None = None) -> int:
        """Number of network evaluations per sample: T for ``"ddpm"``, ``steps`` for the others."""
        return self._resolve_steps(sampler, steps)

    def sample(self, model: Model, shape: Sequence[int], sampler: str = "ddpm", steps: int | None = None,
               eta: float = 0.0, generator: torch.Generator | None = None, device=None,
               progress: bool = False, sigma: str = "beta", model_kwargs: dict | None = None,
               dtype: torch.dtype = torch.float32, z0_range: tuple[float, float] | None = None) -> torch.Tensor:
        """Draw Z_0 samples shaped ``shape = (n, d, h, w)`` with ``sampler`` ``"ddpm"``, ``"ddim"``, ``"ddim-lambda"``
        (:meth:`ddim_sample` with ``grid="lambda"``), ``"dpmpp2m"`` or ``"dpmpp2m-sde"`` (:meth:`dpmpp2m_sample` with
        ``sde=True``).

        ``steps``: for ddpm must be None or T (it always takes T steps); for the others the number of
        steps = network evaluations (required: a run's ``diffusion.sample_steps``).
        ``eta`` is used by the two DDIM forms only, ``sigma`` by ddpm only; ``z0_range`` by all (see the samplers).
        Returns relaxed abundances Z (no softmax).
        """
        steps = self._resolve_steps(sampler, steps)
        if sampler == "ddpm":
            return self.ddpm_sample(model, shape, generator=generator, device=device, progress=progress,
                                    sigma=sigma, model_kwargs=model_kwargs, dtype=dtype, z0_range=z0_range)
        if sampler in ("dpmpp2m", "dpmpp2m-sde"):
            return self.dpmpp2m_sample(model, shape, steps=steps, generator=generator, device=device,
                                       progress=progress, model_kwargs=model_kwargs, dtype=dtype, z0_range=z0_range,
                                       sde=sampler == "dpmpp2m-sde")
        return self.ddim_sample(model, shape, steps=steps, eta=eta, generator=generator, device=device,
                                progress=progress, model_kwargs=model_kwargs, dtype=dtype, z0_range=z0_range,
                                grid=DDIM_GRID[sampler])

    # ------------------------------------------------------------------ full-scene synthesis
    @torch.no_grad()
    def sample_tiled(self, model: Model, shape: Sequence[int], window: int, stride: int | None = None,
                     sampler: str = "ddim", steps: int | None = None, eta: float = 0.0,
                     generator: torch.Generator | None = None, device=None, progress: bool = False,
                     sigma: str = "beta", dtype: torch.dtype = torch.float32,
                     z0_range: tuple[float, float] | None = None, batch_size: int = 64,
                     model_kwargs: dict | None = None,
                     window_kwargs: Callable[[list[tuple[int, int]]], dict] | None = None,
                     tiling: str = "multidiffusion") -> torch.Tensor:
        """Draw Z_0 canvases ``shape = (n, d, H, W)`` of any size with a network trained on ``window``-sized patches.

        MultiDiffusion (Bar-Tal et al., ICML 2023): at every reverse step the network is evaluated on the
        overlapping windows of the canvas Z_t (:func:`tile_origins`), its per-window outputs are averaged per
        pixel (sum over the windows covering the pixel / their number: the least-squares reconciliation of the
        windows with uniform weights), converted to ε as in the ordinary samplers (v-prediction included), and
        one step of the chosen sampler is taken on the whole canvas, with Ẑ_0 clipped to ``z0_range`` on the
        canvas as there (eqs. 12, 14; DDIM). Averaging ε rather than the per-window updates is the same thing for
        the deterministic DDIM update without clipping (affine in ε); here the noise of a stochastic step is drawn
        once for the canvas, so it keeps its variance where windows overlap.

        ``tiling``: ``"multidiffusion"`` (default) uses ``stride`` (default ``window // 2``) with the last
        windows aligned to the border. ``"naive"`` uses non-overlapping windows (``stride`` must be None or
        ``window``): the canvas is rounded up to a multiple of ``window``, sampled, and cropped to ``(H, W)``
        (so ``H, W < window`` is allowed there); each window then evolves on its own, which is what leaves seams.

        Noise is drawn exactly as :meth:`ddim_sample` / :meth:`ddpm_sample` draw it (shape ``(n, d, H, W)``, the
        rounded-up shape under naive tiling, same order, from ``generator``). A canvas of exactly one window
        (H = W = window) therefore gives the same result, bit for bit, as :meth:`sample` with the same seed and
        settings: the lone crop is the canvas itself and the average of one output is exact (the sum starts at
        -0.0, the additive identity, and is divided by a count of 1).

        Memory: the network sees at most ``batch_size`` windows per call, i.e. a batch of ``batch_size * n``
        crops ``(k n, d, window, window)``, crop ``j n + i`` being sample ``i`` at the ``j``-th window of the call
        (window-major); the canvas-sized tensors are Z_t, the output sum and the coverage count.

        ``model_kwargs`` are passed unchanged to every call (arguments that do not depend on the batch).
        ``window_kwargs(origins)``, given the list of ``(row, col)`` window corners of one call, returns extra
        keyword arguments for that call (they override ``model_kwargs``), shaped for its ``k n`` crops in the
        order above: e.g. a layout-conditioned network's label-map crops, stacked per window and repeated
        ``n`` times (``torch.repeat_interleave(crops, n, 0)``).

        Other arguments as in :meth:`sample` (``sampler`` default ``"ddim"`` here). Returns Z_0 ``(n, d, H, W)``.
        """
        if tiling not in TILINGS:
            raise ValueError(f"tiling: expected one of {TILINGS}, got {tiling!r}")
        steps = self._resolve_steps(sampler, steps)
        z0_range = self._check_range(z0_range)
        if sampler in ETA_SAMPLERS:
            eta = self._check_eta(eta)
        elif sampler == "ddpm":
            self._check_sigma(sigma)
        shape = self._check_shape(shape)
        if len(shape) != 4:
            raise ValueError(f"shape: expected a canvas (n, d, H, W), got {shape!r}")
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
            raise ValueError(f"window: expected a positive integer, got {window!r}")
        window = int(window)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
        if window_kwargs is not None and not callable(window_kwargs):
            raise ValueError(f"window_kwargs: expected None or a callable, got {type(window_kwargs).__name__}")
        n, d, H, W = shape
        if tiling == "naive":
            if stride is not None and stride != window:
                raise ValueError(f"stride: naive tiling expects None or window={window}, got {stride!r}")
            canvas = (n, d, -(-H // window) * window, -(-W // window) * window)  # rounded up to whole windows
            origins = tile_origins(canvas[2], canvas[3], window, window)
        else:
            canvas = shape
            origins = tile_origins(H, W, window, max(1, window // 2) if stride is None else stride)
        device = self._resolve_device(model, device)
        eps_fn = self._tiled_eps_fn(model, origins, window, n, int(batch_size), model_kwargs or {}, window_kwargs,
                                    canvas, device, dtype)
        if sampler == "ddpm":
            z = self._ddpm_loop(eps_fn, canvas, generator, device, dtype, sigma, z0_range, progress, desc="DDPM tiled")
        elif sampler in ("dpmpp2m", "dpmpp2m-sde"):
            z = self._dpmpp2m_loop(eps_fn, canvas, self.logsnr_timesteps(steps), generator, device, dtype, z0_range,
                                   progress, desc="DPM-Solver++(2M) tiled", sde=sampler == "dpmpp2m-sde")
        else:
            z = self._ddim_loop(eps_fn, canvas, self._grid_timesteps(DDIM_GRID[sampler], steps), eta, generator,
                                device, dtype, z0_range, progress, desc="DDIM tiled")
        return z if canvas == shape else z[:, :, :H, :W]

    def _tiled_eps_fn(self, model, origins, window, n, batch_size, model_kwargs, window_kwargs, canvas, device,
                      dtype):
        """``eps_fn(z_t, t)`` of :meth:`sample_tiled`: the per-pixel mean of the network's window outputs, as ε."""
        count = torch.zeros((1, 1) + tuple(canvas[2:]), dtype=dtype, device=device)
        for r, c in origins:
            count[:, :, r:r + window, c:c + window] += 1  # windows covering each pixel

        def eps_fn(z, t_int):
            acc = torch.full_like(z, -0.0)  # -0.0 + x == x for every x: one window's sum is its output, bit for bit
            for b0 in range(0, len(origins), batch_size):
                batch = origins[b0:b0 + batch_size]
                crops = torch.cat([z[:, :, r:r + window, c:c + window] for r, c in batch])  # (k n, d, w, w)
                kwargs = model_kwargs if window_kwargs is None else {**model_kwargs, **window_kwargs(list(batch))}
                out = self._model_out(model, crops, t_int, kwargs)
                for j, (r, c) in enumerate(batch):
                    acc[:, :, r:r + window, c:c + window] += out[j * n:(j + 1) * n]
            return self._to_eps(z, acc / count, t_int)

        return eps_fn
