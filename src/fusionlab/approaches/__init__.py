"""Approaches: one LightningModule per way of (fusing) models. Each is selected by ``approach=``."""
