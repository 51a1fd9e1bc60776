"""DnCNN (Zhang et al., TIP 2017): a plain conv stack predicting the residual (the noise)."""

import torch
from torch import nn

from fusionlab.models.blocks import check_positive, conv3x3, norm_layer


class DnCNN(nn.Module):
    """``depth`` 3x3 conv layers of ``width`` channels; output = input - predicted noise.

    :param channels: image channels in and out.
    :param depth: number of conv layers (17 in the paper for sigma-specific denoising).
    :param width: feature channels (64 in the paper).
    :param norm: ``batch`` (the paper), ``instance`` or ``none``.
    """

    stride = 1

    def __init__(self, channels: int, depth: int = 17, width: int = 64, norm: str = "batch") -> None:
        super().__init__()
        check_positive("DnCNN", channels=channels, width=width)
        if depth < 2:
            raise ValueError(f"DnCNN: depth must be >= 2, got {depth}")
        layers: list[nn.Module] = [conv3x3(channels, width), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [conv3x3(width, width, bias=norm == "none"), norm_layer(norm, width),
                       nn.ReLU(inplace=True)]
        layers.append(conv3x3(width, channels))
        self.body = nn.Sequential(*layers)
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.body(x)
