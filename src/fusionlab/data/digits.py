"""Embedded generation data whose modes can be counted: scikit-learn's handwritten digits.

- ``data=digits``: the 1,797 8x8 digits shipped inside scikit-learn (``load_digits``), values
  0..16 scaled to [0, 1], upscaled (bilinear) to ``image_size`` 8, 16 or 32; 10 modes.
- ``data=stacked_digits``: three digits drawn independently as the R, G and B channels, the
  stacked-MNIST protocol of VEEGAN (Srivastava et al. 2017) and PacGAN (Lin et al. 2018) on this
  smaller set: 1,000 modes (``100 * r + 10 * g + b``).

The digits are split once, stratified by class with a fixed seed: ``train`` (80%) is what the
generators learn from and the digit classifier of :mod:`fusionlab.metrics.digits` trains on;
``test`` (20%) is held out and measures the classifier's accuracy only.
"""

import zlib
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from fusionlab.data.datasets import item_generator
from fusionlab.data.generation import GenerationDataModule
from fusionlab.utils.errors import check

SPLIT_SEED, TEST_FRACTION = 0, 0.2
IMAGE_SIZES = (8, 16, 32)


@lru_cache(maxsize=4)
def digit_split(image_size: int = 16) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{"train": (images (N, 1, S, S) in [0, 1], labels (N,)), "test": (...)}``, stratified 80/20."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    check(image_size in IMAGE_SIZES, "data.image_size", f"digits come in {IMAGE_SIZES} pixels, got {image_size!r}")
    digits = load_digits()
    images = torch.from_numpy(digits.images).float()[:, None] / 16.0
    if image_size != 8:
        images = F.interpolate(images, size=(image_size, image_size), mode="bilinear", align_corners=False)
    images = images.clamp(0, 1).contiguous()
    labels = torch.from_numpy(digits.target).long()
    train_idx, test_idx = train_test_split(torch.arange(len(labels)).numpy(), test_size=TEST_FRACTION,
                                           stratify=digits.target, random_state=SPLIT_SEED)
    train_idx, test_idx = torch.from_numpy(train_idx), torch.from_numpy(test_idx)
    return {"train": (images[train_idx], labels[train_idx]), "test": (images[test_idx], labels[test_idx])}


def stack_digits(images: torch.Tensor, labels: torch.Tensor, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` stacked images (3 channels, each an independent random digit) and their modes
    ``100 * r + 10 * g + b``, drawn from a generator seeded by ``seed``."""
    g = torch.Generator().manual_seed(zlib.crc32(f"stacked:{seed}".encode()))
    picks = torch.randint(len(images), (count, 3), generator=g)
    stacked = images[picks, 0]                                   # (count, 3, S, S)
    modes = (labels[picks] * torch.tensor([100, 10, 1])).sum(1)
    return stacked.contiguous(), modes


class StackedDigitSet(Dataset):
    """Training items: three random training digits stacked as channels, drawn per (seed, index)."""

    def __init__(self, images: torch.Tensor, length: int) -> None:
        self.images, self.length = images, length
        self.seed = int(torch.initial_seed())

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        picks = torch.randint(len(self.images), (3,), generator=item_generator(self.seed, index))
        return {"target": self.images[picks, 0]}


class DigitsDataModule(GenerationDataModule):
    """Generation on scikit-learn's digits (``stacked=false``, 1 channel, 10 modes) or on stacked
    digits (``stacked=true``, 3 channels, 1,000 modes). Validation/test batches name seeded latents
    as in :class:`GenerationDataModule`. ``reference_images`` are the training digits, or for stacked
    digits ``reference_count`` fixed stacked training images.

    ``modes`` (10 or 1,000) and ``digit_size`` tell :mod:`fusionlab.metrics.digits` how to read
    samples; ``digit_split(image_size)`` gives the classifier its train/test digits.
    """

    def __init__(self, task=None, stacked: bool = False, channels: int | None = None, image_size: int = 16,
                 batch_size: int = 64, samples_per_epoch: int = 3200, val_samples: int = 10000,
                 test_samples: int = 10000, reference_count: int = 10000, eval_batch_size: int = 500,
                 num_workers: int = 0, pin_memory: bool = False, augment: bool = False,
                 classifier: dict | None = None, cache_dir: str | None = None) -> None:
        want = 3 if stacked else 1
        check(channels in (None, want), "data.channels",
              f"{'stacked ' if stacked else ''}digits have {want} channel(s), got {channels!r}")
        check(image_size in IMAGE_SIZES, "data.image_size", f"digits come in {IMAGE_SIZES} pixels, got {image_size!r}")
        check(not augment, "data.augment", "flipping a digit changes its class: digits are not augmented")
        check(int(reference_count) >= 1, "data.reference_count", f"must be >= 1, got {reference_count!r}")
        super().__init__(task=task, channels=want, image_size=image_size, batch_size=batch_size,
                         samples_per_epoch=samples_per_epoch, train_dir=None, train_images=None,
                         val_samples=val_samples, test_samples=test_samples, eval_batch_size=eval_batch_size,
                         num_workers=num_workers, pin_memory=pin_memory, augment=False)
        self.stacked, self.reference_count = bool(stacked), int(reference_count)
        self.modes = 1000 if self.stacked else 10
        self.reference_modes: torch.Tensor | None = None
        self.classifier_config = {"width": 32, "epochs": 60, "seed": 0, **dict(classifier or {})}
        unknown = sorted(set(self.classifier_config) - {"width", "epochs", "seed"})
        check(not unknown, "data.classifier", f"unknown keys {unknown}: expected width, epochs, seed")
        self.cache_dir = cache_dir

    def load(self) -> torch.Tensor:
        """The reference images: the training digits, or ``reference_count`` stacked ones."""
        if self.images is not None:
            return self.images
        digits, labels = digit_split(self.image_size)["train"]
        if self.stacked:
            self.images, self.reference_modes = stack_digits(digits, labels, self.reference_count, seed=0)
            self.image_names = [f"stacked{i:05d}" for i in range(len(self.images))]
        else:
            self.images, self.reference_modes = digits, labels
            self.image_names = [f"digit{i:04d}" for i in range(len(digits))]
        return self.images

    def heldout_images(self) -> torch.Tensor:
        """Digits never trained on (the held-out split; for stacked digits 1,000 fixed stacks of
        them): where the VAE's validation ELBO is measured."""
        digits, labels = digit_split(self.image_size)["test"]
        return stack_digits(digits, labels, 1000, seed=1)[0] if self.stacked else digits

    def heldout_reference(self) -> torch.Tensor:
        """The held-out reference of ``fd_digits_heldout``: ``reference_count`` stacks of held-out
        digits (seeded apart from :meth:`heldout_images`), or the held-out digits themselves."""
        digits, labels = digit_split(self.image_size)["test"]
        return stack_digits(digits, labels, self.reference_count, seed=2)[0] if self.stacked else digits

    def setup(self, stage: str | None = None) -> None:
        self.load()
        if self.stacked and stage in ("fit", None) and self.train_set is None:
            self.train_set = StackedDigitSet(digit_split(self.image_size)["train"][0], self.samples_per_epoch)
        super().setup(stage)


__all__ = ["DigitsDataModule", "digit_split", "stack_digits"]
