"""MATLAB-compatible ``imresize`` (bicubic, antialiased when shrinking), in torch.

The super-resolution literature makes its low-resolution images and its bicubic baseline with
MATLAB's ``imresize``: Keys' cubic kernel with a = -0.5, widened by 1/scale when shrinking
(antialiasing), symmetric (mirror) boundary handling, each dimension resized separately (the one
with the smaller scale first), weights normalised per output pixel. torch's ``F.interpolate`` differs
in its boundary handling and kernel normalisation, so PSNRs made with it cannot be set beside the
published tables. The resize-right package implements the same; these few lines avoid a
dependency. Checked by a test against the published bicubic PSNRs on Set5 (x2, x3, x4).
"""

import functools
import math

import torch


def cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel, a = -0.5 (MATLAB's ``cubic``)."""
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


@functools.lru_cache(maxsize=256)
def resize_matrix(in_len: int, out_len: int, scale: float, antialias: bool = True) -> torch.Tensor:
    """The ``(out_len, in_len)`` matrix that resizes one dimension (MATLAB's ``contributions``);
    cached (training patches share sizes): treat it as read-only."""
    kernel_width = 4.0
    shrink = scale < 1 and antialias
    if shrink:
        kernel_width /= scale
    x = torch.arange(1, out_len + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)  # output pixel centre in input coordinates (1-based)
    left = torch.floor(u - kernel_width / 2)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + torch.arange(taps, dtype=torch.float64)[None] - 1  # 0-based
    distance = u[:, None] - indices - 1
    weights = scale * cubic(distance * scale) if shrink else cubic(distance)
    weights = weights / weights.sum(dim=1, keepdim=True)
    # symmetric boundary: index -1 -> 0, -2 -> 1, in_len -> in_len - 1, ... (MATLAB's aux mirror)
    period = 2 * in_len
    idx = indices.long() % period
    idx = torch.where(idx >= in_len, period - 1 - idx, idx)
    matrix = torch.zeros(out_len, in_len, dtype=torch.float64)
    matrix.scatter_add_(1, idx, weights)
    return matrix


def imresize(image: torch.Tensor, scale: float | None = None, size: tuple[int, int] | None = None,
             antialias: bool = True) -> torch.Tensor:
    """Resize ``(..., H, W)`` by ``scale`` (or to ``size``) as MATLAB's ``imresize(img, scale,
    'bicubic')`` does on floating-point images (no rounding or clamping: quantise afterwards if the
    protocol saves 8-bit files).
    """
    h, w = image.shape[-2:]
    if size is None:
        if scale is None:
            raise ValueError("imresize: give scale or size")
        size = (int(math.ceil(h * scale)), int(math.ceil(w * scale)))
    scales = (scale if scale is not None else size[0] / h, scale if scale is not None else size[1] / w)
    dtype = image.dtype
    out = image.to(torch.float64)
    # the dimension with the smaller scale first, as MATLAB does (rows first on a tie)
    for dim in sorted((0, 1), key=lambda d: scales[d]):
        in_len = out.shape[-2 + dim]
        m = resize_matrix(in_len, size[dim], scales[dim], antialias).to(out.device)
        out = torch.einsum("oi,...iw->...ow", m, out) if dim == 0 else torch.einsum("oi,...hi->...ho", m, out)
    return out.to(dtype)
