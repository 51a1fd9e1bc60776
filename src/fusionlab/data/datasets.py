"""Datasets yielding the batch contract: ``{"source", "target", "name"}``.

``source`` is the degraded image the network sees, ``target`` the clean image, both float32
``(C, H, W)``; ``target`` is in [0, 1]; ``source`` may leave [0, 1] (unclipped noise).
"""

from collections.abc import Callable, Sequence

import torch
from torch.utils.data import Dataset

from fusionlab.tasks.degradations import Degradation
from fusionlab.utils.errors import as_int, check


def loader_sizes(batch_size: object, eval_batch_size: object, samples_per_epoch: object,
                 num_workers: object) -> tuple[int, int, int, int]:
    """The data modules' loader settings, validated: one-line errors naming the ``data.`` key."""
    batch = as_int(batch_size, "data.batch_size", 1)
    samples = as_int(samples_per_epoch, "data.samples_per_epoch", 1)
    check(samples >= batch, "data.samples_per_epoch",
          f"must be >= data.batch_size ({batch}): training drops incomplete batches, got {samples}")
    return (batch, as_int(eval_batch_size, "data.eval_batch_size", 1), samples,
            as_int(num_workers, "data.num_workers", 0))


def random_crop_augment(image: torch.Tensor, patch_size: int, augment: bool) -> torch.Tensor:
    """A random ``patch_size`` crop, randomly flipped and rotated by a multiple of 90 degrees."""
    _, h, w = image.shape
    top = int(torch.randint(0, h - patch_size + 1, ()).item())
    left = int(torch.randint(0, w - patch_size + 1, ()).item())
    patch = image[:, top : top + patch_size, left : left + patch_size]
    if augment:
        mode = int(torch.randint(0, 8, ()).item())
        if mode >= 4:
            patch = patch.flip(-1)
        patch = torch.rot90(patch, mode % 4, dims=(-2, -1))
    return patch.contiguous()


class PatchDataset(Dataset):
    """Random training patches: item ``i`` is a random crop of image ``i % len(images)``.

    :param images: clean images, or callables returning one (lazy loading).
    :param samples_per_epoch: the dataset's length (patches drawn per epoch).
    """

    def __init__(
        self,
        images: Sequence[torch.Tensor | Callable[[], torch.Tensor]],
        names: Sequence[str],
        degradation: Degradation,
        patch_size: int,
        samples_per_epoch: int,
        augment: bool = True,
    ) -> None:
        self.images, self.names = list(images), list(names)
        self.degradation = degradation
        self.patch_size, self.samples_per_epoch, self.augment = patch_size, samples_per_epoch, augment

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, index: int) -> dict:
        k = index % len(self.images)
        image = self.images[k]
        if callable(image):
            image = image()
        clean = random_crop_augment(image, self.patch_size, self.augment)
        source, target = self.degradation(clean)
        return {"source": source, "target": target, "name": self.names[k]}


class FullImageDataset(Dataset):
    """Whole images for validation and test, degraded with a per-image seeded generator."""

    def __init__(
        self,
        images: Sequence[torch.Tensor | Callable[[], torch.Tensor]],
        names: Sequence[str],
        degradation: Degradation,
    ) -> None:
        self.images, self.names, self.degradation = list(images), list(names), degradation

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        image = self.images[index]
        if callable(image):
            image = image()
        name = self.names[index]
        source, target = self.degradation(image, self.degradation.eval_generator(name))
        return {"source": source, "target": target, "name": name}
