"""train.py and evaluate.py run as a user would, in subprocesses."""

import json

import pytest

from tests.helpers import run_cli, write_images

SMOKE = ["debug=smoke", "extras.print_config=false"]


@pytest.mark.slow
def test_train_then_evaluate_cli(tmp_path):
    run_dir, eval_dir = tmp_path / "run", tmp_path / "eval"
    res = run_cli(["train.py", *SMOKE, "logger=wandb", f"hydra.run.dir={run_dir}"])
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test/psnr"] > 0 and (run_dir / ".hydra" / "config.yaml").is_file()
    res = run_cli(["evaluate.py", f"ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}", "task.sigma=15",
                   "logger=wandb", "trainer.limit_test_batches=2", f"hydra.run.dir={eval_dir}"])
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads((eval_dir / "eval.json").read_text())
    assert result["config"]["task"]["sigma"] == 15 and len(result["per_image"]) == 2
    assert "mean" in res.stdout and "camera" in res.stdout  # the printed per-image table
    assert list((eval_dir / "wandb").glob("offline-run-*"))


@pytest.mark.slow
def test_bad_input_is_one_line_with_exit_code(tmp_path):
    res = run_cli(["train.py", *SMOKE, "logger=csv", "data=folder", f"data.train_dir={tmp_path}/nope",
                   f"data.val_dir={tmp_path}/nope", f"hydra.run.dir={tmp_path / 'run'}"])
    assert res.returncode == 2
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {tmp_path}/nope: folder does not exist (config key data.train_dir)"]
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()
    res = run_cli(["train.py", *SMOKE, "data=folder", f"hydra.run.dir={tmp_path / 'run2'}"])
    assert res.returncode == 2 and "error: Missing mandatory value: data.train_dir" in res.stderr
    res = run_cli(["evaluate.py", f"ckpt_path={tmp_path}/none.ckpt", f"hydra.run.dir={tmp_path / 'e'}"])
    assert res.returncode == 2 and "none.ckpt: checkpoint file does not exist (config key ckpt_path)" in res.stderr


@pytest.mark.slow
def test_unknown_key_fails_with_hydra_message(tmp_path):
    res = run_cli(["train.py", "data.not_a_key=3", f"hydra.run.dir={tmp_path}"])
    assert res.returncode != 0 and "Could not override 'data.not_a_key'" in res.stderr


@pytest.mark.slow
def test_ddp_two_processes_match_single_process(tmp_path):
    """2 CPU processes (gloo) on 5 images (an odd count: Lightning's default sampler would repeat
    one): the synced test metrics, the FID proxy (references fed once in all) and the per-image
    records equal a 1-process evaluation of the same checkpoint; an evaluation under DDP writes
    every image once."""
    write_images(tmp_path / "imgs", 5, size=(40, 48))
    data = ["data=folder", f"data.train_dir={tmp_path / 'imgs'}", f"data.val_dir={tmp_path / 'imgs'}"]
    fid = ["metrics.fid.extractor=random_proxy", "metrics.fid.min_samples=2", "metrics.fid.kid_subset_size=2",
           f"paths.cache_dir={tmp_path / 'cache'}"]
    run_dir = tmp_path / "ddp"
    res = run_cli(["train.py", *SMOKE, *data, *fid, "logger=csv", "trainer.accelerator=cpu", "trainer.devices=2",
                   "trainer.strategy=ddp", "trainer.limit_test_batches=null", "trainer.limit_val_batches=null",
                   f"hydra.run.dir={run_dir}"])
    assert res.returncode == 0, res.stderr[-3000:]
    ddp = json.loads((run_dir / "metrics.json").read_text())
    ckpt = run_dir / "checkpoints" / "best.ckpt"
    res = run_cli(["evaluate.py", f"ckpt_path={ckpt}", *fid, "logger=csv", "trainer.accelerator=cpu",
                   f"hydra.run.dir={tmp_path / 'eval'}"])
    assert res.returncode == 0, res.stderr[-3000:]
    single = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert len(single["per_image"]) == 5
    assert [r["image"] for r in ddp["per_image"]] == [r["image"] for r in single["per_image"]], "each image once"
    for a, b in zip(ddp["per_image"], single["per_image"]):
        assert a["psnr"] == pytest.approx(b["psnr"], abs=1e-4)
    for key in ("test/psnr", "test/ssim", "test/psnr_input", "test/fid_proxy"):
        assert ddp[key] == pytest.approx(single["metrics"][key], abs=1e-4), key
    res = run_cli(["evaluate.py", f"ckpt_path={ckpt}", "logger=csv", "metrics.fid.extractor=none",
                   "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp",
                   f"hydra.run.dir={tmp_path / 'eval_ddp'}"])
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(list((tmp_path / "eval_ddp" / "images").glob("*.png"))) == 5, "both processes' images written"
    assert len(json.loads((tmp_path / "eval_ddp" / "eval.json").read_text())["per_image"]) == 5
