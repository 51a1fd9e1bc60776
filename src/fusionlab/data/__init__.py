"""Data: image folders and scikit-image's embedded images, as paired (source, target) batches, and
unpaired sets for style transfer and generation."""

from fusionlab.data.datamodule import ImageDataModule
from fusionlab.data.datasets import FullImageDataset, PatchDataset
from fusionlab.data.images import IMAGE_EXTENSIONS, list_images, load_image, load_skimage, to_tensor
from fusionlab.data.generation import GenerationDataModule
from fusionlab.data.style import StyleDataModule

__all__ = [
    "IMAGE_EXTENSIONS",
    "FullImageDataset",
    "GenerationDataModule",
    "ImageDataModule",
    "PatchDataset",
    "StyleDataModule",
    "list_images",
    "load_image",
    "load_skimage",
    "to_tensor",
]
