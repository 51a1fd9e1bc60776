"""PSNR / SSIM with the restoration literature's protocol.

Images are compared in float32 after clamping to [0, 1] (``data_range=1``). Options:
``y_channel`` converts RGB to the Y channel of ITU-R BT.601 YCbCr (as MATLAB's ``rgb2ycbcr``, the
super-resolution convention); ``crop_border`` drops that many pixels on every side. PSNR is the mean
of per-image PSNRs (not the PSNR of the pooled error), as the papers report it.

SSIM uses torchmetrics' Gaussian-window SSIM (11 taps, sigma 1.5) but averages the SSIM map only
where the window lies inside the image, as Wang et al.'s reference code and scikit-image do;
torchmetrics' own mean includes the reflect-padded border, which on small images differs by
several hundredths.
"""

import torch
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

SSIM_KERNEL, SSIM_SIGMA = 11, 1.5


def rgb_to_y(image: torch.Tensor) -> torch.Tensor:
    """Y of BT.601 YCbCr for RGB in [0, 1]: ``16/255 + (65.481 R + 128.553 G + 24.966 B)/255``."""
    weights = image.new_tensor([65.481, 128.553, 24.966]).view(1, 3, 1, 1)
    return (image * weights).sum(dim=1, keepdim=True) / 255.0 + 16.0 / 255.0


def prepare_for_metrics(image: torch.Tensor, y_channel: bool = False, crop_border: int = 0) -> torch.Tensor:
    """The one conversion from a model output or target to what PSNR/SSIM see."""
    x = image.float().clamp(0.0, 1.0)
    if y_channel and x.shape[1] == 3:
        x = rgb_to_y(x)
    if crop_border > 0:
        x = x[..., crop_border:-crop_border, crop_border:-crop_border]
    return x


def psnr_per_image(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR of each image of a prepared batch, shape ``(B,)``."""
    return peak_signal_noise_ratio(pred, target, data_range=1.0, reduction="none", dim=(1, 2, 3))


def ssim_per_image(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SSIM (Gaussian window 11, sigma 1.5) of each image of a prepared batch, shape ``(B,)``,
    averaged over the pixels whose window lies inside the image (the reference protocol)."""
    _, full = structural_similarity_index_measure(
        pred, target, data_range=1.0, kernel_size=SSIM_KERNEL, sigma=SSIM_SIGMA,
        reduction="none", return_full_image=True,
    )
    r = (SSIM_KERNEL - 1) // 2
    return full[..., r:-r, r:-r].mean(dim=(1, 2, 3))
