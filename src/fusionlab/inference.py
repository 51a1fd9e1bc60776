"""Using a trained model on your own images, from Python or from ``evaluate.py predict=PATH``.

Python (no Hydra involved)::

    from fusionlab.inference import load
    model = load("logs/train/runs/<RUN>/checkpoints/best.ckpt")    # any fusionlab checkpoint
    clean = model.restore(noisy)              # (C, H, W) or (B, C, H, W) in [0, 1], already degraded
    clean = model.restore(noisy, tile=512, overlap=64)               # big images, bounded memory
    samples = model.sample(16, seed=0)        # generation checkpoints

Restoration inputs are taken as already degraded: nothing is degraded again. Large images are
restored in overlapping tiles stitched without seams: the image is padded to the network's stride,
tiles start at multiples of the stride, and each output pixel is taken from the tile where it lies
farthest from the tile's inner edges. With ``overlap >= 2 x`` the network's receptive-field radius
(measured once, :func:`receptive_radius`) the tiled output equals the whole-image output (tested
within 1e-4); a smaller overlap is refused.
"""

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from fusionlab.utils.errors import ConfigError, DataError


def receptive_radius(model: nn.Module, channels: int, size: int = 97) -> int:
    """How far (pixels) an output pixel of a restoration model sees: the largest distance from the
    centre at which the input gradient of the centre output pixel is non-zero (eval mode)."""
    stride = int(getattr(model, "stride", 1))
    size = -(-size // stride) * stride
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(1, channels, size, size, requires_grad=True)
        with torch.enable_grad():
            out = model.named_outputs(x)["main"]
            out[..., size // 2, size // 2].sum().backward()
        grad = x.grad.abs().sum(dim=(0, 1))
        ys, xs = torch.nonzero(grad > 0, as_tuple=True)
        if ys.numel() == 0:
            return 0
        return int(max((ys - size // 2).abs().max(), (xs - size // 2).abs().max()))
    finally:
        model.train(was_training)


def _starts(length: int, tile: int, step: int, stride: int) -> list[int]:
    """Tile starts (multiples of ``stride``) covering ``[0, length)``."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    last = (length - tile) // stride * stride
    if last + tile < length:
        last += stride
    return sorted(set(starts + [min(last, length - tile)]))


@torch.no_grad()
def restore_tiled(restore, x: torch.Tensor, tile: int, overlap: int, stride: int = 1) -> torch.Tensor:
    """``restore`` (``(1, C, h, w) -> (1, C', h, w)``, sizes multiples of ``stride``) over tiles.

    Each output pixel comes from the tile in which it is farthest from an inner tile edge (margin
    ``overlap // 2``): with the margin at least the receptive-field radius this equals the whole.
    """
    _, _, h, w = x.shape
    step = tile - overlap
    margin = overlap // 2
    ys, xs = _starts(h, tile, step, stride), _starts(w, tile, step, stride)
    out = None
    for i, y0 in enumerate(ys):
        for j, x0 in enumerate(xs):
            piece = restore(x[..., y0 : y0 + tile, x0 : x0 + tile])
            if out is None:
                out = piece.new_zeros((piece.shape[0], piece.shape[1], h, w))
            th, tw = piece.shape[-2:]
            # the part of this tile that is kept: up to the middle of each overlap with a neighbour
            top = 0 if i == 0 else max(margin, (ys[i - 1] + tile - y0) // 2)
            left = 0 if j == 0 else max(margin, (xs[j - 1] + tile - x0) // 2)
            bottom = th if i == len(ys) - 1 else th - max(margin, (y0 + tile - ys[i + 1]) // 2)
            right = tw if j == len(xs) - 1 else tw - max(margin, (x0 + tile - xs[j + 1]) // 2)
            out[..., y0 + top : y0 + bottom, x0 + left : x0 + right] = piece[..., top:bottom, left:right]
    return out


@dataclass
class Predictor:
    """A trained approach ready for inference (eval mode, weights loaded)."""

    model: nn.Module
    config: dict
    channels: int

    @property
    def task(self) -> str:
        return self.model.evaluator.task

    def _require(self, task: str, what: str) -> None:
        if self.task != task:
            raise ConfigError("ckpt_path", f"{what} needs a {task} checkpoint; this one is {self.task}")

    @property
    def stride(self) -> int:
        return int(getattr(self.model, "stride", 1))

    def check_tiles(self, tile: int | None, overlap: int, models: list | None = None) -> None:
        """A tile size and overlap that restore without seams (for ``models``: every one of them)."""
        if tile is None:
            return
        radius = max(receptive_radius(m, self.channels) for m in (models or [self.model]))
        if tile <= overlap or tile < self.stride or tile % self.stride:
            raise ConfigError("tile", f"{tile} must be a multiple of the network's stride ({self.stride}) "
                                      f"and larger than overlap ({overlap})")
        if overlap // 2 < radius:
            raise ConfigError("overlap", f"{overlap} is too small for this network's receptive field (radius "
                                         f"{radius} px): tiles would show seams; use overlap >= {2 * radius}")

    @torch.no_grad()
    def restore(self, image: torch.Tensor, tile: int | None = None, overlap: int = 64) -> torch.Tensor:
        """Restore ``(C, H, W)`` or ``(B, C, H, W)`` images in [0, 1] (taken as already degraded)."""
        self._require("restoration", "restore()")
        single = image.dim() == 3
        x = (image[None] if single else image).float()
        if x.shape[1] != self.channels:
            raise DataError("image", f"has {x.shape[1]} channels, the model restores {self.channels}")
        if tile is None or max(x.shape[-2:]) <= tile:
            out = self.model.restore(x)["main"]
        else:
            from fusionlab.functional import pad_to_multiple

            padded, (h, w) = pad_to_multiple(x, self.stride)
            out = torch.cat([restore_tiled(lambda t: self.model.restore(t)["main"], padded[i : i + 1], tile,
                                           overlap, self.stride)[..., :h, :w] for i in range(x.shape[0])])
        out = out.clamp(0.0, 1.0)
        return out[0] if single else out

    @torch.no_grad()
    def restore_with_score(self, image: torch.Tensor, heuristic: str, members: list | None = None,
                           tile: int | None = None, overlap: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """``(restored, score)`` of a ``(C, H, W)`` image in [0, 1] for an uncertainty heuristic of
        :mod:`fusionlab.uncertainty.scores` (``members``: the further checkpoints of ``seed_std``),
        tiled like :meth:`restore` (fused image and score stitched together)."""
        from fusionlab.functional import pad_to_multiple
        from fusionlab.uncertainty.scores import fused_and_score

        self._require("restoration", "restore_with_score()")
        models = [self.model, *(members or [])]
        x = image[None].float()
        if x.shape[1] != self.channels:
            raise DataError("image", f"has {x.shape[1]} channels, the model restores {self.channels}")
        if tile is None or max(x.shape[-2:]) <= tile:
            fused, score = fused_and_score(models, x, heuristic)
        else:
            padded, (h, w) = pad_to_multiple(x, self.stride)
            both = restore_tiled(lambda t: torch.cat(fused_and_score(models, t, heuristic), dim=1), padded, tile,
                                 overlap, self.stride)[..., :h, :w]
            fused, score = both.split(both.shape[1] // 2, dim=1)
        return fused[0].clamp(0.0, 1.0), score[0]

    @torch.no_grad()
    def stylize(self, content: torch.Tensor, styles, weights=None, alpha: float = 1.0,
                preserve_color: bool = False, masks: torch.Tensor | None = None, blur: float = 2.0) -> torch.Tensor:
        """Render ``content`` (``(C, H, W)`` or batched, in [0, 1]) in one style or a fusion of
        several (``weights``: mixing; ``masks``: regions), with AdaIN's ``alpha`` and
        ``preserve_color`` controls."""
        self._require("style", "stylize()")
        from fusionlab.functional import pad_to_multiple

        single = content.dim() == 3
        x = (content[None] if single else content).float()
        styles = [s[None].float() if s.dim() == 3 else s.float() for s in
                  (styles if isinstance(styles, (list, tuple)) else [styles])]
        padded, (h, w) = pad_to_multiple(x, self.stride)
        out = self.model.inference_generator.fuse_styles(padded, styles, weights=weights, masks=masks, blur=blur,
                                                         alpha=alpha, preserve_color=preserve_color)
        out = out[..., :h, :w].clamp(0, 1)
        return out[0] if single else out

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` images of a generation checkpoint from the seeded latent stream ``seed``."""
        self._require("generate", "sample()")
        indices = torch.arange(int(n))
        z = self.model.latents(indices, int(seed))
        return self.model.sample_latents(z, indices, int(seed)).float().clamp(0, 1)

    @torch.no_grad()
    def interpolate(self, pairs: int = 4, steps: int = 8, seed: int = 0) -> list[list[torch.Tensor]]:
        """``pairs`` strips of ``steps`` images along spherical paths between pairs of latents of the
        stream ``seed`` (a generation checkpoint)."""
        self._require("generate", "interpolate()")
        return [[im.float().clamp(0, 1) for im in row]
                for row in self.model.interpolation_rows(pairs=int(pairs), steps=int(steps), seed=int(seed))]


def load(ckpt_path: str | Path, device: str = "cpu", tta: str = "none", tta_fusion: str = "mean") -> Predictor:
    """A :class:`Predictor` from any fusionlab checkpoint, rebuilt from the config saved inside it,
    with the test-time self-ensemble ``tta`` (``none|flip|x8``) fused by ``tta_fusion``."""
    from omegaconf import OmegaConf

    from fusionlab.utils.checkpoints import load_checkpoint_config, read_checkpoint
    from fusionlab.utils.hydra import instantiate

    cfg = load_checkpoint_config(ckpt_path)
    cfg.paths = {"root_dir": ".", "shared_data": ".", "output_dir": ".", "log_dir": ".", "cache_dir": "."}
    model = instantiate(cfg.approach, "approach")
    state = read_checkpoint(ckpt_path)["state_dict"]
    model.load_state_dict(state)
    model.set_tta(tta, tta_fusion)
    model = model.to(device).eval()
    channels = int(OmegaConf.select(cfg, "data.channels", default=1) or 1)
    return Predictor(model, OmegaConf.to_container(cfg, resolve=False), channels)


# ---- evaluate.py predict=PATH --------------------------------------------------------------------
def _to_model_input(array, channels: int):
    """(tensor (C, H, W) in [0, 1], alpha plane or None, how to convert the output back)."""
    import numpy as np

    from fusionlab.data.images import to_tensor

    a = np.asarray(array)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 2, 3, 4)) or a.size == 0:
        raise ValueError(f"unsupported image shape {a.shape}")
    planes = 1 if a.ndim == 2 else a.shape[2]
    alpha = a[..., -1] if planes in (2, 4) else None
    colour = planes in (3, 4)
    if colour and channels == 1:
        raise ValueError("a colour image for a gray model: convert it to gray first, or use a colour model")
    x = to_tensor(a if alpha is None else a[..., :-1], channels)
    return x, alpha, ("gray" if not colour and channels == 3 else "same")


def _from_model_output(y: torch.Tensor, like, alpha, mode: str):
    """The restored image in the input's dtype, channel count and layout."""
    import numpy as np

    if mode == "gray":  # a gray input restored by a colour model: back to one plane (BT.601 luma)
        y = (y * y.new_tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0, keepdim=True)
    a = y.clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    dtype = np.asarray(like).dtype
    if np.issubdtype(dtype, np.integer):
        a = np.round(a * np.iinfo(dtype).max).astype(dtype)
    elif dtype == np.bool_:
        a = a >= 0.5
    else:
        a = a.astype(dtype)
    if alpha is not None:
        a = np.concatenate([a, np.asarray(alpha)[..., None].astype(a.dtype)], axis=2)
    if np.asarray(like).ndim == 2:
        a = a[..., 0]
    return a


def save_image(array, path: Path) -> Path:
    """Write atomically (temporary file in the same folder, then rename): nothing half-written."""
    from fusionlab.data.images import write_array

    from fusionlab.utils.io import atomic_write

    return atomic_write(path, lambda tmp: write_array(array, tmp))


def _input_files(source: str | Path) -> list[Path]:
    source = Path(source)
    if source.is_dir():
        return sorted(p for p in source.iterdir() if p.is_file() and not p.name.startswith("."))
    if source.is_file():
        return [source]
    raise DataError(source, "no such file or folder", "predict")


def _out_of_memory(exc: BaseException) -> bool:
    """CUDA's ``OutOfMemoryError``, Python's ``MemoryError``, or the CPU allocator's RuntimeError."""
    return isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or "can't allocate memory" in str(exc) \
        or "out of memory" in str(exc).lower()


def apply_to_files(apply, channels: int, source: str | Path, out_dir: Path, description: str) -> dict:
    """``apply`` (a ``(C, H, W)`` tensor in [0, 1] -> the same) to every image of ``source`` (a file
    or a folder), written into ``out_dir`` under the same name, size, channel count and bit depth.
    ``apply`` may return ``{suffix: output}`` instead: each tensor is written like the input as
    ``<stem><suffix><ext>`` (``""``: the input's name), each uint8 array as ``<stem><suffix>``.
    An unreadable or unsupported file gets one line and is skipped; the others are processed."""
    import logging

    from rich.progress import track

    from fusionlab.data.images import IMAGE_EXTENSIONS, read_array

    log = logging.getLogger("fusionlab")
    files = _input_files(source)
    written, failed = [], []
    for path in track(files, description=f"{description} {len(files)} file(s)"):
        try:
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                raise ValueError(f"not an image file ({', '.join(IMAGE_EXTENSIONS)})")
            array = read_array(path)
            x, alpha, mode = _to_model_input(array, channels)
            out = apply(x)
            for suffix, y in (out.items() if isinstance(out, dict) else [("", out)]):
                if isinstance(y, torch.Tensor):  # an image like the input: same size, planes, bit depth
                    name = f"{path.stem}{suffix}{path.suffix}" if suffix else path.name
                    written.append(str(save_image(_from_model_output(y, array, alpha, mode), out_dir / name)))
                else:  # a picture of its own (a heat map): uint8 RGB, suffix with its extension
                    written.append(str(save_image(y, out_dir / f"{path.stem}{suffix}")))
        except Exception as exc:  # one line per bad file, the rest go on
            message = f"{path}: skipped ({type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]})"
            if _out_of_memory(exc):
                message += "; out of memory: restore it in tiles with tile=512 (or smaller)"
            failed.append(message)
            log.error("%s", message)
            print(f"error: {message}")
    return {"written": written, "failed": failed, "output_dir": str(out_dir)}


def predict_files(predictor: Predictor, source: str | Path, out_dir: Path, tile: int | None = None,
                  overlap: int = 64, bounds: dict | None = None) -> dict:
    """Restore every image of ``source`` (taken as already degraded) into ``out_dir``, tiled when
    ``tile`` is set (see :func:`apply_to_files`). With ``bounds`` (``{"heuristic", "lambda",
    "members"}``, a saved calibration): also ``<stem>_lower<ext>`` and ``<stem>_upper<ext>`` (the
    calibrated interval, same bit depth) and ``<stem>_uncertainty.png`` (a heat map of its half-width)."""
    _input_files(source)  # a missing source is named before the tiles are checked
    members = (bounds or {}).get("members") or []
    predictor.check_tiles(tile, overlap, [predictor.model, *members])
    if bounds is None:
        return apply_to_files(lambda x: predictor.restore(x, tile=tile, overlap=overlap), predictor.channels,
                              source, out_dir, "restoring")
    from fusionlab.uncertainty.conformal import bounds as interval
    from fusionlab.uncertainty.figures import heat_map

    def apply(x: torch.Tensor) -> dict:
        fused, score = predictor.restore_with_score(x, bounds["heuristic"], members, tile, overlap)
        lower, upper = interval(fused, score, float(bounds["lambda"]))
        return {"": fused, "_lower": lower, "_upper": upper, "_uncertainty.png": heat_map((upper - lower) / 2 * 255)}

    return apply_to_files(apply, predictor.channels, source, out_dir, "restoring with bounds")


def stylize_files(predictor: Predictor, source: str | Path, out_dir: Path, styles, weights=None,
                  alpha: float = 1.0, preserve_color: bool = False, mask: str | Path | None = None,
                  blur: float = 2.0) -> dict:
    """Stylise every content image of ``source`` with the style image files ``styles`` (one, or a
    fusion of several: ``weights`` mixes them, ``mask`` gives each a region, resized to each content
    image), keeping names, sizes, channel counts and bit depths (see :func:`apply_to_files`)."""
    import torch.nn.functional as F

    from fusionlab.data.images import load_image, region_masks

    predictor._require("style", "predict with styles")
    if not styles:
        raise ConfigError("styles", "give the style image(s) to render your content in: styles=[a.png,b.jpg]")
    style_images = []
    for s in styles:
        if not Path(str(s)).is_file():
            raise DataError(s, "style image file does not exist", "styles")
        style_images.append(load_image(s, predictor.channels))
    if weights is not None and len(weights) != len(style_images):
        raise ConfigError("weights", f"{len(weights)} weights for {len(style_images)} styles")
    masks = region_masks(mask, len(style_images)) if mask else None

    def apply(x: torch.Tensor) -> torch.Tensor:
        m = None if masks is None else F.interpolate(masks, size=x.shape[-2:], mode="nearest")
        return predictor.stylize(x, style_images, weights=weights, alpha=alpha, preserve_color=preserve_color,
                                 masks=m, blur=blur)

    return apply_to_files(apply, predictor.channels, source, out_dir, "stylising")


def predict_samples(predictor: Predictor, n: int, seed: int, out_dir: Path, interpolations: int = 0,
                    steps: int = 8) -> dict:
    """``n`` generated samples as PNG files plus a grid; with ``interpolations`` > 0, that many
    strips of ``steps`` images along spherical paths between latents of the stream ``seed``
    (``interpolation.png``)."""
    from fusionlab.utils.grid import enlarge, make_grid, save_png, to_uint8

    images = predictor.sample(n, seed).cpu()
    written = [str(save_png(to_uint8(im), out_dir / f"sample{i:05d}.png")) for i, im in enumerate(images)]
    cols = max(1, int(round(len(images) ** 0.5)))
    rows = [list(images[i : i + cols]) for i in range(0, len(images), cols)]
    grid = save_png(make_grid(enlarge(rows, 64), tile=64), out_dir / "samples_grid.png")
    result = {"written": written, "failed": [], "grid": str(grid), "output_dir": str(out_dir)}
    if interpolations > 0:
        strips = predictor.interpolate(interpolations, steps, seed)
        result["interpolation"] = str(save_png(make_grid(enlarge(strips, 64), tile=64), out_dir / "interpolation.png"))
    return result
