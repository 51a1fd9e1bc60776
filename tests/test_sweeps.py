"""Hydra multirun sweeps, as a user runs them."""

import json

import pytest

from tests.helpers import run_cli, write_images


@pytest.mark.slow
def test_fusion_sweep_tags_and_shared_wandb_group(tmp_path):
    write_images(tmp_path / "imgs", 2, size=(40, 40))
    sweep = tmp_path / "sweep"
    res = run_cli(["train.py", "-m", "experiment=ensemble_denoise", "fusion=mean,learned", "debug=smoke",
                   "extras.print_config=false", "logger=wandb", f"data.train_dir={tmp_path / 'imgs'}",
                   f"data.val_dir={tmp_path / 'imgs'}", f"data.test_dir={tmp_path / 'imgs'}",
                   "approach.members.m1.width=8", f"hydra.sweep.dir={sweep}"])
    assert res.returncode == 0, res.stderr[-3000:]
    records = []
    for job in ("0", "1"):
        assert json.loads((sweep / job / "metrics.json").read_text())["val/psnr"] > 0
        runs = list((sweep / job / "wandb").glob("offline-run-*/run-*.wandb"))
        assert len(runs) == 1, "one W&B run per job"
        records.append(runs[0].read_bytes())  # offline runs keep group, tags and config in this log
    group = f"sweep-{sweep.name}".encode()
    assert all(group in r for r in records), "both jobs in the sweep's W&B group"
    assert b"fusion:mean" in records[0] and b"fusion:learned" not in records[0]
    assert b"fusion:learned" in records[1] and b"fusion:mean" not in records[1]
    assert all(b"approach:generator_ensemble" in r for r in records)
