"""Loss functions (pure torch)."""

from fusionlab.losses.reconstruction import CharbonnierLoss

__all__ = ["CharbonnierLoss"]
