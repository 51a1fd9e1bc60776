"""Editing tasks: degradations applied on the fly to clean images to make (source, target) pairs,
and the unpaired tasks (style transfer, generation)."""

from fusionlab.tasks.degradations import BicubicDownscale, Degradation, GaussianNoise
from fusionlab.tasks.unpaired import Generation, StyleTransfer

__all__ = ["BicubicDownscale", "Degradation", "GaussianNoise", "Generation", "StyleTransfer"]
