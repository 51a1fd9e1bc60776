"""The comparison report: collection, bad input, and what a browser shows."""

import json
import re
import shutil
import subprocess

import pytest

from fusionlab.pipeline import evaluate, train
from fusionlab.reporting.compare import build_report, describe
from fusionlab.utils.errors import DataError
from tests.helpers import compose_cfg, groups_of

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


def test_describe_names_approach_strategy_backbones(two_runs):
    config = json.loads((two_runs / "ensemble" / "metrics.json").read_text())["config"]
    assert describe(config) == ("ensemble", "learned", "DnCNN+UNet+EDSR")
    config = json.loads((two_runs / "single" / "metrics.json").read_text())["config"]
    assert describe(config) == ("single", "-", "DnCNN")


def test_report_from_runs_skips_bad_ones(two_runs, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.json").write_text("{truncated")
    report, runs, problems = build_report([two_runs, bad], tmp_path / "out")
    assert len(runs) == 2 and len(problems) == 1 and "bad/metrics.json: unreadable metrics file" in problems[0]
    table = json.loads((tmp_path / "out" / "report.json").read_text())
    assert {r["approach"] for r in table["rows"]} == {"single", "ensemble"}
    assert all(r["PSNR"] > 0 and r["GFLOPs/img"] > 0 for r in table["rows"])
    page = report.read_text()
    assert page.count("data:image/png;base64,") == 3  # scatter, bars, restoration grid
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
    report, runs, _ = build_report([two_runs], tmp_path)
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
             "--virtual-time-budget=10000"]
    dom = subprocess.run([*flags, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120).stdout
    rows = re.findall(r"<tr>\s*<td", dom)
    assert len(rows) == 2, "one table row per run"
    assert 'data-plots-rendered="3"' in dom, "all three plots decoded by the browser"
    shot = tmp_path / "report.png"
    subprocess.run([*flags, "--window-size=1300,1800", f"--screenshot={shot}", report.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 20_000


def _fake_run(root, name, seed, lr, psnr, out="x"):
    from fusionlab.reporting.compare import load_run

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

    from fusionlab.reporting.compare import aggregate, label_settings

    values = {1e-3: [30.0, 30.5, 31.0], 1e-4: [28.0, 29.0]}
    runs = [_fake_run(tmp_path, f"lr{lr}_s{i}", seed=i, lr=lr, psnr=p, out=f"o{i}")
            for lr, ps in values.items() for i, p in enumerate(ps)]
    label_settings(runs)
    assert {r.setting for r in runs} == {"optimizer.lr=0.001", "optimizer.lr=0.0001"}, "paths/logger/seed ignored"
    rows = aggregate(runs)
    assert [r["n"] for r in rows] == [3, 2]
    assert rows[0]["psnr_mean"] == pytest.approx(30.5) and rows[0]["psnr_std"] == pytest.approx(0.5)
    assert rows[1]["psnr_std"] == pytest.approx(statistics.stdev([28.0, 29.0]))
    assert rows[1]["ssim_mean"] == pytest.approx(0.285) and rows[0]["fid_mean"] is None
    report, _, _ = build_report([tmp_path], tmp_path / "out")
    page = report.read_text()
    assert "30.50 ± 0.50" in page and "3: 0, 1, 2" in page
    assert json.loads((tmp_path / "out" / "report.json").read_text())["settings"][1]["n"] == 2


def test_failed_sweep_jobs_are_listed_as_skipped(two_runs, tmp_path):
    failed = tmp_path / "sweep" / "3"
    failed.mkdir(parents=True)
    (failed / "failed.json").write_text(json.dumps({"error": "ConfigError: task.sigma: must be >= 0"}))
    _, runs, problems = build_report([two_runs, tmp_path / "sweep"], tmp_path / "out")
    assert len(runs) == 2 and problems == [f"{failed}: job failed (ConfigError: task.sigma: must be >= 0)"]
