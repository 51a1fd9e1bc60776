"""Editing tasks: degradations applied on the fly to clean images to make (source, target) pairs."""

from fusionlab.tasks.degradations import BicubicDownscale, Degradation, GaussianNoise

__all__ = ["BicubicDownscale", "Degradation", "GaussianNoise"]
