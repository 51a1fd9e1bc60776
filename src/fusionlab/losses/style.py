"""Content and style distances between lists of feature maps (one per layer).

- content: mean squared distance between the output's and the content's features (deepest layer
  only by default, as in AdaIN: Huang & Belongie 2017);
- style: ``mean_std`` (distance between channel-wise means and standard deviations, AdaIN) or
  ``gram`` (Gram matrices, Gatys et al. 2016), summed over layers.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from fusionlab.functional import mean_std

STYLE_KINDS = ("mean_std", "gram")


def gram(feat: torch.Tensor) -> torch.Tensor:
    """Gram matrix ``(B, C, C)`` normalised by ``C * H * W``."""
    b, c, h, w = feat.shape
    f = feat.float().reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def content_loss(out_feats: Sequence[torch.Tensor], content_feats: Sequence[torch.Tensor],
                 layers: Sequence[int] = (-1,)) -> torch.Tensor:
    """MSE between the output's and the content's features on ``layers`` (indices into the lists)."""
    return sum(F.mse_loss(out_feats[i].float(), content_feats[i].float()) for i in layers)


def style_distance(out_feats: Sequence[torch.Tensor], style_feats: Sequence[torch.Tensor],
                   kind: str = "mean_std", reduce: bool = True) -> torch.Tensor:
    """Style distance summed over layers; per sample ``(B,)`` when ``reduce`` is false."""
    if kind not in STYLE_KINDS:
        raise ValueError(f"unknown style distance {kind!r}: expected one of {STYLE_KINDS}")
    total = 0.0
    for fo, fs in zip(out_feats, style_feats, strict=True):
        if kind == "mean_std":
            (mo, so), (ms, ss) = mean_std(fo), mean_std(fs)
            d = (mo - ms).pow(2).flatten(1).mean(1) + (so - ss).pow(2).flatten(1).mean(1)
        else:
            d = (gram(fo) - gram(fs)).pow(2).flatten(1).mean(1)
        total = total + d
    return total.mean() if reduce else total
