"""Fusion operators: each fuses K tensors of one shape into one, for images or feature maps.

The same names serve both levels, so ``fusion=NAME`` means the same operator for the ensemble
(member output images) and for feature fusion (encoder feature maps).
"""

from fusionlab.fusion.operators import (
    Attention,
    FusionOperator,
    Gated,
    Learned,
    Mean,
    Median,
    Stacked,
    Weighted,
)

__all__ = ["Attention", "FusionOperator", "Gated", "Learned", "Mean", "Median", "Stacked", "Weighted"]
