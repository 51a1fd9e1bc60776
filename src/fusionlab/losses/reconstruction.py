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


def per_sample_loss(loss: nn.Module, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The loss of each sample of a batch, shape ``(B,)``, for L1, MSE and Charbonnier losses
    (whose batch value is the mean of these)."""
    diff = pred.float() - target.float()
    if isinstance(loss, nn.L1Loss):
        elementwise = diff.abs()
    elif isinstance(loss, nn.MSELoss):
        elementwise = diff * diff
    elif isinstance(loss, CharbonnierLoss):
        elementwise = torch.sqrt(diff * diff + loss.eps**2)
    else:
        return torch.stack([loss(p[None], t[None]) for p, t in zip(pred, target)])
    return elementwise.flatten(1).mean(dim=1)
