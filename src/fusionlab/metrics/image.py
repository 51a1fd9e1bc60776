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
from torch import nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)
from torchmetrics.image import PeakSignalNoiseRatio

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


class SSIM(Metric):
    """Mean per-image SSIM (:func:`ssim_per_image`), summed across processes under DDP."""

    higher_is_better = True
    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        values = ssim_per_image(pred, target)
        self.total += values.double().sum()
        self.count += values.numel()

    def compute(self) -> torch.Tensor:
        return (self.total / self.count).float()


class ImageQuality(nn.Module):
    """PSNR and SSIM for one stage and one output, synced across processes by torchmetrics.

    :param prefix: key prefix, e.g. ``"val/"``; keys are ``{prefix}psnr{suffix}``.
    """

    def __init__(self, prefix: str, suffix: str = "", y_channel: bool = False, crop_border: int = 0) -> None:
        super().__init__()
        self.y_channel, self.crop_border = y_channel, crop_border
        self.metrics = MetricCollection(
            {
                f"psnr{suffix}": PeakSignalNoiseRatio(data_range=1.0, reduction="elementwise_mean", dim=(1, 2, 3)),
                f"ssim{suffix}": SSIM(),
            },
            prefix=prefix,
        )

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        self.metrics.update(prepare_for_metrics(pred, self.y_channel, self.crop_border),
                            prepare_for_metrics(target, self.y_channel, self.crop_border))

    def compute(self) -> dict[str, torch.Tensor]:
        return self.metrics.compute()

    def reset(self) -> None:
        self.metrics.reset()
