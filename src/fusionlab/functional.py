"""Small pure-torch helpers shared by models and losses (no other fusionlab imports)."""

import torch


def mean_std(feat: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Channel-wise mean and standard deviation over H, W (float32): two ``(B, C, 1, 1)`` tensors."""
    feat = feat.float()
    mean = feat.mean(dim=(-2, -1), keepdim=True)
    std = (feat.var(dim=(-2, -1), keepdim=True, unbiased=False) + eps).sqrt()
    return mean, std
