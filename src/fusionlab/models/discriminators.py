"""Discriminators: they return logits (no sigmoid) and, on request, their intermediate features.

- :class:`PatchDiscriminator`: PatchGAN (pix2pix/CycleGAN ``NLayerDiscriminator``): ``n_layers``
  stride-2 4x4 convs then two stride-1 ones, one logit per overlapping patch; optionally
  conditioned on a second image (the style), resized and concatenated to the input.
- :class:`DCGANDiscriminator`: strided convs down to 4x4, one logit per image, optionally with a
  classifier head over ``num_classes`` (which generator made a sample, for mixtures of generators).

Spectral normalisation (Miyato et al. 2018) wraps every conv when ``spectral_norm`` is true.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _sn


def _conv(c_in: int, c_out: int, k: int, s: int, p: int, sn: bool, bias: bool = True) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, k, s, p, bias=bias)
    return _sn(conv) if sn else conv


class PatchDiscriminator(nn.Module):
    """PatchGAN over ``in_channels`` (+ ``cond_channels``) images.

    :param width: channels of the first layer, doubled per layer up to ``8 * width``.
    :param n_layers: stride-2 layers; the receptive field grows with it (70x70 for 3).
    """

    def __init__(self, in_channels: int = 3, width: int = 64, n_layers: int = 3, spectral_norm: bool = True,
                 cond_channels: int = 0) -> None:
        super().__init__()
        if n_layers < 1 or width < 1:
            raise ValueError(f"PatchDiscriminator: n_layers and width must be >= 1, got {n_layers}, {width}")
        self.cond_channels = int(cond_channels)
        blocks = [nn.Sequential(_conv(in_channels + self.cond_channels, width, 4, 2, 1, spectral_norm),
                                nn.LeakyReLU(0.2))]
        c = width
        for i in range(1, n_layers + 1):
            c_out = width * min(2 ** i, 8)
            stride = 2 if i < n_layers else 1
            blocks.append(nn.Sequential(_conv(c, c_out, 4, stride, 1, spectral_norm), nn.LeakyReLU(0.2)))
            c = c_out
        self.blocks = nn.ModuleList(blocks)
        self.head = _conv(c, 1, 4, 1, 1, spectral_norm)

    def _input(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        if self.cond_channels == 0:
            return x
        if cond is None:
            raise ValueError("this discriminator is conditioned: pass the conditioning image")
        if cond.shape[-2:] != x.shape[-2:]:
            cond = F.interpolate(cond, size=x.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
        return torch.cat([x, cond], dim=1)

    def forward_features(self, x: torch.Tensor, cond: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Patch logits ``(B, 1, h, w)`` and each block's activations."""
        h = self._input(x, cond)
        feats = []
        for block in self.blocks:
            h = block(h)
            feats.append(h)
        return self.head(h), feats

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_features(x, cond)[0]


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator for ``image_size`` (a power of two >= 8) images.

    :param num_classes: > 0 adds a classifier head (logits over generators) on the shared features.
    :param pack: PacGAN (Lin et al. 2018): judge ``pack`` images at once, concatenated along channels
        (consecutive images of a batch, so a batch of B gives B / pack logits; B must be a multiple).
        Packing is the standard non-fusion remedy for mode collapse: a packed discriminator sees the
        diversity of a set of samples.
    """

    def __init__(self, in_channels: int = 1, image_size: int = 32, width: int = 64, spectral_norm: bool = True,
                 num_classes: int = 0, init_std: float | None = 0.02, pack: int = 1) -> None:
        super().__init__()
        check_image_size(image_size)
        if int(pack) < 1:
            raise ValueError(f"DCGANDiscriminator: pack must be >= 1, got {pack}")
        self.pack = int(pack)
        n_down = int(math.log2(image_size)) - 2  # down to 4x4
        layers, c = [], in_channels * self.pack
        for i in range(n_down):
            c_out = width * min(2 ** i, 8)
            layers += [_conv(c, c_out, 4, 2, 1, spectral_norm), nn.LeakyReLU(0.2)]
            c = c_out
        self.body = nn.Sequential(*layers)
        self.head = _conv(c, 1, 4, 1, 0, spectral_norm)
        self.classifier = nn.Conv2d(c, num_classes, 4, 1, 0) if num_classes > 0 else None
        if init_std is not None:  # DCGAN's N(0, 0.02)
            from fusionlab.models.blocks import init_normal

            init_normal(self, init_std)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-image logits ``(B,)`` (``(B / pack,)`` when packing) and classifier logits ``(B, K)`` (or None)."""
        if self.pack > 1:
            b, c, hh, ww = x.shape
            if b % self.pack:
                raise ValueError(f"a packing discriminator (pack={self.pack}) needs a batch that is a multiple of "
                                 f"{self.pack}, got {b} images: set data.batch_size to a multiple")
            x = x.reshape(b // self.pack, self.pack * c, hh, ww)
        h = self.body(x)
        logits = self.head(h).flatten()
        cls = self.classifier(h).flatten(1) if self.classifier is not None else None
        return logits, cls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]


def check_image_size(image_size: int) -> None:
    if image_size < 8 or image_size & (image_size - 1):
        raise ValueError(f"image_size must be a power of two >= 8, got {image_size}")
