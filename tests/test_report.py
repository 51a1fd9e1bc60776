"""The comparison report: collection, bad input, and what a browser shows."""

import json
import re
import shutil
import subprocess

import pytest

from fusionlab.pipeline import evaluate, train
from fusionlab.reporting.compare import build_report
from fusionlab.utils.errors import DataError
from tests.helpers import compose_cfg, groups_of

# its module fixtures are built once: all of its tests on one pytest-xdist worker
pytestmark = pytest.mark.xdist_group("test_report")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    train(compose_cfg(root / "single", ["logger=csv", "metrics.fid.extractor=none"]))
    train(compose_cfg(root / "ensemble", ["logger=csv", "metrics.fid.extractor=none", "approach=ensemble",
                                          "fusion=learned", "approach.members.m1.width=8"]))
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    return root


def test_runs_carry_what_their_approach_and_evaluator_declare(two_runs):
    """The approach names itself and its members, the evaluator its metrics; records written before
    they carried these are read to the same labels from their config."""
    from fusionlab.reporting.runs import backbones, legacy_description, load_run

    for name, label, strategy, nets in (("ensemble", "ensemble", "learned", "DnCNN+UNet+EDSR"),
                                        ("single", "single", "-", "DnCNN")):
        data = json.loads((two_runs / name / "metrics.json").read_text())
        described = data["approach"]
        assert (described["label"], described["strategy"], backbones(described["components"])) == (label, strategy, nets)
        legacy = legacy_description(data["config"])
        assert (legacy["label"], legacy["strategy"], backbones(legacy["components"])) == (label, strategy, nets)
        assert data["metric_specs"]["task"] == "restoration"
        specs = {s["name"]: s for s in data["metric_specs"]["metrics"]}
        assert specs["psnr"]["primary"] and specs["psnr"]["unit"] == " dB" and specs["ssim"]["higher_is_better"]
        run = load_run(two_runs / name)
        assert (run.approach, run.strategy, run.backbones, run.task, run.primary.name) == \
            (label, strategy, nets, "restoration", "psnr")
    assert described["provenance"] == ["approach.init_checkpoint"]


def test_each_approach_has_one_name_config_group_tag_and_label():
    """``approach=NAME`` builds a class whose label is NAME, which is its W&B tag and report label."""
    from omegaconf import OmegaConf

    from fusionlab.utils.hydra import _run_tags, approach_label
    from tests.helpers import CONF

    for file in sorted((CONF / "approach").glob("*.yaml")):
        target = OmegaConf.load(file)["_target_"]
        assert approach_label(target) == file.stem, (file.name, target)
        assert f"approach:{file.stem}" in _run_tags([], target, None)
    assert approach_label("gone.module.SomeOldApproach") == "some_old_approach", "a class gone: its snake-case name"


def test_report_from_runs_skips_bad_ones(two_runs, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.json").write_text("{truncated")
    report, runs, problems, _ = build_report([two_runs, bad], tmp_path / "out")
    assert len(runs) == 2 and len(problems) == 1 and "bad/metrics.json: unreadable metrics file" in problems[0]
    table = json.loads((tmp_path / "out" / "report.json").read_text())
    assert {r["approach"] for r in table["rows"]} == {"single", "ensemble"}
    assert all(r["psnr"] > 0 and r["GFLOPs"] > 0 and r["GFLOPs per"] == "image 256" for r in table["rows"])
    page = report.read_text()
    assert page.count("data:image/png;base64,") == 5  # forest, scatter, bars, zoomed crops, restoration grid
    comparison = json.loads((tmp_path / "out" / "comparison.json").read_text())
    assert comparison["baselines"] == {"restoration": "single DnCNN"}, "auto: the single model is the baseline"
    [psnr] = [c for c in comparison["comparisons"] if c["metric"] == "psnr"]
    assert psnr["n_images"] == 2 and psnr["ci_low"] <= psnr["mean"] <= psnr["ci_high"]
    assert [w["best_member"] for w in comparison["within_run"]] and "fused" in comparison["within_run"][0]["psnr"]["verdict"]
    assert "http://" not in page and "https://" not in page, "self-contained"


def test_no_runs_is_an_error(tmp_path):
    with pytest.raises(DataError, match="no runs to compare"):
        build_report([tmp_path], tmp_path / "out")
    ecfg = compose_cfg(tmp_path / "e", [f"compare={tmp_path / 'missing'}"], config_name="eval", hydra_node=True)
    with pytest.raises(DataError, match=r"missing: does not exist"):
        evaluate(ecfg, [], groups_of(ecfg))


def test_compare_through_evaluate_logs_wandb_table(two_runs, tmp_path):
    ecfg = compose_cfg(tmp_path, [f"compare={two_runs}", "logger=wandb"], config_name="eval", hydra_node=True)
    result = evaluate(ecfg, [], groups_of(ecfg))
    assert result["runs"] == 2 and (tmp_path / "report.html").is_file()
    logs = list(tmp_path.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(logs) == 1 and b"compare/runs" in logs[0].read_bytes()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(two_runs, tmp_path):
    report, runs, _, _ = build_report([two_runs], tmp_path)
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
             "--virtual-time-budget=10000"]
    dom = subprocess.run([*flags, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120).stdout
    runs_table = dom.split('<table id="runs">', 1)[1].split("</table>", 1)[0]
    assert len(re.findall(r"<tr>\s*<td", runs_table)) == 2, "one table row per run"
    assert 'data-plots-rendered="5"' in dom, "all five plots (forest plot first) decoded by the browser"
    assert 'alt="forest plot"' in dom and "Does it beat the baseline?" in dom
    shot = tmp_path / "report.png"
    subprocess.run([*flags, "--window-size=1300,1800", f"--screenshot={shot}", report.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 20_000


def _fake_run(root, name, seed, lr, psnr, out="x"):
    from fusionlab.reporting.runs import load_run

    config = {"seed": seed, "paths": {"output_dir": f"/{out}/{name}"}, "logger": {"wandb": {"id": name}},
              "approach": {"_target_": "fusionlab.approaches.single.SingleModel",
                           "net": {"_target_": "fusionlab.models.DnCNN", "width": 32},
                           "optimizer": {"lr": lr}}}
    run = root / name
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"test/psnr": psnr, "test/ssim": psnr / 100, "config": config}))
    return load_run(run)


def test_seeds_of_one_setting_aggregate_to_mean_and_sample_std(tmp_path):
    import statistics

    from fusionlab.reporting.runs import aggregate, label_settings

    values = {1e-3: [30.0, 30.5, 31.0], 1e-4: [28.0, 29.0]}
    runs = [_fake_run(tmp_path, f"lr{lr}_s{i}", seed=i, lr=lr, psnr=p, out=f"o{i}")
            for lr, ps in values.items() for i, p in enumerate(ps)]
    label_settings(runs)
    assert {r.setting for r in runs} == {"optimizer.lr=0.001", "optimizer.lr=0.0001"}, "paths/logger/seed ignored"
    rows = aggregate(runs)
    assert [r["n"] for r in rows] == [3, 2]
    assert rows[0]["psnr_mean"] == pytest.approx(30.5) and rows[0]["psnr_std"] == pytest.approx(0.5)
    assert rows[1]["psnr_std"] == pytest.approx(statistics.stdev([28.0, 29.0]))
    assert rows[1]["ssim_mean"] == pytest.approx(0.285) and "fid_mean" not in rows[0], "restoration has no FID"
    report, _, _, _ = build_report([tmp_path], tmp_path / "out")
    page = report.read_text()
    # mean over seeds with a 95% t-interval: 30.5 +- t(0.975, 2) * 0.5 / sqrt(3) = 30.5 +- 1.242
    assert "30.50 [29.26, 31.74]" in page and "3 seeds: 0, 1, 2" in page
    assert rows[0]["psnr_ci"] == pytest.approx([30.5 - 1.2421, 30.5 + 1.2421], abs=1e-3)
    assert json.loads((tmp_path / "out" / "report.json").read_text())["settings"][1]["n"] == 2


def test_failed_sweep_jobs_are_listed_as_skipped(two_runs, tmp_path):
    failed = tmp_path / "sweep" / "3"
    failed.mkdir(parents=True)
    (failed / "failed.json").write_text(json.dumps({"error": "ConfigError: task.sigma: must be >= 0"}))
    _, runs, problems, _ = build_report([two_runs, tmp_path / "sweep"], tmp_path / "out")
    assert len(runs) == 2 and problems == [f"{failed}: job failed (ConfigError: task.sigma: must be >= 0)"]


def _records_run(root, name, seed, psnr_values, approach="fusionlab.approaches.single.SingleModel", lr=1e-3,
                 members=None):
    """A fake restoration run with per-image records (``img{i}``) and matching test means."""
    import statistics

    config = {"seed": seed, "paths": {"output_dir": f"/{name}"},
              "approach": {"_target_": approach, "net": {"_target_": "fusionlab.models.DnCNN"},
                           "optimizer": {"lr": lr}}}
    records = [{"image": f"img{i}", "psnr": p, "ssim": p / 40} for i, p in enumerate(psnr_values)]
    if members:
        for r, m in zip(records, zip(*members)):
            r.update({f"psnr_member{j}": v for j, v in enumerate(m)})
            r.update({f"ssim_member{j}": v / 40 for j, v in enumerate(m)})
    run = root / name
    run.mkdir(parents=True)
    metrics = {"test/psnr": statistics.fmean(psnr_values), "test/ssim": statistics.fmean(psnr_values) / 40,
               "per_image": records, "config": config}
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def test_paired_comparison_says_in_words_what_is_distinguishable(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    base = rng.normal(28, 1.5, 20)
    for seed in (1, 2):
        _records_run(tmp_path, f"single_s{seed}", seed, list(base + rng.normal(0, 0.01, 20)))
        # lr=1e-2: +0.1 dB on every image (small but consistent): distinguishable
        _records_run(tmp_path, f"better_s{seed}", seed, list(base + 0.1 + rng.normal(0, 0.01, 20)), lr=1e-2)
        # lr=1e-4: +-0.5 dB noise around the baseline: not distinguishable
        _records_run(tmp_path, f"noisy_s{seed}", seed, list(base + rng.normal(0, 0.5, 20)), lr=1e-4)
    report, runs, _, result = build_report([tmp_path], tmp_path / "out", baseline="lr=0.001")
    by = {c["candidate"].split("(")[-1].rstrip(")"): c for c in result["comparisons"] if c["metric"] == "psnr"}
    assert by["optimizer.lr=0.01"]["distinguishable"] and by["optimizer.lr=0.01"]["win_rate"] == 1.0
    assert by["optimizer.lr=0.01"]["ci_low"] > 0.05 and by["optimizer.lr=0.01"]["mean"] == pytest.approx(0.1, abs=0.01)
    assert not by["optimizer.lr=0.0001"]["distinguishable"]
    assert by["optimizer.lr=0.01"]["seed_difference"]["ci_low"] > 0, "2 seeds each: Welch interval over seeds"
    assert all(c["p_holm"] >= c["p_value"] for c in result["comparisons"]), "Holm never lowers a p-value"
    page = report.read_text()
    assert "not distinguishable" in page and "is better than" in page
    saved = json.loads((tmp_path / "out" / "comparison.json").read_text())
    assert len(saved["comparisons"]) == 4 and saved["baselines"]["restoration"].endswith("(optimizer.lr=0.001)")


def test_within_run_fused_vs_best_member(tmp_path):
    from fusionlab.reporting.paired import member_comparison

    fused = [30.0, 31.0, 29.0, 30.5, 28.0]
    members = [[29.8, 30.9, 28.7, 30.4, 27.9], [29.0, 30.0, 28.0, 29.0, 27.0]]
    run = _records_run(tmp_path, "ens", 1, fused, approach="fusionlab.approaches.ensemble.OutputEnsemble",
                       members=members)
    result = json.loads((run / "metrics.json").read_text())
    within = member_comparison(result)
    assert within["best_member"] == "member0" and within["chosen_on"].startswith("test")
    assert within["psnr"]["mean"] == pytest.approx(0.16) and within["psnr"]["win_rate"] == 1.0
    result["val/psnr_member0"], result["val/psnr_member1"] = 20.0, 21.0  # validation picks member1
    within = member_comparison(result)
    assert within["best_member"] == "member1" and within["chosen_on"] == "validation PSNR"
    assert within["psnr"]["mean"] == pytest.approx(1.1)


def test_report_mixes_tasks_without_crashing_and_names_repeats(tmp_path):
    """Restoration, style and generation runs side by side; runs without PSNR never crash it."""
    _records_run(tmp_path, "restore_a", 7, [28.0, 29.0, 30.0])
    _records_run(tmp_path, "restore_b", 7, [28.1, 29.2, 30.1])  # same seed: a repeat, not a second seed
    style = {"seed": 1, "approach": {"_target_": "fusionlab.approaches.gan_style.GanStyleTransfer",
                                     "generator": {"_target_": "fusionlab.models.StylizerGenerator"},
                                     "discriminator": {"_target_": "fusionlab.models.PatchDiscriminator"}},
             "model": {"_target_": "fusionlab.models.DnCNN"}}
    gen = {"seed": 1, "approach": {"_target_": "fusionlab.approaches.gan.UnconditionalGan",
                                   "generator": {"_target_": "fusionlab.models.DCGANGenerator"},
                                   "discriminator": {"_target_": "fusionlab.models.DCGANDiscriminator"}},
           "model": {"_target_": "fusionlab.models.DnCNN"}}
    for name, cfg, metrics, records in [
        ("style", style, {"test/content_ssim": 0.5, "test/style_distance": 0.2},
         [{"image": "a__b", "content_ssim": 0.5, "style_distance": 0.2}]),
        ("gen", gen, {"test/nn_distance": 0.1, "test/kid_proxy": 0.01, "flops_per_sample_32": 1e6},
         [{"image": "sample00000", "nn_distance": 0.1}])]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps({**metrics, "per_image": records, "config": cfg}))
    report, runs, problems, result = build_report([tmp_path], tmp_path / "out")
    assert len(runs) == 4 and not problems
    table = json.loads((tmp_path / "out" / "report.json").read_text())
    rows = {r["run"].split("/")[-1]: r for r in table["rows"]}
    assert rows["gen"]["backbones"] == "DCGANGenerator+DCGANDiscriminator", "not the unused top-level model"
    assert rows["gen"]["task"] == "generate" and rows["gen"]["GFLOPs per"] == "sample 32"
    assert rows["style"]["content_ssim"] == 0.5 and "psnr" not in rows["style"], "a style run has no PSNR column"
    settings = {s["label"]: s for s in table["settings"]}
    assert settings["single DnCNN"]["seeds"] == "1 seed: 7 (1 repeat of the same seed, averaged)"
    assert settings["single DnCNN"]["psnr_ci"] is None, "one seed: no interval over seeds"


def test_compare_real_restoration_style_and_generation_runs(two_runs, tmp_path):
    """Runs of the three tasks trained for a few steps, compared in one report (the reported crash:
    float(None) on runs without PSNR)."""
    from hydra.core.global_hydra import GlobalHydra

    for task in ("style", "generate"):
        train(compose_cfg(tmp_path / task, [f"task={task}", "logger=csv", "metrics.fid.extractor=none",
                                            "data.image_size=16" if task == "generate" else "data.eval_size=32"]))
        GlobalHydra.instance().clear()
    ecfg = compose_cfg(tmp_path / "out", [f"compare=[{two_runs},{tmp_path / 'style'},{tmp_path / 'generate'}]",
                                          "logger=csv"], config_name="eval", hydra_node=True)
    result = evaluate(ecfg, [], groups_of(ecfg))
    assert result["runs"] == 4 and not result["skipped"]
    rows = {r["task"]: r for r in json.loads((tmp_path / "out" / "report.json").read_text())["rows"]}
    assert set(rows) == {"restoration", "style", "generate"}
    assert rows["style"]["content_ssim"] is not None and rows["generate"]["nn_distance"] is not None
    assert rows["generate"]["backbones"] == "DCGANGenerator+DCGANDiscriminator"


def test_zoomed_crop_goes_where_the_runs_disagree():
    import numpy as np

    from fusionlab.reporting.figures import disagreement_window

    target = np.zeros((60, 80))
    a, b = target.copy(), target.copy()
    b[40:46, 10:16] = 0.5  # the runs differ only here
    y, x = disagreement_window([a, b], target, size=12)
    assert y <= 40 and y + 12 >= 46 and x <= 10 and x + 12 >= 16
