"""Degradations: each maps a clean image ``(C, H, W)`` in [0, 1] to a ``(source, target)`` pair.

Training calls them with ``generator=None`` (torch's global RNG, seeded per worker by Lightning);
validation and test pass a generator seeded from the image name, so every run sees the same
degraded images.
"""

import zlib
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from fusionlab.tasks.imresize import imresize
from fusionlab.schemas import NoiseSchema, SuperResolutionSchema, checked
from fusionlab.utils.errors import as_float, check


class Degradation:
    """Base class. ``name`` tags runs; ``eval_seed`` fixes validation/test degradations."""

    name = "identity"

    def __init__(self, eval_seed: int = 0) -> None:
        self.eval_seed = int(eval_seed)

    def eval_generator(self, image_name: str) -> torch.Generator:
        """A generator seeded from ``eval_seed`` and the image name (not its position)."""
        seed = (zlib.crc32(image_name.encode()) + 1_000_003 * self.eval_seed) % (2**63)
        return torch.Generator().manual_seed(seed)

    def __call__(
        self, clean: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return clean, clean


    def check_size(self, height: int, width: int, what: str) -> str | None:
        """None when an image of this size can be degraded, else why not (for the caller's error)."""
        return None


class GaussianNoise(Degradation):
    """Additive white Gaussian noise, ``sigma`` on the 0-255 scale (the DnCNN protocol).

    :param sigma: a fixed level, or ``[lo, hi]`` for blind denoising (drawn uniformly per image).
    :param clip: clip the noisy image to [0, 1]; the standard protocol does not.
    """

    name = "denoise"

    def __init__(
        self, sigma: float | Sequence[float] = 25.0, clip: bool = False, eval_seed: int = 0
    ) -> None:
        a = checked(NoiseSchema, "task", clip=clip, eval_seed=eval_seed)
        super().__init__(a.eval_seed)
        if isinstance(sigma, (int, float)) and not isinstance(sigma, bool):
            lo = hi = as_float(sigma, "task.sigma")
        else:
            check(isinstance(sigma, Sequence) and not isinstance(sigma, str) and len(sigma) == 2, "task.sigma",
                  f"expected a number or [lo, hi], got {sigma!r}")
            lo, hi = as_float(sigma[0], "task.sigma"), as_float(sigma[1], "task.sigma")
        check(0 <= lo <= hi, "task.sigma", f"noise level must satisfy 0 <= lo <= hi, got {sigma}")
        self.lo, self.hi, self.clip = lo, hi, a.clip

    def __call__(self, clean, generator=None):
        sigma = self.lo
        if self.hi > self.lo:
            u = torch.rand((), generator=generator).item()
            sigma = self.lo + (self.hi - self.lo) * u
        noise = torch.randn(clean.shape, generator=generator, dtype=clean.dtype)
        noisy = clean + noise * (sigma / 255.0)
        if self.clip:
            noisy = noisy.clamp(0.0, 1.0)
        return noisy, clean


class BicubicDownscale(Degradation):
    """Super-resolution input: bicubic (antialiased) downscale by ``scale``, then bicubic upscale.

    The target is cropped to a multiple of ``scale`` first (the usual "modcrop"). ``method=matlab``
    (default) resizes with MATLAB's ``imresize`` (:mod:`fusionlab.tasks.imresize`), as the published
    SR tables were made; ``torch`` uses ``F.interpolate`` (0.3 dB off on Set5 x2). With ``quantize``
    the low-resolution image and its bicubic upsampling are rounded to 8 bits as saved files are, so
    the network sees the bicubic-upsampled LR image at the target's size and ``psnr_input`` is the
    published bicubic baseline.
    """

    name = "superres"

    def __init__(self, scale: int = 2, quantize: bool = True, method: str = "matlab", eval_seed: int = 0) -> None:
        a = checked(SuperResolutionSchema, "task", scale=scale, quantize=quantize, method=method, eval_seed=eval_seed)
        super().__init__(a.eval_seed)
        self.scale, self.quantize, self.method = a.scale, a.quantize, a.method

    def _resize(self, x: torch.Tensor, size: tuple[int, int], scale: float) -> torch.Tensor:
        if self.method == "matlab":
            return imresize(x, scale=scale)
        return F.interpolate(x, size=size, mode="bicubic", antialias=scale < 1, align_corners=False)

    def __call__(self, clean, generator=None):
        s = self.scale
        h, w = clean.shape[-2] // s * s, clean.shape[-1] // s * s
        target = clean[..., :h, :w]
        x = target.unsqueeze(0)
        lr = self._resize(x, (h // s, w // s), 1.0 / s).clamp(0.0, 1.0)
        if self.quantize:
            lr = torch.round(lr * 255.0) / 255.0
        up = self._resize(lr, (h, w), float(s)).clamp(0.0, 1.0)
        if self.quantize:  # the bicubic baseline as a saved 8-bit image, as the published tables have it
            up = torch.round(up * 255.0) / 255.0
        return up.squeeze(0), target


    def check_size(self, height: int, width: int, what: str) -> str | None:
        if min(height, width) < self.scale:
            return f"{what} is {width}x{height}, smaller than task.scale={self.scale}"
        return None
