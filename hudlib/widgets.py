"""Browsers for JupyterLab: a band viewer over a cube and a browser over generated patches.

With ``interactive=True`` (JupyterLab) each returns an ipywidgets box: controls above a PNG of a matplotlib figure
that is redrawn whenever a control moves; the box's ``figure`` attribute is that Figure. With ``interactive=False``
(headless runs: ``./run_all.sh`` passes it) each returns the static matplotlib Figure of the widget's initial state
and creates no widget at all: live widgets can hang nbclient (jupyter/nbclient#312).

Figures are :class:`StaticFigure` (a ``matplotlib.figure.Figure`` outside pyplot), so a notebook shows a returned
one exactly once, as a PNG, whether or not pyplot's inline backend is active.
"""
from __future__ import annotations

import io
import os

import numpy as np
from matplotlib.figure import Figure

from .data import pseudo_rgb, rgb_limits

__all__ = ["band_slider", "patch_browser", "band_limits", "draw_band", "draw_patch", "StaticFigure", "draw_labelled",
           "labelled_scene_browser", "layout_explorer", "spectral_axis"]

STRETCH_PERCENTILES = (1.0, 99.0)


def band_limits(cube: np.ndarray, band: int, percentiles=STRETCH_PERCENTILES) -> tuple[float, float]:
    """Stretch ``(low, high)`` of one band: the ``percentiles`` of that band's values alone.

    ``cube`` is ``(bands, rows, cols)`` or a batch ``(n, bands, rows, cols)``. A per-band stretch keeps low-signal
    bands (e.g. Indian Pines' water-absorption bands 138, 199) visible, which one stretch over all bands blacks out.
    A constant band gets a tiny positive range so the colour bar stays defined.
    """
    lo, hi = (float(v) for v in np.percentile(np.take(np.asarray(cube), band, axis=-3), percentiles))
    if hi <= lo:
        hi = lo + max(abs(lo), 1.0) * 1e-6
    return lo, hi


def draw_band(fig: Figure, cube: np.ndarray, band: int, title: str = ""):
    """Draw band ``band`` of ``cube`` ``(bands, rows, cols)`` into ``fig`` (cleared) with its own stretch and a
    colour bar; returns the AxesImage."""
    fig.clear()
    ax = fig.add_subplot()
    lo, hi = band_limits(cube, band)
    im = ax.imshow(cube[band], cmap="gray", vmin=lo, vmax=hi)
    fig.colorbar(im, ax=ax, label="normalised reflectance")
    ax.set_title(f"{title} band {band} (stretch: its {STRETCH_PERCENTILES[0]:g}-{STRETCH_PERCENTILES[1]:g}th "
                 f"percentiles)".strip(), fontsize=9)
    ax.axis("off")
    return im


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


class StaticFigure(Figure):
    """A matplotlib Figure that IPython displays as a PNG (``_repr_png_``) even without pyplot's inline backend."""

    def _repr_png_(self) -> bytes:
        return _png(self)


STATIC_ENV = "HUD_STATIC"


def is_interactive() -> bool:
    """Live widgets, unless ``$HUD_STATIC`` is set: the runner sets it for its notebooks' kernels (static figures and
    quiet progress bars; live ipywidgets can hang a headless kernel, jupyter/nbclient#312), so no notebook carries
    that switch in its parameters."""
    return os.environ.get(STATIC_ENV, "").strip().lower() in ("", "0", "false", "no")


def band_slider(cube: np.ndarray, title: str = "", interactive: bool | None = None, band: int = 0):
    """A slider over the bands of ``cube`` ``(bands, rows, cols)`` showing one band (per-band stretch, colour bar).

    Returns the widget box, or with ``interactive=False`` the Figure of band ``band`` (the widget's first view).
    """
    fig = StaticFigure(figsize=(5, 4.2), layout="constrained")
    draw_band(fig, cube, band, title)
    if not (is_interactive() if interactive is None else interactive):
        return fig
    import ipywidgets as w  # only here: a static run must not create any widget

    slider = w.IntSlider(value=band, min=0, max=cube.shape[0] - 1, description="band", continuous_update=False)
    img = w.Image(value=_png(fig), format="png")

    def redraw(_change):
        draw_band(fig, cube, slider.value, title)
        img.value = _png(fig)

    slider.observe(redraw, names="value")
    box = w.VBox([slider, img])
    box.figure = fig
    return box


def spectral_axis(bands: int, wavelengths=None) -> tuple[np.ndarray, str]:
    """The x values and label of a spectrum plot: the band centres in nm where they are known (one per band), else
    the band indices."""
    if wavelengths is not None and len(wavelengths) == bands:
        return np.asarray(wavelengths, np.float64), "wavelength (nm)"
    return np.arange(bands, dtype=np.float64), "band"


def draw_patch(fig: Figure, samples: np.ndarray, rgb_bands, index: int, band: int, row: int, col: int,
               mode: str = "pseudo-colour", class_means: np.ndarray | None = None, limits: np.ndarray | None = None,
               title: str = "", wavelengths=None) -> None:
    """Draw patch ``index`` of ``samples`` ``(n, bands, h, w)`` into ``fig`` (cleared): left, the patch in
    pseudo-colour (stretch ``limits`` ``(3, 2)``) or as band ``band`` (that band's own stretch over all samples,
    with a colour bar); right, the spectrum of pixel (``row``, ``col``) over ``class_means`` ``(n_classes, bands)``,
    with the selected band marked by a vertical line (and, in pseudo-colour, the three displayed bands); the spectral
    axis in nm where ``wavelengths`` are given (:func:`spectral_axis`)."""
    fig.clear()
    ax_img, ax_sp = fig.subplots(1, 2, width_ratios=[1, 1.4])
    x = samples[index]
    if mode == "pseudo-colour":
        ax_img.imshow(pseudo_rgb(x, rgb_bands, limits=limits))
        ax_img.set_title(f"{title} patch {index}, pseudo-colour {tuple(int(b) for b in rgb_bands)}".strip(),
                         fontsize=9)
    else:
        lo, hi = band_limits(samples, band)
        im = ax_img.imshow(x[band], cmap="gray", vmin=lo, vmax=hi)
        fig.colorbar(im, ax=ax_img, fraction=0.046)
        ax_img.set_title(f"{title} patch {index}, band {band}".strip(), fontsize=9)
    ax_img.plot([col], [row], "r+", ms=12)
    ax_img.axis("off")
    xs, xlabel = spectral_axis(x.shape[0], wavelengths)
    if class_means is not None:
        for k, m in enumerate(class_means):
            ax_sp.plot(xs, m, color="0.75", lw=0.8, label="real class means" if k == 0 else None)
    ax_sp.plot(xs, x[:, row, col], "r", lw=1.5, label=f"pixel ({row}, {col})")
    if mode == "pseudo-colour":
        for b, c in zip(rgb_bands, ("tab:red", "tab:green", "tab:blue")):
            ax_sp.axvline(xs[int(b)], color=c, lw=0.8, alpha=0.6)
    ax_sp.axvline(xs[band], color="k", ls="--", lw=1.2, label=f"band {band}", gid="selected-band")
    ax_sp.set_xlabel(xlabel)
    ax_sp.set_ylabel("reflectance (normalised)")
    ax_sp.legend(fontsize=8)


def _band_pixel_controls(state: dict, sizes: dict, fig: Figure, draw):
    """The sliders of a band/pixel browser (``sizes``: ``{name: count}`` for each slider in ``state``, e.g. band,
    row, col), the pseudo-colour / single-band toggle and the figure's image, wired so that any control updates
    ``state`` and redraws; moving the band slider in pseudo-colour switches to single band, so it always acts.
    Returns ``(controls, image)``."""
    import ipywidgets as w

    ctl = {k: w.IntSlider(state[k], 0, n - 1, description="patch" if k == "index" else k, continuous_update=False)
           for k, n in sizes.items()}
    ctl["mode"] = w.ToggleButtons(options=["pseudo-colour", "single band"], value=state["mode"])
    img = w.Image(value=_png(fig), format="png")

    def on_change(change):
        state.update({k: c.value for k, c in ctl.items()})
        if change["owner"] is ctl["band"] and state["mode"] == "pseudo-colour":
            ctl["mode"].value = "single band"  # fires on_change again, which redraws
            return
        draw()
        img.value = _png(fig)

    for c in ctl.values():
        c.observe(on_change, names="value")
    return ctl, img


def patch_browser(samples: np.ndarray, rgb_bands, class_means: np.ndarray | None = None,
                  limits: np.ndarray | None = None, title: str = "", interactive: bool | None = None,
                  wavelengths=None):
    """Browse generated patches ``(n, bands, h, w)``.

    Sliders for patch index, band and the selected pixel (row, col); a toggle between pseudo-colour and single
    band (moving the band slider while in pseudo-colour switches to single band, so it always acts); beside the
    image, the selected pixel's spectrum over the real scene's class-mean spectra ``class_means``
    ``(n_classes, bands)`` with the selected band marked (against ``wavelengths`` in nm when given). Returns the
    widget box, or with ``interactive=False`` the
    Figure of its first view (patch 0, pseudo-colour, centre pixel, band ``rgb_bands[0]``).
    """
    n, bands, h, wd = samples.shape
    limits = rgb_limits(samples, rgb_bands) if limits is None else limits
    state = dict(index=0, band=int(rgb_bands[0]), row=h // 2, col=wd // 2, mode="pseudo-colour")
    fig = StaticFigure(figsize=(9, 3.6), layout="constrained")

    def draw():
        draw_patch(fig, samples, rgb_bands, class_means=class_means, limits=limits, title=title,
                   wavelengths=wavelengths, **state)

    draw()
    if not (is_interactive() if interactive is None else interactive):
        return fig
    import ipywidgets as w  # only here: a static run must not create any widget

    ctl, img = _band_pixel_controls(state, {"index": n, "band": bands, "row": h, "col": wd}, fig, draw)
    box = w.VBox([w.HBox([ctl["index"], ctl["band"]]), w.HBox([ctl["row"], ctl["col"]]), ctl["mode"], img])
    box.figure = fig
    return box


# --------------------------------------------------------------------------------------------- labelled scenes
def draw_labelled(fig: Figure, Y: np.ndarray, L: np.ndarray, scene, band: int, row: int, col: int,
                  mode: str = "pseudo-colour", limits: np.ndarray | None = None, title: str = "") -> None:
    """Draw a labelled scene into ``fig`` (cleared): its class map ``L`` ``(H, W)``, the cube ``Y``
    ``(bands, H, W)`` in pseudo-colour (the real scene's stretch ``limits``) or as band ``band``, and the spectrum
    of pixel (``row``, ``col``) beside the real scene's mean spectrum of the class the map gives that pixel."""
    from .data import class_mean_spectra

    fig.clear()
    ax_map, ax_img, ax_sp = fig.subplots(1, 3, width_ratios=[1, 1, 1.3])
    K = scene.n_classes
    ax_map.imshow(L, cmap="tab20", vmin=0, vmax=max(19, K), interpolation="nearest")
    ax_map.set_title(f"{title} class map".strip(), fontsize=9)
    if mode == "pseudo-colour":
        ax_img.imshow(pseudo_rgb(Y, scene.rgb_bands, limits=limits), interpolation="nearest")
        ax_img.set_title("synthesized scene, pseudo-colour", fontsize=9)
    else:
        lo, hi = band_limits(Y, band)
        ax_img.imshow(Y[band], cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        ax_img.set_title(f"synthesized scene, band {band}", fontsize=9)
    for a in (ax_map, ax_img):
        a.plot([col], [row], "r+", ms=12)
        a.axis("off")
    k = int(L[row, col])
    xs, xlabel = spectral_axis(Y.shape[0], scene.wavelengths)
    if k > 0:
        ax_sp.plot(xs, class_mean_spectra(scene)[k - 1], color="0.5", lw=1.2,
                   label=f"real mean: {scene.class_name(k)}")
    ax_sp.plot(xs, Y[:, row, col], "r", lw=1.5, label=f"pixel ({row}, {col}): {scene.class_name(k)}")
    ax_sp.axvline(xs[band], color="k", ls="--", lw=1.0, label=f"band {band}")
    ax_sp.set_xlabel(xlabel)
    ax_sp.set_ylabel("reflectance (normalised)")
    ax_sp.legend(fontsize=7)


def labelled_scene_browser(Y: np.ndarray, L: np.ndarray, scene, title: str = "", interactive: bool | None = None):
    """Browse a synthesized scene ``Y`` ``(bands, H, W)`` beside its class map ``L`` ``(H, W)``: sliders for band and
    pixel (row, col), a pseudo-colour / single-band toggle, the pixel's spectrum beside the real mean of its class.
    Returns the widget box, or with ``interactive=False`` the Figure of its first view (centre pixel)."""
    H, W = L.shape
    limits = rgb_limits(scene.cube, scene.rgb_bands)
    state = dict(band=int(scene.rgb_bands[0]), row=H // 2, col=W // 2, mode="pseudo-colour")
    fig = StaticFigure(figsize=(11, 3.6), layout="constrained")

    def draw():
        draw_labelled(fig, Y, L, scene, limits=limits, title=title, **state)

    draw()
    if not (is_interactive() if interactive is None else interactive):
        return fig
    import ipywidgets as w  # only here: a static run must not create any widget

    ctl, img = _band_pixel_controls(state, {"band": Y.shape[0], "row": H, "col": W}, fig, draw)
    box = w.VBox([w.HBox([ctl["band"], ctl["mode"]]), w.HBox([ctl["row"], ctl["col"]]), img])
    box.figure = fig
    return box


def layout_explorer(gen, scene, size=None, interactive: bool | None = None, device: str = "auto"):
    """Pick a class map and synthesize its scene with the layout-conditioned ``gen``, then browse both
    (:func:`labelled_scene_browser`). Controls: the map's source (a crop of the real map, a procedural map with
    sliders for field size, road density and class mix, or a file), the seed, the guidance weight, and a button
    that synthesizes (:func:`hudlib.labelled.synthesize_labelled`, the generator's own fold's ground for real and
    procedural maps). Returns the widget box, or with ``interactive=False`` the browser's Figure of a procedural
    map at seed 0."""
    from .labelled import synthesize_labelled

    size = tuple(size or scene.gt.shape)
    Y, L = synthesize_labelled(gen, scene, "procedural", size, seed=0, device=device)
    if not (is_interactive() if interactive is None else interactive):
        return labelled_scene_browser(Y, L, scene, title="procedural", interactive=False)
    import ipywidgets as w  # only here: a static run must not create any widget

    src = w.Dropdown(options=["procedural", "real", "file"], value="procedural", description="map")
    path = w.Text(value="", placeholder="class map file (.npy, .mat:KEY, .hdr, .png)", description="file")
    seed = w.IntText(value=0, description="seed")
    scale = w.FloatSlider(value=1.0, min=0.25, max=3.0, step=0.25, description="field size")
    roads = w.FloatSlider(value=1.0, min=0.0, max=4.0, step=0.5, description="roads")
    mix = w.FloatSlider(value=1.0, min=0.0, max=1.0, step=0.1, description="class mix")
    guid = w.FloatSlider(value=float(gen.config_.cond.guidance), min=0.0, max=7.5, step=0.5, description="guidance")
    go = w.Button(description="synthesize")
    msg = w.Label("")
    out = w.Output()
    with out:
        from IPython.display import display

        display(labelled_scene_browser(Y, L, scene, title="procedural", interactive=True))

    def run(_button):
        params = dict(field_scale=scale.value, road_density=roads.value, class_mix=mix.value) \
            if src.value == "procedural" else {}
        msg.value = "synthesizing ..."
        try:
            Ys, Ls = synthesize_labelled(gen, scene, src.value, size, seed=seed.value, path=path.value or None,
                                         guidance=guid.value, device=device, **params)
        except (ValueError, OSError) as e:  # DataError is a ValueError: a bad file or parameter, one line
            msg.value = str(e)
            return
        msg.value = ""
        out.clear_output(wait=True)
        with out:
            display(labelled_scene_browser(Ys, Ls, scene, title=src.value, interactive=True))

    go.on_click(run)
    return w.VBox([w.HBox([src, path]), w.HBox([scale, roads, mix]), w.HBox([seed, guid, go]), msg, out])
