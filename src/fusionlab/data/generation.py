"""Data for unconditional generation (``task=generate``): the training images, and seeded latent
streams for validation and test.

``reference_images(stage)`` returns the training images, the set FID/KID and the nearest-training-image
distance compare samples with (the one way references reach metrics).
"""

import zlib

import torch
from torch.utils.data import Dataset

from fusionlab.data.datasets import SplitLoaders, item_generator, loader_sizes
from fusionlab.data.images import center_square, list_images, load_image
from fusionlab.schemas import GenerationDataSchema, checked
from fusionlab.utils.errors import ConfigError, DataError, check


class ImageSet(Dataset):
    """Training images (all ``image_size`` squares) with random horizontal flips."""

    def __init__(self, images: torch.Tensor, length: int, augment: bool) -> None:
        self.images, self.length, self.augment = images, length, augment
        self.seed = int(torch.initial_seed())

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        image = self.images[index % len(self.images)]
        if self.augment and bool(torch.randint(2, (), generator=item_generator(self.seed, index)).item()):
            image = image.flip(-1)
        return {"target": image}


class LatentSet(Dataset):
    """``count`` evaluation samples: item ``i`` names latent ``i`` of the seeded stream ``seed``."""

    def __init__(self, count: int, seed: int, names_prefix: str) -> None:
        self.count, self.seed, self.prefix = count, seed, names_prefix
        self.names = [f"{names_prefix}{i:05d}" for i in range(count)]

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict:
        return {"index": index, "seed": self.seed, "name": self.names[index]}


class GenerationDataModule(SplitLoaders):
    """Images to learn to generate (``task=generate``): a folder (``train_dir``) or the 100 faces of
    scikit-image's ``lfw_subset`` (gray 25x25; its other 100 images are non-face background crops
    and are not used), resized (centre square) to ``image_size``.

    Training batches: ``{"target"}``; validation/test batches name fixed latent vectors
    (``{"index", "seed", "name"}``; ``val_samples`` / ``test_samples`` of them) that the approach
    turns into latents, so every run and every epoch draws the same samples.
    """

    def __init__(self, task=None, channels: int = 1, image_size: int = 32, batch_size: int = 64,
                 samples_per_epoch: int = 3200, train_dir: str | None = None, train_images: str | None = "lfw_subset",
                 val_samples: int = 200, test_samples: int = 1000, eval_batch_size: int = 100,
                 num_workers: int = 0, pin_memory: bool = False, augment: bool = True) -> None:
        super().__init__()
        a = checked(GenerationDataSchema, "data", channels=channels, image_size=image_size, batch_size=batch_size,
                    samples_per_epoch=samples_per_epoch, val_samples=val_samples, test_samples=test_samples,
                    eval_batch_size=eval_batch_size, num_workers=num_workers, pin_memory=pin_memory,
                    augment=augment)
        self.task, self.channels, self.image_size = task, a.channels, a.image_size
        check(not self.image_size & (self.image_size - 1), "data.image_size",
              f"must be a power of two >= 8 (32, 64, 128), got {image_size!r}")
        self.batch_size, self.eval_batch_size, self.samples_per_epoch, self.num_workers = loader_sizes(a)
        self.pin_memory = a.pin_memory
        self.val_samples, self.test_samples = a.val_samples, a.test_samples
        self.train_dir, self.train_images, self.augment = train_dir, train_images, a.augment
        self.seed = getattr(task, "eval_seed", 0)
        self.images: torch.Tensor | None = None
        self.image_names: list[str] = []
        self.train_set = self.val_set = self.test_set = None

    def load(self) -> torch.Tensor:
        """The training images ``(N, C, S, S)`` in [0, 1]."""
        if self.images is not None:
            return self.images
        if self.train_dir is not None:
            paths = list_images(self.train_dir, "data.train_dir")
            images, self.image_names = [load_image(p, self.channels) for p in paths], [p.stem for p in paths]
        elif self.train_images == "lfw_subset":
            from skimage import data as skdata

            # the first 100 of lfw_subset are faces; the other 100 are background crops (its docstring)
            faces = torch.from_numpy(skdata.lfw_subset()[:100]).float()[:, None]
            images = [f.expand(self.channels, -1, -1) for f in faces]
            self.image_names = [f"lfw{i:03d}" for i in range(len(images))]
        else:
            raise ConfigError("data.train_images", f"expected lfw_subset or null with data.train_dir set, "
                              f"got {self.train_images!r}")
        small = [n for n, im in zip(self.image_names, images) if min(im.shape[-2:]) < 8]
        if small:
            raise DataError(small[0], "image smaller than 8 pixels cannot be used for generation", "data.train_dir")
        self.images = torch.stack([center_square(im, self.image_size) for im in images]).contiguous()
        return self.images

    def setup(self, stage: str | None = None) -> None:
        self.load()
        if stage in ("fit", None) and self.train_set is None:
            self.train_set = ImageSet(self.images, self.samples_per_epoch, self.augment)
        if stage in ("fit", "validate", None) and self.val_set is None:
            self.val_set = LatentSet(self.val_samples, self.seed, "val")
        if stage in ("test", None) and self.test_set is None:
            self.test_set = LatentSet(self.test_samples, self.seed + 1, "sample")

    def reference_images(self, stage: str = "fit") -> tuple[list[torch.Tensor], list[str]]:
        """The training images, at every stage: what samples are compared with (FID/KID, nearest
        training image)."""
        images = self.load()
        return list(images), list(self.image_names)



def seeded_latents(indices: torch.Tensor, seed: int, dim: int) -> torch.Tensor:
    """Latent ``i`` of stream ``seed``: ``N(0, I)`` from a generator seeded by (seed, i), so a sample
    does not depend on the batch it is drawn in."""
    out = torch.empty(len(indices), dim)
    for row, i in enumerate(indices.tolist()):
        g = torch.Generator().manual_seed(zlib.crc32(f"{seed}:{i}".encode()))
        out[row] = torch.randn(dim, generator=g)
    return out


__all__ = ["GenerationDataModule", "seeded_latents"]
