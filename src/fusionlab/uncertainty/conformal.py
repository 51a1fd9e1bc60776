"""Split conformal calibration of per-pixel intervals ``fused ± λ·score``, and how good they are.

Two calibrations, both on a calibration set disjoint from the test set (Angelopoulos & Bates, "A
gentle introduction to conformal prediction", 2021; Angelopoulos et al., "Image-to-image regression
with distribution-free uncertainty quantification", ICML 2022):

- ``quantile``: pooled over the calibration pixels, λ is the ⌈(n+1)(1−α)⌉-th smallest
  nonconformity ``|target − fused| / score`` (the finite-sample quantile), so a new pixel
  exchangeable with them lies in its interval with probability ≥ 1 − α;
- ``risk``: conformal risk control (Angelopoulos et al., "Conformal risk control", ICLR 2024) with
  the per-image loss "fraction of pixels outside their interval" (bounded by 1, non-increasing in
  λ): λ is the smallest value with ``n/(n+1)·R̂(λ) + 1/(n+1) ≤ α`` over the n calibration images, so
  the expected fraction of a new image's pixels outside their intervals is ≤ α; it needs
  n ≥ 1/α − 1 images.

Scores are floored at ``SCORE_FLOOR`` (in [0, 1] image units) so that a pixel where every member
agrees exactly still gets a finite nonconformity. Interval bounds are clipped to [0, 1], where the
clean image lies (clipping never changes whether a clean pixel is covered).
"""

import math
from collections.abc import Sequence

import torch

from fusionlab.utils.errors import ConfigError

METHODS = ("quantile", "risk")
SCORE_FLOOR = 1e-6
FRACTIONS = tuple(i / 50 for i in range(50))  # sparsification: fractions of pixels removed, 0 ... 0.98


def check_alphas(alphas) -> list[float]:
    """``alpha`` as a list of miscoverage levels in (0, 1)."""
    values = alphas if isinstance(alphas, (list, tuple)) else [alphas]
    out = []
    for a in values:
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not 0 < a < 1:
            raise ConfigError("alpha", f"miscoverage levels must be numbers in (0, 1), e.g. alpha=0.1; got {a!r}")
        out.append(float(a))
    if not out:
        raise ConfigError("alpha", "give at least one miscoverage level, e.g. alpha=0.1")
    return out


def min_images(alpha: float, method: str) -> int:
    """Calibration images needed: ``risk`` needs n with 1/(n+1) ≤ α; ``quantile`` one image."""
    return max(1, math.ceil(1 / alpha - 1 - 1e-9)) if method == "risk" else 1


def nonconformity(fused: torch.Tensor, score: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``|target − fused| / max(score, floor)`` per pixel (the fused image clamped to [0, 1])."""
    return (target.float() - fused.float().clamp(0, 1)).abs() / score.float().clamp_min(SCORE_FLOOR)


def quantile_lambda(residuals: Sequence[torch.Tensor], alpha: float) -> float:
    """The ⌈(n+1)(1−α)⌉-th smallest of all pixels' nonconformities (n pixels in all)."""
    r = torch.cat([x.flatten() for x in residuals])
    n = r.numel()
    k = math.ceil((n + 1) * (1 - alpha))
    if k > n:
        raise ConfigError("alpha", f"{alpha} is too small for {n} calibration pixels (needs n >= {math.ceil(1 / alpha - 1)})")
    return float(r.kthvalue(k).values)


def risk_lambda(residuals: Sequence[torch.Tensor], alpha: float) -> float:
    """Conformal risk control for the per-image miscovered fraction: the smallest λ with
    ``n/(n+1)·mean_i L_i(λ) + 1/(n+1) ≤ α``, ``L_i(λ)`` = fraction of image i's pixels with
    nonconformity > λ."""
    n = len(residuals)
    if n < min_images(alpha, "risk"):
        raise ConfigError("calibrate_dir", f"{n} calibration images are too few for alpha={alpha} with "
                                           f"conformal=risk: it needs at least {min_images(alpha, 'risk')}")
    threshold = (alpha * (n + 1) - 1) / n  # the largest empirical risk allowed
    r = torch.cat([x.flatten().double() for x in residuals])
    weights = torch.cat([torch.full((x.numel(),), 1.0 / (n * x.numel()), dtype=torch.float64) for x in residuals])
    r, order = r.sort(descending=True)
    cum = weights[order].cumsum(0)  # cum[j]: risk of lambda in [r[j+1], r[j]) = weight of pixels r >= r[j]
    # candidates: lambda = r[0] (risk 0: nothing above it) and lambda = r[j+1] where r drops after j
    steps = torch.nonzero(r[:-1] > r[1:]).flatten()
    ok = steps[cum[steps] <= threshold + 1e-12]
    return float(r[ok[-1] + 1]) if ok.numel() else float(r[0])


def calibrate(residuals: Sequence[torch.Tensor], alpha: float, method: str) -> float:
    """λ of ``method`` (``quantile`` or ``risk``) at level ``alpha`` from per-image nonconformities."""
    if method not in METHODS:
        raise ConfigError("conformal", f"must be one of {list(METHODS)}, got {method!r}")
    return quantile_lambda(residuals, alpha) if method == "quantile" else risk_lambda(residuals, alpha)


def bounds(fused: torch.Tensor, score: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lower, upper)`` = ``fused ± λ·max(score, floor)``, clipped to [0, 1]."""
    half = lam * score.float().clamp_min(SCORE_FLOOR)
    centre = fused.float().clamp(0, 1)
    return (centre - half).clamp(0, 1), (centre + half).clamp(0, 1)


def sparsification(error: torch.Tensor, score: torch.Tensor, fractions: Sequence[float] = FRACTIONS
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean absolute error of the pixels left after removing the given fractions of the most
    uncertain pixels (by ``score``) and, as the oracle, of the largest errors; both divided by the
    image's mean absolute error (Ilg et al. 2018). Returns ``(curve, oracle)``, each ``(F,)``."""
    e = error.flatten().double()
    n = e.numel()
    removed = torch.tensor([min(int(round(f * n)), n - 1) for f in fractions])

    def curve(order: torch.Tensor) -> torch.Tensor:
        cum = torch.cat([e.new_zeros(1), e[order].cumsum(0)])
        return (cum[-1] - cum[removed]) / (n - removed).double()

    total = e.mean().clamp_min(1e-12)
    # ties (a constant score) in a fixed random order, not raster order
    shuffle = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    by_score = shuffle[torch.argsort(score.flatten().double()[shuffle], descending=True, stable=True)]
    by_error = torch.argsort(e, descending=True, stable=True)
    return curve(by_score) / total, curve(by_error) / total


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    denom = (a.square().sum() * b.square().sum()).sqrt()
    return float((a * b).sum() / denom) if denom > 0 else float("nan")


def image_metrics(fused: torch.Tensor, score: torch.Tensor, target: torch.Tensor, lambdas: dict[float, float]
                  ) -> dict:
    """Per-image interval quality of one image (``(C, H, W)`` tensors): coverage and mean width in
    gray levels (of 255) at each calibrated α, the Pearson correlation of the score with the absolute
    error, and the sparsification curve with its AUSE (area between it and the oracle's)."""
    error = (target.float() - fused.float().clamp(0, 1)).abs()
    curve, oracle = sparsification(error, score)
    out = {"score_error_corr": _pearson(score, error), "ause": float((curve - oracle).mean()),
           "sparsification": curve.tolist(), "oracle": oracle.tolist()}
    for alpha, lam in lambdas.items():
        lower, upper = bounds(fused, score, lam)
        t = target.float()
        out[f"coverage@{alpha:g}"] = float(((t >= lower) & (t <= upper)).double().mean())
        out[f"width@{alpha:g}"] = float((upper - lower).double().mean() * 255.0)
    return out
