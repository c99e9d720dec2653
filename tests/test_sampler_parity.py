"""The adoption rule of benchmarks/sampler_parity.py on planted records: inside DDIM-50's seed range or better, and no
significant loss (one-sided Welch test), for every rule metric; physical checks; no verdict without every metric."""
import importlib.util
from pathlib import Path

import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sp():
    spec = importlib.util.spec_from_file_location("sampler_parity", ROOT / "benchmarks" / "sampler_parity.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


BASE = {"FID": 20.0, "SWD": 0.013, "recall_patches": 0.85, "precision_patches": 0.05, "coherence_gap": 0.06,
        "roughness_gap": 0.12}
PHYS = {"negative_reflectance_share": 0.0, "negative_abundance_share": 0.0, "simplex_angle_mean": 1e-8}


def sets(shifts: dict, steps: int, phys=None, drop=()):
    """Three seeds of records: BASE moved by ``shifts[metric] * (1, 1.05, 0.95)`` (a small spread of its own)."""
    out = {}
    for i, f in enumerate((1.0, 1.05, 0.95)):
        m = {k: v + shifts.get(k, 0.0) * f + (i - 1) * 1e-3 * v for k, v in BASE.items() if k not in drop}
        out[str(i)] = {"metrics": m, "physical": dict(phys or PHYS), "sampler": {"steps": steps}}
    return out


def test_verdicts_follow_the_rule(sp):
    res = {"G": {"ddim50": sets({}, 50),
                 "same": sets({"FID": 0.005}, 10),                       # inside the range
                 "better": sets({"FID": -3.0, "recall_patches": 0.05}, 10),  # beyond it on the better side
                 "worse_fid": sets({"FID": 2.0}, 10),                    # higher FID: worse
                 "rough": sets({"coherence_gap": 0.08}, 10),             # a texture gap doubled
                 "negative": sets({}, 10, {**PHYS, "negative_reflectance_share": 1e-3}),
                 "unmeasured": sets({}, 10, drop=("coherence_gap",)),
                 "unmeasured_but_worse": sets({"FID": 2.0}, 10, drop=("coherence_gap",))}}
    v = sp.verdicts(res, "G", list(res["G"]))
    assert v["same"]["passes"] is True and v["better"]["passes"] is True
    assert v["worse_fid"]["passes"] is False and not v["worse_fid"]["values"]["FID"]["within"]
    assert v["worse_fid"]["values"]["FID"]["p_worse"] < 0.05
    assert v["rough"]["passes"] is False and v["rough"]["values"]["FID"]["passes"]
    assert v["negative"]["passes"] is False
    assert v["unmeasured"]["passes"] is None and v["unmeasured_but_worse"]["passes"] is False
    md = sp.markdown(res, {"n": 256, "seeds": [0, 1, 2], "machine": "test"}, list(res["G"]))
    assert "| unmeasured | 10 | 3 |" in md and "not measured" in md
    assert "Fewest passing" not in md  # none of the names is a sampler form


def test_welch_direction_and_scipy(sp):
    ref, worse = [10.0, 11.0, 12.0], [14.0, 15.0, 16.0]
    p = sp.welch_worse(ref, worse, direction=-1)  # lower is better: higher values are worse
    assert p == pytest.approx(stats.ttest_ind(worse, ref, equal_var=False, alternative="greater").pvalue)
    assert p < 0.05 and sp.welch_worse(ref, worse, direction=+1) > 0.95
    assert sp.welch_worse([1.0], worse, -1) != sp.welch_worse([1.0], worse, -1)  # NaN with one value
    assert sp.welch_worse([0.0, 0.0], [0.0, 0.0], -1) != sp.welch_worse([0.0, 0.0], [0.0, 0.0], -1)  # no spread


def test_settings_names_and_evaluations(sp):
    g = sp.settings([10, 15], [25])
    assert g["ddim50"] == dict(sampler="ddim", steps=50, eta=1.0)
    assert g["dpmpp2m10"] == dict(sampler="dpmpp2m", steps=10) and g["dpmpp2m-sde25"]["sampler"] == "dpmpp2m-sde"
    assert list(g) == ["ddim50", "dpmpp2m10", "dpmpp2m15", "dpmpp2m-sde25"]
    g = sp.settings([], lambda_steps=[20], ddim_steps=[50, 30])  # DDIM-50 is the reference, not a setting again
    assert list(g) == ["ddim50", "ddim30", "ddim-lambda20"]
    assert g["ddim-lambda20"] == dict(sampler="ddim-lambda", steps=20, eta=1.0)
