"""The two classifiers of the downstream benchmark, with one interface (scikit-learn estimators on windows).

* :func:`make_svm`: an RBF SVM on the standardised centre spectrum (``Pipeline(centre, StandardScaler, SVC)``), its
  ``C`` and ``gamma`` chosen per run by :func:`tune_svm`: scikit-learn's ``GridSearchCV`` with a ``GroupKFold`` over
  the real labels grouped by the spatial cell they lie in, scored by :func:`~.labels.validation_score`.
* :class:`NetClassifier`: the project's 3 × 3 :class:`hudlib.classifier_nets.PixelNeighbourhoodNet` as a
  scikit-learn estimator. Its training length is counted in epochs over the *real* labels (``fit(...,
  epoch_size=n_real)``): every row of a run trains the same number of steps whatever it adds, and a larger budget
  trains longer. ``sample_weight`` weights each window's cross-entropy; ``warm_start`` continues from the fitted
  weights (pretrain on synthetic pixels, fine-tune on real ones).

Both take windows ``(N, bands, k, k)`` (``k`` ≥ 3; the SVM reads the centre pixel) and labels ``1..n_classes``.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import make_scorer
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import SVC

from ..classifier import _cpu_threads, _fit_pixel_net
from ..classifier_nets import PixelNeighbourhoodNet
from ..errors import DataError
from ..utils import resolve_device
from ._checks import as_labels, as_windows, check_number, check_positive_int, is_int
from .labels import centre_spectra, validation_score

__all__ = ["make_svm", "tune_svm", "NetClassifier", "fit_classifier", "confidence"]


def make_svm(C: float = 100.0, gamma: float | str = "scale", random_state=0) -> Pipeline:
    """RBF SVM on single spectra: ``Pipeline(centre spectrum, StandardScaler, SVC(kernel="rbf"))`` (unfitted).
    After per-band standardisation ``gamma = 1 / bands`` (scikit-learn's ``"scale"``) is the usual kernel width."""
    check_number("C", C, lo_open=True)
    return Pipeline([("centre", FunctionTransformer(centre_spectra)), ("scale", StandardScaler()),
                     ("svc", SVC(kernel="rbf", C=float(C), gamma=gamma, random_state=random_state))])


def tune_svm(X, y, groups, C_grid=(1.0, 10.0, 100.0, 1000.0), gamma_factors=(0.25, 1.0, 4.0), n_splits: int = 3,
             random_state=0) -> dict:
    """``{"C", "gamma", "cv_score", "cv_splits"}``: the grid point of best mean :func:`validation_score` over a
    ``GroupKFold`` of the labelled windows ``X`` ``(N, bands, k, k)``, ``y`` grouped by ``groups`` ``(N,)`` (the
    spatial cell of each pixel: a CV split never scores a pixel whose cell it trained on). ``gamma`` =
    factor / bands. With fewer than 2 groups no CV is possible: ``C`` = 100, ``gamma`` = 1 / bands, ``cv_score``
    None."""
    X = as_windows(X, "X")
    y = as_labels(y, "y", len(X))
    groups = np.asarray(groups)
    if groups.shape != (len(X),):
        raise DataError(f"groups: expected one group per window ({len(X)},), got shape {groups.shape}")
    bands = X.shape[1]
    gammas = [float(f) / bands for f in gamma_factors]
    k = min(int(n_splits), len(np.unique(groups)))
    if k < 2 or len(np.unique(y)) < 2:
        return {"C": 100.0, "gamma": 1.0 / bands, "cv_score": None, "cv_splits": 0}
    search = GridSearchCV(make_svm(random_state=random_state), {"svc__C": list(C_grid), "svc__gamma": gammas},
                          scoring=make_scorer(validation_score), cv=GroupKFold(n_splits=k), error_score=np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a CV training split with one class: that grid point scores NaN
        search.fit(X, y, groups=groups)
    if not np.isfinite(search.best_score_):
        return {"C": 100.0, "gamma": 1.0 / bands, "cv_score": None, "cv_splits": k}
    return {"C": float(search.best_params_["svc__C"]), "gamma": float(search.best_params_["svc__gamma"]),
            "cv_score": float(search.best_score_), "cv_splits": k}


class NetClassifier(ClassifierMixin, BaseEstimator):
    """:class:`~hudlib.classifier_nets.PixelNeighbourhoodNet` as a scikit-learn classifier of windows.

    Parameters: ``n_classes`` (the scene's; outputs ``1..n_classes`` also for classes absent from a training
    set), ``epochs`` (passes over ``epoch_size`` windows, see :meth:`fit`), ``batch_size``, ``lr`` (AdamW,
    one-cycle), ``weight_decay``, ``min_steps``/``max_steps`` (bounds on the step count), the net's ``width``,
    ``feature``, ``n_spatial``, ``dropout``, ``random_state`` (weights, dropout, batches, flips), ``warm_start``
    (a second :meth:`fit` continues from the fitted weights and input standardisation), ``device``.

    Learned attributes: ``net_`` (eval mode), ``classes_`` (``1..n_classes``), ``n_steps_`` (steps of the last fit).
    """

    def __init__(self, n_classes: int = 2, epochs: float = 100.0, batch_size: int = 64, lr: float = 2e-3,
                 weight_decay: float = 0.05, min_steps: int = 50, max_steps: int = 2000, width: int = 64,
                 feature: int = 64, n_spatial: int = 1, dropout: float = 0.2, random_state=0,
                 warm_start: bool = False, device="cpu"):
        self.n_classes = n_classes
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.min_steps = min_steps
        self.max_steps = max_steps
        self.width = width
        self.feature = feature
        self.n_spatial = n_spatial
        self.dropout = dropout
        self.random_state = random_state
        self.warm_start = warm_start
        self.device = device

    def n_steps(self, epoch_size: int) -> int:
        """``ceil(epochs * epoch_size / batch_size)`` bounded to ``[min_steps, max_steps]`` (and at least 3)."""
        n = math.ceil(self.epochs * epoch_size / self.batch_size)
        return int(max(min(max(n, self.min_steps), self.max_steps), 3))

    def fit(self, X, y, sample_weight=None, epoch_size: int | None = None):
        """Train on windows ``X`` ``(N, bands, k, k)`` and labels ``y``; each step draws ``batch_size`` windows
        uniformly with replacement, applies one random flip/rotation to the batch and minimises the
        ``sample_weight``-weighted mean cross-entropy. ``epoch_size`` (default N): the windows one epoch counts
        (the benchmark passes the real labels' count)."""
        if not is_int(self.n_classes) or self.n_classes < 2:
            raise DataError(f"n_classes: expected an int >= 2, got {self.n_classes!r}")
        X = as_windows(X, "X")
        y = as_labels(y, "y", len(X), self.n_classes)
        if len(X) == 0:
            raise DataError("X: expected at least one training window, got 0")
        w = np.ones(len(X), np.float32) if sample_weight is None else np.asarray(sample_weight, np.float32)
        if w.shape != (len(X),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise DataError(f"sample_weight: expected {len(X)} finite weights >= 0 with a positive sum")
        check_number("epochs", self.epochs, lo_open=True)
        check_positive_int("batch_size", self.batch_size)
        steps = self.n_steps(len(X) if epoch_size is None else check_positive_int("epoch_size", epoch_size))
        dev = resolve_device(self.device)
        rng = np.random.default_rng(self.random_state)
        warm = self.warm_start and hasattr(self, "net_")
        with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []), _cpu_threads(dev):
            torch.manual_seed(int(rng.integers(2 ** 31)))
            if warm:
                net = self.net_
            else:
                net = PixelNeighbourhoodNet(X.shape[1], self.n_classes, width=self.width, feature=self.feature,
                                            n_spatial=self.n_spatial, dropout=self.dropout)
                c = centre_spectra(X)
                net.set_normalisation(c.mean(axis=0), c.std(axis=0))
            k = net.window
            if X.shape[2] < k:
                raise DataError(f"X: expected windows of side >= {k} (the net's), got shape {X.shape}")
            o = (X.shape[2] - k) // 2
            strip, rows, cols = _mosaic(X[:, :, o:o + k, o:o + k])
            _fit_pixel_net(net.to(dev), strip, rows, cols, y - 1,
                           dict(steps=steps, batch_size=int(self.batch_size), lr=float(self.lr),
                                weight_decay=float(self.weight_decay)), rng, dev, False, "downstream net",
                           weights=None if sample_weight is None else w)
            net.eval()
        self.net_, self.n_steps_ = net, steps
        self.classes_ = np.arange(1, self.n_classes + 1)
        return self

    def _logits(self, X) -> np.ndarray:
        net = self.net_
        X = as_windows(X, "X", net.config["bands"])
        k = net.window
        if X.shape[2] < k:
            raise DataError(f"X: expected windows of side >= {k} (the net's), got shape {X.shape}")
        o = (X.shape[2] - k) // 2
        X = X[:, :, o:o + k, o:o + k]
        dev = next(net.parameters()).device
        out = []
        with torch.inference_mode(), _cpu_threads(dev):
            for i in range(0, len(X), 4096):
                out.append(net(torch.from_numpy(np.ascontiguousarray(X[i:i + 4096])).to(dev))[:, :, 0, 0].cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, self.n_classes), np.float32)

    def predict_proba(self, X) -> np.ndarray:
        """Softmax class probabilities ``(N, n_classes)`` (columns: ``classes_``)."""
        z = self._logits(X)
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        """Labels ``(N,)`` in ``1..n_classes``."""
        return self._logits(X).argmax(axis=1).astype(np.int64) + 1


def _mosaic(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows ``(N, bands, k, k)`` side by side as one strip ``(bands, k, N * k)`` and their top-left corners
    ``(rows, cols)`` in it: the project's step loop (:func:`hudlib.classifier._fit_pixel_net`, which crops windows
    of a padded scene at given corners) then reads window ``i`` back exactly."""
    n, b, k, _ = X.shape
    strip = np.ascontiguousarray(X.transpose(1, 2, 0, 3).reshape(b, k, n * k))
    return strip, np.zeros(n, dtype=np.int64), np.arange(n, dtype=np.int64) * k


def fit_classifier(kind: str, X, y, *, params: dict, sample_weight=None, epoch_size: int | None = None,
                   random_state=0, n_classes: int = 2, base=None):
    """A fitted classifier of ``kind`` (``"svm"``: :func:`make_svm` with ``params`` ``C``, ``gamma``; ``"net"``:
    :class:`NetClassifier` with ``params`` as its keyword arguments). ``base``: a fitted :class:`NetClassifier` to
    continue from (fine-tuning)."""
    X = np.asarray(X, dtype=np.float32)
    if kind == "svm":
        if len(np.unique(y)) < 2:
            raise DataError(f"y: expected at least 2 classes to fit an SVM, got {np.unique(y).tolist()}")
        model = make_svm(params["C"], params["gamma"], random_state=random_state)
        return model.fit(X, np.asarray(y, np.int64),
                         **({} if sample_weight is None else {"svc__sample_weight": np.asarray(sample_weight)}))
    if kind == "net":
        if base is not None:
            model = base.set_params(warm_start=True, random_state=random_state, **params)
        else:
            model = NetClassifier(n_classes=n_classes, random_state=random_state, **params)
        return model.fit(X, y, sample_weight=sample_weight, epoch_size=epoch_size)
    raise DataError(f"classifier: expected 'svm' or 'net', got {kind!r}")


def confidence(model, X) -> np.ndarray:
    """How sure ``model`` is of its prediction for each window ``(N,)``: the net's top softmax probability, the
    SVM's top one-vs-rest decision value (comparable within one model, which is all self-training needs)."""
    if isinstance(model, NetClassifier):
        return model.predict_proba(X).max(axis=1)
    d = model.decision_function(np.asarray(X, np.float32))
    return d.max(axis=1) if d.ndim == 2 else np.abs(d)
