"""Using a trained model on one's own images: predict mode, tiles, bit depth, the Python API."""

import numpy as np
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from fusionlab.data.images import read_array, write_array
from fusionlab.inference import load, receptive_radius, restore_tiled
from fusionlab.pipeline import evaluate, train
from fusionlab.utils.errors import ConfigError, FilesFailed
from tests.helpers import compose_cfg, groups_of

# its module fixtures are built once: all of its tests on one pytest-xdist worker
pytestmark = pytest.mark.xdist_group("test_predict")


@pytest.fixture(scope="module")
def rgb_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("rgb")
    train(compose_cfg(root, ["logger=csv", "metrics.fid.extractor=none", "test=false", "data.channels=3",
                             "model.depth=4", "model.width=8"]))
    GlobalHydra.instance().clear()
    return root / "checkpoints" / "best.ckpt"


def test_predict_keeps_names_sizes_channels_and_bit_depth(rgb_model, tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "mine"
    src.mkdir()
    files = {
        "gray8.png": (rng.random((37, 41)) * 255).astype(np.uint8),
        "rgb8.png": (rng.random((30, 45, 3)) * 255).astype(np.uint8),
        "rgba8.png": (rng.random((33, 29, 4)) * 255).astype(np.uint8),
        "rgb16.png": (rng.random((31, 40, 3)) * 65535).astype(np.uint16),
        "gray16.tif": (rng.random((28, 35)) * 65535).astype(np.uint16),
    }
    for name, array in files.items():
        write_array(array, src / name)
    (src / "broken.png").write_bytes(b"not a png")
    (src / "notes.txt").write_text("hello")
    ecfg = compose_cfg(tmp_path / "run", [f"ckpt_path={rgb_model}", f"predict={src}", "logger=csv",
                                          f"output_dir={tmp_path / 'out'}"], config_name="eval", hydra_node=True)
    with pytest.raises(FilesFailed, match=r"^predict: 2 file\(s\) failed .*5 written$") as failed:  # exit status 1
        evaluate(ecfg, [], groups_of(ecfg))
    result = failed.value.result
    assert len(result["written"]) == 5 and len(result["failed"]) == 2, result["failed"]
    assert any("broken.png: skipped" in f for f in result["failed"])
    for name, array in files.items():
        out = read_array(tmp_path / "out" / name)
        assert out.shape == array.shape and out.dtype == array.dtype, name
    rgba_in, rgba_out = files["rgba8.png"], read_array(tmp_path / "out" / "rgba8.png")
    assert np.array_equal(rgba_out[..., 3], rgba_in[..., 3]), "alpha kept"
    assert not list((tmp_path / "out").glob(".*tmp*")), "nothing half-written"
    restored16 = read_array(tmp_path / "out" / "rgb16.png")
    assert len(np.unique(restored16 % 256)) > 16, "16 bits kept, not 8 bits scaled up"


def test_16_bit_rgb_png_is_read_with_16_bits(tmp_path):
    a = (np.random.default_rng(1).random((9, 11, 3)) * 65535).astype(np.uint16)
    write_array(a, tmp_path / "x.png")
    assert np.array_equal(read_array(tmp_path / "x.png"), a)


def test_tiled_output_equals_whole_image_output(rgb_model):
    predictor = load(rgb_model)
    x = torch.rand(3, 150, 170)
    radius = receptive_radius(predictor.model, 3)
    assert 0 < radius < 20
    whole = predictor.restore(x)
    tiled = predictor.restore(x, tile=64, overlap=2 * radius + 2)
    assert (tiled - whole).abs().max().item() <= 1e-4
    with pytest.raises(ConfigError, match="^overlap: .* too small for this network's receptive field"):
        predictor.check_tiles(64, 2)


def test_tiles_of_a_strided_network_equal_the_whole():
    """A U-Net (stride 4): tiles start at multiples of the stride on the padded image."""
    from fusionlab.approaches.single import SingleModel
    from fusionlab.models import UNet

    model = SingleModel(UNet(1, depth=2, width=4), torch.nn.L1Loss(), lambda params: None).eval()
    x = torch.rand(1, 1, 90, 77)
    from fusionlab.functional import pad_to_multiple

    padded, (h, w) = pad_to_multiple(x, model.stride)
    radius = receptive_radius(model, 1)
    whole = model.restore(x)["main"]
    tiled = restore_tiled(lambda t: model.restore(t)["main"], padded, 48, 2 * radius + 4, model.stride)[..., :h, :w]
    assert (tiled - whole).abs().max().item() <= 1e-4


def test_python_api_samples_are_deterministic(tmp_path):
    train(compose_cfg(tmp_path, ["task=generate", "logger=csv", "metrics.fid.extractor=none", "test=false",
                                 "data.image_size=16"]))
    predictor = load(tmp_path / "checkpoints" / "last.ckpt")
    a, b = predictor.sample(6, seed=3), predictor.sample(6, seed=3)
    assert a.shape == (6, 1, 16, 16) and torch.equal(a, b) and not torch.equal(a, predictor.sample(6, seed=4))
    with pytest.raises(ConfigError, match="restore\\(\\) needs a restoration checkpoint"):
        predictor.restore(torch.rand(1, 16, 16))
    ecfg = compose_cfg(tmp_path / "pred", [f"ckpt_path={tmp_path / 'checkpoints' / 'last.ckpt'}", "predict=samples",
                                           "samples=4", "interpolations=2", "predict_seed=3", "logger=csv",
                                           f"output_dir={tmp_path / 'out'}"], config_name="eval", hydra_node=True)
    result = evaluate(ecfg, [], groups_of(ecfg))
    assert len(result["written"]) == 4 and (tmp_path / "out" / "interpolation.png").is_file()
    folder = tmp_path / "imgs"
    folder.mkdir()
    for bad in (f"predict={folder}", "predict=samples styles=[a.png]"):  # silently ignored before
        ov = [f"ckpt_path={tmp_path / 'checkpoints' / 'last.ckpt'}", *bad.split(), "logger=csv"]
        ecfg = compose_cfg(tmp_path / "pred2", ov, config_name="eval", hydra_node=True)
        with pytest.raises(ConfigError, match=r"^(predict: .* makes samples and reads no images|styles: is an option)"):
            evaluate(ecfg, [], groups_of(ecfg))
    strips = predictor.interpolate(2, 5, seed=3)
    assert len(strips) == 2 and len(strips[0]) == 5 and strips[0][0].shape == (1, 16, 16)


def test_style_checkpoint_takes_your_own_folders_without_plus(tmp_path, rgb_model):
    """The reported failure: `evaluate.py ckpt_path=STYLE.ckpt data.content_dir=DIR` stopped with
    Hydra's "To append to your config use +data.content_dir"."""
    from tests.helpers import run_cli, write_images

    train(compose_cfg(tmp_path / "style", ["task=style", "logger=csv", "metrics.fid.extractor=none",
                                           "data.eval_size=32", "data.patch_size=32"]))
    write_images(tmp_path / "content", 2, size=(40, 48), channels=3)
    write_images(tmp_path / "styles", 2, size=(40, 48), channels=3, seed=5)
    ckpt = tmp_path / "style" / "checkpoints" / "last.ckpt"
    res = run_cli(["evaluate.py", f"ckpt_path={ckpt}", f"data.content_dir={tmp_path / 'content'}",
                   f"data.style_dir={tmp_path / 'styles'}", "logger=csv", "metrics.fid.extractor=none",
                   f"hydra.run.dir={tmp_path / 'eval'}"])
    assert res.returncode == 0, res.stderr[-2000:]
    import json

    names = {r["image"] for r in json.loads((tmp_path / "eval" / "eval.json").read_text())["per_image"]}
    assert names == {f"img0{c}__img0{s}" for c in range(2) for s in range(2)}, "your content x your styles"
    predictor = load(ckpt)  # the Python API: alpha 0 renders the content with its own statistics
    c, st = torch.rand(3, 32, 32), torch.rand(3, 32, 32)
    gen = predictor.model.inference_generator
    assert torch.allclose(predictor.stylize(c, st, alpha=0.0), gen(c[None], c[None])[0].clamp(0, 1), atol=1e-5)
    assert predictor.stylize(c, [st, st], weights=[0.5, 0.5], preserve_color=True).shape == (3, 32, 32)
    res = run_cli(["evaluate.py", f"ckpt_path={rgb_model}", f"data.content_dir={tmp_path / 'content'}",
                   "logger=csv", f"hydra.run.dir={tmp_path / 'eval2'}"])
    assert res.returncode == 2 and "data.content_dir: makes no sense for this checkpoint" in res.stderr

    # predict= on a style checkpoint: your content files in your style files, names/sizes/depths kept
    mine = tmp_path / "mine"
    mine.mkdir()
    rng = np.random.default_rng(2)
    files = {"photo.png": (rng.random((36, 44, 3)) * 255).astype(np.uint8),
             "gray16.png": (rng.random((30, 34)) * 65535).astype(np.uint16)}
    for name, array in files.items():
        write_array(array, mine / name)
    (mine / "broken.png").write_bytes(b"no")
    style_files = sorted(str(p) for p in (tmp_path / "styles").glob("*.png"))
    mask = np.zeros((20, 20), np.uint8)
    mask[:, 10:] = 255
    write_array(mask, tmp_path / "mask.png")
    ecfg = compose_cfg(tmp_path / "pstyle", [f"ckpt_path={ckpt}", f"predict={mine}", "logger=csv",
                                             f"styles=[{','.join(style_files)}]", "weights=[0.5,0.5]", "alpha=0.7",
                                             "preserve_color=true", f"mask={tmp_path / 'mask.png'}",
                                             f"output_dir={tmp_path / 'styled'}"], config_name="eval", hydra_node=True)
    with pytest.raises(FilesFailed) as failed:  # broken.png: exit status 1
        evaluate(ecfg, [], groups_of(ecfg))
    result = failed.value.result
    assert len(result["written"]) == 2 and len(result["failed"]) == 1, result
    for name, array in files.items():
        out = read_array(tmp_path / "styled" / name)
        assert out.shape == array.shape and out.dtype == array.dtype, name
    ecfg = compose_cfg(tmp_path / "pstyle2", [f"ckpt_path={ckpt}", f"predict={mine}", "logger=csv"],
                       config_name="eval", hydra_node=True)
    with pytest.raises(ConfigError, match="^styles: give the style image"):
        evaluate(ecfg, [], groups_of(ecfg))


def test_bad_predict_inputs_get_one_line_each_and_the_rest_go_on(tmp_path):
    """0 pixels, an unsupported channel count, a colour file for a gray model: one line each, the
    good file is still written; a tile below the network's stride is refused before any work."""
    from fusionlab.approaches.single import SingleModel
    from fusionlab.inference import Predictor, apply_to_files
    from fusionlab.models import UNet

    src = tmp_path / "in"
    src.mkdir()
    write_array(np.zeros((0, 7), np.uint8), src / "empty.tif")
    write_array(np.zeros((9, 9, 5), np.uint8), src / "five.tif")
    write_array(np.full((9, 9, 3), 200, np.uint8), src / "colour.png")
    write_array(np.full((9, 9), 100, np.uint8), src / "good.png")
    result = apply_to_files(lambda x: 1 - x, 1, src, tmp_path / "out", "test")
    assert [p.rsplit("/", 1)[-1] for p in result["written"]] == ["good.png"]
    reasons = "\n".join(sorted(result["failed"]))
    assert len(result["failed"]) == 3 and reasons.count("\n") == 2, reasons
    assert "colour.png: skipped" in reasons and "convert it to gray" in reasons
    assert "empty.tif: skipped" in reasons and "five.tif: skipped" in reasons
    assert read_array(tmp_path / "out" / "good.png")[0, 0] == 155
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png"], "nothing else written"

    model = SingleModel(UNet(1, depth=2, width=4), torch.nn.L1Loss(), lambda params: None).eval()
    predictor = Predictor(model, {}, 1)
    with pytest.raises(ConfigError, match="^tile: 2 must be a multiple of the network's stride \\(4\\)"):
        predictor.check_tiles(2, 0)
