"""Paired statistics: known values and agreement with scipy's own tests."""

import math

import numpy as np
import pytest
from scipy import stats

from fusionlab.reporting.stats import holm, paired_difference, seed_interval, verdict, welch_interval


def test_constant_difference_has_a_point_interval_and_full_win_rate():
    b = np.linspace(25, 30, 12)
    d = paired_difference(b + 0.1, b)
    assert d["mean"] == pytest.approx(0.1) and d["ci_low"] == pytest.approx(0.1) and d["ci_high"] == pytest.approx(0.1)
    assert d["win_rate"] == 1.0 and d["distinguishable"]
    same = paired_difference(b, b)
    assert same["mean"] == 0 and same["p_value"] == 1.0 and not same["distinguishable"] and same["win_rate"] == 0


def test_interval_covers_the_mean_and_matches_the_t_interval_on_normal_data():
    rng = np.random.default_rng(3)
    b = rng.normal(28, 1, 200)
    a = b + rng.normal(0.05, 0.2, 200)
    d = paired_difference(a, b)
    t = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert d["ci_low"] < d["mean"] < d["ci_high"]
    assert d["ci_low"] == pytest.approx(t.low, abs=0.01) and d["ci_high"] == pytest.approx(t.high, abs=0.01)
    assert d["p_value"] == pytest.approx(stats.wilcoxon(a - b).pvalue)


def test_lower_is_better_metrics_count_wins_the_other_way():
    a = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    d = paired_difference(a, [v + 0.1 for v in a], higher_is_better=False)
    assert d["win_rate"] == 1.0 and d["mean"] == pytest.approx(-0.1)
    assert "is better than" in verdict({**d, "distinguishable": True}, "style", "", "A", "B", higher_is_better=False)


def test_mismatched_pairs_are_refused():
    with pytest.raises(ValueError, match="same 1-d shape"):
        paired_difference([1, 2, 3], [1, 2])


def test_seed_interval_is_the_t_interval():
    s = seed_interval([30.0, 30.5, 31.0])
    half = stats.t.ppf(0.975, 2) * 0.5 / math.sqrt(3)
    assert s["mean"] == pytest.approx(30.5) and s["std"] == pytest.approx(0.5)
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((30.5 - half, 30.5 + half))
    one = seed_interval([30.0])
    assert one["n"] == 1 and math.isnan(one["ci_low"])


def test_welch_interval_matches_scipy():
    a, b = [1.0, 2.0, 3.5], [2.0, 3.0, 4.0, 4.5]
    w = welch_interval(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert w["p_value"] == pytest.approx(ref.pvalue) and w["ci_low"] == pytest.approx(ref.confidence_interval().low)


def test_holm_known_values():
    # sorted p: 0.01, 0.03, 0.04 -> 3*0.01, max(0.03, 2*0.03), max(0.06, 1*0.04)
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": float("nan")})
    assert adjusted["a"] == pytest.approx(0.03) and adjusted["c"] == pytest.approx(0.06)
    assert adjusted["b"] == pytest.approx(0.06) and math.isnan(adjusted["d"])
    assert holm({"x": 0.6, "y": 0.7}) == {"x": 1.0, "y": 1.0}


def test_verdict_words():
    nd = {"mean": 0.02, "ci_low": -0.05, "ci_high": 0.09, "distinguishable": False}
    assert verdict(nd, "PSNR", " dB", "gated", "mean").startswith("not distinguishable: gated vs mean on PSNR")
    yes = {"mean": 0.12, "ci_low": 0.05, "ci_high": 0.19, "distinguishable": True}
    assert verdict(yes, "PSNR", " dB", "gated", "mean") == \
        "gated is better than mean on PSNR: +0.120 dB [+0.050 dB, +0.190 dB]"
