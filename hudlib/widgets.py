"""ipywidgets browsers for JupyterLab: a band slider over a cube and a browser over generated patches.

Both return the widget (display it, or let the notebook show it as the cell's value) and draw with matplotlib.
"""
from __future__ import annotations

import numpy as np

from .data import pseudo_rgb, rgb_limits

__all__ = ["band_slider", "patch_browser"]


def band_slider(cube: np.ndarray, title: str = ""):
    """A slider over the bands of ``cube`` ``(bands, rows, cols)`` showing one band as an image."""
    import ipywidgets as w
    import matplotlib.pyplot as plt

    out = w.Output()
    slider = w.IntSlider(value=0, min=0, max=cube.shape[0] - 1, description="band", continuous_update=False)
    vmin, vmax = np.percentile(cube, [1, 99])

    def draw(*_):
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(4, 4))
            ax.imshow(cube[slider.value], cmap="gray", vmin=vmin, vmax=vmax)
            ax.set_title(f"{title} band {slider.value}")
            ax.axis("off")
            plt.show()

    slider.observe(draw, names="value")
    draw()
    return w.VBox([slider, out])


def patch_browser(samples: np.ndarray, rgb_bands, class_means: np.ndarray | None = None,
                  limits: np.ndarray | None = None, title: str = ""):
    """Browse generated patches ``(n, bands, h, w)``.

    Sliders for patch index, band and the selected pixel (row, col); a toggle between pseudo-colour and single
    band; beside the image, the selected pixel's spectrum over the real scene's class-mean spectra
    ``class_means`` ``(n_classes, bands)``.
    """
    import ipywidgets as w
    import matplotlib.pyplot as plt

    n, bands, h, wd = samples.shape
    limits = rgb_limits(samples, rgb_bands) if limits is None else limits
    idx = w.IntSlider(0, 0, n - 1, description="patch", continuous_update=False)
    band = w.IntSlider(int(rgb_bands[0]), 0, bands - 1, description="band", continuous_update=False)
    row = w.IntSlider(h // 2, 0, h - 1, description="row", continuous_update=False)
    col = w.IntSlider(wd // 2, 0, wd - 1, description="col", continuous_update=False)
    mode = w.ToggleButtons(options=["pseudo-colour", "single band"], value="pseudo-colour")
    out = w.Output()
    vmin, vmax = np.percentile(samples, [1, 99])

    def draw(*_):
        x = samples[idx.value]
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(1, 2, figsize=(9, 3.6))
            if mode.value == "pseudo-colour":
                ax[0].imshow(pseudo_rgb(x, rgb_bands, limits=limits))
            else:
                ax[0].imshow(x[band.value], cmap="gray", vmin=vmin, vmax=vmax)
            ax[0].plot([col.value], [row.value], "r+", ms=12)
            ax[0].set_title(f"{title} patch {idx.value}" + ("" if mode.value == "pseudo-colour"
                                                             else f", band {band.value}"))
            ax[0].axis("off")
            if class_means is not None:
                for k, m in enumerate(class_means):
                    ax[1].plot(m, color="0.75", lw=0.8, label="real class means" if k == 0 else None)
            ax[1].plot(x[:, row.value, col.value], "r", lw=1.5, label=f"pixel ({row.value}, {col.value})")
            ax[1].set_xlabel("band")
            ax[1].set_ylabel("reflectance (normalised)")
            ax[1].legend(fontsize=8)
            plt.tight_layout()
            plt.show()

    for c in (idx, band, row, col, mode):
        c.observe(draw, names="value")
    draw()
    return w.VBox([w.HBox([idx, band]), w.HBox([row, col]), mode, out])
