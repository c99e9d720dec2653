"""Unmixing AutoEncoder (paper III-B) and the relaxation pair of III-C (eqs. 4-6).

The decoder is the linear mixing model Y = A X with the VCA endmembers A ``(bands, d)`` as a bias-free linear layer.
The encoder is either the fully constrained least-squares solution of eq. 2 (``"fcls"``) or the linear
approximation of eq. 3, ``(AᵀA)⁻¹AᵀY`` (``"linear"``), followed by the Euclidean projection onto the probability
simplex (see :func:`project_simplex`). Both encoders therefore give abundances that are non-negative and sum to one,
which :func:`relax` needs (ln of a negative number is NaN).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from . import unmixing

__all__ = ["UnmixingAutoEncoder", "relax", "constrain", "relax_epsilon", "project_simplex"]


def relax_epsilon(d: int) -> float:
    """The offset e^(−ln d − 8) = e^(−8)/d of eq. 4."""
    return math.exp(-math.log(d) - 8.0)


def relax(X):
    """Eq. 4: Z = ln(X + e^(−ln d − 8)), elementwise; d is the size of the endmember axis.

    Args:
        X: abundances ``(..., d, h, w)`` on the simplex (numpy or torch).
    Returns:
        Z of the same shape and type, in about [−8 − ln d, ln(1 + e^(−8)/d)].
    """
    d = X.shape[-3]
    eps = relax_epsilon(d)
    if isinstance(X, torch.Tensor):
        return torch.log(X + eps)
    return np.log(np.asarray(X) + eps)


def constrain(Z):
    """Eq. 5: X̂ = softmax of Z over the endmember axis (``-3``).

    Args:
        Z: ``(..., d, h, w)`` numpy or torch.
    Returns:
        X̂ of the same shape: non-negative, summing to one over axis ``-3``.
    By eq. 6, ``constrain(relax(X)) == (X + e^(−ln d − 8)) / (1 + e^(−8))`` for X on the simplex.
    """
    if isinstance(Z, torch.Tensor):
        return torch.softmax(Z, dim=-3)
    Z = np.asarray(Z, dtype=np.float64)
    e = np.exp(Z - Z.max(axis=-3, keepdims=True))
    return e / e.sum(axis=-3, keepdims=True)


def project_simplex(X, axis: int = 0):
    """Euclidean projection of every vector along ``axis`` onto the probability simplex (sort-based, vectorised).

    argmin_{x ≥ 0, Σx = 1} ||x − v||₂ for each v. Used to bring the linear encoder's (eq. 3) abundances, which can be
    negative or not sum to one, onto the simplex before :func:`relax`. Works on numpy or torch; NaN-free for finite
    input.
    """
    is_t = isinstance(X, torch.Tensor)
    V = X if is_t else torch.from_numpy(np.asarray(X, dtype=np.float64))
    V = V.movedim(axis, -1)
    d = V.shape[-1]
    U, _ = torch.sort(V, dim=-1, descending=True)
    css = U.cumsum(-1) - 1.0
    k = torch.arange(1, d + 1, dtype=V.dtype, device=V.device)
    cond = U - css / k > 0
    rho = cond.to(V.dtype).mul(k).argmax(-1, keepdim=True)  # last index where cond holds
    theta = css.gather(-1, rho) / (rho + 1).to(V.dtype)
    P = torch.clamp(V - theta, min=0).movedim(-1, axis)
    return P if is_t else P.numpy()


class UnmixingAutoEncoder(nn.Module):
    """Frozen (by default) unmixing autoencoder.

    Args:
        E: endmembers A ``(bands, d)``.
        encoder: ``"fcls"`` (eq. 2) or ``"linear"`` (eq. 3, then simplex projection).
        trainable: if False (the paper's recommendation) every parameter is frozen.
        simplex: with the linear encoder, project its abundances onto the simplex (default). False keeps
            ``(AᵀA)⁻¹AᵀY`` unconstrained, as the authors' run (then ``decode(encode(Y))`` is Y's projection onto
            the span of A, exactly Y for Y in that span).

    Attributes:
        decoder: ``nn.Linear(d, bands, bias=False)`` with weight A.
        pinv: ``nn.Linear(bands, d, bias=False)`` with weight (AᵀA)⁻¹Aᵀ (the linear encoder).
    """

    def __init__(self, E, encoder: str = "fcls", trainable: bool = False, simplex: bool = True):
        super().__init__()
        E = np.asarray(E, dtype=np.float64)
        if E.ndim != 2 or E.shape[1] > E.shape[0]:
            raise ValueError(f"E: expected endmembers (bands, d) with d <= bands, got shape {E.shape}")
        if encoder not in ("fcls", "linear"):
            raise ValueError(f"encoder: expected 'fcls' or 'linear', got {encoder!r}")
        if not simplex and encoder != "linear":
            raise ValueError("simplex: only the linear encoder can leave the simplex (FCLS is on it by definition)")
        self.encoder = encoder
        self.simplex = bool(simplex)
        self.bands, self.d = E.shape
        self.decoder = nn.Linear(self.d, self.bands, bias=False)
        self.pinv = nn.Linear(self.bands, self.d, bias=False)
        with torch.no_grad():
            self.decoder.weight.copy_(torch.from_numpy(E))
            self.pinv.weight.copy_(torch.from_numpy(np.linalg.pinv(E)))  # eq. 3: (AᵀA)⁻¹Aᵀ
        for p in self.parameters():
            p.requires_grad_(trainable)

    @property
    def endmembers(self) -> np.ndarray:
        """A ``(bands, d)`` as float64 numpy."""
        return self.decoder.weight.detach().cpu().double().numpy()

    @classmethod
    def from_scene(cls, scene, d: int | None = None, random_state=0, encoder: str = "fcls", **kw):
        """VCA endmembers of ``scene.cube`` (d = ``scene.n_classes`` by default, as in the paper)."""
        return cls.from_cube(scene.cube, d or scene.n_classes, random_state=random_state, encoder=encoder, **kw)

    @classmethod
    def from_cube(cls, cube, d: int, random_state=0, encoder: str = "fcls", **kw):
        """VCA endmembers of a cube ``(bands, rows, cols)``."""
        E, _ = unmixing.vca(cube, d, random_state=random_state)
        return cls(E, encoder=encoder, **kw)

    def encode(self, Y, device=None):
        """Abundances (on the simplex unless ``simplex`` is False).

        Args:
            Y: ``(bands, h, w)`` or ``(n, bands, h, w)`` numpy or torch.
        Returns:
            X ``(d, h, w)`` / ``(n, d, h, w)`` of the input's type (float32 for torch).
        """
        is_t = isinstance(Y, torch.Tensor)
        Yn = Y.detach().cpu().double().numpy() if is_t else np.asarray(Y, dtype=np.float64)
        if Yn.shape[-3] != self.bands:
            raise ValueError(f"Y: expected {self.bands} bands on axis -3, got shape {Yn.shape}")
        batched = Yn.ndim == 4
        Yc = np.moveaxis(Yn, 0, 1) if batched else Yn  # (bands, n, h, w)
        if self.encoder == "fcls":
            X = unmixing.fcls(Yc, self.endmembers, device=device)
        else:
            X = unmixing.linear_abundances(Yc, self.endmembers)
            X = project_simplex(X, axis=0) if self.simplex else X
        X = np.moveaxis(X, 0, 1) if batched else X
        return torch.from_numpy(np.ascontiguousarray(X)).float() if is_t else X

    def decode(self, X):
        """Ŷ = A X. X ``(..., d, h, w)`` numpy or torch -> ``(..., bands, h, w)``."""
        if isinstance(X, torch.Tensor):
            W = self.decoder.weight.to(X.dtype)
            return torch.einsum("bd,...dhw->...bhw", W, X)
        return np.einsum("bd,...dhw->...bhw", self.endmembers, np.asarray(X, dtype=np.float64))

    def forward(self, Y):
        return self.decode(self.encode(Y))
