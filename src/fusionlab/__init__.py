"""fusionlab: train and compare ways of fusing several models for image generation and editing."""

__version__ = "0.1.0"
