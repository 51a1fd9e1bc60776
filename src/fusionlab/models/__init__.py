"""Plain ``nn.Module`` networks. Restoration backbones map ``(B, C, H, W)`` to the same shape,
predicting a residual on their input, and expose ``stride`` (H and W must be multiples of it);
the adversarial approaches use the generators and discriminators."""

from fusionlab.models.dcgan import DCGANGenerator
from fusionlab.models.discriminators import DCGANDiscriminator, PatchDiscriminator
from fusionlab.models.dncnn import DnCNN
from fusionlab.models.resnet import EDSR
from fusionlab.models.stylizer import StyleTransferGenerator
from fusionlab.models.unet import UNet
from fusionlab.models.vae import ConvEncoder

__all__ = ["ConvEncoder", "DCGANDiscriminator", "DCGANGenerator", "DnCNN", "EDSR", "PatchDiscriminator",
           "StyleTransferGenerator", "UNet"]
