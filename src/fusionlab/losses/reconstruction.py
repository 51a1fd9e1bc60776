"""Reconstruction losses beyond torch's own ``L1Loss`` / ``MSELoss``."""

import torch
from torch import nn


class CharbonnierLoss(nn.Module):
    """Charbonnier (smooth L1): ``mean(sqrt((x - y)^2 + eps^2))``.

    :param eps: smoothing constant; the loss tends to L1 as ``eps`` tends to 0.
    """

    def __init__(self, eps: float = 1e-3) -> None:
        super().__init__()
        if eps <= 0:
            raise ValueError(f"CharbonnierLoss: eps must be > 0, got {eps}")
        self.eps = eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        diff = pred.float() - target.float()
        return torch.sqrt(diff * diff + self.eps**2).mean()
