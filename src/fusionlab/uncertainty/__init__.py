"""Calibrated per-pixel error bounds for restorations: fusion-derived uncertainty scores
(:mod:`~fusionlab.uncertainty.scores`) scaled by split conformal calibration
(:mod:`~fusionlab.uncertainty.conformal`)."""

from fusionlab.uncertainty.conformal import METHODS, bounds, calibrate, image_metrics, min_images, nonconformity
from fusionlab.uncertainty.scores import HEURISTICS, check_heuristic, fused_and_score

__all__ = ["HEURISTICS", "METHODS", "bounds", "calibrate", "check_heuristic", "fused_and_score", "image_metrics",
           "min_images", "nonconformity"]
