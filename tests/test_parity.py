"""hudlib.parity: the no-worse rule shared by the sampler parity benchmark and the cross-sensor study."""
import pytest
from scipy import stats

from hudlib.parity import no_worse, welch_worse


def test_inside_or_better_passes_and_worse_fails_in_both_directions():
    ref = [1.0, 1.5, 2.0]
    assert no_worse(ref, [1.6, 1.8, 1.7], -1)["passes"]            # inside the range
    assert no_worse(ref, [0.5, 0.6, 0.7], -1)["passes"]            # beyond it on the better side (lower)
    worse = no_worse(ref, [3.5, 3.6, 3.7], -1)
    assert not worse["within"] and not worse["passes"] and worse["p_worse"] < 0.05
    assert no_worse(ref, [3.5, 3.6, 3.7], +1)["passes"]            # the same values are better when higher is
    assert not no_worse(ref, [0.5, 0.6, 0.7], +1)["passes"]
    r = no_worse(ref, [1.6, 1.8, 1.7], -1)
    assert r["mean"] == pytest.approx(1.7) and (r["min"], r["max"]) == (1.6, 1.8)


def test_a_consistent_loss_inside_the_range_fails_on_the_test():
    """The range alone lets through a candidate that is inside it but significantly worse: the Welch half stops it."""
    ref = [0.80, 0.92, 0.925, 0.93, 0.935, 0.94]                   # higher is better; one low seed widens the range
    cand = [0.84, 0.842, 0.844, 0.846, 0.848]
    r = no_worse(ref, cand, +1)
    assert r["within"] and r["p_worse"] < 0.05 and not r["passes"]
    assert r["p_worse"] == pytest.approx(stats.ttest_ind(cand, ref, equal_var=False, alternative="less").pvalue)


def test_bad_arguments_and_nan():
    with pytest.raises(ValueError, match="at least one"):
        no_worse([], [1.0], -1)
    with pytest.raises(ValueError, match="direction"):
        no_worse([1.0], [1.0], 0)
    assert welch_worse([1.0], [2.0, 3.0], -1) != welch_worse([1.0], [2.0, 3.0], -1)  # NaN: one value a side
    assert no_worse([1.0, 2.0], [1.5], -1)["passes"]               # no test possible: the range decides
