"""Encoder branches for feature fusion: each maps an image ``(B, C, H, W)`` to features
``(B, width, H, W)`` through a stem and ``n_stages`` stages that keep size and width, so that
branches can be fused after any stage. The branches differ in inductive bias."""

import torch
import torch.nn.functional as F
from torch import nn

from fusionlab.models.blocks import ResBlock, check_positive, conv3x3


class Encoder(nn.Module):
    """Base: ``stem`` then ``stages``; ``forward`` runs them all. ``stride`` as the backbones."""

    stride = 1

    def __init__(self, channels: int, width: int, n_stages: int) -> None:
        super().__init__()
        check_positive(type(self).__name__, channels=channels, width=width, n_stages=n_stages)
        self.channels, self.width, self.n_stages = channels, width, n_stages
        self.stem = nn.Sequential(conv3x3(channels, width), nn.ReLU(inplace=True))
        self.stages = nn.ModuleList()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.stem(x)
        for stage in self.stages:
            f = stage(f)
        return f


class PlainEncoder(Encoder):
    """Plain 3x3 conv-ReLU stacks (small receptive field, DnCNN-like)."""

    def __init__(self, channels: int, width: int = 32, n_stages: int = 2, layers_per_stage: int = 2) -> None:
        super().__init__(channels, width, n_stages)
        for _ in range(n_stages):
            self.stages.append(nn.Sequential(*[m for _ in range(layers_per_stage)
                                               for m in (conv3x3(width, width), nn.ReLU(inplace=True))]))


class DilatedEncoder(Encoder):
    """Dilated 3x3 convs (dilations cycling through ``dilations``): a large receptive field."""

    def __init__(self, channels: int, width: int = 32, n_stages: int = 2, layers_per_stage: int = 2,
                 dilations: tuple[int, ...] = (2, 4)) -> None:
        super().__init__(channels, width, n_stages)
        dil = list(dilations)
        for s in range(n_stages):
            layers = []
            for i in range(layers_per_stage):
                d = dil[(s * layers_per_stage + i) % len(dil)]
                layers += [conv3x3(width, width, dilation=d), nn.ReLU(inplace=True)]
            self.stages.append(nn.Sequential(*layers))


class _MultiScaleStage(nn.Module):
    """Full-resolution conv plus a half-resolution path upsampled and merged (a U-Net step)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.full = nn.Sequential(conv3x3(width, width), nn.ReLU(inplace=True))
        self.coarse = nn.Sequential(conv3x3(width, width), nn.ReLU(inplace=True), conv3x3(width, width),
                                  nn.ReLU(inplace=True))
        self.merge = nn.Sequential(nn.Conv2d(2 * width, width, 1), nn.ReLU(inplace=True))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        half = self.coarse(F.avg_pool2d(f, 2))
        up = F.interpolate(half, size=f.shape[-2:], mode="bilinear", align_corners=False)
        return self.merge(torch.cat([self.full(f), up], dim=1))


class MultiScaleEncoder(Encoder):
    """Each stage mixes full- and half-resolution paths (U-Net-style context at full size)."""

    stride = 2

    def __init__(self, channels: int, width: int = 32, n_stages: int = 2) -> None:
        super().__init__(channels, width, n_stages)
        for _ in range(n_stages):
            self.stages.append(_MultiScaleStage(width))


class ResidualEncoder(Encoder):
    """EDSR residual blocks (identity paths, no normalisation)."""

    def __init__(self, channels: int, width: int = 32, n_stages: int = 2, blocks_per_stage: int = 1) -> None:
        super().__init__(channels, width, n_stages)
        for _ in range(n_stages):
            self.stages.append(nn.Sequential(*[ResBlock(width) for _ in range(blocks_per_stage)]))
