"""Adversarial training under Lightning: the manual optimisation step, precision, DDP, the NaN
guard, and style/generation runs evaluated and fused at inference."""

import json
import math

import pytest
import torch

from fusionlab.approaches.gan import UnconditionalGan
from fusionlab.approaches.gan_style import GanStyleTransfer
from fusionlab.pipeline import evaluate, train
from fusionlab.utils.errors import ConfigError, DataError, TrainingDiverged
from tests.helpers import compose_cfg, groups_of, needs_gpu, run_cli

STYLE = ["task=style", "data.patch_size=32", "data.load_size=48", "data.eval_size=48",
         "approach.generator.width=8", "approach.discriminator.width=8", "logger=csv"]
GEN = ["task=generate", "data.image_size=16", "data.val_samples=16", "data.test_samples=16",
       "data.eval_batch_size=8", "approach.generator.width=8", "approach.discriminator.width=8", "logger=csv",
       "metrics.fid.extractor=random_proxy", "metrics.fid.min_samples=8"]


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters (not buffers: spectral norm's power iteration advances on every training forward)."""
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def changed(a: dict, b: dict) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("approach,base", [(GanStyleTransfer, STYLE), (UnconditionalGan, GEN)])
def test_one_step_updates_both_networks_and_d_is_frozen_during_g_step(tmp_path, monkeypatch, approach, base):
    seen = {}
    real_d_terms, real_g_terms = approach.d_terms, approach.g_terms

    def d_terms(self, batch, fake, ctx):
        seen.setdefault("g_before_d_step", snapshot(self.generator))
        seen.setdefault("d_initial", snapshot(self.discriminator))
        return real_d_terms(self, batch, fake, ctx)

    def g_terms(self, batch, fake, ctx):
        seen.setdefault("g_before_g_step", snapshot(self.generator))
        seen.setdefault("d_before_g_step", snapshot(self.discriminator))
        assert not any(p.requires_grad for p in self.discriminator.parameters()), "D toggled off in the G step"
        return real_g_terms(self, batch, fake, ctx)

    monkeypatch.setattr(approach, "d_terms", d_terms)
    monkeypatch.setattr(approach, "g_terms", g_terms)
    cfg = compose_cfg(tmp_path, [*base, "trainer.limit_train_batches=1", "test=false", "approach.ema_decay=null"])
    from fusionlab.pipeline import build, build_trainer

    datamodule, model = build(cfg)
    trainer = build_trainer(cfg, model=model)
    trainer.fit(model, datamodule=datamodule)
    g_after, d_after = snapshot(model.generator), snapshot(model.discriminator)
    assert not changed(seen["g_before_d_step"], seen["g_before_g_step"]), "G unchanged by the D step"
    assert changed(seen["d_initial"], seen["d_before_g_step"]), "the D step updated D"
    assert not changed(seen["d_before_g_step"], d_after), "D unchanged by the G step"
    assert changed(seen["g_before_g_step"], g_after), "the G step updated G"
    assert int(model.batches_seen) == 1 and trainer.global_step == 2, "global_step counts both optimizer steps"


def test_n_critic_counts_batches(tmp_path):
    cfg = compose_cfg(tmp_path, [*GEN, "approach.n_critic=3", "trainer.limit_train_batches=6", "test=false"])
    train(cfg)
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["state_dict"]["batches_seen"] == 6
    assert ckpt["global_step"] == 6 + 2, "6 D steps and 2 G steps"


@pytest.mark.parametrize("base", [STYLE, GEN], ids=["style", "generate"])
def test_bf16_mixed_smoke_training(tmp_path, base):
    metrics = train(compose_cfg(tmp_path, [*base, "trainer.precision=bf16-mixed", "approach.grad_clip=1.0"]))
    finite = [k for k, v in metrics.items() if k.startswith(("val/", "test/")) and isinstance(v, float)]
    assert finite and all(math.isfinite(metrics[k]) for k in finite)


@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed"])
@pytest.mark.parametrize("base", [STYLE, GEN], ids=["style", "generate"])
def test_mixed_precision_on_gpu(tmp_path, base, precision):
    metrics = train(compose_cfg(tmp_path, [*base, f"trainer.precision={precision}", "trainer.accelerator=gpu",
                                           "approach.grad_clip=1.0"]))
    assert all(math.isfinite(v) for k, v in metrics.items() if k.startswith("val/"))


def test_nan_guard_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    base = [*GEN, "trainer.limit_train_batches=2", "test=false"]
    train(compose_cfg(tmp_path, [*base, "trainer.max_epochs=1"]))
    last = tmp_path / "checkpoints" / "last.ckpt"
    good = last.read_bytes()
    original = UnconditionalGan.g_terms

    def poisoned(self, batch, fake, ctx):
        terms = original(self, batch, fake, ctx)
        if int(self.batches_seen) >= 3:  # the second batch of the resumed epoch
            terms["adv"] = terms["adv"] * float("nan")
        return terms

    monkeypatch.setattr(UnconditionalGan, "g_terms", poisoned)
    cfg = compose_cfg(tmp_path, [*base, "trainer.max_epochs=2", f"ckpt_path={last}"])
    with pytest.raises(TrainingDiverged, match=r"loss_g is nan \(term 'adv'\) at batch 3, epoch 1.*last good "
                                               r"checkpoint: .*last.ckpt"):
        train(cfg)
    assert last.read_bytes() == good, "the last good checkpoint is kept"
    state = torch.load(last, map_location="cpu", weights_only=False)["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_gan_config_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"^approach.loss_weights: unknown loss term\(s\) \['cls'\]"):
        train(compose_cfg(tmp_path, [*STYLE, "+approach.loss_weights.cls=1"]))
    with pytest.raises(ConfigError, match=r"^approach.features: must be one of"):
        train(compose_cfg(tmp_path, [*STYLE, "approach.features=inception"]))
    with pytest.raises(ConfigError, match=r"^approach.vgg_weights: features=vgg19 needs a local VGG-19 weights file"):
        train(compose_cfg(tmp_path, [*STYLE, "approach.features=vgg19"]))
    with pytest.raises(DataError, match=r"nope.pth: VGG-19 weights file not found.*prefetch"):
        train(compose_cfg(tmp_path, [*STYLE, "approach.features=vgg19", f"approach.vgg_weights={tmp_path}/nope.pth"]))
    with pytest.raises(ConfigError, match=r"^data.image_size: must be a power of two"):
        train(compose_cfg(tmp_path, [*GEN, "data.image_size=24"]))
    assert not (tmp_path / "metrics.json").exists()


def fake_vgg19(path):
    """A state dict in torchvision's VGG-19 format (random weights) for tests."""
    from fusionlab.models.vgg import vgg19_features

    torch.manual_seed(0)
    state = {f"features.{k}": v for k, v in vgg19_features().state_dict().items()}
    state["classifier.6.bias"] = torch.zeros(1000)
    torch.save(state, path)
    return path


def test_vgg19_feature_space_from_a_local_file(tmp_path):
    from fusionlab.models.vgg import VGGFeatures

    weights = fake_vgg19(tmp_path / "vgg19.pth")
    vgg = VGGFeatures(weights)
    feats = vgg(torch.rand(1, 1, 32, 32))  # gray is repeated to RGB
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512] and feats[-1].shape[-1] == 4
    vgg.train()
    assert not vgg.training and not any(p.requires_grad for p in vgg.parameters())
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(DataError, match=r"bad.pth: not torchvision's VGG-19 state dict"):
        VGGFeatures(tmp_path / "bad.pth")
    metrics = train(compose_cfg(tmp_path / "run", [*STYLE, "approach.features=vgg19", f"approach.vgg_weights={weights}"]))
    assert metrics["config"]["approach"]["features"] == "vgg19" and math.isfinite(metrics["val/style_distance"])
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert not any("vgg" in k for k in ckpt["state_dict"]), "the frozen VGG is not saved in checkpoints"


def test_style_run_evaluates_and_fuses_styles_at_inference(tmp_path):
    from skimage import io as skio

    train(compose_cfg(tmp_path / "run", [*STYLE, "approach.generator.injection=spade"]))
    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    assert (tmp_path / "run" / "samples" / "val_epoch000.png").is_file()
    mask = torch.zeros(48, 48, dtype=torch.uint8)
    mask[:, 24:] = 255
    skio.imsave(str(tmp_path / "mask.png"), mask.numpy(), check_contrast=False)
    extra = ["styles=[retina,colorwheel]", "weights=[0.7,0.3]", f"mask={tmp_path / 'mask.png'}"]
    ecfg = compose_cfg(tmp_path / "eval", [f"ckpt_path={ckpt}", "logger=csv", "trainer.limit_test_batches=1", *extra],
                       config_name="eval", hydra_node=True)
    result = evaluate(ecfg, extra, groups_of(ecfg))
    assert result["config"]["approach"]["generator"]["injection"] == "spade"
    assert {"content_ssim", "style_distance"} <= set(result["per_image"][0])
    out = tmp_path / "eval"
    assert len(list((out / "images").glob("*__*.png"))) == 4, "stylised test pairs written"
    contents = ["astronaut", "chelsea", "coffee", "rocket", "cat"]
    for name in contents:
        assert skio.imread(out / "fusion" / f"mix_{name}.png").shape == (48, 48, 3)
        assert (out / "fusion" / f"region_{name}.png").is_file()
    assert (out / "fusion" / "fusion_grid.png").is_file() and result["fusion_images"] == 10
    bad = ["styles=[retina]", "weights=[0.5,0.5]"]
    ecfg = compose_cfg(tmp_path / "eval2", [f"ckpt_path={ckpt}", "logger=csv", *bad], config_name="eval",
                       hydra_node=True)
    with pytest.raises(ConfigError, match=r"^weights: 2 weights for 1 styles"):
        evaluate(ecfg, bad, groups_of(ecfg))


@pytest.mark.parametrize("approach", ["gan", "gan_mixture"])
def test_generation_run_writes_samples_grids_and_metrics(tmp_path, approach):
    metrics = train(compose_cfg(tmp_path / "run", [*GEN, f"approach={approach}", "logger=wandb"]))
    assert metrics["val/nn_distance"] > 0 and metrics["val/nn_distance_train"] > 0
    assert "val/fid_proxy" in metrics and "val/fid" not in metrics, "the proxy is never logged as fid"
    grid = tmp_path / "run" / "samples" / "gen_epoch000.png"
    assert grid.is_file() and (tmp_path / "run" / "samples" / "interpolation.png").is_file()
    from skimage import io as skio

    rows = 3 if approach == "gan_mixture" else 8  # one row per generator | an 8x8 grid of 64
    tile = 64
    assert skio.imread(grid).shape[0] == rows * (tile + 2) - 2
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*/files/media/images/val/samples*.png"))
    assert runs, "grid logged to W&B"
    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    ecfg = compose_cfg(tmp_path / "eval", [f"ckpt_path={ckpt}", "logger=csv", "trainer.limit_test_batches=null"],
                       config_name="eval", hydra_node=True)
    result = evaluate(ecfg, [], groups_of(ecfg))
    assert len(list((tmp_path / "eval" / "images").glob("sample*.png"))) == 16
    assert (tmp_path / "eval" / "samples_grid.png").is_file() and (tmp_path / "eval" / "interpolation.png").is_file()
    saved = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert saved["metrics"]["test/nn_distance"] == pytest.approx(result["metrics"]["test/nn_distance"])
    assert "test/fid_proxy" in saved["metrics"]


@pytest.mark.slow
@pytest.mark.parametrize("base", [STYLE, GEN], ids=["style", "generate"])
def test_ddp_two_cpu_processes(tmp_path, base):
    """2 CPU processes (gloo) under DDP: no unused-parameter failure in the manual G/D steps."""
    res = run_cli(["train.py", "debug=smoke", "extras.print_config=false", *base, "trainer.accelerator=cpu",
                   "trainer.devices=2", "trainer.strategy=ddp", f"hydra.run.dir={tmp_path}"])
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert all(math.isfinite(v) for k, v in metrics.items() if k.startswith("val/"))
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
