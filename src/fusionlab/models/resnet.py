"""EDSR-style residual network (Lim et al., 2017) at full resolution (no upsampler: the
super-resolution task feeds the bicubic-upsampled image)."""

import torch
from torch import nn

from fusionlab.models.blocks import ResBlock, check_positive, conv3x3


class EDSR(nn.Module):
    """Head conv, ``n_blocks`` residual blocks, a conv, a global skip, tail conv; residual on input.

    :param res_scale: residual scaling inside blocks (0.1 for very wide EDSR).
    """

    stride = 1

    def __init__(self, channels: int, n_blocks: int = 8, width: int = 64, res_scale: float = 1.0) -> None:
        super().__init__()
        check_positive("EDSR", channels=channels, n_blocks=n_blocks, width=width)
        self.head = conv3x3(channels, width)
        self.body = nn.Sequential(*[ResBlock(width, res_scale) for _ in range(n_blocks)],
                                  conv3x3(width, width))
        self.tail = conv3x3(width, channels)
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.head(x)
        return x + self.tail(f + self.body(f))
