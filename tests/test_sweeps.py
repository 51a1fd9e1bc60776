"""Hydra multirun sweeps, as a user runs them."""

import json

import pytest

from tests.helpers import run_cli, write_images


@pytest.mark.slow
def test_fusion_sweep_over_seeds_then_compare(tmp_path):
    """The user's question end to end: a sweep of two fusion strategies over two seeds (tagged, one
    W&B group), then `evaluate.py compare=SWEEP` answers with paired intervals."""
    write_images(tmp_path / "imgs", 2, size=(40, 40))
    write_images(tmp_path / "test", 8, size=(40, 40), seed=1)
    sweep = tmp_path / "sweep"
    res = run_cli(["train.py", "-m", "experiment=ensemble_denoise", "fusion=mean,learned", "seed=1,2",
                   "debug=smoke", "extras.print_config=false", "logger=wandb", f"data.train_dir={tmp_path / 'imgs'}",
                   f"data.val_dir={tmp_path / 'imgs'}", f"data.test_dir={tmp_path / 'test'}",
                   "trainer.limit_test_batches=null", "approach.members.m1.width=8", f"hydra.sweep.dir={sweep}"])
    assert res.returncode == 0, res.stderr[-3000:]
    records = []
    for job in ("0", "1", "2", "3"):
        assert json.loads((sweep / job / "metrics.json").read_text())["val/psnr"] > 0
        runs = list((sweep / job / "wandb").glob("offline-run-*/run-*.wandb"))
        assert len(runs) == 1, "one W&B run per job"
        records.append(runs[0].read_bytes())  # offline runs keep group, tags and config in this log
    group = f"sweep-{sweep.name}".encode()
    assert all(group in r for r in records), "all jobs in the sweep's W&B group"
    assert b"fusion:mean" in records[0] and b"fusion:learned" not in records[0]  # job order: fusion, then seed
    assert b"fusion:learned" in records[2] and b"fusion:mean" not in records[2]
    assert all(b"approach:ensemble" in r for r in records)

    res = run_cli(["evaluate.py", f"compare={sweep}", "logger=csv", f"hydra.run.dir={tmp_path / 'report'}"])
    assert res.returncode == 0, res.stderr[-3000:]
    comparison = json.loads((tmp_path / "report" / "comparison.json").read_text())
    [psnr] = [c for c in comparison["comparisons"] if c["metric"] == "psnr"]
    assert psnr["n_images"] == 8 and psnr["seeds_candidate"] == 2 and psnr["seeds_baseline"] == 2
    assert psnr["ci_low"] <= psnr["mean"] <= psnr["ci_high"] and 0 <= psnr["p_holm"] <= 1
    assert psnr["seed_difference"] is not None, "two seeds each: the interval over seeds too"
    assert len(comparison["within_run"]) == 4, "fused vs best member in every run"
    page = (tmp_path / "report" / "report.html").read_text()
    assert 'alt="forest plot"' in page and ("not distinguishable" in page or " than " in page)
    assert psnr["verdict"] in res.stdout, "the verdict is printed"


def _smoke_sweep(tmp_path, *extra):
    return ["train.py", "-m", "debug=smoke", "extras.print_config=false", f"paths.log_dir={tmp_path / 'logs'}",
            f"hydra.sweep.dir={tmp_path / 'sweep'}", *extra]


@pytest.mark.slow
def test_failed_job_does_not_stop_joblib_sweep_and_is_reported(tmp_path):
    """Two parallel jobs (joblib), the first with a bad value: the second finishes with its own
    W&B run, the failure is listed at the end and the sweep exits 1; nothing half-written."""
    res = run_cli(_smoke_sweep(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "logger=wandb",
                               "task.sigma=-5,25"))
    assert res.returncode == 1, res.stderr[-3000:]
    sweep = tmp_path / "sweep"
    assert "sweep: 1 of 2 jobs finished" in res.stderr
    assert "job 0 failed: debug=smoke" in res.stderr and "task.sigma: noise level" in res.stderr
    failed = json.loads((sweep / "0" / "failed.json").read_text())
    assert failed["overrides"][-1] == "task.sigma=-5" and "Traceback" in failed["traceback"]
    assert not (sweep / "0" / "checkpoints").exists() and not (sweep / "0" / "metrics.json").exists()
    assert json.loads((sweep / "1" / "metrics.json").read_text())["val/psnr"] > 0
    assert len(list((sweep / "1" / "wandb").glob("offline-run-*/run-*.wandb"))) == 1
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert [j["status"] for j in summary["jobs"]] == ["failed", "ok"] and summary["n_failed"] == 1
    assert summary["jobs"][1]["objective"] == pytest.approx(
        json.loads((sweep / "1" / "metrics.json").read_text())["val/psnr_best"])


@pytest.mark.slow
def test_two_job_multirun_each_with_two_ddp_processes(tmp_path):
    """DDP inside multirun jobs (basic launcher, one after the other in one process): each job's
    child process runs that job's overrides in that job's folder; the second job is not taken
    for a child of the first (DDP's environment variables are restored between jobs)."""
    res = run_cli(_smoke_sweep(tmp_path, "trainer=ddp_cpu", "logger=csv", "task.sigma=15,25"), timeout=400)
    assert res.returncode == 0, res.stderr[-3000:]
    output = res.stdout + res.stderr
    assert output.count("GLOBAL_RANK: 1, MEMBER: 2/2") == 2, "one child process per job"
    sweep = tmp_path / "sweep"
    sigmas = []
    for job in ("0", "1"):
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        assert metrics["config"]["trainer"]["devices"] == 2
        sigmas.append(metrics["config"]["task"]["sigma"])
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()
    assert sigmas == [15, 25]
    assert not (tmp_path / "logs").exists(), "DDP children wrote outside their job's folder"
    assert not (sweep / "2").exists() and not any(p.name.startswith("multirun") for p in (sweep / "0").iterdir())


@pytest.mark.slow
def test_optuna_search_maximises_val_psnr_past_failed_trials(tmp_path):
    """hparams_search=ensemble_optuna with a search dimension that can break a trial (sigma -5):
    failed trials are recorded, the search goes on, the best value is the best job's val/psnr_best."""
    res = run_cli(_smoke_sweep(tmp_path, "hparams_search=ensemble_optuna", "approach=ensemble", "logger=csv",
                               "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.n_startup_trials=2",
                               "hydra.sweeper.sampler.seed=7",  # draws both sigma values in 3 trials
                               "task.sigma=choice(-5,25)"), timeout=400)
    sweep = tmp_path / "sweep"
    from omegaconf import OmegaConf

    summary = json.loads((sweep / "sweep_summary.json").read_text())
    ok = [j for j in summary["jobs"] if j["status"] == "ok"]
    assert len(summary["jobs"]) == 3 and ok and summary["n_failed"], "the seeded search mixes both (sampler seed)"
    assert res.returncode == 1 and f"sweep: {len(ok)} of 3 jobs finished" in res.stderr
    results = OmegaConf.load(sweep / "optimization_results.yaml")
    best = max(ok, key=lambda j: j["objective"])
    metrics = json.loads((sweep / best["job"] / "metrics.json").read_text())
    assert results.best_value == pytest.approx(metrics["val/psnr_best"]) == pytest.approx(best["objective"])
    chosen = dict(o.split("=", 1) for o in best["overrides"])
    assert str(results.best_params["fusion"]) == chosen["fusion"] and int(chosen["task.sigma"]) == 25
    lrs = {dict(o.split("=", 1) for o in j["overrides"])["approach.optimizer.lr"] for j in summary["jobs"]}
    assert len(lrs) == 3, "lr searched"


def test_objective_of_failed_job_is_none_and_optuna_sweeper_records_a_failure():
    from fusionlab.utils.jobs import objective

    assert objective(None, "val/psnr_best") is None and objective({"val/psnr_best": 30}, "val/psnr_best") == 30
    assert objective({"val/psnr": 30}, "val/psnr_best") is None, "a missing metric is not a silent success"
    assert objective({"val/psnr_best": float("nan")}, "val/psnr_best") is None


@pytest.mark.parametrize("launcher,cls", [("basic", "BasicLauncher"), ("joblib", "JoblibLauncher"),
                                          ("submitit_slurm", "SlurmLauncher")])
def test_launcher_configs_instantiate(tmp_path, launcher, cls):
    """The launcher configs compose against the plugins' schemas; SLURM asks one task per GPU."""
    from hydra.utils import get_class
    from omegaconf import OmegaConf

    from tests.helpers import compose_cfg

    cfg = compose_cfg(tmp_path, [f"hydra/launcher={launcher}", "trainer=ddp", "trainer.devices=4"], hydra_node=True)
    node = cfg.hydra.launcher
    assert get_class(node._target_).__name__ == cls
    if launcher == "submitit_slurm":
        plain = OmegaConf.to_container(cfg, resolve=False)
        assert plain["hydra"]["launcher"]["tasks_per_node"] == "${trainer.devices}"
        assert OmegaConf.select(cfg, "trainer.devices") == 4 and node.gpus_per_node == 4 and node.tasks_per_node == 4
