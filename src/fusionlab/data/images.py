"""Reading images from folders or from scikit-image into float32 tensors ``(C, H, W)`` in [0, 1]."""

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fusionlab.schemas import GRAY_MODES  # noqa: F401  (re-exported: data.images.GRAY_MODES)
from fusionlab.utils.errors import ConfigError, DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def list_images(folder: str | Path, key: str) -> list[Path]:
    """Sorted image files directly inside ``folder``.

    :param key: the config key that named the folder, quoted in errors.
    :raises DataError: when the folder is missing or holds no image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "folder does not exist", key)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        exts = ", ".join(e.lstrip(".") for e in IMAGE_EXTENSIONS)
        raise DataError(folder, f"folder holds no images ({exts})", key)
    return files




def to_tensor(array: np.ndarray, channels: int, gray: str = "luma") -> torch.Tensor:
    """Convert an image array to float32 ``(channels, H, W)`` in [0, 1].

    Accepts gray ``(H, W)`` / ``(H, W, 1)``, RGB, RGBA (alpha dropped), of dtype bool, uint8,
    uint16 or float (assumed in [0, 1]). Gray to RGB repeats the plane. For ``channels=1``,
    ``gray="luma"`` gives ITU-R BT.601 luma (MATLAB's ``rgb2gray``); ``gray="y"`` gives the Y
    channel of BT.601 YCbCr (``16/255 + 219/255 * luma``, MATLAB's ``rgb2ycbcr``), the
    super-resolution convention, applied to gray inputs too.
    """
    a = np.asarray(array)
    if a.dtype == np.bool_:
        a = a.astype(np.float32)
    elif a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    elif a.dtype == np.uint16:
        a = a.astype(np.float32) / 65535.0
    elif np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    else:
        a = np.clip(a.astype(np.float32), 0.0, 1.0)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"unsupported image shape {array.shape}")
    if a.shape[2] in (2, 4):  # gray+alpha or RGBA: drop alpha
        a = a[:, :, : a.shape[2] - 1]
    if channels == 1 and a.shape[2] == 3:
        a = (a @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[:, :, None]
    if channels == 1 and gray == "y":
        a = 16.0 / 255.0 + (219.0 / 255.0) * a
    elif channels == 3 and a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


def _png_bit_depth(path: Path) -> int | None:
    """The bit depth in a PNG's header (byte 24), or None if it is not a PNG."""
    with open(path, "rb") as f:
        head = f.read(25)
    return head[24] if len(head) == 25 and head[:8] == b"\x89PNG\r\n\x1a\n" else None


def read_array(path: str | Path) -> np.ndarray:
    """An image file as an array of its own dtype and channels. 16-bit PNGs are read with pypng:
    scikit-image's Pillow backend silently reduces 16-bit RGB PNGs to 8 bits."""
    path = Path(path)
    if path.suffix.lower() == ".png" and _png_bit_depth(path) == 16:
        import png

        width, height, rows, info = png.Reader(filename=str(path)).asDirect()
        array = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows])
        return array.reshape(height, width, info["planes"]).squeeze(-1) if info["planes"] == 1 else \
            array.reshape(height, width, info["planes"])
    from skimage import io as skio

    return skio.imread(str(path))


def write_array(array: np.ndarray, path: str | Path) -> None:
    """Write an image array in its own dtype (16-bit PNGs through pypng, the rest scikit-image)."""
    path = Path(path)
    a = np.asarray(array)
    if path.suffix.lower() == ".png" and a.dtype == np.uint16:
        import png

        planes = 1 if a.ndim == 2 else a.shape[2]
        mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[planes]
        with open(path, "wb") as f:
            png.from_array(a.reshape(a.shape[0], -1), f"{mode};16").write(f)
        return
    from skimage import io as skio

    skio.imsave(str(path), a, check_contrast=False)


def load_image(path: str | Path, channels: int, gray: str = "luma", with_planes: bool = False):
    """Read one image file as float32 ``(channels, H, W)`` in [0, 1] (with ``with_planes``: and the
    file's number of planes, alpha included, to tell a converted colour image).

    :raises DataError: naming the file when it cannot be decoded.
    """
    try:
        array = read_array(path)
        image = to_tensor(array, channels, gray)
        return (image, 1 if array.ndim == 2 else int(array.shape[2])) if with_planes else image
    except Exception as exc:  # decoders raise many types; the user needs the file name
        raise DataError(path, f"cannot read image ({type(exc).__name__}: {exc})") from exc


def load_skimage(name: str, channels: int, key: str, gray: str = "luma") -> torch.Tensor:
    """One of the images that ship inside scikit-image (``skimage.data.<name>()``)."""
    from skimage import data as skdata

    loader = getattr(skdata, name, None)
    if loader is None or not callable(loader):
        raise ConfigError(key, f"scikit-image has no embedded image named {name!r}")
    try:
        return to_tensor(loader(), channels, gray)
    except Exception as exc:
        raise ConfigError(key, f"scikit-image image {name!r} is not available offline: {exc}")


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


def region_masks(mask_path: str | Path, n_styles: int, size: int | None = None) -> torch.Tensor:
    """``(1, K, H, W)`` region masks from a label image: its distinct gray levels, darkest first,
    are the regions; region ``k`` gets style ``k``. With ``size``: of its centre square at that size."""
    label = load_image(mask_path, 1)
    label = (center_square(label, size) if size else label)[0].mul(255).round()
    levels = torch.unique(label)
    if len(levels) != n_styles:
        raise DataError(mask_path, f"mask has {len(levels)} regions (gray levels) but {n_styles} styles were given",
                        "mask")
    return torch.stack([(label == v).float() for v in levels])[None]
