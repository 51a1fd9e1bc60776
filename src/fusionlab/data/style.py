"""Unpaired data for style transfer (``task=style``): content and style images.

Batches are dicts (see :class:`StyleDataModule`); ``reference_images(stage)`` returns the style
images, the set FID/KID compare stylised outputs with (the one way references reach metrics).
"""

from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

from fusionlab.data.datasets import SplitLoaders, item_generator, loader_sizes, random_crop_augment
from fusionlab.data.images import center_square, list_images, load_image, load_skimage, resize_short_side
from fusionlab.schemas import StyleDataSchema, checked
from fusionlab.utils.errors import ConfigError, check


def load_set(folder: str | None, names: Sequence[str] | None, channels: int, key: str
             ) -> tuple[list[torch.Tensor], list[str]]:
    """Images of a folder (``key`` + ``_dir``) or of scikit-image's embedded list (``key`` + ``_images``)."""
    if folder is not None:
        paths = list_images(folder, f"data.{key}_dir")
        return [load_image(p, channels) for p in paths], [p.stem for p in paths]
    if names:
        return [load_skimage(n, channels, f"data.{key}_images") for n in names], [str(n) for n in names]
    raise ConfigError(f"data.{key}_dir", f"no {key} images configured (set a folder)")


def fixed_pairs(n_content: int, n_style: int, count: int | None, seed: int) -> list[tuple[int, int]]:
    """``count`` (content, style) index pairs drawn without replacement by a seeded permutation of all
    pairs (all of them when ``count`` is null): the same list in every run."""
    total = n_content * n_style
    order = torch.randperm(total, generator=torch.Generator().manual_seed(seed)).tolist()
    chosen = sorted(order[: total if count is None else min(count, total)])
    return [(i // n_style, i % n_style) for i in chosen]


class StyleTrainSet(Dataset):
    """Item ``i``: a random crop of content ``i % N`` with a random crop of a randomly drawn style."""

    def __init__(self, contents, styles, patch_size: int, length: int, augment: bool) -> None:
        self.contents, self.styles = contents, styles
        self.patch_size, self.length, self.augment = patch_size, length, augment
        self.seed = int(torch.initial_seed())  # items are seeded from (run seed, item number)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        g = item_generator(self.seed, index)
        content = self.contents[index % len(self.contents)]
        style = self.styles[int(torch.randint(len(self.styles), (), generator=g).item())]
        return {"content": random_crop_augment(content, self.patch_size, self.augment, g),
                "style": random_crop_augment(style, self.patch_size, self.augment, g)}


class StylePairSet(Dataset):
    """Fixed (content, style) pairs of ``eval_size`` squares, named ``content__style``."""

    def __init__(self, contents, styles, content_names, style_names, pairs) -> None:
        self.contents, self.styles = contents, styles
        self.content_names, self.style_names, self.pairs = content_names, style_names, pairs
        self.names = [f"{content_names[c]}__{style_names[s]}" for c, s in pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        c, s = self.pairs[index]
        return {"content": self.contents[c], "style": self.styles[s], "name": self.names[index]}



class StyleDataModule(SplitLoaders):
    """Unpaired content and style images (``task=style``).

    Images are loaded once with the shorter side resized to ``load_size``. Training pairs random
    ``patch_size`` crops of each content with crops of randomly drawn styles; validation uses
    ``val_pairs`` fixed (content, style) pairs and test ``test_pairs`` (null: every pair), as
    ``eval_size`` centre squares. Batches: ``{"content", "style"}`` (+ ``"name"`` at eval).
    """

    def __init__(self, task=None, channels: int = 3, patch_size: int = 128, load_size: int = 256,
                 eval_size: int = 256, batch_size: int = 8, samples_per_epoch: int = 800,
                 content_dir: str | None = None, style_dir: str | None = None,
                 content_images: Sequence[str] | None = None, style_images: Sequence[str] | None = None,
                 val_pairs: int = 8, test_pairs: int | None = None, eval_batch_size: int = 4,
                 num_workers: int = 0, pin_memory: bool = False, augment: bool = True) -> None:
        super().__init__()
        a = checked(StyleDataSchema, "data", channels=channels, patch_size=patch_size, load_size=load_size,
                    eval_size=eval_size, batch_size=batch_size, samples_per_epoch=samples_per_epoch,
                    val_pairs=val_pairs, test_pairs=test_pairs, eval_batch_size=eval_batch_size,
                    num_workers=num_workers, pin_memory=pin_memory, augment=augment)
        self.task, self.channels = task, a.channels
        self.patch_size, self.load_size, self.eval_size = a.patch_size, a.load_size, a.eval_size
        check(self.load_size >= self.patch_size, "data.load_size",
              f"must be >= data.patch_size ({self.patch_size}), got {load_size!r}")
        self.batch_size, self.eval_batch_size, self.samples_per_epoch, self.num_workers = loader_sizes(a)
        self.pin_memory, self.augment = a.pin_memory, a.augment
        self.val_pairs, self.test_pairs = a.val_pairs, a.test_pairs
        self.dirs = {"content": (content_dir, content_images), "style": (style_dir, style_images)}
        self.seed = getattr(task, "eval_seed", 0)
        self.loaded: dict[str, tuple[list, list[str]]] = {}
        self.train_set = self.val_set = self.test_set = None

    def _images(self, which: str) -> tuple[list, list[str]]:
        if which not in self.loaded:
            images, names = load_set(*self.dirs[which], self.channels, which)
            self.loaded[which] = ([resize_short_side(im, self.load_size) for im in images], names)
        return self.loaded[which]

    def _pair_set(self, count: int | None, seed: int) -> StylePairSet:
        (contents, cn), (styles, sn) = self._images("content"), self._images("style")
        contents = [center_square(im, self.eval_size) for im in contents]
        styles = [center_square(im, self.eval_size) for im in styles]
        return StylePairSet(contents, styles, cn, sn, fixed_pairs(len(cn), len(sn), count, seed))

    def setup(self, stage: str | None = None) -> None:
        if stage in ("fit", None) and self.train_set is None:
            (contents, _), (styles, _) = self._images("content"), self._images("style")
            self.train_set = StyleTrainSet(contents, styles, self.patch_size, self.samples_per_epoch, self.augment)
        if stage in ("fit", "validate", None) and self.val_set is None:
            self.val_set = self._pair_set(self.val_pairs, self.seed)
        if stage in ("test", None) and self.test_set is None:
            self.test_set = self._pair_set(self.test_pairs, self.seed + 1)

    def reference_images(self, stage: str = "test") -> tuple[list[torch.Tensor], list[str]]:
        """The style set as ``eval_size`` centre squares: what FID/KID compare the outputs with."""
        styles, names = self._images("style")
        return [center_square(im, self.eval_size) for im in styles], list(names)

    def style_images(self) -> tuple[list[torch.Tensor], list[str]]:
        """Style images at ``load_size`` and their names (for style mixing at inference)."""
        return self._images("style")


__all__ = ["StyleDataModule", "fixed_pairs"]
