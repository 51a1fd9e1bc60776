import numpy as np
import pytest
import torch

from fusionlab.data import ImageDataModule, to_tensor
from fusionlab.data.datasets import FullImageDataset, random_crop_augment
from fusionlab.tasks import BicubicDownscale, GaussianNoise
from fusionlab.utils.errors import ConfigError, DataError
from tests.helpers import write_images


def dm(task=None, **kw):
    args = dict(task=task or GaussianNoise(25), channels=1, patch_size=16, batch_size=4,
                samples_per_epoch=8)
    args.update(kw)
    return ImageDataModule(**args)


# ---- conversion ---------------------------------------------------------------------------
def test_to_tensor_conversions():
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 255
    g = to_tensor(rgb, 1)
    assert g.shape == (1, 4, 5) and g.dtype == torch.float32
    assert torch.allclose(g, torch.full_like(g, 0.299))
    y = to_tensor(rgb, 1, gray="y")
    assert torch.allclose(y, torch.full_like(y, 16 / 255 + 219 / 255 * 0.299))
    gray16 = np.full((3, 3), 65535, np.uint16)
    assert to_tensor(gray16, 3).shape == (3, 3, 3) and to_tensor(gray16, 3).max() == 1.0
    rgba = np.full((2, 2, 4), 128, np.uint8)
    assert to_tensor(rgba, 3).shape == (3, 2, 2)
    assert to_tensor(np.ones((2, 2), bool), 1).min() == 1.0


def test_y_mode_matches_skimage_rgb2ycbcr():
    from skimage.color import rgb2ycbcr

    rgb = np.random.default_rng(0).integers(0, 256, (8, 8, 3)).astype(np.uint8)
    ref = rgb2ycbcr(rgb)[..., 0] / 255.0
    assert np.allclose(to_tensor(rgb, 1, gray="y")[0].numpy(), ref, atol=1e-5)


# ---- degradations -------------------------------------------------------------------------
def test_noise_statistics_and_no_clipping():
    clean = torch.full((1, 256, 256), 0.5)
    noisy, target = GaussianNoise(25)(clean)
    noise = noisy - target
    assert abs(noise.std().item() - 25 / 255) < 0.002
    assert abs(noise.mean().item()) < 0.002
    edge = torch.zeros(1, 64, 64)
    assert GaussianNoise(25)(edge)[0].min() < 0  # unclipped, as in the DnCNN protocol
    assert GaussianNoise(25, clip=True)(edge)[0].min() >= 0


def test_eval_noise_is_seeded_per_image_name():
    task = GaussianNoise(25)
    clean = torch.rand(1, 32, 32)
    a = task(clean, task.eval_generator("house.png"))[0]
    b = task(clean, task.eval_generator("house.png"))[0]
    c = task(clean, task.eval_generator("lena.png"))[0]
    d = GaussianNoise(25, eval_seed=1)(clean, GaussianNoise(25, eval_seed=1).eval_generator("house.png"))[0]
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, d)


def test_blind_noise_range():
    task = GaussianNoise([5, 50])
    stds = [(lambda x: (x[0] - x[1]).std().item())(task(torch.zeros(1, 128, 128))) * 255 for _ in range(30)]
    assert 4 < min(stds) and max(stds) < 51 and max(stds) - min(stds) > 10


@pytest.mark.parametrize("bad", [-1, [30, 10], [1, 2, 3]])
def test_noise_rejects_bad_sigma(bad):
    with pytest.raises(ConfigError, match="task.sigma"):
        GaussianNoise(bad)


def test_superres_shapes_modcrop_and_constant_image():
    task = BicubicDownscale(scale=3)
    src, tgt = task(torch.rand(3, 50, 47))
    assert src.shape == tgt.shape == (3, 48, 45)
    flat = torch.full((1, 30, 30), 0.4)
    src, _ = BicubicDownscale(2, quantize=False)(flat)
    assert torch.allclose(src, flat, atol=1e-5)
    with pytest.raises(ConfigError, match="task.scale"):
        BicubicDownscale(scale=0)


def test_superres_input_is_blurrier_than_target():
    img = torch.rand(1, 64, 64)
    src, tgt = BicubicDownscale(4)(img)
    assert (src - tgt).abs().mean() > 0.05


# ---- datasets and datamodule ---------------------------------------------------------------
def test_random_crop_augment_keeps_pixels():
    img = torch.arange(64.0).view(1, 8, 8)
    for _ in range(20):
        p = random_crop_augment(img, 4, augment=True)
        assert p.shape == (1, 4, 4)
        assert set(p.flatten().tolist()) <= set(img.flatten().tolist())


def test_datamodule_folder_batches(tmp_path):
    write_images(tmp_path / "train", 3, size=(40, 50), channels=3)
    write_images(tmp_path / "val", 2, size=(33, 41), channels=1, seed=1)
    d = dm(train_dir=str(tmp_path / "train"), val_dir=str(tmp_path / "val"), test_dir=str(tmp_path / "val"),
           channels=3)
    d.setup("fit")
    batch = next(iter(d.train_dataloader()))
    assert batch["source"].shape == batch["target"].shape == (4, 3, 16, 16)
    assert batch["target"].min() >= 0 and batch["target"].max() <= 1
    val = next(iter(d.val_dataloader()))
    assert val["target"].shape == (1, 3, 33, 41) and val["name"] == ["img00.png"]
    # the same noisy validation image twice
    again = next(iter(d.val_dataloader()))
    assert torch.equal(val["source"], again["source"])


def test_datamodule_skimage_default():
    d = dm(train_images=["camera"], val_images=["coins"], test_images=["moon"], patch_size=32)
    d.setup("fit")
    d.setup("test")
    assert len(d.val_set) == 1 and d.test_set.names == ["moon"]
    with pytest.raises(ConfigError, match="data.val_images"):
        dm(train_images=["camera"], val_images=["no_such_image"]).setup("validate")


def test_missing_and_empty_folders_name_the_key(tmp_path):
    with pytest.raises(DataError, match=r"does not exist \(config key data.train_dir\)"):
        dm(train_dir=str(tmp_path / "nope"), val_dir=str(tmp_path)).setup("fit")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"no images .*data.val_dir"):
        dm(val_dir=str(tmp_path / "empty")).setup("validate")


def test_image_smaller_than_patch_is_named(tmp_path):
    write_images(tmp_path / "t", 1, size=(12, 40))
    with pytest.raises(DataError, match=r"img00.png: image is 40x12, smaller than data.patch_size=16"):
        dm(train_dir=str(tmp_path / "t"), val_dir=str(tmp_path / "t")).setup("fit")


def test_corrupt_file_named_or_skipped(tmp_path):
    write_images(tmp_path / "v", 2)
    (tmp_path / "v" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"broken.png: unreadable image file.*skip_bad_files"):
        dm(val_dir=str(tmp_path / "v")).setup("validate")
    d = dm(val_dir=str(tmp_path / "v"), skip_bad_files=True)
    with pytest.warns(UserWarning, match="broken.png"):
        d.setup("validate")
    assert len(d.val_set) == 2


@pytest.mark.parametrize("key,value", [("channels", 2), ("patch_size", 0), ("batch_size", 0),
                                       ("gray", "avg"), ("samples_per_epoch", 0)])
def test_bad_values_name_the_key(key, value):
    with pytest.raises(ConfigError, match=f"data.{key}"):
        dm(**{key: value})


def test_lazy_loading_gives_same_images(tmp_path):
    write_images(tmp_path / "v", 2)
    a, b = dm(val_dir=str(tmp_path / "v")), dm(val_dir=str(tmp_path / "v"), cache_images=False)
    a.setup("validate"), b.setup("validate")
    assert torch.equal(a.val_set[1]["source"], b.val_set[1]["source"])


def test_full_image_dataset_superres():
    ds = FullImageDataset([torch.rand(1, 31, 30)], ["x.png"], BicubicDownscale(2))
    item = ds[0]
    assert item["source"].shape == item["target"].shape == (1, 30, 30)
