"""Building blocks shared by the backbones and encoders."""

import torch
from torch import nn


def conv3x3(c_in: int, c_out: int, dilation: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=dilation, dilation=dilation, bias=bias)


def norm_layer(kind: str, channels: int) -> nn.Module:
    """``batch``, ``instance`` or ``none`` (identity)."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}: expected batch, instance or none")


class ResBlock(nn.Module):
    """EDSR residual block: conv-ReLU-conv, scaled, added to the input (no normalisation)."""

    def __init__(self, width: int, res_scale: float = 1.0, dilation: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv3x3(width, width, dilation), nn.ReLU(inplace=True), conv3x3(width, width, dilation)
        )
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.body(x)


def check_positive(name: str, **values: int) -> None:
    for key, value in values.items():
        if int(value) != value or value < 1:
            raise ValueError(f"{name}: {key} must be a positive integer, got {value}")


@torch.no_grad()
def init_normal(module: nn.Module, std: float = 0.02) -> nn.Module:
    """DCGAN's initialisation (Radford et al. 2016; ``init_weights(net, "normal", 0.02)`` in
    pytorch-CycleGAN-and-pix2pix): conv weights ~ N(0, std), BatchNorm scales ~ N(1, std), biases 0.
    Spectral-normalised convs are initialised through their original (unnormalised) weight."""
    from torch.nn.utils import parametrize

    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            weight = (m.parametrizations.weight.original if parametrize.is_parametrized(m, "weight")
                      else m.weight)
            weight.normal_(0.0, std)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            m.weight.normal_(1.0, std)
            m.bias.zero_()
    return module
