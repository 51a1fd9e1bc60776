"""The LightningDataModule over image folders or scikit-image's embedded images."""

import functools
import warnings
from collections.abc import Sequence

from fusionlab.data.datasets import FullImageDataset, PatchDataset, SplitLoaders, loader_sizes
from fusionlab.data.images import list_images, load_image, load_skimage
from fusionlab.schemas import ImageDataSchema, checked
from fusionlab.tasks.degradations import Degradation
from fusionlab.utils.errors import ConfigError, DataError

# Evaluation images must hold the SSIM window (fusionlab.metrics.image.SSIM_KERNEL, asserted equal in
# tests/test_faults.py; data does not import metrics).
EVAL_MIN_SIZE = 11


class ImageDataModule(SplitLoaders):
    """Paired restoration data made on the fly from clean images.

    Each split comes from a folder (``*_dir``) or, when the folder is null, from a list of
    images shipped in scikit-image (``*_images``). Train yields random ``patch_size`` crops with
    flips/rot90; validation and test yield whole images (batch size ``eval_batch_size``; the
    approach pads them to its network's stride). Batches are dicts ``{"source", "target",
    "name"}`` of float32 ``(B, C, H, W)`` images; ``target`` in [0, 1].

    :param task: the degradation (``task`` config group), injected by the pipeline.
    :param channels: 1 (gray) or 3 (RGB); images are converted as needed.
    :param samples_per_epoch: training patches per epoch.
    :param cache_images: decode every image once and keep it in memory.
    :param skip_bad_files: skip unreadable files with a warning instead of failing.
    :param gray: RGB to gray conversion for ``channels=1``: ``luma`` or ``y`` (YCbCr's Y).
    """

    def __init__(
        self,
        task: Degradation,
        channels: int,
        patch_size: int,
        batch_size: int,
        samples_per_epoch: int,
        train_dir: str | None = None,
        val_dir: str | None = None,
        test_dir: str | None = None,
        train_images: Sequence[str] | None = None,
        val_images: Sequence[str] | None = None,
        test_images: Sequence[str] | None = None,
        eval_batch_size: int = 1,
        num_workers: int = 0,
        pin_memory: bool = False,
        augment: bool = True,
        cache_images: bool = True,
        skip_bad_files: bool = False,
        gray: str = "luma",
    ) -> None:
        super().__init__()
        a = checked(ImageDataSchema, "data", channels=channels, patch_size=patch_size, batch_size=batch_size,
                    samples_per_epoch=samples_per_epoch, eval_batch_size=eval_batch_size, num_workers=num_workers,
                    pin_memory=pin_memory, augment=augment, cache_images=cache_images,
                    skip_bad_files=skip_bad_files, gray=gray)
        self.task, self.gray, self.channels, self.patch_size = task, a.gray, a.channels, a.patch_size
        self.batch_size, self.eval_batch_size, self.samples_per_epoch, self.num_workers = loader_sizes(a)
        self.pin_memory, self.augment = a.pin_memory, a.augment
        self.cache_images, self.skip_bad_files = a.cache_images, a.skip_bad_files
        self.sources = {
            "train": (train_dir, train_images),
            "val": (val_dir, val_images),
            "test": (test_dir, test_images),
        }
        self.train_set = self.val_set = self.test_set = None

    # ---- loading -------------------------------------------------------------------------
    def load_split(self, split: str) -> tuple[list, list[str]]:
        """Images and names of one split, validated (readable, at least ``patch_size`` for train)."""
        folder, names = self.sources[split]
        if folder is not None:
            return self._load_folder(split, folder)
        if names:
            key = f"data.{split}_images"
            return [load_skimage(n, self.channels, key, self.gray) for n in names], [str(n) for n in names]
        raise ConfigError(f"data.{split}_dir", f"no {split} images configured (set a folder)")

    def _load_folder(self, split: str, folder: str) -> tuple[list, list[str]]:
        key = f"data.{split}_dir"
        files = list_images(folder, key)
        images, names, bad, converted = [], [], [], 0
        for path in files:
            try:
                image, planes = load_image(path, self.channels, self.gray, with_planes=True)
            except DataError as err:
                if not self.skip_bad_files:
                    raise DataError(path, f"unreadable image file; set data.skip_bad_files=true to "
                                    f"skip such files ({err})", key) from None
                bad.append(path.name)
                continue
            problem = self.task.check_size(*image.shape[-2:], "image")
            if problem:
                raise DataError(path, problem, key)
            if split != "train" and min(image.shape[-2:]) < EVAL_MIN_SIZE:
                raise DataError(path, f"image is {image.shape[-1]}x{image.shape[-2]}, smaller than the "
                                f"{EVAL_MIN_SIZE}x{EVAL_MIN_SIZE} SSIM window that evaluation needs", key)
            if split == "train" and min(image.shape[-2:]) < self.patch_size:
                raise DataError(path, f"image is {image.shape[-1]}x{image.shape[-2]}, smaller than "
                                f"data.patch_size={self.patch_size}", key)
            converted += self.channels == 1 and planes >= 3
            images.append(image if self.cache_images else functools.partial(load_image, path, self.channels, self.gray))
            names.append(path.name)
        if converted and self.gray == "luma":  # gray=y is the SR convention, chosen on purpose
            warnings.warn(f"{folder} ({key}): {converted} colour image(s) converted to gray ({self.gray}) for this "
                          "gray model (data.channels=1); set data.channels=3 for a colour model", stacklevel=2)
        if bad:
            warnings.warn(f"{folder}: skipped {len(bad)} unreadable file(s): {', '.join(bad)}")
        if not images:
            raise DataError(folder, "no readable images left after skipping bad files", key)
        return images, names

    def setup(self, stage: str | None = None) -> None:
        problem = self.task.check_size(self.patch_size, self.patch_size, f"data.patch_size={self.patch_size}")
        if problem and stage in ("fit", None):
            raise ConfigError("task.scale", f"{problem}: raise data.patch_size or lower task.scale")
        if stage in ("fit", None) and self.train_set is None:
            images, names = self.load_split("train")
            for image, name in zip(images, names):
                if not callable(image) and min(image.shape[-2:]) < self.patch_size:
                    raise ConfigError("data.patch_size", f"{self.patch_size} is larger than "
                                      f"image {name} ({image.shape[-1]}x{image.shape[-2]})")
            self.train_set = PatchDataset(images, names, self.task, self.patch_size,
                                          self.samples_per_epoch, self.augment)
        if stage in ("fit", "validate", None) and self.val_set is None:
            self.val_set = FullImageDataset(*self.load_split("val"), self.task)
        if stage == "fit" and self.test_set is None and self.sources["test"][0] is not None:
            # the test images are checked before training starts, not after it (a 1x1 file, ...)
            self.test_set = FullImageDataset(*self.load_split("test"), self.task)
        if stage in ("test", None) and self.test_set is None:
            self.test_set = FullImageDataset(*self.load_split("test"), self.task)

    def reference_images(self, stage: str = "test") -> tuple[list, list[str]] | None:
        """The clean images of the evaluated split (``val`` or ``test``): what FID/KID compare the
        restored images with. None before that split is set up."""
        dataset = self.val_set if stage == "val" else self.test_set
        if dataset is None:
            return None
        return [im() if callable(im) else im for im in dataset.images], list(dataset.names)
