"""The JupyterLab browsers (hudlib.widgets): static and live builds, per-band stretch, the band slider acting."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from hudlib.widgets import band_limits, band_slider, patch_browser  # noqa: E402


def _percentile_by_hand(values: np.ndarray, q: float) -> float:
    """Linear-interpolation percentile, transcribed from its definition (rank q/100·(N−1) in the sorted values)."""
    v = np.sort(values.ravel().astype(np.float64))
    pos = q / 100 * (len(v) - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, len(v) - 1)
    return float(v[lo] + (pos - lo) * (v[hi] - v[lo]))


@pytest.fixture
def cube():
    """(12, 20, 24) with bands of very different brightness: band 3 is 100× darker, band 7 a tenth of band 0."""
    rng = np.random.default_rng(0)
    c = rng.random((12, 20, 24)).astype(np.float32)
    c[3] *= 0.01
    c[7] = 0.1 * c[0] + 0.05
    return c


@pytest.fixture
def samples():
    return np.random.default_rng(1).random((5, 12, 8, 8)).astype(np.float32)


def _spectrum_axes(fig):
    return next(a for a in fig.axes if a.get_xlabel() == "band")


def _selected_band(fig):
    (line,) = [ln for ln in _spectrum_axes(fig).lines if ln.get_gid() == "selected-band"]
    return line.get_xdata()[0]


def test_band_limits_are_the_bands_own_percentiles(cube, samples):
    for b in (0, 3, 7):
        lo, hi = band_limits(cube, b)
        assert lo == pytest.approx(_percentile_by_hand(cube[b], 1), abs=1e-9)
        assert hi == pytest.approx(_percentile_by_hand(cube[b], 99), abs=1e-9)
    assert band_limits(cube, 3)[1] < 0.011 < band_limits(cube, 0)[0] + 0.02  # the dark band keeps its own range
    lo, hi = band_limits(samples, 4)  # a batch: the band over all patches
    assert (lo, hi) == pytest.approx((_percentile_by_hand(samples[:, 4], 1), _percentile_by_hand(samples[:, 4], 99)))
    flat = np.full((2, 4, 4), 0.5, np.float32)
    lo, hi = band_limits(flat, 1)
    assert lo == 0.5 and hi > lo  # a constant band keeps a defined colour bar


def test_band_slider_static_shows_band_with_own_stretch_and_colour_bar(cube):
    fig = band_slider(cube, "toy", interactive=False, band=3)
    assert isinstance(fig, Figure)
    (im,) = fig.axes[0].images
    np.testing.assert_array_equal(im.get_array(), cube[3])
    assert im.get_clim() == pytest.approx(band_limits(cube, 3))
    assert len(fig.axes) == 2  # the image and its colour bar


def test_band_slider_live_redraws_with_the_new_bands_stretch(cube):
    box = band_slider(cube, "toy")
    slider, img = box.children
    assert slider.value == 0 and box.figure.axes[0].images[0].get_clim() == pytest.approx(band_limits(cube, 0))
    before = img.value
    slider.value = 7
    (im,) = box.figure.axes[0].images
    np.testing.assert_array_equal(im.get_array(), cube[7])
    assert im.get_clim() == pytest.approx(band_limits(cube, 7))
    assert img.value != before and img.value[:8] == b"\x89PNG\r\n\x1a\n"


def test_patch_browser_static_is_the_first_view(samples):
    means = np.random.default_rng(2).random((4, 12))
    fig = patch_browser(samples, (1, 5, 9), class_means=means, title="HUD", interactive=False)
    assert isinstance(fig, Figure)
    assert fig.axes[0].images[0].get_array().shape == (8, 8, 3)  # pseudo-colour
    assert _selected_band(fig) == 1
    sp = _spectrum_axes(fig)
    (pixel,) = [ln for ln in sp.lines if ln.get_label() == "pixel (4, 4)"]  # the centre pixel's spectrum
    np.testing.assert_allclose(pixel.get_ydata(), samples[0, :, 4, 4])
    assert sum(ln.get_label() == "real class means" for ln in sp.lines) == 1 and len(sp.lines) == 4 + 1 + 3 + 1


def test_patch_browser_band_slider_acts_in_pseudo_colour_mode(samples):
    box = patch_browser(samples, (1, 5, 9), title="HUD")
    (idx, band), (row, col) = box.children[0].children, box.children[1].children
    mode, img = box.children[2], box.children[3]
    assert mode.value == "pseudo-colour" and _selected_band(box.figure) == 1
    before = img.value
    band.value = 10  # in pseudo-colour mode: switches to single band and marks band 10
    assert mode.value == "single band"
    (im,) = box.figure.axes[0].images
    np.testing.assert_array_equal(im.get_array(), samples[0, 10])
    assert im.get_clim() == pytest.approx(band_limits(samples, 10))
    assert _selected_band(box.figure) == 10 and img.value != before
    idx.value, row.value, col.value = 3, 1, 6
    np.testing.assert_array_equal(box.figure.axes[0].images[0].get_array(), samples[3, 10])
    assert any(np.allclose(ln.get_ydata(), samples[3, :, 1, 6]) for ln in _spectrum_axes(box.figure).lines)
    mode.value = "pseudo-colour"
    assert box.figure.axes[0].images[0].get_array().shape == (8, 8, 3) and _selected_band(box.figure) == 10


def test_the_runners_environment_draws_static_and_a_reader_gets_widgets(cube, samples, monkeypatch):
    """No notebook carries an ``interactive`` switch: $HUD_STATIC (set by the runner for its kernels) makes every
    widget a static Figure; without it a reader gets live widgets; an explicit argument still wins."""
    import ipywidgets

    from hudlib import widgets

    monkeypatch.setenv(widgets.STATIC_ENV, "1")
    assert not widgets.is_interactive()
    assert isinstance(band_slider(cube, "t"), Figure) and isinstance(patch_browser(samples, (0, 1, 2)), Figure)
    monkeypatch.delenv(widgets.STATIC_ENV)
    assert widgets.is_interactive()
    assert isinstance(band_slider(cube, "t"), ipywidgets.Widget)
    assert isinstance(band_slider(cube, "t", interactive=False), Figure)
