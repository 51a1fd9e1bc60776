"""Paired statistics for "does A beat B, and by how much?".

Two runs evaluated on the same test images are compared image by image: the per-image differences
``d_i = metric_A(i) - metric_B(i)`` are what varies, not the two means. For them this module gives
the mean, a 95% bootstrap confidence interval (``scipy.stats.bootstrap``, paired, fixed seed), the
two-sided Wilcoxon signed-rank p-value (``scipy.stats.wilcoxon``) and the win rate (share of images
where A is better). A difference whose interval contains 0 is *not distinguishable*.

Across seeds (several trainings of one setting), :func:`seed_interval` gives the mean of the
per-seed values with a t-interval (``scipy.stats.t``). :func:`holm` adjusts a family of p-values
(Holm 1979); scipy ships Benjamini-Hochberg (``false_discovery_control``) but not Holm, so it is the
few lines below.
"""

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
N_RESAMPLES = 9999
SEED = 0
# Below this many paired images no claim is made: the bootstrap interval of a handful of values is
# too narrow, and the smallest two-sided Wilcoxon p-value with 5 pairs is 0.0625.
MIN_PAIRS = 6


def paired_difference(a: Sequence[float], b: Sequence[float], *, higher_is_better: bool = True,
                      confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> dict:
    """Mean of ``a - b`` over paired items with its bootstrap interval, Wilcoxon p and win rate.

    :param a: per-image values of the candidate.
    :param b: per-image values of the baseline, same images in the same order.
    :param higher_is_better: a "win" is ``a > b`` (PSNR, SSIM) or ``a < b`` (distances).
    :return: ``{"n", "mean", "ci_low", "ci_high", "p_value", "win_rate", "std", "distinguishable"}``.
    """
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired values need the same 1-d shape, got {x.shape} and {y.shape}")
    d = x - y
    n = int(d.size)
    out = {"n": n, "mean": float(d.mean()) if n else float("nan"),
           "std": float(d.std(ddof=1)) if n > 1 else float("nan")}
    wins = (d > 0) if higher_is_better else (d < 0)
    out["win_rate"] = float(wins.mean()) if n else float("nan")
    if n < 2 or np.allclose(d, d[0], rtol=0.0, atol=1e-12):
        # no spread: the bootstrap distribution is a point (and Wilcoxon has no ranks when d == 0)
        value = float(d[0]) if n else float("nan")  # (a constant shift: its interval is that point)
        out.update(ci_low=value, ci_high=value,
                   p_value=1.0 if n == 0 or value == 0 else float("nan"))
    else:
        res = stats.bootstrap((x, y), lambda u, v, axis: np.mean(u - v, axis=axis), paired=True,
                              vectorized=True, confidence_level=confidence, n_resamples=n_resamples,
                              method="BCa", rng=np.random.default_rng(seed))
        lo, hi = res.confidence_interval
        if not (np.isfinite(lo) and np.isfinite(hi)):  # BCa degenerates on tiny samples
            res = stats.bootstrap((x, y), lambda u, v, axis: np.mean(u - v, axis=axis), paired=True,
                                  vectorized=True, confidence_level=confidence, n_resamples=n_resamples,
                                  method="percentile", rng=np.random.default_rng(seed))
            lo, hi = res.confidence_interval
        nonzero = d[d != 0]
        p = float(stats.wilcoxon(nonzero).pvalue) if nonzero.size else 1.0
        out.update(ci_low=float(lo), ci_high=float(hi), p_value=p)
    out["distinguishable"] = bool(n >= MIN_PAIRS and np.isfinite(out["ci_low"])
                                  and (out["ci_low"] > 0 or out["ci_high"] < 0))
    return out


def seed_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> dict:
    """Mean over seeds with its t-interval and the between-seed std (n-1); one seed: no interval."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    n = int(v.size)
    out = {"n": n, "mean": float(v.mean()) if n else float("nan"),
           "std": float(v.std(ddof=1)) if n > 1 else float("nan"),
           "ci_low": float("nan"), "ci_high": float("nan")}
    if n > 1:
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * out["std"] / np.sqrt(n)
        out["ci_low"], out["ci_high"] = out["mean"] - half, out["mean"] + half
    return out


def welch_interval(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> dict:
    """Difference of two seed means with Welch's t-interval (seeds are not paired across settings)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    out = {"mean": float(x.mean() - y.mean()) if x.size and y.size else float("nan"),
           "ci_low": float("nan"), "ci_high": float("nan"), "p_value": float("nan")}
    if x.size > 1 and y.size > 1:
        res = stats.ttest_ind(x, y, equal_var=False)
        ci = res.confidence_interval(confidence)
        out.update(ci_low=float(ci.low), ci_high=float(ci.high), p_value=float(res.pvalue))
    return out


def holm(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone); NaN p-values are left out and kept NaN."""
    finite = sorted(((p, k) for k, p in p_values.items() if p == p), key=lambda t: t[0])
    m = len(finite)
    adjusted: dict[str, float] = {k: float("nan") for k, p in p_values.items() if p != p}
    running = 0.0
    for rank, (p, key) in enumerate(finite):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[key] = running
    return adjusted


def verdict(diff: Mapping, metric: str, unit: str = "", candidate: str = "A", baseline: str = "B",
            higher_is_better: bool = True) -> str:
    """The comparison in words, e.g. ``"A is better than B by 0.12 dB [0.05, 0.19]"``."""
    lo, hi, mean = diff["ci_low"], diff["ci_high"], diff["mean"]
    fmt = (lambda v: f"{v:+.3f}{unit}") if unit else (lambda v: f"{v:+.4f}")
    interval = f"{fmt(mean)} [{fmt(lo)}, {fmt(hi)}]"
    if diff.get("n") is not None and diff["n"] < MIN_PAIRS:  # (None: over seeds, not images)
        return (f"too few images to tell: {candidate} vs {baseline} on {metric} {interval} "
                f"(n={diff['n']}, fewer than {MIN_PAIRS} paired images)")
    if not diff.get("distinguishable"):
        return f"not distinguishable: {candidate} vs {baseline} on {metric} {interval}, interval contains 0"
    better = (mean > 0) == higher_is_better
    return f"{candidate} is {'better' if better else 'worse'} than {baseline} on {metric}: {interval}"


__all__ = ["paired_difference", "seed_interval", "welch_interval", "holm", "verdict", "CONFIDENCE"]
