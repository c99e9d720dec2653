"""Band centres: Indian Pines' 200 are AVIRIS' 220 less the documented water-absorption and last bands."""
import numpy as np

from hudlib.data import wavelengths as wl


def test_indian_pines_drops_the_water_bands_and_the_last():
    full = np.asarray(wl.AVIRIS_1992_CENTRES)
    ip = np.asarray(wl.indian_pines_wavelengths())
    assert full.size == 220 and ip.size == 200
    dropped = np.setdiff1d(np.arange(220), [int(np.flatnonzero(full == v)[0]) for v in ip])
    assert (dropped + 1).tolist() == list(wl.INDIAN_PINES_REMOVED)
    c = full[dropped]
    # the atmosphere's water-absorption windows near 1.4 and 1.9 um (1363-1402, 1819-1933 nm), and the last band
    assert ((c > 1355) & (c < 1405)).sum() == 5 and ((c > 1815) & (c < 1940)).sum() == 14 and c[-1] > 2490
    assert ip[0] == 400.02 and ip[-1] == 2489.11


def test_samson_spans_401_to_889_nm():
    s = np.asarray(wl.samson_wavelengths())
    assert s.size == 156 and s[0] == 401 and s[-1] == 889
    np.testing.assert_allclose(np.diff(s), 488 / 155, atol=0.011)  # rounded to 0.01 nm
