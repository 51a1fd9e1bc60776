"""Image grids without torchvision: rows of (input | output | target) tiles."""

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def _tile(image: torch.Tensor, size: int) -> torch.Tensor:
    """Centre crop (or pad) one ``(C, H, W)`` image to ``size`` x ``size``, as RGB in [0, 1]."""
    c, h, w = image.shape
    if c == 1:
        image = image.expand(3, h, w)
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    image = image[:, top : top + size, left : left + size]
    ph, pw = size - image.shape[1], size - image.shape[2]
    if ph or pw:
        image = F.pad(image, (0, pw, 0, ph), value=1.0)
    return image.float().clamp(0.0, 1.0)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """One ``(C, H, W)`` image in [0, 1] as a uint8 ``(H, W)`` or ``(H, W, 3)`` array."""
    a = (image.detach().cpu().float().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8)
    return a[0].numpy() if a.shape[0] == 1 else a.permute(1, 2, 0).numpy()


def enlarge(rows: list[list[torch.Tensor]], tile: int) -> list[list[torch.Tensor]]:
    """Images smaller than ``tile`` upscaled (nearest, integer factor) so small samples stay visible."""
    def up(image: torch.Tensor) -> torch.Tensor:
        factor = tile // max(image.shape[-2:])
        return F.interpolate(image[None].float(), scale_factor=factor, mode="nearest")[0] if factor > 1 else image
    return [[up(im) for im in row] for row in rows]


def make_grid(rows: list[list[torch.Tensor]], tile: int = 128, gap: int = 2) -> np.ndarray:
    """A uint8 ``(H, W, 3)`` grid; each inner list is one row of ``(C, H, W)`` images in [0, 1]."""
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    canvas = torch.ones(3, n_rows * (tile + gap) - gap, n_cols * (tile + gap) - gap)
    for i, row in enumerate(rows):
        for j, image in enumerate(row):
            y, x = i * (tile + gap), j * (tile + gap)
            canvas[:, y : y + tile, x : x + tile] = _tile(image.detach().cpu(), tile)
    return (canvas.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)


def save_png(array: np.ndarray, path: str | Path) -> Path:
    """Save a uint8 image array as PNG (atomically: temp file, then rename)."""
    from skimage import io as skio

    from fusionlab.utils.io import atomic_write

    return atomic_write(path, lambda tmp: skio.imsave(str(tmp), array, check_contrast=False))
