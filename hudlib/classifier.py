"""Per-scene classifier and the classifier-based scores IS, FID (paper IV-C) and SD (HyperLDM III-E).

The paper replaces the ImageNet InceptionV3 of IS/FID by "a classification network trained on each dataset"
(IV-C); its architecture is not given, so :class:`SpectralSpatialCNN` is our own small spectral-spatial CNN for
``size`` x ``size`` patches. It predicts the class of the patch's centre pixel; its penultimate (global-average
pooled) features play the role of InceptionV3's pool3 features in FID.

Arrays are channel-first: a batch of patches is ``(n, bands, h, w)``; softmax outputs are ``(n, n_classes)``.

Held-out split (:func:`spatial_split`): overlapping crops make a random pixel hold-out leak (a training crop
contains the held-out centre's spectrum), so the held-out pixels are one compact region of whole ``block`` x
``block`` blocks and every training centre lies farther than ``size // 2`` (Chebyshev distance) from every
held-out centre. That distance is exactly what keeps each held-out centre out of every training crop and each
training centre out of every held-out crop, reflected border pixels included (see :func:`spatial_split`).
"""
from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.linalg
import scipy.ndimage
import scipy.special
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from .utils import atomic_torch_save, atomic_write_text, resolve_device

__all__ = [
    "SpectralSpatialCNN", "spatial_split", "crop_centres", "train_classifier", "load_classifier",
    "classifier_outputs", "inception_score", "frechet_distance", "spectral_diversity", "classifier_scores",
]


# --------------------------------------------------------------------------------------------- model
class SpectralSpatialCNN(nn.Module):
    """Small spectral-spatial CNN: patches ``(n, bands, h, w)`` -> logits ``(n, n_classes)``.

    Layout: per-band standardisation (buffers ``band_mean``/``band_std``, set from the training data) ->
    1x1 conv ``bands -> spectral`` (spectral reduction) + BatchNorm + ReLU -> for each width in ``widths`` a
    3x3 conv + BatchNorm + ReLU + 2x2 max-pool -> global average pool = penultimate features ``(n, widths[-1])``
    -> dropout -> linear ``widths[-1] -> n_classes``. ``h`` and ``w`` must be at least ``2 ** len(widths)``
    (32 x 32 patches in the paper's setting).

    ``self.config`` holds the constructor arguments (JSON-able) so ``SpectralSpatialCNN(**config)`` rebuilds it.
    """

    def __init__(self, bands: int, n_classes: int, spectral: int = 64, widths=(32, 64, 128), dropout: float = 0.2):
        super().__init__()
        for name, v in (("bands", bands), ("n_classes", n_classes), ("spectral", spectral)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}: expected a positive int, got {v!r}")
        if n_classes < 2:
            raise ValueError(f"n_classes: expected at least 2 classes, got {n_classes}")
        widths = [int(w) for w in widths]
        if not widths or min(widths) < 1:
            raise ValueError(f"widths: expected a non-empty sequence of positive ints, got {widths!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout!r}")
        self.config = dict(bands=int(bands), n_classes=int(n_classes), spectral=int(spectral), widths=widths,
                           dropout=float(dropout))
        self.register_buffer("band_mean", torch.zeros(bands))
        self.register_buffer("band_std", torch.ones(bands))
        self.spectral = nn.Sequential(nn.Conv2d(bands, spectral, 1, bias=False), nn.BatchNorm2d(spectral),
                                      nn.ReLU(inplace=True))
        blocks, prev = [], spectral
        for w in widths:
            blocks += [nn.Conv2d(prev, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            prev = w
        self.spatial = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(prev, n_classes))

    @property
    def feature_dim(self) -> int:
        """Length of the penultimate feature vector (``widths[-1]``)."""
        return self.config["widths"][-1]

    def set_normalisation(self, mean, std) -> None:
        """Set the per-band input standardisation from ``mean``/``std`` of shape ``(bands,)`` (std floored)."""
        mean = torch.as_tensor(np.asarray(mean), dtype=torch.float32).reshape(-1)
        std = torch.as_tensor(np.asarray(std), dtype=torch.float32).reshape(-1)
        if mean.numel() != self.config["bands"] or std.numel() != self.config["bands"]:
            raise ValueError(f"mean/std: expected {self.config['bands']} values each, got {mean.numel()} and "
                             f"{std.numel()}")
        self.band_mean.copy_(mean.to(self.band_mean.device))
        self.band_std.copy_(std.clamp_min(1e-6).to(self.band_std.device))

    def _check(self, x: torch.Tensor) -> None:
        min_hw = 2 ** len(self.config["widths"])
        if x.ndim != 4 or x.shape[1] != self.config["bands"]:
            raise ValueError(f"x: expected (n, {self.config['bands']}, h, w) patches, got shape {tuple(x.shape)}")
        if x.shape[2] < min_hw or x.shape[3] < min_hw:
            raise ValueError(f"x: expected h, w >= {min_hw}, got {tuple(x.shape[2:])}")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``(n, feature_dim)`` of patches ``x`` ``(n, bands, h, w)``."""
        self._check(x)
        x = (x - self.band_mean[:, None, None]) / self.band_std[:, None, None]
        x = self.spatial(self.spectral(x))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(n, n_classes)`` of patches ``x`` ``(n, bands, h, w)``."""
        return self.head(self.features(x))


# --------------------------------------------------------------------------------------------- split
def _scene_arrays(scene):
    from hudlib.data import DataError, Scene, load_scene

    if isinstance(scene, str):
        scene = load_scene(scene)
    if not isinstance(scene, Scene):
        raise DataError(f"scene: expected a hudlib.data.Scene or a scene name, got {type(scene).__name__}")
    cube = np.asarray(scene.cube, dtype=np.float32)
    gt = np.asarray(scene.gt)
    if cube.ndim != 3 or gt.shape != cube.shape[1:]:
        raise DataError(f"scene: expected cube (bands, rows, cols) and gt (rows, cols), got {cube.shape} and "
                        f"{gt.shape}")
    return scene, cube, gt


def _grow_region(labelled: np.ndarray, block: int, target: int, rng: np.random.Generator) -> np.ndarray:
    """One compact region of whole blocks holding >= ``target`` labelled pixels (bool mask of labelled pixels)."""
    rows, cols = labelled.shape
    nbr, nbc = -(-rows // block), -(-cols // block)
    counts = np.add.reduceat(np.add.reduceat(labelled.astype(np.int64), np.arange(0, rows, block), axis=0),
                             np.arange(0, cols, block), axis=1)
    start = (int(rng.integers(nbr)), int(rng.integers(nbc)))
    chosen, total = {start}, int(counts[start])
    while total < target and len(chosen) < nbr * nbc:
        frontier = sorted({(i + di, j + dj) for i, j in chosen for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1))
                           if 0 <= i + di < nbr and 0 <= j + dj < nbc} - chosen)
        # most compact first: the frontier block with most chosen blocks among its 8 neighbours; ties at random
        score = [sum((i + di, j + dj) in chosen for di in (-1, 0, 1) for dj in (-1, 0, 1)) for i, j in frontier]
        best = [q for q, s in zip(frontier, score) if s == max(score)]
        q = best[int(rng.integers(len(best)))]
        chosen.add(q)
        total += int(counts[q])
    mask = np.zeros_like(labelled)
    for i, j in chosen:
        mask[i * block:(i + 1) * block, j * block:(j + 1) * block] = True
    return mask & labelled


def spatial_split(gt: np.ndarray, size: int = 32, holdout: float = 0.2, block: int = 8, random_state=0,
                  n_candidates: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Spatially disjoint train / held-out centres for ``size`` x ``size`` crops.

    Args:
        gt: ``(rows, cols)`` label map, 0 = unlabelled.
        size: crop size; crops around centre ``(r, c)`` cover rows ``r - size//2 .. r - size//2 + size - 1``
            of the reflection-padded scene (same for columns).
        holdout: target share of labelled pixels held out (0 = none); the region overshoots by < one block.
        block: side of the square blocks the held-out region is made of.
        random_state: seed of the candidate regions.
        n_candidates: number of candidate regions tried.

    Returns:
        ``(train, held)``: bool masks ``(rows, cols)`` of training and held-out centres (both labelled).

    Method: each candidate is one compact region grown from a random seed block by adding the 4-connected
    neighbour block with most already chosen 8-neighbours, until it holds ``holdout`` of the labelled pixels.
    Training centres are the labelled pixels at Chebyshev distance > ``size // 2`` from every held-out centre.
    A crop only holds scene pixels within Chebyshev distance ``size // 2`` of its centre (numpy ``reflect``
    padding maps padded row ``-k`` to row ``k`` and ``r - size//2 >= -k`` gives ``k - r <= size//2``; same at
    the far border), so no training crop contains a held-out centre and vice versa. Compact regions lose the
    fewest training pixels to this margin (scattered blocks lose most of the scene: at 32 x 32 crops on
    145 x 145 Indian Pines, 20 % scattered 16-px blocks leave < 20 % for training, one compact region ~60 %).
    Among the candidates the chosen one maximises, in this order: the number of classes left for training, the
    share of held-out pixels whose class occurs in training, the number of training pixels.
    """
    from hudlib.data import DataError

    gt = np.asarray(gt)
    if gt.ndim != 2:
        raise DataError(f"gt: expected a (rows, cols) label map, got shape {gt.shape}")
    if not 0.0 <= float(holdout) <= 0.5:
        raise DataError(f"holdout: expected a share in [0, 0.5], got {holdout!r}")
    if int(block) < 1:
        raise DataError(f"block: expected a positive int, got {block!r}")
    if int(n_candidates) < 1:
        raise DataError(f"n_candidates: expected a positive int, got {n_candidates!r}")
    labelled = gt > 0
    n_lab = int(labelled.sum())
    if n_lab == 0:
        raise DataError("gt: no labelled pixel (all labels are 0)")
    if holdout == 0:
        return labelled.copy(), np.zeros_like(labelled)
    rng = np.random.default_rng(random_state)
    target = max(1, int(math.ceil(holdout * n_lab)))
    radius = int(size) // 2
    best, best_key = None, None
    for _ in range(int(n_candidates)):
        held = _grow_region(labelled, int(block), target, rng)
        near = scipy.ndimage.maximum_filter(held.astype(np.uint8), size=2 * radius + 1, mode="constant") > 0
        train = labelled & ~near
        train_classes = np.unique(gt[train])
        seen = float(np.isin(gt[held], train_classes).mean()) if held.any() else 0.0
        key = (len(train_classes), seen, int(train.sum()))
        if best_key is None or key > best_key:
            best, best_key = (train, held), key
    return best


def crop_centres(padded: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: int) -> np.ndarray:
    """Crops ``(n, bands, size, size)`` centred on scene pixels ``(rows[i], cols[i])``.

    ``padded`` is the scene cube ``(bands, rows + size, cols + size)`` padded with ``size // 2`` before and
    ``size - size // 2`` after (numpy ``reflect``); the centre sits at crop index ``(size // 2, size // 2)``.
    """
    rows, cols = np.asarray(rows), np.asarray(cols)
    out = np.empty((len(rows), padded.shape[0], size, size), dtype=padded.dtype)
    for i, (r, c) in enumerate(zip(rows, cols)):
        out[i] = padded[:, r:r + size, c:c + size]
    return out


def _pad(cube: np.ndarray, size: int) -> np.ndarray:
    h = size // 2
    return np.pad(cube, ((0, 0), (h, size - h), (h, size - h)), mode="reflect")


# --------------------------------------------------------------------------------------------- training
def _fingerprint(cube: np.ndarray, gt: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(str(cube.shape).encode())
    h.update(np.ascontiguousarray(cube[:, ::5, ::5]).tobytes())
    h.update(np.ascontiguousarray(gt.astype(np.int64)).tobytes())
    return h.hexdigest()[:16]


def _dihedral(x: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 flips/rotations of a crop ``(bands, s, s)`` (k in 0..7)."""
    if k & 4:
        x = x.transpose(0, 2, 1)
    if k & 2:
        x = x[:, ::-1]
    if k & 1:
        x = x[:, :, ::-1]
    return x


def _accuracy(model, padded, rows, cols, labels, size, device, batch_size=256):
    if len(rows) == 0:
        return None, None
    preds = []
    model.eval()
    with torch.inference_mode():
        for i in range(0, len(rows), batch_size):
            x = torch.from_numpy(crop_centres(padded, rows[i:i + batch_size], cols[i:i + batch_size], size))
            preds.append(model(x.to(device)).argmax(1).cpu().numpy())
    pred = np.concatenate(preds)
    acc = float((pred == labels).mean())
    per_class = [float((pred[labels == k] == k).mean()) for k in np.unique(labels)]
    return acc, float(np.mean(per_class))


def load_classifier(weights_path, info_path=None, device=None) -> tuple[SpectralSpatialCNN, dict]:
    """Load a classifier written by :func:`train_classifier`'s cache: ``(model in eval mode, info dict)``.

    ``info_path`` defaults to ``weights_path`` with suffix ``.json``.
    """
    weights_path = Path(weights_path)
    info_path = Path(info_path) if info_path is not None else weights_path.with_suffix(".json")
    for p in (weights_path, info_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: classifier file not found")
    info = json.loads(info_path.read_text())
    dev = resolve_device(device)
    model = SpectralSpatialCNN(**info["config"])
    model.load_state_dict(torch.load(weights_path, map_location=dev, weights_only=True))
    return model.to(dev).eval(), info


def train_classifier(scene, size: int = 32, steps: int = 600, batch_size: int = 32, lr: float = 2e-3,
                     holdout: float = 0.2, random_state=0, device=None, cache_dir=None, progress: bool = True,
                     block: int = 8, weight_decay: float = 1e-4, model_kwargs: dict | None = None,
                     ) -> tuple[SpectralSpatialCNN, dict]:
    """Train the per-scene classifier of IV-C on ``size`` x ``size`` crops centred on labelled pixels.

    Args:
        scene: :class:`hudlib.data.Scene` (cube ``(bands, rows, cols)``, gt ``(rows, cols)``) or a scene name.
        size: crop size (the generated patch size, 32 in the paper); the scene is reflection-padded so border
            pixels can be centres. The label of a crop is ``gt - 1`` at its centre ``(size//2, size//2)``.
        steps, batch_size, lr, weight_decay: AdamW steps with a cosine learning-rate decay to 0; batches are
            drawn uniformly from the training centres with a random flip/rotation (8 dihedral transforms; for
            even ``size`` this moves the labelled centre by at most one pixel).
        holdout: share of labelled pixels held out for accuracy, split by :func:`spatial_split` (0 = none).
        random_state: seeds the split, the batches, the augmentation, the weights and dropout.
        device: torch device (default: CUDA if available, else CPU). Deterministic on CPU.
        cache_dir: if given, weights ``classifier_<scene>_<hash>.pt`` and info ``.json`` are saved there
            (atomically) and reused when present; the hash covers the scene name, a data fingerprint, the model
            config and every training argument except ``device``/``progress``/``cache_dir``.
        progress: tqdm bar showing the running loss.
        block: block side of :func:`spatial_split`.
        model_kwargs: extra :class:`SpectralSpatialCNN` arguments (``spectral``, ``widths``, ``dropout``).

    Returns:
        ``(model, info)``: the model in eval mode on ``device``; ``info`` (JSON-able) with ``holdout_accuracy``
        (overall accuracy on the held-out centres, None if ``holdout == 0``), ``holdout_balanced_accuracy``
        (mean per-class recall over the held-out classes), ``holdout_majority_share`` (accuracy of always
        predicting the held-out set's most frequent class, a reference), ``train_accuracy`` (on <= 1024 random
        training centres, no augmentation), ``n_train``, ``n_holdout``, ``n_dropped`` (labelled pixels dropped by the
        margin), ``train_classes``/``holdout_classes`` (0-based), ``steps``, ``wall_time_s`` (training and
        evaluation; for a cache hit, the original run's), ``final_loss``, ``config`` (model constructor
        arguments), ``train_config``, ``cache_key``, ``cached``.
    """
    from hudlib.data import DataError

    scene, cube, gt = _scene_arrays(scene)
    bands, rows_n, cols_n = cube.shape
    n_classes = int(getattr(scene, "n_classes", int(gt.max())))
    if not isinstance(size, (int, np.integer)) or size < 2 ** 3 or size >= min(rows_n, cols_n):
        raise DataError(f"size: expected an int in [8, {min(rows_n, cols_n) - 1}], got {size!r}")
    for name, v in (("steps", steps), ("batch_size", batch_size)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise DataError(f"{name}: expected a positive int, got {v!r}")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise DataError(f"lr: expected a positive float, got {lr!r}")
    if gt.min() < 0 or gt.max() > n_classes:
        raise DataError(f"scene.gt: labels span {gt.min()}..{gt.max()}; expected 0..{n_classes}")
    model_kwargs = dict(model_kwargs or {})
    model_config = SpectralSpatialCNN(bands, n_classes, **model_kwargs).config
    train_config = dict(size=int(size), steps=int(steps), batch_size=int(batch_size), lr=float(lr),
                        weight_decay=float(weight_decay), holdout=float(holdout), block=int(block),
                        random_state=None if random_state is None else int(random_state))
    name = str(getattr(scene, "name", "scene"))
    key_src = dict(scene=name, data=_fingerprint(cube, gt), model=model_config, train=train_config)
    cache_key = hashlib.sha256(json.dumps(key_src, sort_keys=True).encode()).hexdigest()[:12]
    dev = resolve_device(device)

    if cache_dir is not None:
        wpath = Path(cache_dir) / f"classifier_{name}_{cache_key}.pt"
        ipath = wpath.with_suffix(".json")
        if wpath.is_file() and ipath.is_file():
            try:
                model, info = load_classifier(wpath, ipath, device=dev)
                info["cached"] = True
                return model, info
            except Exception as e:  # corrupt or incompatible cache entry: retrain and overwrite
                warnings.warn(f"{wpath}: unreadable cached classifier ({type(e).__name__}: {e}); retraining")

    t0 = time.perf_counter()
    train_mask, held_mask = spatial_split(gt, size=size, holdout=holdout, block=block, random_state=random_state)
    tr_r, tr_c = np.nonzero(train_mask)
    ho_r, ho_c = np.nonzero(held_mask)
    if len(tr_r) == 0:
        raise DataError("holdout: no training centre left after the spatial hold-out; lower holdout or size")
    tr_y, ho_y = gt[tr_r, tr_c] - 1, gt[ho_r, ho_c] - 1
    padded = _pad(cube, size)
    rng = np.random.default_rng(random_state)

    fork_devices = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(int(rng.integers(2 ** 31)))
        model = SpectralSpatialCNN(bands, n_classes, **model_kwargs)
        pix = cube[:, train_mask]  # (bands, n_train): standardise with the training centres' spectra
        model.set_normalisation(pix.mean(axis=1), pix.std(axis=1))
        model.to(dev).train()
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
        ema = None
        bar = tqdm(range(steps), desc=f"classifier {name}", disable=not progress, leave=False)
        for _ in bar:
            idx = rng.integers(len(tr_r), size=batch_size)
            ks = rng.integers(8, size=batch_size)
            x = crop_centres(padded, tr_r[idx], tr_c[idx], size)
            x = np.stack([_dihedral(xi, k) for xi, k in zip(x, ks)])
            xb = torch.from_numpy(np.ascontiguousarray(x)).to(dev)
            yb = torch.from_numpy(tr_y[idx]).to(dev)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
            bar.set_postfix(loss=f"{ema:.3f}")
        bar.close()
    model.eval()
    sub = rng.permutation(len(tr_r))[:1024]
    train_acc, _ = _accuracy(model, padded, tr_r[sub], tr_c[sub], tr_y[sub], size, dev)
    ho_acc, ho_bal = _accuracy(model, padded, ho_r, ho_c, ho_y, size, dev)
    labelled = int((gt > 0).sum())
    majority = float(np.bincount(ho_y).max() / len(ho_y)) if len(ho_y) else None
    info = dict(
        scene=name, holdout_accuracy=ho_acc, holdout_balanced_accuracy=ho_bal, holdout_majority_share=majority,
        train_accuracy=train_acc,
        n_train=int(len(tr_r)), n_holdout=int(len(ho_r)), n_dropped=labelled - int(len(tr_r)) - int(len(ho_r)),
        train_classes=sorted(int(k) for k in np.unique(tr_y)), holdout_classes=sorted(int(k) for k in np.unique(ho_y)),
        steps=int(steps), wall_time_s=round(time.perf_counter() - t0, 3), final_loss=ema,
        config=model.config, train_config=train_config, cache_key=cache_key, device=str(dev),
        torch_version=torch.__version__, cached=False,
    )
    if cache_dir is not None:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        wpath.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save(state, wpath)
        atomic_write_text(ipath, json.dumps(info, indent=1))
    return model, info


# --------------------------------------------------------------------------------------------- scores
def _as_batch(x, name: str, bands: int | None = None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach().to(torch.float32)
    else:
        try:
            t = torch.from_numpy(np.ascontiguousarray(np.asarray(x, dtype=np.float32)))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{name}: expected a numeric array (n, bands, h, w), got {type(x).__name__}") from e
    if t.ndim != 4:
        raise ValueError(f"{name}: expected a batch of patches (n, bands, h, w), got shape {tuple(t.shape)}")
    if bands is not None and t.shape[1] != bands:
        raise ValueError(f"{name}: expected {bands} bands (the classifier's), got {t.shape[1]} in shape "
                         f"{tuple(t.shape)}")
    if t.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one patch, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name}: expected finite values, got NaN/Inf")
    return t


def classifier_outputs(model: SpectralSpatialCNN, x, batch_size: int = 256, device=None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities ``(n, n_classes)`` and penultimate features ``(n, feature_dim)`` (float64) of
    patches ``x`` ``(n, bands, h, w)`` (numpy or torch); eval mode, no gradients; the model's mode is restored."""
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    bands = model.config["bands"] if hasattr(model, "config") else None
    x = _as_batch(x, "x", bands)
    dev = resolve_device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.to(dev).eval()
    probs, feats = [], []
    try:
        with torch.inference_mode():
            for i in range(0, len(x), batch_size):
                f = model.features(x[i:i + batch_size].to(dev))
                probs.append(torch.softmax(model.head(f).double(), dim=1).cpu().numpy())
                feats.append(f.double().cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(probs), np.concatenate(feats)


def _check_probs(probs, name: str = "probs") -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] < 1:
        raise ValueError(f"{name}: expected softmax probabilities (n, n_classes), got shape {p.shape}")
    if not np.isfinite(p).all() or p.min() < 0:
        raise ValueError(f"{name}: expected finite non-negative probabilities")
    s = p.sum(axis=1)
    if np.abs(s - 1).max() > 1e-3:
        raise ValueError(f"{name}: expected rows summing to 1 (softmax outputs), got sums in "
                         f"[{s.min():.4g}, {s.max():.4g}]")
    return p / s[:, None]


def inception_score(probs) -> float:
    """Inception Score ``exp(E_x KL(p(y|x) || p(y)))`` of softmax outputs ``probs`` ``(n, C)``.

    ``p(y)`` is the mean of the rows. One split over all samples (Salimans et al. average 10 splits; with the
    few hundred patches used here one split is less noisy). Range ``[1, C]``; ``0 log 0 = 0``.
    """
    p = _check_probs(probs)
    marginal = p.mean(axis=0, keepdims=True)
    kl = scipy.special.rel_entr(p, marginal).sum(axis=1)
    return float(np.exp(kl.mean()))


def _trace_sqrt_product_psd(ca: np.ndarray, cb: np.ndarray) -> float:
    """``tr sqrt(ca cb) = tr sqrt(ca^1/2 cb ca^1/2)`` via symmetric eigendecompositions (eigenvalues < 0 -> 0)."""
    w, v = np.linalg.eigh(ca)
    sa = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = sa @ cb @ sa
    return float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum())


def frechet_distance(feat_a, feat_b) -> float:
    """Fréchet distance between Gaussian fits of features ``feat_a`` ``(n, d)`` and ``feat_b`` ``(m, d)``:
    ``||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^{1/2})`` (FID with unbiased covariances, n, m >= 2).

    ``(S_a S_b)^{1/2}`` comes from ``scipy.linalg.sqrtm``; a negligible imaginary part (from tiny negative
    eigenvalues) is dropped. When a covariance is rank-deficient (``n <= d`` or ``m <= d``), or sqrtm returns
    non-finite values, warns, or has a non-negligible imaginary part, the trace is computed instead as
    ``tr (S_a^{1/2} S_b S_a^{1/2})^{1/2}`` from symmetric eigendecompositions with negative eigenvalues set to 0
    (the same quantity, well defined for any positive semi-definite pair). Rounding-level negatives are clipped
    to 0.
    """
    a = np.asarray(feat_a, dtype=np.float64)
    b = np.asarray(feat_b, dtype=np.float64)
    for name, f in (("feat_a", a), ("feat_b", b)):
        if f.ndim != 2 or f.shape[0] < 2:
            raise ValueError(f"{name}: expected features (n >= 2, d), got shape {f.shape}")
        if not np.isfinite(f).all():
            raise ValueError(f"{name}: expected finite values, got NaN/Inf")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feat_b: expected feature dimension {a.shape[1]} (as feat_a), got {b.shape[1]}")
    d = a.shape[1]
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    ca = np.atleast_2d(np.cov(a, rowvar=False))
    cb = np.atleast_2d(np.cov(b, rowvar=False))
    tr_sqrt = None
    if a.shape[0] > d and b.shape[0] > d:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                covmean = scipy.linalg.sqrtm(ca @ cb)
            except (Warning, np.linalg.LinAlgError, ValueError):
                covmean = None
        if covmean is not None and np.isfinite(covmean).all():
            scale = max(1.0, float(np.abs(covmean).max()))
            if not np.iscomplexobj(covmean) or np.abs(covmean.imag).max() <= 1e-6 * scale:
                tr_sqrt = float(np.trace(covmean.real))
    if tr_sqrt is None:
        tr_sqrt = _trace_sqrt_product_psd(ca, cb)
    fid = float(((mu_a - mu_b) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * tr_sqrt)
    return max(fid, 0.0)


def spectral_diversity(probs) -> float:
    """Spectral diversity SD of HyperLDM (III-E, eqs. 26-28) from softmax outputs ``probs`` ``(n, C)``.

    Samples are grouped by predicted class ``i = argmax``; per group ``V_i`` the marginal ``p(y_i)`` is the
    mean softmax vector of the group (eq. 26); ``E KL`` is the mean over the group of ``KL(v || p(y_i))``
    (eq. 27); ``SD = (1 / n_s) sum_i exp(E KL)`` (eq. 28) where the sum and ``n_s`` run over the classes that
    occur as predictions (an empty group has no marginal; counting it as ``exp(0) = 1`` or 0 would make SD
    depend on classes nobody predicts). Range ``[1, C]``; 1 when every group is constant. ``0 log 0 = 0``.
    """
    p = _check_probs(probs)
    pred = p.argmax(axis=1)
    terms = []
    for i in np.unique(pred):
        group = p[pred == i]
        marginal = group.mean(axis=0, keepdims=True)  # eq. 26
        kl = scipy.special.rel_entr(group, marginal).sum(axis=1)  # eq. 27
        terms.append(np.exp(kl.mean()))
    return float(np.mean(terms))  # eq. 28


def classifier_scores(model: SpectralSpatialCNN, generated, real_patches, batch_size: int = 256, device=None
                      ) -> dict:
    """IS, FID and SD of ``generated`` ``(n, bands, h, w)`` against ``real_patches`` ``(m, bands, h, w)``.

    Returns ``{"IS", "FID", "SD", "IS_real", "SD_real", "n_generated", "n_real"}``: IS and SD of the generated
    patches' softmax outputs, FID between the penultimate features of real and generated patches (n, m >= 2),
    and IS/SD of the real patches for reference. The model runs in eval mode without gradients.
    """
    bands = model.config["bands"]
    gen = _as_batch(generated, "generated", bands)
    real = _as_batch(real_patches, "real_patches", bands)
    for name, t in (("generated", gen), ("real_patches", real)):
        if t.shape[0] < 2:
            raise ValueError(f"{name}: expected at least 2 patches for FID, got {t.shape[0]}")
    pg, fg = classifier_outputs(model, gen, batch_size=batch_size, device=device)
    pr, fr = classifier_outputs(model, real, batch_size=batch_size, device=device)
    return {
        "IS": inception_score(pg), "FID": frechet_distance(fr, fg), "SD": spectral_diversity(pg),
        "IS_real": inception_score(pr), "SD_real": spectral_diversity(pr),
        "n_generated": int(gen.shape[0]), "n_real": int(real.shape[0]),
    }
