"""Image-quality metrics (torchmetrics) and the protocol that prepares images for them."""

from fusionlab.metrics.image import (
    prepare_for_metrics,
    psnr_per_image,
    rgb_to_y,
    ssim_per_image,
)

__all__ = ["prepare_for_metrics", "psnr_per_image", "rgb_to_y", "ssim_per_image"]
