"""Numbers that mean what their names say (each test failed on the behaviour before the fix)."""

import json
import shutil
import sys
import time

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf

from fusionlab.pipeline import evaluate, train
from tests.helpers import CONF, ROOT, compose_cfg, groups_of


class SlowValidation(L.Callback):
    """Validation that costs ``seconds`` of wall time (a stand-in for FID, grids, big val sets)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        time.sleep(self.seconds)


def test_images_per_sec_counts_training_only(tmp_path, monkeypatch):
    from fusionlab.pipeline import builders

    real = builders.build_trainer
    monkeypatch.setattr(builders, "build_trainer",
                        lambda cfg, extra=(), model=None: real(cfg, [*extra, SlowValidation(3.0)], model))
    started = time.perf_counter()
    metrics = train(compose_cfg(tmp_path, ["logger=csv", "metrics.fid.extractor=none", "test=false",
                                           "trainer.limit_train_batches=4"]))
    elapsed = time.perf_counter() - started
    images = 4 * 4  # 4 batches of 4
    train_seconds = images / metrics["train/images_per_sec_epoch"]
    assert elapsed > 3.0 and train_seconds < 2.0, \
        f"{train_seconds:.2f} s of 'training' includes the 3 s validation (run took {elapsed:.1f} s)"


def test_generation_flops_are_named_per_sample_at_the_generator_size(tmp_path):
    metrics = train(compose_cfg(tmp_path, ["task=generate", "logger=csv", "metrics.fid.extractor=none",
                                           "test=false", "data.image_size=16"]))
    assert "flops_per_sample_16" in metrics and not any(k.startswith("flops_per_image") for k in metrics)


def test_two_stage_checkpoint_evaluates_without_the_member_files(tmp_path):
    members = []
    for i in range(2):
        train(compose_cfg(tmp_path / f"m{i}", ["logger=csv", "metrics.fid.extractor=none", "test=false",
                                               "model.width=8", "model.depth=3"]))
        members.append(str(tmp_path / f"m{i}" / "checkpoints" / "best.ckpt"))
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    ens = ["approach=ensemble", "approach.mode=two_stage", "fusion=learned", f"approach.member_checkpoints=[{','.join(members)}]",
           "model@approach.members.m0=dncnn", "model@approach.members.m1=dncnn", "~approach.members.m2",
           "approach.members.m0.width=8", "approach.members.m0.depth=3", "approach.members.m1.width=8",
           "approach.members.m1.depth=3"]
    trained = train(compose_cfg(tmp_path / "ens", ["logger=csv", "metrics.fid.extractor=none", *ens]))
    for i in range(2):  # "another machine": the member files are gone
        shutil.rmtree(tmp_path / f"m{i}")
    GlobalHydra.instance().clear()
    ckpt = tmp_path / "ens" / "checkpoints" / "best.ckpt"
    ecfg = compose_cfg(tmp_path / "eval", [f"ckpt_path={ckpt}", "logger=csv", "metrics.fid.extractor=none"],
                       config_name="eval", hydra_node=True)
    result = evaluate(ecfg, [], groups_of(ecfg))
    assert result["metrics"]["test/psnr"] == pytest.approx(trained["test/psnr"], abs=1e-4)
    assert result["fusion_vs_best_member"]["best_member"] in ("member0", "member1")


def test_weighted_fusion_is_never_the_mean_under_another_name():
    """A `weighted` operator without weights is the mean: searches and benchmarks must call it mean."""
    for search in (CONF / "hparams_search").glob("*.yaml"):
        cfg = OmegaConf.load(search)
        space = json.dumps(OmegaConf.to_container(cfg.hydra.sweeper.params, resolve=False))
        assert "weighted" not in space or "fusion.weights" in space, search.name
    sys.path.insert(0, str(ROOT / "bench"))
    import fusion_levels

    assert "weighted" not in fusion_levels.OPERATORS


def test_bench_cache_is_keyed_on_overrides_and_code_version(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "bench"))
    import common

    calls = []

    def fake_train(cfg):
        calls.append(cfg.seed)
        out = tmp_path / "run"
        out.mkdir(exist_ok=True)
        (out / "metrics.json").write_text(json.dumps({"test/psnr": float(cfg.seed)}))
        return {"test/psnr": float(cfg.seed)}

    monkeypatch.setattr(common, "train", fake_train)
    first = common.run_train(tmp_path / "run", ["seed=1"])
    again = common.run_train(tmp_path / "run", ["seed=1"])
    assert calls == [1] and again["test/psnr"] == 1.0, "same overrides, same code: reused"
    assert first["overrides"] == ["seed=1"] and first["code_version"].startswith("src-")
    common.run_train(tmp_path / "run", ["seed=2"])
    assert calls == [1, 2], "other overrides: redone, never mixed in"
    monkeypatch.setattr(common, "code_version", lambda: "src-otherversion@abc")
    common.run_train(tmp_path / "run", ["seed=2"])
    assert calls == [1, 2, 2], "other code version: redone"


def test_r1_penalty_of_the_gan_is_averaged_over_real_images_only():
    from tests.test_gan import make_gan

    gan = make_gan(loss_weights={"adv": 1.0, "r1": 1.0}).eval()  # eval: spectral norm's u stays put
    torch.manual_seed(0)
    real = torch.rand(4, 1, 16, 16)
    fake = torch.rand(4, 1, 16, 16)
    terms, _ = gan.d_terms({"target": real}, fake, {})
    from fusionlab.losses import r1_penalty

    x = real.clone().requires_grad_(True)
    logits, _ = gan._d_forward(x)
    expected = 0.5 * r1_penalty(logits, x)  # D has no batch statistics: real rows alone give the same logits
    assert terms["r1"].item() == pytest.approx(expected.item(), rel=1e-5), "not halved by the fake rows"


def test_generator_epoch_means_count_generator_steps_only(tmp_path):
    """n_critic=2: G steps every other batch; train/loss_g_epoch is the mean of the G losses logged."""
    import csv

    train(compose_cfg(tmp_path, ["task=generate", "logger=csv", "metrics.fid.extractor=none",
                                 "test=false", "data.image_size=16", "approach.n_critic=2",
                                 "trainer.limit_train_batches=4", "trainer.log_every_n_steps=1"]))
    rows = list(csv.DictReader(open(next(tmp_path.rglob("metrics.csv")))))
    # (Lightning repeats a step value at the steps that do not log it: keep the distinct ones)
    g_steps = list(dict.fromkeys(float(r["train/loss_g"]) for r in rows if r.get("train/loss_g")))
    assert len(g_steps) == 2, "batches 2 and 4"
    [epoch_mean] = [float(r["train/loss_g_epoch"]) for r in rows if r.get("train/loss_g_epoch")]
    assert epoch_mean == pytest.approx(sum(g_steps) / 2, rel=1e-5), "not divided by all 4 batches"


def test_best_value_survives_a_resume(tmp_path):
    """val/psnr_best is checkpointed: a resumed run keeps the best epoch from before the resume."""
    first = train(compose_cfg(tmp_path, ["logger=csv", "metrics.fid.extractor=none", "test=false"]))
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert state["val_best.max_value"].item() == pytest.approx(first["val/psnr_best"])
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    # resumed for one more epoch with much stronger noise: that epoch's PSNR is far lower
    resumed = train(compose_cfg(tmp_path, ["logger=csv", "metrics.fid.extractor=none", "test=false",
                                           "ckpt_path=last", "trainer.max_epochs=2", "task.sigma=75"]))
    assert resumed["val/psnr"] < first["val/psnr_best"] - 3
    assert resumed["val/psnr_best"] == pytest.approx(first["val/psnr_best"]), "best from before the resume"


def test_fid_is_not_reported_on_a_handful_of_images_by_default(tmp_path):
    """Default min_samples (2048, the Inception feature size): 2 test images give KID, never FID."""
    metrics = train(compose_cfg(tmp_path, ["logger=csv", "metrics.fid.extractor=random_proxy",
                                           "metrics.fid.kid_subset_size=2", f"paths.cache_dir={tmp_path / 'c'}"]))
    assert "test/kid_proxy" in metrics and "test/fid_proxy" not in metrics


@pytest.mark.parametrize("extra", [[], ["task=generate", "data.image_size=16"]], ids=["single", "gan"])
def test_learning_rate_schedule_is_logged(tmp_path, extra):
    import csv

    train(compose_cfg(tmp_path, ["logger=csv", "metrics.fid.extractor=none", "test=false",
                                 "trainer.max_epochs=2", *extra]))
    rows = list(csv.DictReader(open(next(tmp_path.rglob("metrics.csv")))))
    lrs = [float(v) for r in rows for k, v in r.items() if k.startswith("lr-") and v]
    assert lrs, "an lr-* column (LearningRateMonitor)"
    if not extra:  # cosine schedule: the second epoch's rate is lower
        assert lrs[-1] < lrs[0]


def test_embedded_faces_are_the_100_faces_only():
    from fusionlab.data.generation import GenerationDataModule

    images = GenerationDataModule(image_size=16).load()
    assert images.shape == (100, 1, 16, 16), "lfw_subset's second half is non-face background crops"
