"""Linear unmixing for the unmixing autoencoder (paper III-B): VCA endmembers and abundances.

The paper's linear mixing model (eq. 1) is ``Y = A X + eps`` with ``Y`` ``(c, h, w)``, endmembers ``A``
``(c, d)`` and abundances ``X`` ``(d, h, w)``. Here the endmember matrix is called ``E`` (``A`` is the paper's
name). Arrays are channel-first: spectra run along axis 0, any trailing (spatial) shape is kept.

* :func:`vca` / :class:`VCA` -- Vertex Component Analysis (Nascimento & Dias, IEEE TGRS 43(4), 2005).
* :func:`fcls` -- eq. 2, fully constrained least squares (``X >= 0``, ``sum_i X_i = 1``), batched over all
  pixels by a block principal pivoting active-set method (below); :func:`fcls_reference` is the per-pixel
  ``scipy.optimize.nnls`` reference it is checked against.
* :func:`linear_abundances` -- eq. 3, ``X = (AᵀA)⁻¹AᵀY``.
* :func:`spectral_angle`, :func:`match_endmembers` -- SAD and Hungarian matching of endmember sets.

How :func:`fcls` works. Per pixel with ``G = EᵀE`` (``p x p``, shared) and ``b = Eᵀy`` the problem is the QP
``min ½xᵀGx - bᵀx  s.t.  x >= 0, 1ᵀx = 1``. For a passive set ``S`` (the other entries fixed at 0) the
equality-constrained solution is ``x_S = G_SS⁻¹(b_S - ν1)``, ``ν = (1ᵀG_SS⁻¹b_S - 1) / (1ᵀG_SS⁻¹1)``, and the
multipliers of the zero entries are ``λ = (Gx - b + ν1)_W``. ``S`` is optimal iff ``x_S >= 0`` and ``λ >= 0``.
Block principal pivoting (Júdice & Pires 1994; Kim & Park 2011 for many right-hand sides) swaps every
infeasible index at once, with the Júdice–Pires back-up rule (swap only the largest infeasible index once the
count stops falling for 3 rounds). The sum-to-one problem is the homogeneous NNLS
``min_{z>=0} ||(E - y1ᵀ)z||² + δ²(1ᵀz - 1)²`` in disguise (``x = z / 1ᵀz``, same passive sets, same signs of
``x_S`` and ``λ``; see :func:`fcls_reference`), whose Gram matrix is positive definite, so the method ends
after finitely many swaps. Pixels are processed together: each round solves one small system per *distinct*
passive set (many pixels share one) and applies it to its pixels by a batched gather, so there is no Python
loop over pixels; pixels leave the working set as soon as they are optimal.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment, nnls
from tqdm.auto import tqdm

from .errors import DataError

__all__ = ["spectral_angle", "vca", "VCA", "linear_abundances", "fcls", "fcls_reference", "match_endmembers",
           "endmember_sad"]


# --------------------------------------------------------------------------------------------- helpers
def _as_spectra(Y, name: str = "Y", float64: bool = True) -> tuple[np.ndarray, tuple[int, ...]]:
    """``Y`` ``(bands, ...)`` -> ``(bands, N)`` (float64 unless ``float64=False``) and the trailing shape.

    With ``float64=False`` a floating array keeps its dtype and is *not* checked for NaN/Inf here (callers
    check chunk by chunk, so a float32 cube is never copied whole).
    """
    if isinstance(Y, torch.Tensor):
        Y = Y.detach().cpu().numpy()
    Y = np.asarray(Y)
    if Y.ndim < 1:
        raise DataError(f"{name}: expected an array (bands, ...), got a scalar")
    if np.issubdtype(Y.dtype, np.bool_) or not (np.issubdtype(Y.dtype, np.floating)
                                                 or np.issubdtype(Y.dtype, np.integer)):
        raise DataError(f"{name}: expected a real numeric array, got dtype {Y.dtype}")
    if Y.size == 0:
        raise DataError(f"{name}: expected a non-empty array, got shape {Y.shape}")
    Yf = Y.reshape(Y.shape[0], -1)
    if float64 or not np.issubdtype(Yf.dtype, np.floating):
        Yf = Yf.astype(np.float64, copy=False)
    if float64:
        _check_finite(Yf, name)
    return Yf, tuple(Y.shape[1:])


def _check_finite(A: np.ndarray, name: str) -> None:
    if not np.isfinite(A).all():
        raise DataError(f"{name}: holds NaN/Inf values; expected finite spectra")


def _as_endmembers(E, bands: int | None = None, name: str = "E") -> np.ndarray:
    """``E`` ``(bands, p)`` -> float64, checked against the bands of Y."""
    if isinstance(E, torch.Tensor):
        E = E.detach().cpu().numpy()
    E = np.asarray(E, dtype=np.float64)
    if E.ndim != 2 or E.shape[1] < 1:
        raise DataError(f"{name}: expected endmembers (bands, p) with p >= 1, got shape {E.shape}")
    if not np.isfinite(E).all():
        raise DataError(f"{name}: holds NaN/Inf values; expected finite endmember spectra")
    if bands is not None and E.shape[0] != bands:
        raise DataError(f"{name}: has {E.shape[0]} bands but Y has {bands}; expected E (bands, p) with the bands of Y")
    return E


def spectral_angle(a, b) -> np.ndarray:
    """Spectral angle (radians, in [0, pi]) between spectra along axis 0.

    Args:
        a: ``(bands, ...)``; b: ``(bands, ...)``; the trailing shapes broadcast (numpy rules).

    Returns:
        ``(...)`` float64 angles; NaN where a spectrum is all zeros.

    Uses ``2·atan2(|â - b̂|, |â + b̂|)`` on unit vectors, accurate also for tiny angles (``arccos`` of the
    cosine loses about 8 digits there).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim < 1 or b.ndim < 1:
        raise ValueError(f"a, b: expected spectra (bands, ...), got shapes {a.shape} and {b.shape}")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"a, b: band counts differ ({a.shape[0]} vs {b.shape[0]}); expected the same axis-0 length")
    with np.errstate(invalid="ignore", divide="ignore"):
        ua = a / np.linalg.norm(a, axis=0)
        ub = b / np.linalg.norm(b, axis=0)
        return 2.0 * np.arctan2(np.linalg.norm(ua - ub, axis=0), np.linalg.norm(ua + ub, axis=0))


# --------------------------------------------------------------------------------------------- VCA
_VCA_CHUNK = 65536  # pixels converted to float64 at a time in VCA


def _top_left_singular(C: np.ndarray, k: int) -> np.ndarray:
    """First ``k`` left singular vectors of the symmetric ``C`` ``(L, L)``, signs fixed (largest entry > 0)."""
    U = np.linalg.svd(C, hermitian=True)[0][:, :k]
    s = np.sign(U[np.argmax(np.abs(U), axis=0), np.arange(k)])
    s[s == 0] = 1.0
    return U * s


def _vca(Y, n_endmembers: int, random_state=None, snr_input=None):
    """VCA core: returns ``(E (bands, p), indices (p,), snr, branch)``."""
    if np.ndim(Y) not in (2, 3):
        raise DataError(f"Y: expected (bands, rows, cols) or (bands, N), got shape {np.shape(Y)}")
    Yf, _ = _as_spectra(Y, "Y", float64=False)  # float64 one chunk at a time (bounded memory)
    L, N = Yf.shape
    chunks = [slice(s, s + _VCA_CHUNK) for s in range(0, N, _VCA_CHUNK)]

    def chunk64(sl):
        Yc = Yf[:, sl].astype(np.float64)
        _check_finite(Yc, "Y")
        return Yc

    if isinstance(n_endmembers, bool) or not isinstance(n_endmembers, (int, np.integer)) or n_endmembers < 1:
        raise ValueError(f"n_endmembers: expected a positive int, got {n_endmembers!r}")
    p = int(n_endmembers)
    if p > L:
        raise ValueError(f"n_endmembers: {p} endmembers exceed the {L} bands of Y; expected n_endmembers <= bands")
    if p > N:
        raise ValueError(f"n_endmembers: {p} endmembers exceed the {N} pixels of Y; expected n_endmembers <= pixels")
    rng = np.random.default_rng(random_state)

    y_m, R = np.zeros(L), np.zeros((L, L))
    for sl in chunks:
        Yc = chunk64(sl)
        y_m += Yc.sum(axis=1) / N
        R += Yc @ Yc.T / N  # correlation matrix (L, L)
    C = R - np.outer(y_m, y_m)  # covariance = Y_o Y_oᵀ / N with Y_o = Y - y_m
    P_y = float(np.trace(R))  # Σ ||y||² / N
    if snr_input is None:
        # SNR estimate of Nascimento & Dias from the p-dim. PCA subspace: x_p = U_dᵀ Y_o
        U_d = _top_left_singular(C, p)
        P_x = float(np.trace(U_d.T @ C @ U_d) + y_m @ y_m)  # Σ ||x_p||² / N + y_mᵀ y_m
        num, den = P_x - p / L * P_y, P_y - P_x
        if den <= 1e-10 * P_y:
            snr = np.inf  # noise-free to rounding
        elif num <= 0:
            snr = -np.inf
        else:
            snr = 10.0 * np.log10(num / den)
    else:
        snr = float(snr_input)
    snr_th = 15.0 + 10.0 * np.log10(p)

    if snr < snr_th:
        # low SNR: (p-1)-dim. PCA subspace around the mean plus a constant row c (projection onto a cone)
        branch = "pca"
        d = p - 1
        U_d = _top_left_singular(C, d)
        x = np.concatenate([U_d.T @ chunk64(sl) for sl in chunks], axis=1) - (U_d.T @ y_m)[:, None]  # U_dᵀ Y_o
        c = float(np.sqrt(np.sum(x ** 2, axis=0)).max()) if d > 0 else 1.0
        y = np.vstack([x, np.full((1, N), c if c > 0 else 1.0)])
    else:
        # high SNR: projective projection. SVD on the (uncentred) data, p-dim. subspace, then every
        # projected pixel divided by its inner product with the mean direction u
        branch = "projective"
        U_d = _top_left_singular(R, p)
        x_p = np.concatenate([U_d.T @ chunk64(sl) for sl in chunks], axis=1)  # (p, N)
        u = x_p.mean(axis=1)
        den = u @ x_p
        big = np.abs(den).max()
        ok = np.abs(den) > 1e-12 * big if big > 0 else np.zeros(N, bool)
        y = np.zeros_like(x_p)
        y[:, ok] = x_p[:, ok] / den[ok]  # all-zero pixels stay at the origin and are never extreme

    # iterative selection: project onto a random direction orthogonal to the endmembers found so far
    A = np.zeros((p, p))
    A[p - 1, 0] = 1.0
    indices = np.zeros(p, dtype=np.int64)
    for i in range(p):
        w = rng.random(p)
        f = w - A @ (np.linalg.pinv(A) @ w)
        nf = np.linalg.norm(f)
        f = f / nf if nf > 0 else w / np.linalg.norm(w)
        v = f @ y
        indices[i] = int(np.argmax(np.abs(v)))
        A[:, i] = y[:, indices[i]]
    E = Yf[:, indices].astype(np.float64)  # original spectra of the selected pixels
    return E, indices, snr, branch


def vca(Y, n_endmembers: int, random_state=None, snr_input=None) -> tuple[np.ndarray, np.ndarray]:
    """Vertex Component Analysis (Nascimento & Dias 2005): ``p`` extreme pixels as endmembers.

    Args:
        Y: ``(bands, rows, cols)`` or ``(bands, N)``.
        n_endmembers: ``p`` (the paper's ``d``), ``1 <= p <= bands``.
        random_state: seed / Generator for the random projection directions (``np.random.default_rng``).
        snr_input: SNR in dB to use instead of the estimate; picks the branch (low SNR:
            ``< 15 + 10 log10 p`` -> (p-1)-dim. PCA subspace plus a constant row; else projective projection).

    Returns:
        ``(E, indices)``: ``E`` float64 ``(bands, p)`` holds the selected pixels' original spectra,
        ``indices`` int64 ``(p,)`` their flat pixel indices into ``rows * cols`` (C order).
    """
    E, idx, _, _ = _vca(Y, n_endmembers, random_state, snr_input)
    return E, idx


class VCA:
    """sklearn-style wrapper of :func:`vca`.

    Attributes (after :meth:`fit`): ``endmembers_`` ``(bands, p)``, ``indices_`` ``(p,)``, ``snr_`` (dB, the
    estimate or ``snr_input``), ``branch_`` (``"projective"`` or ``"pca"``).
    """

    def __init__(self, n_endmembers: int, random_state=None, snr_input=None):
        self.n_endmembers = n_endmembers
        self.random_state = random_state
        self.snr_input = snr_input

    def fit(self, Y, y=None) -> "VCA":
        """Fit on ``Y`` ``(bands, rows, cols)`` or ``(bands, N)``; returns self."""
        E, idx, snr, branch = _vca(Y, self.n_endmembers, self.random_state, self.snr_input)
        self.endmembers_, self.indices_, self.snr_, self.branch_ = E, idx, snr, branch
        return self


# --------------------------------------------------------------------------------------------- abundances
def linear_abundances(Y, E) -> np.ndarray:
    """Eq. 3: ``X = (EᵀE)⁻¹EᵀY`` (unconstrained least squares, solved by ``lstsq``).

    Args:
        Y: ``(bands, ...)``; E: ``(bands, p)``.

    Returns:
        float64 ``(p, ...)`` with the trailing shape of ``Y``.
    """
    Yf, tail = _as_spectra(Y, "Y")
    E = _as_endmembers(E, Yf.shape[0])
    X = np.linalg.lstsq(E, Yf, rcond=None)[0]  # eq. 3
    return X.reshape((E.shape[1],) + tail)


def _check_affine(E: np.ndarray) -> None:
    p = E.shape[1]
    Ea = np.vstack([E / max(np.abs(E).max(), 1e-300), np.ones((1, p))])
    if np.linalg.matrix_rank(Ea) < p:
        raise ValueError(f"E: the {p} endmembers are affinely dependent ([E; 1ᵀ] has rank < p); "
                         "expected distinct, affinely independent spectra")


class _NumpyOps:
    """Array operations of the pivoting on the CPU (numpy)."""

    def asarray(self, a):
        return np.ascontiguousarray(a, dtype=np.float64)

    def to_numpy(self, a):
        return a

    def zeros(self, shape, dtype=np.float64):
        return np.zeros(shape, dtype=dtype)

    def ones(self, shape):
        return np.ones(shape)

    def full_int(self, shape, value):
        return np.full(shape, value, dtype=np.int64)

    def arange(self, n):
        return np.arange(n)

    def as_int(self, a):
        return a.astype(np.int64)

    def as_float(self, a):
        return a.astype(np.float64)

    def nonzero(self, mask):
        return np.flatnonzero(mask)

    def codes(self, P):
        """Bit codes ``(n,)`` int64 of the rows of the bool ``P`` ``(n, p)``, ``p <= 62``."""
        pb = np.packbits(P, axis=1, bitorder="little")
        buf = np.zeros((len(P), 8), dtype=np.uint8)
        buf[:, :pb.shape[1]] = pb
        return buf.view("<u8")[:, 0].astype(np.int64)

    def unique_inverse(self, codes):
        u, inv = np.unique(codes, return_inverse=True)
        return u, inv.reshape(-1)

    def argsort_stable(self, a):
        return np.argsort(a, axis=1, kind="stable")

    def matvec(self, M, b):  # (n, k, k) @ (n, k) -> (n, k)
        return np.einsum("nij,nj->ni", M, b, optimize=False)

    def mm(self, x, G):
        """``(n, p) @ (p, q)`` without BLAS: threaded BLAS on these thin products is slow on a loaded machine (idle
        OpenBLAS workers spin; benchmarks/unmixing.py, docs/methods.md), einsum's loop is single-threaded."""
        return np.einsum("ni,ij->nj", x, G, optimize=False)

    def flip(self, a):
        return a[:, ::-1]

    def sort_desc(self, a):
        return -np.sort(-a, axis=1)

    def cumsum(self, a):
        return np.cumsum(a, axis=1)

    def inv(self, A):
        return np.linalg.inv(A)


class _TorchOps(_NumpyOps):
    """The same operations in torch on ``device`` (the path for GPUs)."""

    def __init__(self, device):
        self.device = torch.device(device)

    def asarray(self, a):
        return torch.as_tensor(np.ascontiguousarray(a, dtype=np.float64)).to(self.device)

    def to_numpy(self, a):
        return a.cpu().numpy()

    def zeros(self, shape, dtype=np.float64):
        dtype = {np.float64: torch.float64, bool: torch.bool}.get(dtype, dtype)
        return torch.zeros(shape, dtype=dtype, device=self.device)

    def ones(self, shape):
        return torch.ones(shape, dtype=torch.float64, device=self.device)

    def full_int(self, shape, value):
        return torch.full(shape, value, dtype=torch.int64, device=self.device)

    def arange(self, n):
        return torch.arange(n, device=self.device)

    def as_int(self, a):
        return a.to(torch.int64)

    def as_float(self, a):
        return a.to(torch.float64)

    def nonzero(self, mask):
        return torch.nonzero(mask).squeeze(1)

    def codes(self, P):
        bits = torch.ones(P.shape[1], dtype=torch.int64, device=self.device) << self.arange(P.shape[1])
        return (P.to(torch.int64) * bits).sum(dim=1)

    def unique_inverse(self, codes):
        return torch.unique(codes, return_inverse=True)

    def argsort_stable(self, a):
        return torch.argsort(a.to(torch.int8) if a.dtype == torch.bool else a, dim=1, stable=True)

    def matvec(self, M, b):
        return torch.bmm(M, b[:, :, None])[:, :, 0]

    def mm(self, x, G):
        return x @ G

    def flip(self, a):
        return a.flip(1)

    def sort_desc(self, a):
        return torch.sort(a, dim=1, descending=True).values

    def cumsum(self, a):
        return torch.cumsum(a, dim=1)

    def inv(self, A):
        return torch.linalg.inv(A)


_BUCKET = 2  # passive-set sizes are padded to multiples of this in _eqp
_FORCE_TORCH = False  # tests set this to run the torch (GPU) code path on the CPU


def _ops(device) -> _NumpyOps:
    dev = torch.device("cpu") if device is None else torch.device(device)
    return _TorchOps(dev) if (dev.type != "cpu" or _FORCE_TORCH) else _NumpyOps()


def _proj_simplex_support(V, xp: _NumpyOps):
    """Support (bool ``(n, p)``) of the Euclidean projection of each row of ``V`` onto the unit simplex.

    Sort-based threshold (Held et al. 1974): with ``u`` sorted decreasingly, ``ρ`` the last index where
    ``ρ u_ρ > Σ_{j<=ρ} u_j - 1`` (1-based), ``τ = (Σ_{j<=ρ} u_j - 1) / ρ``; the support is ``v > τ``.
    """
    n, p = V.shape
    U = xp.sort_desc(V)
    css = xp.cumsum(U) - 1.0
    cond = U * (xp.arange(p) + 1) > css
    rho = p - 1 - xp.as_int(xp.flip(cond)).argmax(axis=1)  # last index where cond holds (0-based)
    tau = css[xp.arange(n), rho] / (rho + 1)
    return V > tau[:, None]


def _eqp(P, Be, Gflat, xp: _NumpyOps, width: int = 2):
    """Sum-to-one least squares of every pixel on its passive set.

    Solves the KKT system ``[[G_SS, 1], [1ᵀ, 0]] [x_S; ν] = [b_S; 1]`` once per *distinct* passive set and
    applies the inverse to the pixels sharing it. Sets are batched by size, padded up to a multiple of
    ``width`` with identity rows (dummy index ``p``, right-hand side 0, so its value is exactly 0): fewer,
    larger batched inversions.

    Args:
        P: bool ``(n, p)`` passive sets (rows non-empty); Be: ``(n, p + 1)`` rows ``[b, 0]`` with ``b = Eᵀy``;
        Gflat: ``G = EᵀE`` padded with a zero row and column, flattened ``((p + 1)²,)``.

    Returns:
        ``x`` ``(n, p)`` (0 off the passive set) and ``ν`` ``(n,)``.
    """
    n, p = P.shape
    ucodes, inv = xp.unique_inverse(xp.codes(P))
    U = (ucodes[:, None] >> xp.arange(p)) & 1 == 1  # (u, p) distinct passive sets
    ku = U.sum(axis=1)
    kb_u = xp.as_int(((ku + width - 1) // width) * width)
    kb_u = kb_u * xp.as_int(kb_u <= p) + p * xp.as_int(kb_u > p)  # padded size, at most p
    # passive indices first (ascending), then the dummy index p for the padding
    order_u = xp.argsort_stable(~U)
    order_u = order_u * xp.as_int(xp.arange(p)[None, :] < ku[:, None]) \
        + p * xp.as_int(xp.arange(p)[None, :] >= ku[:, None])
    kpix = kb_u[inv]
    xe = xp.zeros((n, p + 1))
    nu = xp.zeros((n,))
    loc = xp.full_int((len(ucodes),), 0)
    for kb in sorted(set(xp.to_numpy(kb_u).tolist())):
        gu = xp.nonzero(kb_u == kb)
        S = order_u[gu, :kb]  # (u_b, kb), padded with p
        K = xp.ones((len(gu), kb + 1, kb + 1))  # KKT matrices [[G_SS, 1], [1ᵀ, 0]]
        K[:, :kb, :kb] = Gflat[S[:, :, None] * (p + 1) + S[:, None, :]]  # G_SS, 0 on padding
        diag = xp.arange(kb)
        K[:, diag, diag] += xp.as_float(S == p)  # identity on the padding
        K[:, :kb, kb] = xp.as_float(S < p)  # the constraint 1ᵀx = 1, 0 on padding
        K[:, kb, :kb] = xp.as_float(S < p)
        K[:, kb, kb] = 0.0
        Kinv = xp.inv(K)  # batched LU with pivoting (the KKT matrix is indefinite)
        loc[gu] = xp.arange(len(gu))
        r = xp.nonzero(kpix == kb)
        li = loc[inv[r]]
        Sp = S[li]  # (n_b, kb) passive indices of these pixels
        rhs = xp.ones((len(r), kb + 1))
        rhs[:, :kb] = Be[r[:, None], Sp]
        sol = xp.matvec(Kinv[li], rhs)  # [x_S; ν]
        xe[r[:, None], Sp] = sol[:, :kb]
        nu[r] = sol[:, kb]
    return xe[:, :p], nu


def _fcls_block(Bt, G, Ginv, tol: float, max_iter: int, xp: _NumpyOps):
    """Block principal pivoting for ``n`` pixels. Bt ``(n, p)``, G ``(p, p)`` (scaled), Ginv = G⁺ (start only).

    Returns ``X`` ``(n, p)`` and a bool ``(n,)`` mask of pixels still infeasible after ``max_iter`` rounds.
    """
    n, p = Bt.shape
    # start: support of the simplex projection of the sum-to-one least-squares solution (shared G)
    u = xp.mm(Bt, Ginv)
    v = Ginv.sum(axis=1)
    P = _proj_simplex_support(u - ((u.sum(axis=1) - 1.0) / v.sum())[:, None] * v[None, :], xp)
    Gpad = xp.zeros((p + 1, p + 1))
    Gpad[:p, :p] = G
    Gflat = Gpad.reshape(-1)
    Be = xp.zeros((n, p + 1))  # b padded with a zero for the dummy index of _eqp
    Be[:, :p] = Bt
    X = xp.zeros((n, p))
    failed = xp.zeros((n,), dtype=bool)
    act = xp.arange(n)
    alpha = xp.full_int((n,), 3)
    beta = xp.full_int((n,), p + 1)
    cols = xp.arange(p)[None, :]
    for it in range(max_iter + 1):
        x, nu = _eqp(P, Be, Gflat, xp, _BUCKET)
        lam = xp.mm(x, G) - Be[:, :p] + nu[:, None]  # multipliers of the bounds x_i >= 0 (KKT of eq. 2)
        V = (P & (x < -tol)) | (~P & (lam < -tol))  # infeasible indices
        nv = V.sum(axis=1)
        done = nv == 0
        if bool(done.any()):
            X[act[done]] = x[done] * P[done]
        keep = ~done
        if not bool(keep.any()):
            break
        if it == max_iter:
            failed[act[keep]] = True
            break
        act, P, V, nv, alpha, beta, Be = act[keep], P[keep], V[keep], nv[keep], alpha[keep], beta[keep], Be[keep]
        # Júdice–Pires rule: swap all infeasible indices while their count falls (or for 3 more rounds),
        # otherwise only the largest one (back-up rule, which guarantees termination)
        better = nv < beta
        beta = beta * xp.as_int(~better) + nv * xp.as_int(better)
        alpha = alpha * xp.as_int(~better) + 3 * xp.as_int(better)
        full = better | (alpha >= 1)
        alpha = alpha - xp.as_int(~better & (alpha >= 1))
        last = p - 1 - xp.as_int(xp.flip(V)).argmax(axis=1)  # largest infeasible index
        P = P ^ ((V & full[:, None]) | ((cols == last[:, None]) & ~full[:, None]))
    return X, failed


def fcls(Y, E, *, tol: float = 1e-10, max_iter: int | None = None, chunk_size: int = 65536, device=None,
         progress: bool = True):
    """Eq. 2: fully constrained least squares ``min ||Y - EX||²  s.t.  X >= 0, Σ_i X_i = 1`` per pixel.

    All pixels of a chunk are solved together by block principal pivoting (module docstring); the result is
    the exact constrained minimiser up to rounding (checked against :func:`fcls_reference`).

    Args:
        Y: ``(bands, ...)`` numpy array or torch tensor (e.g. ``(bands, rows, cols)``); float32 input is
            converted to float64 one chunk at a time.
        E: endmembers ``(bands, p)``, affinely independent (``[E; 1ᵀ]`` of rank ``p``), ``p <= 62``.
        tol: feasibility tolerance of the pivoting on the scaled problem (``EᵀE`` with unit mean diagonal).
        max_iter: pivoting rounds per chunk (default ``10 p + 20``); pixels still infeasible after that are
            solved by :func:`fcls_reference`, with a ``RuntimeWarning``.
        chunk_size: pixels per chunk; bounds the working memory.
        device: torch device (``None`` or ``"cpu"``: numpy on the CPU; e.g. ``"cuda"``: torch there).
        progress: tqdm bar over chunks (shown only when there is more than one).

    Returns:
        float64 ``(p, ...)`` with ``Y``'s trailing shape, ``X >= 0`` exactly and ``Σ_i X_i = 1`` to rounding;
        numpy for numpy input, a CPU tensor for tensor input.
    """
    is_tensor = isinstance(Y, torch.Tensor)
    Yf, tail = _as_spectra(Y, "Y", float64=False)
    L, N = Yf.shape
    E = _as_endmembers(E, L)
    p = E.shape[1]
    if p > 62:
        raise ValueError(f"E: {p} endmembers; expected p <= 62 (passive sets are coded as int64 bit masks)")
    _check_affine(E)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size: expected a positive int, got {chunk_size!r}")
    if not tol >= 0:
        raise ValueError(f"tol: expected a float >= 0, got {tol!r}")
    max_iter = 10 * p + 20 if max_iter is None else int(max_iter)
    if max_iter < 0:
        raise ValueError(f"max_iter: expected an int >= 0, got {max_iter}")
    xp = _ops(device)

    G = E.T @ E
    scale = float(np.trace(G) / p)  # unit mean diagonal, so tol is relative to the data's scale
    scale = scale if scale > 0 else 1.0
    Gs, Es = G / scale, E / scale
    Gx, Ginvx = xp.asarray(Gs), xp.asarray(np.linalg.pinv(Gs))  # pinv: G may be singular when p > bands
    out = np.empty((p, N))
    starts = range(0, N, chunk_size)
    n_failed = 0
    for s0 in tqdm(starts, desc="fcls", unit="chunk", disable=not progress or len(starts) <= 1):
        Yc = Yf[:, s0:s0 + chunk_size].astype(np.float64)
        _check_finite(Yc, "Y")
        Bt = xp.asarray((Es.T @ Yc).T)  # rows b = Eᵀy / scale, (n, p)
        X, failed = _fcls_block(Bt, Gx, Ginvx, tol, max_iter, xp)
        X, failed = xp.to_numpy(X), xp.to_numpy(failed)
        if failed.any():
            idx = np.flatnonzero(failed)
            X[idx] = fcls_reference(Yc[:, idx], E, progress=False).T
            n_failed += len(idx)
        np.maximum(X, 0.0, out=X)
        X /= X.sum(axis=1, keepdims=True)  # exact sum-to-one after clipping rounding-level negatives
        out[:, s0:s0 + len(X)] = X.T
    if n_failed:
        warnings.warn(f"fcls: {n_failed} pixel(s) were still infeasible after max_iter={max_iter} pivoting "
                      "rounds; solved them with fcls_reference", RuntimeWarning, stacklevel=2)
    out = out.reshape((p,) + tail)
    return torch.from_numpy(out) if is_tensor else out


def fcls_reference(Y, E, delta: float | None = None, progress: bool = True) -> np.ndarray:
    """Per-pixel FCLS with ``scipy.optimize.nnls`` (slow reference for :func:`fcls`).

    ``delta=None`` (default) solves eq. 2 *exactly*: since ``1ᵀx = 1``, ``Ex - y = (E - y1ᵀ)x``, and the NNLS
    ``min_{z>=0} ||(E - y1ᵀ)z||² + w²(1ᵀz - 1)²`` has the minimiser ``z = s x*`` with ``x*`` the FCLS solution
    and ``s = w² / (w² + ||Ex* - y||²) > 0`` (for fixed ``1ᵀz = s`` the first term is ``s²||(E - y1ᵀ)x||²``,
    minimised by ``x*`` whatever ``s``); so ``x* = z / 1ᵀz`` for any ``w > 0``, no penalty weight to tune.
    ``w`` is set to the RMS column norm of ``E`` only to balance the rows.
    ``delta=w`` instead gives the classical penalised system (Heinz & Chang 2001):
    ``nnls([E; w1ᵀ], [y; w])``, whose sum is 1 only up to ``O(1/w²)``.

    Args:
        Y: ``(bands, ...)``; E: ``(bands, p)``.

    Returns:
        float64 ``(p, ...)``.
    """
    Yf, tail = _as_spectra(Y, "Y")
    E = _as_endmembers(E, Yf.shape[0])
    L, p = E.shape
    N = Yf.shape[1]
    X = np.empty((p, N))
    if delta is None:
        w = float(np.sqrt(np.sum(E ** 2) / p)) or 1.0
        M = np.vstack([E, np.full((1, p), w)])
        rhs = np.zeros(L + 1)
        rhs[L] = w
        for j in tqdm(range(N), desc="fcls_reference", disable=not progress):
            M[:L] = E - Yf[:, j:j + 1]
            z = nnls(M, rhs)[0]
            X[:, j] = z / z.sum()
    else:
        M = np.vstack([E, np.full((1, p), float(delta))])
        rhs = np.empty(L + 1)
        rhs[L] = float(delta)
        for j in tqdm(range(N), desc="fcls_reference", disable=not progress):
            rhs[:L] = Yf[:, j]
            X[:, j] = nnls(M, rhs)[0]
    return X.reshape((p,) + tail)


# --------------------------------------------------------------------------------------------- matching
def match_endmembers(E_est, E_ref) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian assignment of estimated to reference endmembers on spectral angle.

    Args:
        E_est: ``(bands, p_est)``; E_ref: ``(bands, p_ref)`` with ``p_ref <= p_est``.

    Returns:
        ``(perm, angles)``: ``perm`` int ``(p_ref,)`` with ``E_est[:, perm[j]]`` matched to ``E_ref[:, j]``,
        ``angles`` ``(p_ref,)`` the matched spectral angles (radians, SAD).
    """
    E_est = _as_endmembers(E_est, name="E_est")
    E_ref = _as_endmembers(E_ref, E_est.shape[0], name="E_ref")
    if E_ref.shape[1] > E_est.shape[1]:
        raise ValueError(f"E_ref: {E_ref.shape[1]} reference endmembers but only {E_est.shape[1]} estimated; "
                         "expected p_ref <= p_est")
    cost = spectral_angle(E_ref[:, :, None], E_est[:, None, :])  # (p_ref, p_est)
    if np.isnan(cost).any():
        raise ValueError("E_est, E_ref: an endmember spectrum is all zeros; expected non-zero spectra")
    rows, perm = linear_sum_assignment(cost)
    return perm.astype(np.int64), cost[rows, perm]


def endmember_sad(E_a, E_b) -> np.ndarray:
    """Matched spectral angles (radians) between two endmember sets ``(bands, p_a)`` and ``(bands, p_b)``: each
    endmember of the smaller set is paired with a distinct one of the larger (:func:`match_endmembers`); returns
    ``(min(p_a, p_b),)`` in the smaller set's order."""
    E_a, E_b = np.asarray(E_a), np.asarray(E_b)
    small, large = (E_a, E_b) if E_a.shape[1] <= E_b.shape[1] else (E_b, E_a)
    return match_endmembers(large, small)[1]
