"""Datasets yielding the batch contract: ``{"source", "target", "name"}``.

``source`` is the degraded image the network sees, ``target`` the clean image, both float32
``(C, H, W)``; ``target`` is in [0, 1]; ``source`` may leave [0, 1] (unclipped noise).
"""

import zlib
from collections.abc import Callable, Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from fusionlab.tasks.degradations import Degradation
from fusionlab.utils.errors import check


def loader_sizes(args) -> tuple[int, int, int, int]:
    """``(batch_size, eval_batch_size, samples_per_epoch, num_workers)`` of a data module's checked
    arguments (:func:`fusionlab.schemas.checked`), with the rule that links two of them."""
    check(args.samples_per_epoch >= args.batch_size, "data.samples_per_epoch",
          f"must be >= data.batch_size ({args.batch_size}): training drops incomplete batches, "
          f"got {args.samples_per_epoch}")
    return args.batch_size, args.eval_batch_size, args.samples_per_epoch, args.num_workers


def item_generator(seed: int, index: int) -> torch.Generator:
    """The generator of training item ``index`` (as numbered by :class:`EpochSampler`) of run ``seed``."""
    return torch.Generator().manual_seed(zlib.crc32(f"{seed}:{index}".encode()))


class EpochSampler(DistributedSampler):
    """The training order: epoch ``e`` is a permutation seeded by ``(seed, e)``, and item ``i`` of it
    is yielded as ``e * n + i``, from which the dataset seeds that item's crop, flips and noise
    (:func:`item_generator`). The training stream is then a function of (seed, epoch, position)
    alone, whatever else draws from the global RNG, so a run resumed at an epoch boundary trains on
    exactly the patches of the uninterrupted run (a shuffled ``RandomSampler`` draws its seed from
    the global RNG, which Lightning's restart consumes differently).

    Under DDP each process takes every ``world``-th item of the permutation (it subclasses
    ``DistributedSampler`` so that Lightning does not wrap it); Lightning calls :meth:`set_epoch`.
    """

    def __init__(self, n: int, seed: int | None = None) -> None:  # noqa: D107 - no super(): no dataset needed
        import torch.distributed as dist

        self.n = int(n)
        self.seed = int(torch.initial_seed() if seed is None else seed)
        self.epoch = 0
        distributed = dist.is_available() and dist.is_initialized()
        self.num_replicas = dist.get_world_size() if distributed else 1
        self.rank = dist.get_rank() if distributed else 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        g = torch.Generator().manual_seed(zlib.crc32(f"{self.seed}:epoch{self.epoch}".encode()))
        order = torch.randperm(self.n, generator=g)[: len(self) * self.num_replicas]
        return iter((order[self.rank :: self.num_replicas] + self.epoch * self.n).tolist())

    def __len__(self) -> int:
        return self.n // self.num_replicas


def random_crop_augment(image: torch.Tensor, patch_size: int, augment: bool,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """A random ``patch_size`` crop, randomly flipped and rotated by a multiple of 90 degrees."""
    _, h, w = image.shape
    top = int(torch.randint(0, h - patch_size + 1, (), generator=generator).item())
    left = int(torch.randint(0, w - patch_size + 1, (), generator=generator).item())
    patch = image[:, top : top + patch_size, left : left + patch_size]
    if augment:
        mode = int(torch.randint(0, 8, (), generator=generator).item())
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
        self.seed = int(torch.initial_seed())  # the run's seed (seed_everything ran before)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, index: int) -> dict:
        k = index % len(self.images)
        image = self.images[k]
        if callable(image):
            image = image()
        g = item_generator(self.seed, index)
        clean = random_crop_augment(image, self.patch_size, self.augment, g)
        source, target = self.degradation(clean, g)
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


def make_loader(dataset, batch_size: int, shuffle: bool, num_workers: int = 0, pin_memory: bool = False):
    """The one DataLoader recipe of the data modules. Training shuffles (:class:`EpochSampler`) and
    drops the last partial batch; evaluation keeps every image once. Under DDP evaluation gets an *unrepeated* distributed
    sampler: Lightning's default ``DistributedSampler`` pads the last batch with repeated images,
    which would count them twice in the metrics and the per-image records."""
    import torch.distributed as dist
    from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

    sampler = None
    if shuffle:
        sampler = EpochSampler(len(dataset), getattr(dataset, "seed", None))
    elif dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        sampler = UnrepeatedDistributedSampler(dataset, shuffle=False)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle if sampler is None else False,
                      sampler=sampler, drop_last=shuffle, num_workers=num_workers, pin_memory=pin_memory,
                      persistent_workers=num_workers > 0)


class SplitLoaders(L.LightningDataModule):
    """The data modules' loaders: train (shuffled, full batches) / val / test over the subclass's
    ``train_set`` / ``val_set`` / ``test_set``, all made by :func:`make_loader`."""

    num_workers = 0
    pin_memory = False
    batch_size = eval_batch_size = 1
    train_set = val_set = test_set = None

    def _loader(self, dataset, batch_size: int, shuffle: bool) -> DataLoader:
        return make_loader(dataset, batch_size, shuffle, self.num_workers, self.pin_memory)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, self.batch_size, True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, self.eval_batch_size, False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, self.eval_batch_size, False)
