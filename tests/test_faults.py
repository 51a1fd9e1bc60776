"""Runs that survive faults: truncated checkpoints, a full disk, W&B unreachable, SIGKILL and
SIGTERM mid-training followed by a resume in the same run folder."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fusionlab.pipeline import train
from fusionlab.utils.errors import ConfigError, DataError
from fusionlab.utils.resume import previous_wandb_id, resolve_ckpt_path
from tests.helpers import ROOT, compose_cfg


def test_truncated_checkpoint_is_named_and_last_falls_back(tmp_path):
    train(compose_cfg(tmp_path, ["logger=csv", "test=false"]))
    ckpts = tmp_path / "checkpoints"
    good = ckpts / "best.ckpt"
    last = ckpts / "last.ckpt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])  # a crash mid-copy, a full disk outside our writer
    os.utime(good, (time.time() - 60, time.time() - 60))  # last.ckpt is the newest
    with pytest.raises(DataError, match=r"last.ckpt: truncated or corrupt .*ckpt_path=last falls back"):
        resolve_ckpt_path(str(last), tmp_path)
    with pytest.warns(UserWarning, match=r"last.ckpt: skipped, truncated"):
        assert resolve_ckpt_path("last", tmp_path) == str(good)
    with pytest.raises(ConfigError, match=r"^ckpt_path: last: no valid checkpoint"):
        resolve_ckpt_path("last", tmp_path / "elsewhere")
    assert resolve_ckpt_path("auto", tmp_path / "elsewhere") is None, "auto: a first launch starts fresh"
    with pytest.warns(UserWarning, match=r"last.ckpt: skipped"):
        assert resolve_ckpt_path("auto", tmp_path) == str(good), "auto: a requeued job resumes"
    with pytest.raises(DataError, match=r"last.ckpt: truncated or corrupt"):  # through train()
        train(compose_cfg(tmp_path / "b", ["logger=csv", f"ckpt_path={last}"]))
    assert not (tmp_path / "b" / "metrics.json").exists()


def test_wandb_online_without_network_falls_back_to_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    started = time.perf_counter()
    with pytest.warns(UserWarning, match=r"W&B 127.0.0.1:9 unreachable .* logging offline"):
        train(compose_cfg(tmp_path, ["logger=wandb", "test=false"]))
    assert time.perf_counter() - started < 120
    assert list((tmp_path / "wandb").glob("offline-run-*")), "an offline run instead"


def _start(run_dir: Path, extra: list[str]) -> subprocess.Popen:
    # the default experiment (not the smoke config) with a step budget: 10 steps per epoch, 25 steps
    args = [sys.executable, "train.py", "extras.print_config=false", "logger=wandb", "trainer.accelerator=cpu",
            "trainer.deterministic=true", "trainer.max_steps=25", "data.samples_per_epoch=320",
            "data.val_images=[coins]", "data.test_images=[camera]", "trainer.enable_progress_bar=false",
            "callbacks.progress_bar=null", "model.width=16", "model.depth=5",  # a smaller DnCNN: time, not the point
            f"hydra.run.dir={run_dir}", *extra]
    # own W&B service: an in-process test may have left WANDB_SERVICE pointing at the pytest
    # process's service, which would still hold the killed run's id
    env = {**{k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}, "WANDB_MODE": "offline",
           "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, f"training ended early: {proc.stderr.read()[-2000:]}"
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _wait_wandb_service_exit(pid: int, timeout: float = 120) -> None:
    """W&B's service process (``wandb-core --pid PID``) notices its parent's death by polling."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        if f"--pid {pid}" not in ps:
            return
        time.sleep(0.5)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_killed_run_resumes_in_its_folder_with_the_same_wandb_run_and_final_metrics(tmp_path, sig):
    reference = _start(tmp_path / "ref", [])
    assert reference.wait(timeout=600) == 0, reference.stderr.read()[-3000:]
    expected = json.loads((tmp_path / "ref" / "metrics.json").read_text())

    run = tmp_path / "run"
    proc = _start(run, [])
    _wait_for(run / "checkpoints" / "last.ckpt", proc)  # end of epoch 0: now mid-epoch 1
    time.sleep(0.5)
    proc.send_signal(sig)
    code = proc.wait(timeout=120)
    assert code == (143 if sig == signal.SIGTERM else -signal.SIGKILL), "SIGTERM: 143, never 0 (success)"
    _wait_wandb_service_exit(proc.pid)  # a requeued job starts long after; W&B refuses a run id in use
    assert not (run / "metrics.json").exists(), "the run was interrupted"
    first_id = previous_wandb_id(run)
    if sig == signal.SIGTERM:
        ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
        assert ckpt["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]["completed"] > 0, \
            "SIGTERM saved a mid-epoch checkpoint"
    resumed = _start(run, ["ckpt_path=last"])
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()[-3000:]
    final = json.loads((run / "metrics.json").read_text())
    assert final["epochs"] == expected["epochs"] and final["global_step"] == expected["global_step"]
    if sig == signal.SIGKILL:  # resumed from the end-of-epoch last.ckpt: the same stream, the same result
        for key in ("val/psnr", "val/ssim", "val/psnr_best", "test/psnr", "test/ssim"):
            assert final[key] == pytest.approx(expected[key], abs=1e-5), key
    # (SIGTERM resumes mid-epoch: the data iterator restarts that epoch, so only the budget is equal)
    ids = {p.name.rsplit("-", 1)[-1] for p in (run / "wandb").glob("offline-run-*")}
    assert ids == {first_id}, "the resumed run continues the same W&B run id"


def test_slurm_trainer_uses_lightnings_requeueing_environment(tmp_path, monkeypatch):
    """trainer=slurm: Lightning's SLURMEnvironment with auto_requeue (and our atomic checkpoint IO)."""
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    from fusionlab.pipeline import build, build_trainer

    for key, value in {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "fusionlab", "SLURM_JOB_ID": "7", "SLURM_PROCID": "0",
                       "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NODELIST": "node1"}.items():
        monkeypatch.setenv(key, value)
    cfg = compose_cfg(tmp_path, ["trainer=slurm", "trainer.accelerator=cpu", "trainer.strategy=ddp", "logger=csv"])
    _, model = build(cfg)
    env = build_trainer(cfg, model=model).strategy.cluster_environment
    assert isinstance(env, SLURMEnvironment) and env.auto_requeue and env.job_id() == 7


def test_failed_fit_leaves_no_checkpoint_but_sigterm_saves_last(tmp_path):
    """SaveOnSigterm saves on SIGTERM during fit only: another exception writes nothing."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from fusionlab.callbacks.faults import SaveOnSigterm

    class Trainer:
        state = type("S", (), {"fn": "fit"})()
        saved: list = []

        def save_checkpoint(self, path):
            self.saved.append(str(path))

    cb, trainer = SaveOnSigterm(str(tmp_path)), Trainer()
    cb.on_exception(trainer, None, ValueError("bad image"))
    assert trainer.saved == []
    cb.on_exception(trainer, None, SIGTERMException())
    assert trainer.saved == [str(tmp_path / "last.ckpt")]
