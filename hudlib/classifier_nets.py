"""Networks behind the classifier-based scores IS, FID (paper IV-C) and SD (HyperLDM III-E): nn.Modules only.

Training, caching and scoring live in :mod:`hudlib.classifier`. Both networks are fully convolutional and
classify every pixel: input ``(n, bands, h, w)``, output ``(n, classes, h', w')``.

* :class:`AuthorsPixelClassifier` is the authors' per-pixel classifier (a stack of 1x1 convolutions, softmax over
  channels, background class included), used for the paper-exact IS/FID.
* :class:`PixelNeighbourhoodNet` is our classifier for the sound IS/FID/SD: a per-pixel net that sees a small
  ``k`` x ``k`` neighbourhood (``k = 2 * n_spatial + 1``) of standardised spectra, so it generalises across a
  scene (a patch-level CNN over 32 x 32 crops memorises the few training regions) and still reacts to spatial
  structure (pixels at shuffled positions give neighbourhoods no real scene has).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["AuthorsPixelClassifier", "PixelNeighbourhoodNet"]


def _positive_int(name: str, v, minimum: int = 1) -> int:
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {v!r}")
    return int(v)


def _check_input(x: torch.Tensor, bands: int, min_hw: int = 1) -> None:
    if x.ndim != 4 or x.shape[1] != bands:
        raise ValueError(f"x: expected (n, {bands}, h, w), got shape {tuple(x.shape)}")
    if x.shape[2] < min_hw or x.shape[3] < min_hw:
        raise ValueError(f"x: expected h, w >= {min_hw}, got {tuple(x.shape[2:])}")


def _conv_bn_act(cin: int, cout: int, kernel: int = 1, act: nn.Module | None = None) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel), nn.BatchNorm2d(cout), act if act is not None else nn.ReLU(inplace=True)]


class AuthorsPixelClassifier(nn.Module):
    """The authors' per-pixel classifier (their classifier.py; docs/authors_code.md §C).

    Layout: 1x1 conv ``bands -> embed`` + BN + LeakyReLU; ``n_layers`` x [1x1 conv ``embed -> embed`` + BN +
    LeakyReLU]; Dropout(``dropout``); 1x1 ``embed -> embed/2`` and ``embed/2 -> hidden`` (each + BN + LeakyReLU);
    1x1 ``hidden -> n_outputs``; softmax over channels (``forward`` returns probabilities, as theirs did: they
    trained BCE on the softmax). ``n_outputs`` = classes + 1, the background (label 0) included. Input is in the
    authors' data space ``clip(raw, 0, V) / V * 2 - 1``. ``self.config`` rebuilds it.
    """

    def __init__(self, bands: int, n_outputs: int, embed: int = 256, hidden: int = 64, n_layers: int = 16,
                 dropout: float = 0.5):
        super().__init__()
        bands, n_outputs = _positive_int("bands", bands), _positive_int("n_outputs", n_outputs, 2)
        embed, hidden = _positive_int("embed", embed, 2), _positive_int("hidden", hidden)
        n_layers = _positive_int("n_layers", n_layers, 0)
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout!r}")
        self.config = dict(bands=bands, n_outputs=n_outputs, embed=embed, hidden=hidden, n_layers=n_layers,
                           dropout=float(dropout))
        layers = _conv_bn_act(bands, embed, act=nn.LeakyReLU(inplace=True))
        for _ in range(n_layers):
            layers += _conv_bn_act(embed, embed, act=nn.LeakyReLU(inplace=True))
        layers.append(nn.Dropout(dropout))
        layers += _conv_bn_act(embed, embed // 2, act=nn.LeakyReLU(inplace=True))
        layers += _conv_bn_act(embed // 2, hidden, act=nn.LeakyReLU(inplace=True))
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(hidden, n_outputs, 1)

    @property
    def feature_dim(self) -> int:
        """Length of the per-pixel feature vector (``hidden``, 64 in their runs)."""
        return self.config["hidden"]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel features ``(n, hidden, h, w)`` (the output before the last layer) of ``x`` ``(n, bands, h, w)``."""
        _check_input(x, self.config["bands"])
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel class probabilities ``(n, n_outputs, h, w)`` (softmax over channels) of ``x``."""
        return torch.softmax(self.head(self.features(x)), dim=1)


class PixelNeighbourhoodNet(nn.Module):
    """Per-pixel spectral-spatial classifier over ``k`` x ``k`` neighbourhoods, ``k = 2 * n_spatial + 1``.

    Layout: per-band standardisation (buffers ``band_mean``/``band_std``, set from training pixels) -> 1x1 conv
    ``bands -> width`` + BN + ReLU (spectral reduction) -> ``n_spatial`` x [3x3 conv ``width -> width`` + BN + ReLU,
    no padding] -> 1x1 conv ``width -> feature`` + BN + ReLU = per-pixel features -> dropout -> 1x1 conv
    ``feature -> n_classes`` = logits. Without padding an input ``(n, bands, h, w)`` gives ``(n, ., h - 2s,
    w - 2s)`` (``s = n_spatial``): a ``k`` x ``k`` crop gives the centre pixel's output. ``pad=True`` in
    :meth:`features` / :meth:`forward` reflection-pads the input by ``s`` first, giving one output per input pixel.
    ``n_spatial = 0`` is a per-pixel spectral MLP. ``self.config`` rebuilds it.
    """

    def __init__(self, bands: int, n_classes: int, width: int = 64, feature: int = 64, n_spatial: int = 1,
                 dropout: float = 0.2):
        super().__init__()
        bands, n_classes = _positive_int("bands", bands), _positive_int("n_classes", n_classes, 2)
        width, feature = _positive_int("width", width), _positive_int("feature", feature)
        n_spatial = _positive_int("n_spatial", n_spatial, 0)
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout!r}")
        self.config = dict(bands=bands, n_classes=n_classes, width=width, feature=feature, n_spatial=n_spatial,
                           dropout=float(dropout))
        self.register_buffer("band_mean", torch.zeros(bands))
        self.register_buffer("band_std", torch.ones(bands))
        layers = _conv_bn_act(bands, width)
        for _ in range(n_spatial):
            layers += _conv_bn_act(width, width, kernel=3)
        layers += _conv_bn_act(width, feature)
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Conv2d(feature, n_classes, 1))

    @property
    def feature_dim(self) -> int:
        """Length of the per-pixel feature vector."""
        return self.config["feature"]

    @property
    def window(self) -> int:
        """Side ``k`` of the neighbourhood one output pixel depends on."""
        return 2 * self.config["n_spatial"] + 1

    def set_normalisation(self, mean, std) -> None:
        """Set the per-band input standardisation from ``mean``/``std`` of shape ``(bands,)`` (std floored)."""
        mean = torch.as_tensor(np.asarray(mean), dtype=torch.float32).reshape(-1)
        std = torch.as_tensor(np.asarray(std), dtype=torch.float32).reshape(-1)
        if mean.numel() != self.config["bands"] or std.numel() != self.config["bands"]:
            raise ValueError(f"mean/std: expected {self.config['bands']} values each, got {mean.numel()} and "
                             f"{std.numel()}")
        self.band_mean.copy_(mean.to(self.band_mean.device))
        self.band_std.copy_(std.clamp_min(1e-6).to(self.band_std.device))

    def features(self, x: torch.Tensor, pad: bool = False) -> torch.Tensor:
        """Per-pixel features ``(n, feature, h', w')`` of ``x`` ``(n, bands, h, w)``; ``h' = h`` if ``pad`` else
        ``h - 2 * n_spatial``."""
        s = self.config["n_spatial"]
        _check_input(x, self.config["bands"], min_hw=1 if pad else self.window)
        x = (x - self.band_mean[:, None, None]) / self.band_std[:, None, None]
        if pad and s:
            x = F.pad(x, (s, s, s, s), mode="reflect" if min(x.shape[2:]) > s else "replicate")
        return self.body(x)

    def forward(self, x: torch.Tensor, pad: bool = False) -> torch.Tensor:
        """Per-pixel logits ``(n, n_classes, h', w')`` of ``x`` (see :meth:`features`)."""
        return self.head(self.features(x, pad=pad))
