"""Run records describe themselves: a metric is one spec in its evaluator, an approach one
LightningModule, and the report reads only what they declared (``metric_specs``, ``approach``)."""

import json

import pytest
from hydra.core.global_hydra import GlobalHydra

from fusionlab.approaches.single import SingleModel
from fusionlab.evaluation import MetricSpec, RestorationEvaluator
from fusionlab.pipeline import evaluate, train
from fusionlab.pipeline.compare import wandb_tables
from fusionlab.reporting.compare import build_report
from tests.helpers import compose_cfg, groups_of

# its module fixtures are built once: all of its tests on one pytest-xdist worker
pytestmark = pytest.mark.xdist_group("test_records")


# ---- a new metric and a new approach, defined here and nowhere else -------------------------------
class MaeEvaluator(RestorationEvaluator):
    """Restoration plus one metric: mean absolute error per image (lower is better)."""

    metrics = (*RestorationEvaluator.metrics, MetricSpec("mae", higher_is_better=False, space="pixels", digits=5))

    def quality(self, images, target):
        out = super().quality(images, target)
        t = self.prepare(target)
        for name, image in images.items():
            out["mae" if name == "main" else f"mae_{name}"] = (self.prepare(image) - t).abs().flatten(1).mean(1)
        return out


class ToyApproach(SingleModel):
    """A single network under another name, evaluated with the MAE evaluator."""

    label = "toy"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.set_evaluator(MaeEvaluator(self.evaluator.y_channel, self.evaluator.crop_border))


TOY = f"approach._target_={__name__}.ToyApproach"


def _train(folder, *overrides):
    train(compose_cfg(folder, ["logger=csv", "metrics.fid.extractor=none", *overrides]))
    GlobalHydra.instance().clear()


@pytest.fixture(scope="module")
def restoration_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("records")
    for seed in (1, 2):
        _train(root / f"toy_s{seed}", TOY, f"seed={seed}")
    _train(root / "toy_lr_s1", TOY, "seed=1", "approach.optimizer.lr=0.0003")
    _train(root / "plain_s1", "seed=1")
    _train(root / "ema_s1", "seed=1", "weight_averaging=ema")
    return root


def test_a_metric_declared_once_reaches_every_table(restoration_runs, tmp_path, monkeypatch):
    data = json.loads((restoration_runs / "toy_s1" / "metrics.json").read_text())
    assert data["approach"]["label"] == "toy" and "mae" in {s["name"] for s in data["metric_specs"]["metrics"]}
    assert all(0 < r["mae"] < 1 and 0 < r["mae_input"] < 1 for r in data["per_image"]), "each image: its mae"
    assert data["test/mae"] == pytest.approx(sum(r["mae"] for r in data["per_image"]) / len(data["per_image"]),
                                             rel=1e-5), "the logged mean is the mean of the records"
    paths = [restoration_runs / n for n in ("toy_s1", "toy_s2", "toy_lr_s1")]
    report, runs, problems, result = build_report(paths, tmp_path, baseline="toy_lr_s1")
    assert not problems
    comparison = json.loads((tmp_path / "comparison.json").read_text())
    assert comparison["metric_specs"]["mae"]["higher_is_better"] is False
    [mae] = [c for c in comparison["comparisons"] if c["metric"] == "mae"]
    assert mae["kind"] == "paired images" and mae["candidate"].startswith("toy DnCNN") and not mae["higher_is_better"]
    toy = next(s for s in comparison["settings"] if s["n"] == 2)
    values = [json.loads((restoration_runs / f"toy_s{i}" / "metrics.json").read_text())["test/mae"] for i in (1, 2)]
    assert toy["n"] == 2 and toy["mae_mean"] == pytest.approx(sum(values) / 2) and toy["mae_ci"] is not None
    page = report.read_text()
    assert "<th>mae</th>" in page and "toy DnCNN" in page and "on MAE" in page

    class FakeWandb:  # what would reach W&B: the tables' columns
        @staticmethod
        def Table(columns, data):
            return {"columns": columns, "data": data}

    tables = wandb_tables(FakeWandb, runs, result)
    assert "mae" in tables["compare/runs"]["columns"] and "mae_mean" in tables["compare/settings"]["columns"]
    assert any(row[tables["compare/paired"]["columns"].index("metric")] == "mae"
               for row in tables["compare/paired"]["data"])


def test_callbacks_make_settings_a_plain_and_an_ema_run_are_two(restoration_runs, tmp_path):
    _, runs, _, result = build_report([restoration_runs / "plain_s1", restoration_runs / "ema_s1"], tmp_path)
    settings = result["settings"]
    assert len(settings) == 2 and all(s["n"] == 1 and "repeat" not in s["seeds"] for s in settings)
    assert any("weight_averaging" in r.setting for r in runs), [r.setting for r in runs]
    assert [c for c in result["comparisons"] if c["metric"] == "psnr"], "the two are compared"


def test_setting_counts_the_global_batch_not_the_device_count():
    from fusionlab.reporting.runs import setting_config

    def cfg(devices, nodes, batch):
        return {"seed": 1, "trainer": {"devices": devices, "num_nodes": nodes}, "data": {"batch_size": batch},
                "paths": {"output_dir": "/x"}, "callbacks": {"model_checkpoint": {"dirpath": "/x/ckpt",
                                                                                   "monitor": "val/psnr"}}}

    assert setting_config(cfg(2, 1, 16))["global_batch"] == setting_config(cfg(1, 1, 32))["global_batch"] == 32
    assert setting_config(cfg(1, 1, 16)) != setting_config(cfg(2, 1, 16))
    assert setting_config(cfg(1, 1, 16), world_size=4)["global_batch"] == 64, "what the run recorded wins"
    flat = setting_config(cfg(1, 1, 16))
    assert "callbacks.model_checkpoint.monitor" in flat and "callbacks.model_checkpoint.dirpath" not in flat


# ---- a generation sweep: its own table, intervals over seeds, a forest plot ----------------------
@pytest.fixture(scope="module")
def generation_sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    small = ["experiment=generate_stacked_digits", "data.samples_per_epoch=64", "data.val_samples=100",
             "data.test_samples=200", f"paths.cache_dir={root / 'cache'}", "data.classifier.epochs=3"]
    for approach in ("gan", "vae"):
        for seed in (1, 2):
            _train(root / f"{approach}_s{seed}", *small, f"approach={approach}", f"seed={seed}")
    return root


def test_generation_sweep_report_has_digit_metrics_over_seeds_and_a_forest_plot(generation_sweep, tmp_path):
    ecfg = compose_cfg(tmp_path, [f"compare={generation_sweep}", "logger=csv", "baseline=gan"], config_name="eval",
                       hydra_node=True)
    out = evaluate(ecfg, [], groups_of(ecfg))
    assert out["runs"] == 4 and not out["skipped"]
    comparison = json.loads((tmp_path / "comparison.json").read_text())
    settings = {s["approach"]: s for s in comparison["settings"]}
    assert set(settings) == {"gan", "vae"} and all(s["n"] == 2 and s["task"] == "generate" for s in settings.values())
    for name in ("modes_covered", "mode_kl", "fd_digits", "precision", "recall", "modes_covered_svc",
                 "reader_agreement", "modes_covered_agreed", "fd_digits_heldout"):
        assert settings["vae"][f"{name}_ci"] is not None, name
        low, high = settings["vae"][f"{name}_ci"]
        assert low <= settings["vae"][f"{name}_mean"] <= high
    rows = {c["metric"]: c for c in comparison["comparisons"]}
    assert rows["fd_digits"]["kind"] == "over seeds" and rows["fd_digits"]["primary"]
    assert rows["fd_digits"]["higher_is_better"] is False and rows["fd_digits"]["n_images"] is None
    assert "nn_distance" in rows and rows["nn_distance"]["kind"] == "over seeds", "samples are not paired"
    page = (tmp_path / "report.html").read_text()
    assert 'alt="forest plot"' in page and "<th>modes_covered</th>" in page and "<th>fd_digits</th>" in page


def test_a_record_with_malformed_specs_is_skipped_by_name(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"test/psnr": 30.0, "config": {"seed": 1},
                                                  "metric_specs": {"task": "restoration", "metrics": [{"nam": 1}]}}))
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "metrics.json").write_text(json.dumps({"test/psnr": 30.0, "config": {"seed": 1}}))
    _, runs, problems, _ = build_report([tmp_path], tmp_path / "out")
    assert len(runs) == 1 and len(problems) == 1 and "r/metrics.json" in problems[0] and "metric_specs" in problems[0]


def test_specs_drive_direction_of_baseline_choice_and_best_tracking():
    from fusionlab.evaluation import GenerationEvaluator, StyleEvaluator

    assert RestorationEvaluator().best == ("psnr", "max") and StyleEvaluator().best == ("content_ssim", "max")
    assert GenerationEvaluator().best is None
    record = GenerationEvaluator().metric_specs()
    assert record["task"] == "generate" and [m["name"] for m in record["metrics"] if m["primary"]] == ["fd_digits"]


def test_approach_yaml_defaults_agree_with_the_code():
    """A plain value in ``conf/approach/NAME.yaml`` is the class's own default (found:
    ``member_loss_weight`` was 0.5 in YAML and 0.0 in code). ``ema_decay`` differs on purpose: the
    YAML turns the generator EMA on, a GAN built in code has none unless asked."""
    import inspect

    from hydra.utils import get_class
    from omegaconf import OmegaConf

    from tests.helpers import CONF

    differ = []
    for file in sorted((CONF / "approach").glob("*.yaml")):
        node = OmegaConf.to_container(OmegaConf.load(file), resolve=False)
        params = inspect.signature(get_class(node["_target_"]).__init__).parameters
        for key, value in node.items():
            default = getattr(params.get(key), "default", inspect.Parameter.empty)
            plain = not isinstance(value, (dict, list)) and value != "???" and "${" not in str(value)
            if plain and default is not inspect.Parameter.empty and default != value and key != "ema_decay":
                differ.append(f"{file.name}: {key} = {value} in YAML, {default} in code")
    assert not differ, differ


def test_atomic_write_leaves_nothing_half_written_and_ordinary_permissions(tmp_path):
    import os

    from fusionlab.utils.io import atomic_write, atomic_write_text

    path = atomic_write_text(tmp_path / "a" / "r.json", "{}")
    assert path.read_text() == "{}" and oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    atomic_write_text(path, "old")

    def failing(tmp):
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_write(path, failing)
    assert path.read_text() == "old" and sorted(os.listdir(path.parent)) == ["r.json"], "no temporary file left"


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask
