import numpy as np
import pytest
from scipy import stats as sps

from llmperf_nb import stats


def test_summary_matches_scipy_reference():
    x = [101.2, 99.8, 100.5, 98.9, 102.3, 100.1]
    s = stats.summarize(x)
    lo, hi = sps.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=sps.sem(x))
    assert s["mean"] == pytest.approx(np.mean(x))
    assert s["median"] == pytest.approx(np.median(x))
    assert s["std"] == pytest.approx(np.std(x, ddof=1))
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((lo, hi))
    assert s["cv"] == pytest.approx(np.std(x, ddof=1) / np.mean(x))


def test_single_sample_has_no_interval_and_is_flagged():
    s = stats.summarize([5.0])
    assert s["n"] == 1 and s["std"] == 0 and s["ci_low"] is None
    assert stats.stability_warnings(s) == ["fewer than 2 repetitions: no spread"]


def test_noisy_samples_are_flagged_stable_ones_not():
    assert stats.stability_warnings(stats.summarize([100, 100.5, 99.7, 100.2, 99.9])) == []
    noisy = stats.stability_warnings(stats.summarize([100, 80, 120, 90, 110]))
    assert any(w.startswith("CV") for w in noisy) and any("95% CI" in w for w in noisy)


def test_none_values_are_ignored_and_empty_is_none():
    assert stats.summarize([None, None]) is None
    assert stats.summarize([1.0, None, 3.0])["n"] == 2
