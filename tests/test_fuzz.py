"""Property-based tests (hypothesis) over the data pipeline: whatever images and numbers a user
gives, loading either works (batches of the promised shape and range) or stops with a one-line
error naming the config key or the file, never with a traceback from deep inside torch/numpy."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fusionlab.utils.errors import FusionlabError
from fusionlab.utils.hydra import instantiate
from tests.helpers import compose_cfg

# derandomize: the same examples on every CI run (a failure is reproducible, not a flake)
FUZZ = settings(max_examples=60, deadline=None, derandomize=True, print_blob=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# (kind, dtype, trailing channels) of files users have: 8/16-bit gray, gray+alpha, RGB, RGBA, float
KINDS = {"gray8": (np.uint8, None), "gray16": (np.uint16, None), "graya8": (np.uint8, 2),
         "rgb8": (np.uint8, 3), "rgba8": (np.uint8, 4), "rgb16": (np.uint16, 3), "gray_float": (np.float32, None)}


def write_image(path: Path, height: int, width: int, kind: str, seed: int) -> Path:
    from skimage import io as skio

    dtype, channels = KINDS[kind]
    shape = (height, width) if channels is None else (height, width, channels)
    rng = np.random.default_rng(seed)
    if dtype == np.float32:
        data = rng.random(shape, dtype=np.float32)
    else:
        data = rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)
    if kind in ("gray_float", "rgb16"):  # PNG has neither float nor (through Pillow) 16-bit RGB
        import tifffile

        path = path.with_suffix(".tif")
        tifffile.imwrite(path, data, photometric="rgb" if data.ndim == 3 else "minisblack")
        return path
    skio.imsave(str(path), data, check_contrast=False)
    return path


def check_clear(err: FusionlabError, keys: tuple[str, ...] = (), paths: tuple[Path, ...] = ()) -> None:
    """One line that names a config key (``data.x: ...``/``(config key data.x)``) or a file."""
    message = str(err)
    assert "\n" not in message, message
    named_key = re.match(r"^[a-z_]+\.[\w.]+: ", message) or "(config key " in message
    named_path = any(str(p) in message for p in paths)
    assert named_key or named_path, message
    if keys and not named_path:
        assert any(k in message for k in keys), f"{message!r} names none of {keys}"


def load_first_batches(cfg):
    task = instantiate(cfg.task, "task")
    datamodule = instantiate(cfg.data, "data", task=task)
    datamodule.setup("fit")
    train = next(iter(datamodule.train_dataloader()))
    val = next(iter(datamodule.val_dataloader()))
    return datamodule, train, val


image_specs = st.lists(st.tuples(st.integers(1, 70), st.integers(1, 70), st.sampled_from(sorted(KINDS))),
                       min_size=1, max_size=3)


@FUZZ
@given(specs=image_specs, channels=st.sampled_from([1, 3]), patch=st.integers(8, 48),
       task=st.sampled_from(["denoise", "superres"]), sigma=st.floats(0, 75), scale=st.integers(2, 4))
def test_image_folders_load_or_fail_clearly(tmp_path_factory, specs, channels, patch, task, sigma, scale):
    folder = tmp_path_factory.mktemp("imgs")
    paths = tuple(write_image(folder / f"im{i}.png", h, w, kind, i) for i, (h, w, kind) in enumerate(specs))
    overrides = ["data=folder", f"data.train_dir={folder}", f"data.val_dir={folder}", f"data.channels={channels}",
                 f"data.patch_size={patch}", "data.batch_size=2", "data.samples_per_epoch=4", f"task={task}",
                 f"task.sigma={sigma}" if task == "denoise" else f"task.scale={scale}"]
    cfg = compose_cfg(folder / "run", overrides)
    try:
        _, train, val = load_first_batches(cfg)
    except FusionlabError as err:
        check_clear(err, paths=(folder, *paths))
        from fusionlab.data.datamodule import EVAL_MIN_SIZE  # val images must hold the SSIM window

        small = min(min(h, w) for h, w, _ in specs) < max(patch, EVAL_MIN_SIZE)
        assert small or task == "superres", f"no image is smaller than the patch, yet: {err}"
        return
    side = patch - patch % scale if task == "superres" else patch  # SR crops the target to a multiple of scale
    assert train["target"].shape == (2, channels, side, side)
    assert train["source"].shape == train["target"].shape
    for batch in (train, val):
        assert batch["target"].dtype == torch.float32 and torch.isfinite(batch["source"]).all()
        assert 0 <= float(batch["target"].min()) and float(batch["target"].max()) <= 1


NUMBERS = st.one_of(st.integers(-3, 300), st.floats(-5, 300, allow_nan=False).map(lambda v: round(v, 2)),
                    st.sampled_from(["abc", "null", "''"]))
FIELDS = {  # task -> numeric keys a user sets
    "denoise": ["data.patch_size", "data.batch_size", "data.eval_batch_size", "data.samples_per_epoch",
                "data.num_workers", "data.channels", "task.sigma"],
    "superres": ["data.patch_size", "task.scale"],
    "style": ["data.patch_size", "data.load_size", "data.eval_size", "data.batch_size", "data.val_pairs"],
    "generate": ["data.image_size", "data.batch_size", "data.val_samples"],
}
CASES = [(task, key) for task, keys in FIELDS.items() for key in keys]


@settings(FUZZ, max_examples=50)
@given(case=st.sampled_from(CASES), value=NUMBERS, workers=st.integers(-2, 2))
def test_numeric_overrides_work_or_name_the_key(tmp_path_factory, case, value, workers):
    task, key = case
    if key == "data.num_workers" and isinstance(value, (int, float)):
        value = workers  # hundreds of worker processes would work, slowly
    tmp = tmp_path_factory.mktemp("run")
    light = {"style": ["data.samples_per_epoch=2", "data.val_pairs=2", "data.load_size=64", "data.eval_size=32",
                       "data.patch_size=32", "data.batch_size=2"],
             "generate": ["data.samples_per_epoch=4", "data.val_samples=4", "data.batch_size=2"]}.get(
                 task, ["data.train_images=[coins]", "data.val_images=[coins]", "data.test_images=[coins]"])
    overrides = dict(o.split("=", 1) for o in [f"task={task}", "data.num_workers=0", *light])
    overrides[key] = str(value)
    cfg = compose_cfg(tmp, [f"{k}={v}" for k, v in overrides.items()])
    try:
        _, train, _ = load_first_batches(cfg)
    except FusionlabError as err:
        check_clear(err, keys=(key,))
        return
    first = next(v for v in train.values() if torch.is_tensor(v))
    assert first.ndim == 4 and torch.isfinite(first).all()


@pytest.mark.parametrize("override,key", [("task.sigma=-5", "task.sigma"), ("data.patch_size=0", "data.patch_size"),
                                          ("task=superres task.scale=0", "task.scale")])
def test_named_bad_values_fail_with_their_key(tmp_path, override, key):
    cfg = compose_cfg(tmp_path, override.split())
    with pytest.raises(FusionlabError, match=rf"^{re.escape(key)}: "):
        load_first_batches(cfg)
