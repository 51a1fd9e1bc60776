"""Unpaired data: content and style images for style transfer, image sets for generation.

Both data modules yield dict batches (see each class) and expose ``reference_images(stage)``: the
set that FID/KID (and, for generation, the nearest-training-image distance) compare outputs with
(the style images; the training images). It is the one way references reach metrics.
"""

import zlib
from collections.abc import Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from fusionlab.data.datasets import item_generator, loader_sizes, make_loader, random_crop_augment
from fusionlab.data.images import list_images, load_image, load_skimage
from fusionlab.utils.errors import ConfigError, DataError, as_int, check


def resize_short_side(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``(C, H, W)`` so that its shorter side is ``size`` (antialiased bilinear)."""
    h, w = image.shape[-2:]
    scale = size / min(h, w)
    if scale == 1:
        return image
    out = (max(size, round(h * scale)), max(size, round(w * scale)))
    return F.interpolate(image[None], size=out, mode="bilinear", align_corners=False,
                         antialias=scale < 1)[0].clamp(0, 1)


def center_square(image: torch.Tensor, size: int) -> torch.Tensor:
    """Shorter side resized to ``size``, then the centre ``size x size`` square."""
    image = resize_short_side(image, size)
    h, w = image.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return image[:, top : top + size, left : left + size].contiguous()


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



class _Loaders(L.LightningDataModule):
    """Train (shuffled, full batches) / val / test loaders over ``*_set`` of the subclass."""

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


class StyleDataModule(_Loaders):
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
        check(channels in (1, 3), "data.channels", f"must be 1 (gray) or 3 (RGB), got {channels!r}")
        self.task, self.channels = task, int(channels)
        self.patch_size = as_int(patch_size, "data.patch_size", 16)
        self.load_size = as_int(load_size, "data.load_size", 1)
        check(self.load_size >= self.patch_size, "data.load_size",
              f"must be >= data.patch_size ({self.patch_size}), got {load_size!r}")
        self.eval_size = as_int(eval_size, "data.eval_size", 16)
        self.batch_size, self.eval_batch_size, self.samples_per_epoch, self.num_workers = loader_sizes(
            batch_size, eval_batch_size, samples_per_epoch, num_workers)
        self.pin_memory = pin_memory
        self.val_pairs = as_int(val_pairs, "data.val_pairs", 1)
        self.test_pairs = as_int(test_pairs, "data.test_pairs", 1, allow_none=True)
        self.augment = augment
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


# ---- generation -------------------------------------------------------------------------------
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


class GenerationDataModule(_Loaders):
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
                 num_workers: int = 0, pin_memory: bool = False, augment: bool = True,
                 patch_size: int | None = None) -> None:
        """``patch_size`` is accepted and unused (generation trains on whole images), so that debug
        configs shared with the restoration tasks apply."""
        super().__init__()
        check(channels in (1, 3), "data.channels", f"must be 1 (gray) or 3 (RGB), got {channels!r}")
        self.task, self.channels = task, int(channels)
        self.image_size = as_int(image_size, "data.image_size", 8)
        check(not self.image_size & (self.image_size - 1), "data.image_size",
              f"must be a power of two >= 8 (32, 64, 128), got {image_size!r}")
        self.batch_size, self.eval_batch_size, self.samples_per_epoch, self.num_workers = loader_sizes(
            batch_size, eval_batch_size, samples_per_epoch, num_workers)
        self.pin_memory = pin_memory
        self.val_samples = as_int(val_samples, "data.val_samples", 1)
        self.test_samples = as_int(test_samples, "data.test_samples", 1)
        self.train_dir, self.train_images, self.augment = train_dir, train_images, augment
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


__all__ = ["GenerationDataModule", "StyleDataModule", "center_square", "fixed_pairs", "resize_short_side",
           "seeded_latents"]
