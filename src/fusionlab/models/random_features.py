"""A fixed feature space for style and content losses that needs no downloaded weights: wide banks
of random convolution filters at several sizes (Ustyuzhaninov et al. 2017, "What does it take to
generate natural textures?", whose single-layer multi-scale random model synthesises textures
about as well as VGG; He et al. 2016, "A powerful generative model using random weights for the
deep image representation").

Each bank has ``width`` filters of one size, drawn from N(0, 1) with a seed, made zero-mean (no
response to flat colour) and unit-norm, applied to the centred image, followed by a ReLU. The
feature list is ordered from the largest filters to the smallest, so that index ``-1`` (the
approach's default content layer) is the finest structure. The seed, sizes and width are config
values; the same values give the same space in every run, which also makes the space a fixed yard
stick for style distances between runs (``style_distance_fixed`` in the style evaluator).
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class RandomMultiscaleFeatures(nn.Module):
    """:param channels: image channels (gray images are repeated to 3 when ``channels`` is 3).
    :param kernel_sizes: filter sizes, one bank each (odd).
    :param width: filters per bank.
    :param seed: the generator seed of the filters."""

    def __init__(self, channels: int = 3, kernel_sizes: Sequence[int] = (3, 5, 9, 15), width: int = 64,
                 seed: int = 0) -> None:
        super().__init__()
        sizes = sorted({int(k) for k in kernel_sizes}, reverse=True)
        if not sizes or any(k < 1 or k % 2 == 0 for k in sizes):
            raise ValueError(f"kernel_sizes must be odd and >= 1, got {list(kernel_sizes)}")
        self.channels, self.kernel_sizes, self.width, self.seed = channels, sizes, int(width), int(seed)
        g = torch.Generator().manual_seed(int(seed))
        for k in sizes:
            w = torch.randn(self.width, channels, k, k, generator=g)
            w = w - w.mean(dim=(1, 2, 3), keepdim=True)
            w = w / w.flatten(1).norm(dim=1).clamp_min(1e-8).view(-1, 1, 1, 1)
            self.register_buffer(f"bank{k}", w, persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):
        return super().train(False)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = image.float()
        if x.shape[1] != self.channels:
            x = x.expand(-1, self.channels, -1, -1) if x.shape[1] == 1 else x.mean(1, keepdim=True)
        x = 2.0 * x - 1.0
        return [F.relu(F.conv2d(x, getattr(self, f"bank{k}").to(x.device), padding=k // 2))
                for k in self.kernel_sizes]
