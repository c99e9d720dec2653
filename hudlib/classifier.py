"""Per-scene classifiers behind IS, FID (paper IV-C) and SD (HyperLDM III-E): the spatially disjoint split, training
and caching. The scores themselves are in :mod:`hudlib.metrics.classifier_scores`.

The paper replaces the ImageNet InceptionV3 of IS/FID by "a classification network trained on each dataset"
(IV-C). Two such networks live in :mod:`hudlib.classifier_nets`; this module trains and caches them.

* Sound scores (:func:`train_classifier`): :class:`PixelNeighbourhoodNet` classifies
  every pixel from its 3 x 3 neighbourhood of standardised spectra. Every pixel of a patch is one sample: IS and SD
  use the per-pixel softmax over the scene's classes, FID the per-pixel features. Accuracy is measured on a
  spatially disjoint held-out region (:func:`spatial_split`), the same region for every architecture.
* The authors' classifier (:func:`train_authors_classifier`): their 1x1-conv per-pixel network and recipe, in their
  data space (:meth:`hudlib.data.Scene.to_authors_space`), for the paper-exact IS/FID.

Arrays are channel-first: a batch of patches is ``(n, bands, h, w)``.

Held-out split (:func:`spatial_split`): overlapping crops make a random pixel hold-out leak (a training crop
contains the held-out centre's spectrum), so the held-out pixels are one compact region of whole ``block`` x
``block`` blocks and every training centre lies farther than ``size // 2`` (Chebyshev distance) from every
held-out centre. That distance is exactly what keeps each held-out centre out of every training crop and each
training centre out of every held-out crop, reflected border pixels included (see :func:`spatial_split`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.ndimage
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .classifier_nets import AuthorsPixelClassifier, PixelNeighbourhoodNet
from .data import Scene, load_scene
from .errors import DataError
from .metrics.classifier_scores import authors_pixel_outputs
from .utils import atomic_write_text, resolve_device, state_hash
from .weights import SUFFIX, load_weights, save_weights, weights_file

__all__ = ["CLASSIFIER_VERSION", "AUTHORS_CLASSIFIER_VERSION", "spatial_split", "crop_centres", "train_classifier",
           "load_classifier", "train_authors_classifier", "authors_pixel_accuracy"]

# Bump when the training code or the network changes what a cached classifier would be: it is part of the cache key.
CLASSIFIER_VERSION = "pixel3x3-v1"
AUTHORS_CLASSIFIER_VERSION = "authors-1x1-v2"  # v2: steps run on the pixels (a subset when pixels_per_step)

# --------------------------------------------------------------------------------------------- helpers
def _scene_arrays(scene):

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


@contextlib.contextmanager
def _cpu_threads(device: torch.device, n: int = 1):
    """Run small-batch CPU training on ``n`` intra-op threads (more threads only add synchronisation for these
    tiny per-step workloads, and oversubscribed cores make it far worse); restores the setting afterwards."""
    if device.type != "cpu":
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(min(n, old))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _positive(name: str, v, kind=int) -> None:

    ok = (isinstance(v, (int, np.integer)) and not isinstance(v, bool)) if kind is int else \
        (isinstance(v, (int, float)) and not isinstance(v, bool))
    if not ok or v <= 0:
        raise DataError(f"{name}: expected a positive {kind.__name__}, got {v!r}")


# --------------------------------------------------------------------------------------------- split
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
    return mask


def spatial_split(gt: np.ndarray, size: int = 32, holdout: float = 0.2, block: int = 8, random_state=0,
                  n_candidates: int = 64, return_region: bool = False) -> tuple[np.ndarray, ...]:
    """Spatially disjoint train / held-out centres for ``size`` x ``size`` crops.

    Args:
        gt: ``(rows, cols)`` label map, 0 = unlabelled.
        size: crop size; crops around centre ``(r, c)`` cover rows ``r - size//2 .. r - size//2 + size - 1``
            of the reflection-padded scene (same for columns).
        holdout: target share of labelled pixels held out (0 = none); the region overshoots by < one block.
        block: side of the square blocks the held-out region is made of.
        random_state: seed of the candidate regions.
        n_candidates: number of candidate regions tried.

        return_region: also return the held-out region itself (every pixel of its blocks, unlabelled ones
            included: the ground a generator must not see).

    Returns:
        ``(train, held)``: bool masks ``(rows, cols)`` of training and held-out centres (both labelled); with
        ``return_region`` ``(train, held, region)``.

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
        none = np.zeros_like(labelled)
        return (labelled.copy(), none, none.copy()) if return_region else (labelled.copy(), none)
    rng = np.random.default_rng(random_state)
    target = max(1, int(math.ceil(holdout * n_lab)))
    radius = int(size) // 2
    best, best_key = None, None
    for _ in range(int(n_candidates)):
        region = _grow_region(labelled, int(block), target, rng)
        held = region & labelled
        near = scipy.ndimage.maximum_filter(held.astype(np.uint8), size=2 * radius + 1, mode="constant") > 0
        train = labelled & ~near
        train_classes = np.unique(gt[train])
        seen = float(np.isin(gt[held], train_classes).mean()) if held.any() else 0.0
        key = (len(train_classes), seen, int(train.sum()))
        if best_key is None or key > best_key:
            best, best_key = (train, held, region), key
    return best if return_region else best[:2]


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


# --------------------------------------------------------------------------------------------- sound classifier
def _fingerprint(cube: np.ndarray, gt: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(str(cube.shape).encode())
    h.update(np.ascontiguousarray(cube[:, ::5, ::5]).tobytes())
    h.update(np.ascontiguousarray(gt.astype(np.int64)).tobytes())
    return h.hexdigest()[:16]


def _dihedral(x: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 flips/rotations (k in 0..7) of crops ``(..., s, s)``, applied to the last two axes."""
    if k & 4:
        x = np.swapaxes(x, -1, -2)
    if k & 2:
        x = x[..., ::-1, :]
    if k & 1:
        x = x[..., ::-1]
    return x


def _windows(padded: np.ndarray, rows: np.ndarray, cols: np.ndarray, k: int) -> np.ndarray:
    """``k`` x ``k`` crops ``(n, bands, k, k)`` whose top-left corners are ``(rows[i], cols[i])`` of ``padded``."""
    d = np.arange(k)
    out = padded[:, rows[:, None, None] + d[None, :, None], cols[:, None, None] + d[None, None, :]]
    return np.ascontiguousarray(out.transpose(1, 0, 2, 3))


def _pixel_accuracy(net, padded, rows, cols, labels, device, batch_size: int = 4096):
    """Overall and balanced (mean per-class recall) accuracy of ``net`` on the centre pixels ``(rows, cols)``."""
    if len(rows) == 0:
        return None, None
    preds = []
    with torch.inference_mode():
        for i in range(0, len(rows), batch_size):
            x = torch.from_numpy(_windows(padded, rows[i:i + batch_size], cols[i:i + batch_size], net.window))
            preds.append(net(x.to(device))[:, :, 0, 0].argmax(1).cpu().numpy())
    pred = np.concatenate(preds)
    per_class = [float((pred[labels == k] == k).mean()) for k in np.unique(labels)]
    return float((pred == labels).mean()), float(np.mean(per_class))


def _fit_pixel_net(net, padded, rows, cols, labels, cfg: dict, rng, device, progress: bool, desc: str,
                   weights: np.ndarray | None = None) -> float:
    """AdamW with a one-cycle learning rate (warm-up 10 % of the steps, at least 2) on random ``k`` x ``k``
    training crops with random flips/rotations; ``weights`` ``(len(rows),)``: each crop's weight in the batch's
    cross-entropy (None: the plain mean). Returns the smoothed final loss."""
    opt = torch.optim.AdamW(net.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=cfg["steps"],
                                                pct_start=max(0.1, 2.0 / cfg["steps"]))
    w = None if weights is None else torch.as_tensor(np.asarray(weights, np.float32))
    ema = None
    net.train()
    bar = tqdm(range(cfg["steps"]), desc=desc, disable=not progress, leave=False)
    for _ in bar:
        idx = rng.integers(len(rows), size=cfg["batch_size"])
        x = _dihedral(_windows(padded, rows[idx], cols[idx], net.window), int(rng.integers(8)))
        xb = torch.from_numpy(x.copy()).to(device)  # a copy: dihedral views of 1 x 1 windows keep negative strides
        target = torch.from_numpy(labels[idx]).to(device)
        if w is None:
            loss = F.cross_entropy(net(xb)[:, :, 0, 0], target)
        else:
            wb = w[idx].to(device)
            loss = F.cross_entropy(net(xb)[:, :, 0, 0], target, reduction="none")
            loss = (loss * wb).sum() / wb.sum().clamp_min(1e-12)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        bar.set_postfix(loss=f"{ema:.3f}")
    bar.close()
    return float(ema)


def load_classifier(weights_path, info_path=None, device=None) -> tuple[PixelNeighbourhoodNet, dict]:
    """Load a classifier written by :func:`train_classifier`'s cache: ``(net in eval mode, info dict)``.

    ``info_path`` defaults to ``weights_path`` with suffix ``.json``.
    """
    weights_path = Path(weights_path)
    info_path = Path(info_path) if info_path is not None else weights_path.with_suffix(".json")
    for p in (weights_path, info_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: classifier file not found")
    info = json.loads(info_path.read_text())
    if info.get("classifier_version") != CLASSIFIER_VERSION:
        raise ValueError(f"{info_path}: classifier version {info.get('classifier_version')!r}, expected "
                         f"{CLASSIFIER_VERSION!r}")
    dev = resolve_device(device)
    net = PixelNeighbourhoodNet(**info["config"])
    net.load_state_dict(load_weights(weights_path, map_location=str(dev)))
    return net.to(dev).eval(), info


def _check_train_args(cube, gt, n_classes, size, steps, batch_size, lr) -> None:

    rows_n, cols_n = cube.shape[1:]
    if not isinstance(size, (int, np.integer)) or size < 2 or size >= min(rows_n, cols_n):
        raise DataError(f"size: expected an int in [2, {min(rows_n, cols_n) - 1}], got {size!r}")
    _positive("steps", steps)
    _positive("batch_size", batch_size)
    _positive("lr", lr, float)
    if gt.min() < 0 or gt.max() > n_classes:
        raise DataError(f"scene.gt: labels span {gt.min()}..{gt.max()}; expected 0..{n_classes}")


def train_classifier(scene, size: int = 32, steps: int = 600, batch_size: int = 128, lr: float = 2e-3,
                     holdout: float = 0.2, random_state=0, device=None, cache_dir=None, progress: bool = True,
                     block: int = 8, weight_decay: float = 0.05, model_kwargs: dict | None = None,
                     ) -> tuple[PixelNeighbourhoodNet, dict]:
    """Train the per-scene classifier behind the sound IS/FID/SD: a :class:`PixelNeighbourhoodNet` (3 x 3
    neighbourhoods unless ``model_kwargs`` says otherwise) on labelled pixels outside a spatial hold-out.

    Args:
        scene: :class:`hudlib.data.Scene` (cube ``(bands, rows, cols)``, gt ``(rows, cols)``) or a scene name.
        size: the generated patch size (32 in the paper); it sets the hold-out margin of :func:`spatial_split`
            (training pixels lie farther than ``size // 2`` from every held-out pixel), so the held-out region is
            the one a ``size`` x ``size`` patch classifier is measured on too.
        steps, batch_size, lr, weight_decay: AdamW steps with a one-cycle learning rate; batches of training
            pixels drawn uniformly, each batch flipped/rotated by one of the 8 dihedral transforms.
        holdout, block: share of labelled pixels held out and block side of :func:`spatial_split` (0 = none).
        random_state: seeds the split, the batches, the augmentation, the weights and dropout.
        device: torch device (default: CUDA if available, else CPU; CPU training runs on one thread).
        cache_dir: if given, weights ``classifier_<scene>_<key>.pt`` and info ``.json`` are saved there
            (atomically) and reused when present; the key covers :data:`CLASSIFIER_VERSION`, the scene name, a
            data fingerprint, the network config and every training argument except device/progress/cache_dir.
        progress: tqdm bar showing the running loss.
        model_kwargs: extra :class:`PixelNeighbourhoodNet` arguments (``width``, ``feature``, ``n_spatial``,
            ``dropout``).

    Returns:
        ``(net, info)``: the net in eval mode on ``device``; ``info`` (JSON-able) with ``holdout_accuracy`` and
        ``holdout_balanced_accuracy`` (overall accuracy and mean per-class recall on the held-out pixels, None if
        ``holdout == 0``), ``holdout_majority_share`` (always predicting the held-out set's most frequent class),
        ``train_accuracy`` (<= 2048 random training pixels), ``n_train``, ``n_holdout``, ``n_dropped``,
        ``train_classes``/``holdout_classes`` (0-based), ``steps``, ``wall_time_s`` (the original run's on a cache
        hit), ``final_loss``, ``config``, ``train_config``, ``classifier_version``, ``cache_key``,
        ``weights_sha256`` (:func:`hudlib.utils.state_hash`), ``cached``.
    """
    scene, cube, gt = _scene_arrays(scene)
    n_classes = int(getattr(scene, "n_classes", int(gt.max())))
    _check_train_args(cube, gt, n_classes, size, steps, batch_size, lr)
    model_config = PixelNeighbourhoodNet(cube.shape[0], n_classes, **dict(model_kwargs or {})).config
    train_config = dict(size=int(size), steps=int(steps), batch_size=int(batch_size), lr=float(lr),
                        weight_decay=float(weight_decay), holdout=float(holdout), block=int(block),
                        random_state=None if random_state is None else int(random_state))
    name = str(getattr(scene, "name", "scene"))
    key_src = dict(version=CLASSIFIER_VERSION, scene=name, data=_fingerprint(cube, gt), model=model_config,
                   train=train_config)
    cache_key = hashlib.sha256(json.dumps(key_src, sort_keys=True).encode()).hexdigest()[:12]
    dev = resolve_device(device)
    wpath = weights_file(cache_dir, f"classifier_{name}_{cache_key}") if cache_dir is not None else None
    if wpath is not None and wpath.is_file() and wpath.with_suffix(".json").is_file():
        try:
            net, info = load_classifier(wpath, device=dev)
            return net, {**info, "cached": True}
        except Exception as e:  # corrupt or incompatible cache entry: retrain and overwrite
            warnings.warn(f"{wpath}: unreadable cached classifier ({type(e).__name__}: {e}); retraining")
    net, info = _train_sound(cube, gt, name, model_config, train_config, dev, progress)
    info.update(cache_key=cache_key, weights_sha256=state_hash(net))
    if wpath is not None:
        wpath = wpath.with_suffix(SUFFIX)
        wpath.parent.mkdir(parents=True, exist_ok=True)
        save_weights({k: v.detach().cpu() for k, v in net.state_dict().items()}, wpath)
        atomic_write_text(wpath.with_suffix(".json"), json.dumps(info, indent=1))
    return net, info


def _train_sound(cube, gt, name, model_config, cfg, dev, progress) -> tuple[PixelNeighbourhoodNet, dict]:
    """Split, fit and measure one :class:`PixelNeighbourhoodNet` (the body of :func:`train_classifier`)."""

    t0 = time.perf_counter()
    train_mask, held_mask = spatial_split(gt, size=cfg["size"], holdout=cfg["holdout"], block=cfg["block"],
                                          random_state=cfg["random_state"])
    (tr_r, tr_c), (ho_r, ho_c) = np.nonzero(train_mask), np.nonzero(held_mask)
    if len(tr_r) == 0:
        raise DataError("holdout: no training pixel left after the spatial hold-out; lower holdout or size")
    tr_y, ho_y = gt[tr_r, tr_c] - 1, gt[ho_r, ho_c] - 1
    s = model_config["n_spatial"]
    padded = np.pad(cube, ((0, 0), (s, s), (s, s)), mode="reflect")  # pixel (r, c) -> window corner (r, c)
    rng = np.random.default_rng(cfg["random_state"])
    fork_devices = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices), _cpu_threads(dev):
        torch.manual_seed(int(rng.integers(2 ** 31)))
        net = PixelNeighbourhoodNet(**model_config)
        pix = cube[:, train_mask]  # (bands, n_train): standardise with the training pixels' spectra
        net.set_normalisation(pix.mean(axis=1), pix.std(axis=1))
        net.to(dev)
        loss = _fit_pixel_net(net, padded, tr_r, tr_c, tr_y, cfg, rng, dev, progress, f"classifier {name}")
        net.eval()
        sub = rng.permutation(len(tr_r))[:2048]
        train_acc, _ = _pixel_accuracy(net, padded, tr_r[sub], tr_c[sub], tr_y[sub], dev)
        ho_acc, ho_bal = _pixel_accuracy(net, padded, ho_r, ho_c, ho_y, dev)
    n_lab = int((gt > 0).sum())
    info = dict(
        scene=name, holdout_accuracy=ho_acc, holdout_balanced_accuracy=ho_bal,
        holdout_majority_share=float(np.bincount(ho_y).max() / len(ho_y)) if len(ho_y) else None,
        train_accuracy=train_acc, n_train=int(len(tr_r)), n_holdout=int(len(ho_r)),
        n_dropped=n_lab - int(len(tr_r)) - int(len(ho_r)),
        train_classes=sorted(int(k) for k in np.unique(tr_y)), holdout_classes=sorted(int(k) for k in np.unique(ho_y)),
        steps=cfg["steps"], wall_time_s=round(time.perf_counter() - t0, 3), final_loss=loss, config=net.config,
        train_config=cfg, classifier_version=CLASSIFIER_VERSION, device=str(dev), torch_version=torch.__version__,
        cached=False,
    )
    return net, info


# --------------------------------------------------------------------------------------------- authors' classifier
def _authors_windows(gt: np.ndarray, split: str, random_state, size: int = 32):
    """Top-left corners ``(k, 2)`` of training windows, a per-pixel loss mask ``(rows, cols)`` and the evaluation
    weights ``(rows, cols)`` (how often a pixel is scored) for ``split`` "authors" or "spatial"."""
    rows, cols = gt.shape
    corners = np.array([(r, c) for r in range(rows - size + 1) for c in range(cols - size + 1)])  # raster order
    if split == "authors":  # first 80 % of window positions train, the rest validate (overlapping)
        n_tr = int(0.8 * len(corners))
        weight = np.zeros(gt.shape)
        for r, c in corners[n_tr:]:
            weight[r:r + size, c:c + size] += 1  # per-pixel accuracy over the validation windows' pixels
        return corners[:n_tr], np.ones(gt.shape, bool), weight
    _, held = spatial_split(gt, size=size, holdout=0.2, random_state=random_state)
    near = scipy.ndimage.maximum_filter(held.astype(np.uint8), size=size + 1, mode="constant") > 0
    return corners, ~near, held.astype(np.float64)  # no loss within size // 2 of a held-out pixel


def authors_pixel_accuracy(net: AuthorsPixelClassifier, X: np.ndarray, gt: np.ndarray, weight=None,
                           device=None) -> tuple[float, float]:
    """Per-pixel accuracy (labels 0..C-1, background 0 included) of ``net`` on the authors'-space cube ``X``
    ``(bands, rows, cols)``, each pixel weighted by ``weight`` ``(rows, cols)`` (default 1), and the balanced
    accuracy (mean per-class recall over the classes with weight). The net is pixelwise in eval mode, so scoring the
    scene once and weighting a pixel by the number of windows covering it equals scoring every window."""
    probs, _ = authors_pixel_outputs(net, X[None], device=device)
    pred = probs.argmax(1).reshape(gt.shape)
    w = np.ones(gt.shape) if weight is None else np.asarray(weight, dtype=np.float64)
    hit = (pred == gt) * w
    recalls = [hit[gt == k].sum() / w[gt == k].sum() for k in np.unique(gt) if w[gt == k].sum() > 0]
    return float(hit.sum() / w.sum()), float(np.mean(recalls))


def _authors_step(net, opt, X, Y1h, mask, corners, pixels_per_step, rng, device, size=32) -> float:
    """One step of their recipe: BCE between the softmax and the one-hot labels over the batch's window pixels.

    The network is per pixel (1x1 convolutions; only batch norm couples pixels), so the step runs on the pixels
    themselves, as ``(k, bands, 1, 1)``. With ``pixels_per_step=None`` that is exactly their step (every pixel of the
    32 windows enters batch norm, the loss-masked ones are left out of the loss). With ``pixels_per_step=m`` only a
    random subset of m loss pixels is forwarded (batch norm then sees those m): ~32768 / m times cheaper, the same
    loss in expectation.
    """
    r, c = corners[:, 0], corners[:, 1]
    d = np.arange(size)
    ri = np.broadcast_to(r[:, None, None] + d[None, :, None], (len(r), size, size)).ravel()
    ci = np.broadcast_to(c[:, None, None] + d[None, None, :], (len(c), size, size)).ravel()
    keep = mask[ri, ci]
    if pixels_per_step is not None and pixels_per_step < keep.sum():
        pick = rng.choice(np.flatnonzero(keep), pixels_per_step, replace=False)
        ri, ci, keep = ri[pick], ci[pick], np.ones(len(pick), bool)
    if not keep.any():
        return float("nan")
    x = torch.from_numpy(np.ascontiguousarray(X[:, ri, ci].T)).to(device)[:, :, None, None]  # (k, bands, 1, 1)
    y = torch.from_numpy(np.ascontiguousarray(Y1h[:, ri, ci].T)).to(device)
    p = net(x)[:, :, 0, 0][torch.from_numpy(keep).to(device)]
    loss = F.binary_cross_entropy(p, y[torch.from_numpy(keep).to(device)])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.item())


def train_authors_classifier(scene, split: str = "authors", max_epochs: int = 50, patience: int = 5,
                             steps_per_epoch: int | None = None, pixels_per_step: int | None = None,
                             batch_size: int = 32, lr: float = 1e-4, weight_decay: float = 1e-4, random_state=0,
                             device=None, progress: bool = True, model_kwargs: dict | None = None,
                             V: float | None = None, cache_dir=None) -> tuple[AuthorsPixelClassifier, dict]:
    """Train the authors' per-pixel classifier with their recipe (docs/authors_code.md §C) on the scene in their space.

    Recipe: every stride-1 32 x 32 window; Adam(``lr`` 1e-4, ``weight_decay`` 1e-4); batches of 32 windows; BCE of
    the per-pixel softmax against the one-hot label map (background 0 is a class); after each epoch the per-pixel
    validation accuracy, keeping the best weights and stopping after ``patience`` epochs without improvement.
    ``split="authors"``: the first 80 % of window positions in raster order train, the rest validate (they overlap
    the training windows). ``split="spatial"``: :func:`spatial_split`'s held-out region validates (labelled pixels)
    and no pixel within 16 px of it enters the loss. ``V``: the clip value (default the scene's ``authors_V``). Budget (CPU): ``steps_per_epoch`` caps an epoch's batches
    (None = all windows), ``pixels_per_step`` scores a random subset of each batch's pixels (None = all 32768).

    Returns ``(net, info)`` with ``val_accuracy``/``val_balanced_accuracy`` (best epoch), ``val_majority_share``,
    ``history`` (per-epoch loss and accuracy), ``epochs``, ``steps``, ``wall_time_s``, ``seconds_per_step``,
    ``weights_sha256`` and the settings. ``cache_dir``: weights ``authors_classifier_<scene>_<key>.pt`` and info
    ``.json`` saved there and reused (the key covers :data:`AUTHORS_CLASSIFIER_VERSION`, the scene, a data
    fingerprint, the network config and every training argument but device/progress/cache_dir).
    """
    settings = dict(split=split, max_epochs=max_epochs, patience=patience, steps_per_epoch=steps_per_epoch,
                    pixels_per_step=pixels_per_step, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                    random_state=random_state, model_kwargs=dict(model_kwargs or {}), V=V)
    wpath = None
    if cache_dir is not None:
        sc, cube, gt = _scene_arrays(scene)
        key = hashlib.sha256(json.dumps(dict(version=AUTHORS_CLASSIFIER_VERSION, scene=sc.name,
                                             data=_fingerprint(cube, gt), settings=settings),
                                        sort_keys=True).encode()).hexdigest()[:12]
        wpath = weights_file(cache_dir, f"authors_classifier_{sc.name}_{key}")
        if wpath.is_file() and wpath.with_suffix(".json").is_file():
            info = json.loads(wpath.with_suffix(".json").read_text())
            net = AuthorsPixelClassifier(**info["config"])
            net.load_state_dict(load_weights(wpath))
            return net.to(resolve_device(device)).eval(), {**info, "cached": True}
    net, info = _train_authors(scene, **settings, device=device, progress=progress)
    if wpath is not None:
        wpath = wpath.with_suffix(SUFFIX)
        wpath.parent.mkdir(parents=True, exist_ok=True)
        save_weights({k: v.detach().cpu() for k, v in net.state_dict().items()}, wpath)
        atomic_write_text(wpath.with_suffix(".json"), json.dumps(info, indent=1))
    return net, {**info, "cached": False}


def _train_authors(scene, split, max_epochs, patience, steps_per_epoch, pixels_per_step, batch_size, lr,
                   weight_decay, random_state, model_kwargs, V, device, progress):
    """The body of :func:`train_authors_classifier` (no cache)."""
    if split not in ("authors", "spatial"):
        raise DataError(f"split: expected 'authors' or 'spatial', got {split!r}")
    for name, v in (("max_epochs", max_epochs), ("patience", patience), ("batch_size", batch_size)):
        _positive(name, v)
    scene, cube, gt = _scene_arrays(scene)
    X = scene.to_authors_space(cube, V).astype(np.float32)
    n_out = int(getattr(scene, "n_classes", int(gt.max()))) + 1
    Y1h = np.eye(n_out, dtype=np.float32)[gt].transpose(2, 0, 1)  # (C, rows, cols) one-hot, background included
    corners, mask, weight = _authors_windows(gt, split, random_state)
    rng = np.random.default_rng(random_state)
    dev = resolve_device(device)
    n_batches = -(-len(corners) // batch_size)
    steps_ep = n_batches if steps_per_epoch is None else min(int(steps_per_epoch), n_batches)
    t0, history, best = time.perf_counter(), [], (-1.0, None, None, 0)
    with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []), _cpu_threads(dev, 2):
        torch.manual_seed(int(rng.integers(2 ** 31)))
        net = AuthorsPixelClassifier(cube.shape[0], n_out, **dict(model_kwargs or {})).to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
        bar = tqdm(total=max_epochs * steps_ep, desc=f"authors' classifier {scene.name}", disable=not progress)
        for epoch in range(max_epochs):
            net.train()
            order = rng.permutation(len(corners))[:steps_ep * batch_size]
            losses = [_authors_step(net, opt, X, Y1h, mask, corners[order[i:i + batch_size]], pixels_per_step,
                                    rng, dev) for i in range(0, len(order), batch_size) if not bar.update(1)]
            acc, bal = authors_pixel_accuracy(net, X, gt, weight, device=dev)
            history.append(dict(epoch=epoch + 1, loss=float(np.nanmean(losses)), val_accuracy=acc, val_balanced=bal))
            if acc > best[0]:
                best = (acc, bal, {k: v.detach().clone() for k, v in net.state_dict().items()}, epoch)
            if epoch - best[3] >= patience:  # early stop: `patience` epochs without improvement
                break
        bar.close()
        net.load_state_dict(best[2])
        net.eval()
    shares = np.bincount(gt.ravel(), weights=weight.ravel())
    steps = len(history) * steps_ep
    wall = time.perf_counter() - t0
    info = dict(scene=scene.name, split=split, val_accuracy=best[0], val_balanced_accuracy=best[1],
                val_majority_share=float(shares.max() / shares.sum()), history=history, epochs=len(history),
                steps=steps, wall_time_s=round(wall, 1), seconds_per_step=round(wall / max(steps, 1), 3),
                n_train_windows=int(len(corners)), V=V or scene.authors_V, config=net.config,
                train_config=dict(max_epochs=max_epochs, patience=patience, steps_per_epoch=steps_per_epoch,
                                  pixels_per_step=pixels_per_step, batch_size=batch_size, lr=lr,
                                  weight_decay=weight_decay, random_state=random_state),
                weights_sha256=state_hash(net), device=str(dev))
    return net, info
