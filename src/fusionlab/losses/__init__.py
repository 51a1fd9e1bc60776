"""Loss functions (pure torch)."""

from fusionlab.losses.reconstruction import CharbonnierLoss, per_sample_loss

__all__ = ["CharbonnierLoss", "per_sample_loss"]
