"""Plain ``nn.Module`` backbones. Each maps ``(B, C, H, W)`` to the same shape, predicting a residual
on its input, and exposes ``stride``: the factor that H and W must be multiples of."""

from fusionlab.models.dncnn import DnCNN
from fusionlab.models.resnet import EDSR
from fusionlab.models.unet import UNet

__all__ = ["DnCNN", "EDSR", "UNet"]
