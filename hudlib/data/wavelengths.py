"""Band centres (nm) of the registered scenes' sensors, as published with the data.

- **AVIRIS, Indian Pines (June 1992)**: the 220 centres of the flight's calibration file ``92AV3C.spc`` (first column;
  the image chip's band calibration as distributed with the 220-band cube by Purdue's MultiSpec and in SPy's test
  data, ``spectral/tests/data/92AV3C.spc``), rounded to 0.01 nm. The "corrected" cube drops bands 104-108, 150-163
  and 220 (1-based; the water-absorption bands near 1400 and 1900 nm and the last band), leaving 200.
- **Samson**: 156 channels covering 401-889 nm (the data set's description, Zhu's unmixing benchmarks); no per-band
  table is published, so the centres are taken evenly spaced over that range (3.13 nm apart).

The other registered scenes (KSC, Pavia, PaviaU, Salinas) have none here: their band removals are documented but
their sensors' calibration tables are not available to this project (docs/scenes_and_profiles.md).
"""
from __future__ import annotations

import numpy as np

__all__ = ["AVIRIS_1992_CENTRES", "INDIAN_PINES_REMOVED", "indian_pines_wavelengths", "samson_wavelengths",
           "nearest_bands"]

AVIRIS_1992_CENTRES = (
    400.02, 409.82, 419.62, 429.43, 439.25, 449.07, 458.90, 468.73,
    478.57, 488.41, 498.26, 508.12, 517.98, 527.85, 537.72, 547.60,
    557.49, 567.38, 577.28, 587.18, 597.09, 607.01, 616.93, 626.85,
    636.78, 646.72, 656.67, 666.61, 676.57, 686.53, 696.50, 686.91,
    696.55, 706.19, 715.83, 725.47, 735.11, 744.74, 754.38, 764.01,
    773.64, 783.27, 792.91, 802.53, 812.16, 821.79, 831.41, 841.04,
    850.66, 860.28, 869.91, 879.53, 889.14, 898.76, 908.38, 917.99,
    927.61, 937.22, 946.83, 956.45, 966.06, 975.66, 985.27, 994.88,
    1004.48, 1014.09, 1023.69, 1033.29, 1042.89, 1052.49, 1062.09, 1071.69,
    1081.29, 1090.88, 1100.48, 1110.07, 1119.66, 1129.25, 1138.84, 1148.43,
    1158.02, 1167.61, 1177.19, 1186.77, 1196.36, 1205.94, 1215.52, 1225.10,
    1234.68, 1244.26, 1253.83, 1263.41, 1272.98, 1282.55, 1273.00, 1282.96,
    1292.93, 1302.89, 1312.85, 1322.81, 1332.77, 1342.73, 1352.68, 1362.64,
    1372.59, 1382.54, 1392.49, 1402.44, 1412.39, 1422.34, 1432.28, 1442.23,
    1452.17, 1462.11, 1472.05, 1481.99, 1491.92, 1501.86, 1511.79, 1521.73,
    1531.66, 1541.59, 1551.52, 1561.44, 1571.37, 1581.30, 1591.22, 1601.14,
    1611.06, 1620.98, 1630.90, 1640.81, 1650.73, 1660.64, 1670.56, 1680.47,
    1690.38, 1700.28, 1710.19, 1720.10, 1730.00, 1739.90, 1749.81, 1759.71,
    1769.60, 1779.50, 1789.40, 1799.29, 1809.19, 1819.08, 1828.97, 1838.86,
    1848.75, 1858.63, 1868.52, 1878.40, 1888.28, 1883.24, 1893.25, 1903.26,
    1913.26, 1923.27, 1933.27, 1943.27, 1953.26, 1963.25, 1973.24, 1983.23,
    1993.22, 2003.20, 2013.18, 2023.16, 2033.13, 2043.10, 2053.07, 2063.04,
    2073.00, 2082.97, 2092.92, 2102.88, 2112.83, 2122.78, 2132.73, 2142.68,
    2152.62, 2162.56, 2172.50, 2182.43, 2192.37, 2202.30, 2212.22, 2222.15,
    2232.07, 2241.99, 2251.90, 2261.82, 2271.73, 2281.64, 2291.54, 2301.45,
    2311.35, 2321.25, 2331.14, 2341.03, 2350.92, 2360.81, 2370.70, 2380.58,
    2390.46, 2400.33, 2410.21, 2420.08, 2429.95, 2439.81, 2449.68, 2459.54,
    2469.40, 2479.25, 2489.11, 2498.96,
)

# 1-based AVIRIS bands the "corrected" Indian Pines cube drops
INDIAN_PINES_REMOVED = tuple(range(104, 109)) + tuple(range(150, 164)) + (220,)


def indian_pines_wavelengths() -> tuple[float, ...]:
    """The 200 band centres (nm) of Indian Pines' corrected cube."""
    drop = {b - 1 for b in INDIAN_PINES_REMOVED}
    return tuple(c for i, c in enumerate(AVIRIS_1992_CENTRES) if i not in drop)


def samson_wavelengths() -> tuple[float, ...]:
    """Samson's 156 band centres (nm), evenly spaced over 401-889 nm (module docstring)."""
    return tuple(float(v) for v in np.round(np.linspace(401.0, 889.0, 156), 2))


def nearest_bands(wavelengths, targets) -> tuple[int, ...]:
    """The index of the band centre nearest each target wavelength (nm)."""
    wl = np.asarray(wavelengths, np.float64)
    return tuple(int(np.argmin(np.abs(wl - t))) for t in targets)
