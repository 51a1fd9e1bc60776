"""The VAE's encoder: an image to the mean and log-variance of ``q(z | x)``.

Strided 4x4 convs (BatchNorm + LeakyReLU) halve the resolution down to 4x4, mirroring
:class:`~fusionlab.models.dcgan.DCGANGenerator`, which serves as the decoder (so a VAE decoder is a
generator like any other, and can be a fusion member).
"""

import math

import torch
from torch import nn

from fusionlab.models.discriminators import check_image_size


class ConvEncoder(nn.Module):
    """:param width: channels of the first layer; layer ``i`` has ``width * 2**i`` (capped at 8x)."""

    def __init__(self, latent_dim: int = 64, channels: int = 1, image_size: int = 32, width: int = 32) -> None:
        super().__init__()
        check_image_size(image_size)
        self.latent_dim = latent_dim
        layers, c = [], channels
        for i in range(int(math.log2(image_size)) - 2):  # down to 4x4
            c_out = width * min(2 ** i, 8)
            layers += [nn.Conv2d(c, c_out, 4, 2, 1, bias=i == 0), *([nn.BatchNorm2d(c_out)] if i else []),
                       nn.LeakyReLU(0.2)]
            c = c_out
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(c * 16, 2 * latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.body(x)).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)
