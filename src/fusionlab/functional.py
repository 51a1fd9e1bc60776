"""Small pure-torch helpers shared by models and losses (no other fusionlab imports)."""

import torch
import torch.nn.functional as F


def mean_std(feat: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Channel-wise mean and standard deviation over H, W (float32): two ``(B, C, 1, 1)`` tensors."""
    feat = feat.float()
    mean = feat.mean(dim=(-2, -1), keepdim=True)
    std = (feat.var(dim=(-2, -1), keepdim=True, unbiased=False) + eps).sqrt()
    return mean, std


def pad_to_multiple(x: torch.Tensor, stride: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad H and W up to multiples of ``stride`` (reflect where possible); return the original size."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % stride, (-w) % stride
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)
