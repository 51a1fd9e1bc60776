"""Data: image folders and scikit-image's embedded images, as paired (source, target) batches."""

from fusionlab.data.datamodule import ImageDataModule
from fusionlab.data.datasets import FullImageDataset, PatchDataset
from fusionlab.data.images import IMAGE_EXTENSIONS, list_images, load_image, load_skimage, to_tensor

__all__ = [
    "IMAGE_EXTENSIONS",
    "FullImageDataset",
    "ImageDataModule",
    "PatchDataset",
    "list_images",
    "load_image",
    "load_skimage",
    "to_tensor",
]
