"""A small U-Net (Ronneberger et al., 2015) predicting a residual on its input."""

import torch
from torch import nn

from fusionlab.models.blocks import check_positive, conv3x3, norm_layer


def double_conv(c_in: int, c_out: int, norm: str) -> nn.Sequential:
    return nn.Sequential(
        conv3x3(c_in, c_out), norm_layer(norm, c_out), nn.ReLU(inplace=True),
        conv3x3(c_out, c_out), norm_layer(norm, c_out), nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Encoder of ``depth`` stride-2 levels (width doubling), decoder with skip connections.

    H and W must be multiples of ``stride = 2**depth`` (validation pads to it).
    """

    def __init__(self, channels: int, depth: int = 3, width: int = 32, norm: str = "none") -> None:
        super().__init__()
        check_positive("UNet", channels=channels, depth=depth, width=width)
        widths = [width * 2**i for i in range(depth + 1)]
        self.inc = double_conv(channels, widths[0], norm)
        self.down = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), double_conv(widths[i], widths[i + 1], norm)) for i in range(depth)
        )
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(depth))
        )
        self.dec = nn.ModuleList(double_conv(2 * widths[i], widths[i], norm) for i in reversed(range(depth)))
        self.out = nn.Conv2d(widths[0], channels, 1)
        self.stride = 2**depth
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        h = skips.pop()
        for up, dec in zip(self.up, self.dec):
            h = dec(torch.cat([up(h), skips.pop()], dim=1))
        return x + self.out(h)
