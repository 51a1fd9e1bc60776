"""Trainer switches for scale: channels-last, torch.compile, gradient accumulation, SyncBatchNorm."""

import pytest
import torch

from fusionlab.pipeline import build, build_trainer, train
from fusionlab.utils.errors import ConfigError
from tests.helpers import compose_cfg, needs_gpu


def test_channels_last_and_compile_switches_train_and_keep_checkpoints_plain(tmp_path):
    cfg = compose_cfg(tmp_path, ["logger=csv", "callbacks.performance.channels_last=true", "callbacks.performance.compile=true",
                                 "callbacks.performance.compile_backend=eager", "trainer.limit_train_batches=2"])
    datamodule, model = build(cfg)
    trainer = build_trainer(cfg, model=model)
    assert "channels_last" not in trainer.__dict__, "switches are not Trainer arguments"
    trainer.fit(model, datamodule=datamodule)
    conv = next(m for m in model.net.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert model.net._compiled_call_impl is not None, "the network is compiled in place"
    ckpt = torch.load(trainer.checkpoint_callback.last_model_path, weights_only=False)
    assert not any("_orig_mod" in k for k in ckpt["state_dict"]), "checkpoints load into plain models"


def test_compiled_channels_last_run_matches_plain_run(tmp_path):
    """Same seed, same data: inductor-compiled NHWC training ends where eager NCHW training ends."""
    plain = train(compose_cfg(tmp_path / "plain", ["logger=csv", "trainer.deterministic=true"]))
    fast = train(compose_cfg(tmp_path / "fast", ["logger=csv", "trainer.deterministic=true",
                                                 "callbacks.performance.channels_last=true", "callbacks.performance.compile=true"]))
    # fused kernels sum in another order; Adam's first steps amplify that to a few 1e-3 dB (an
    # untrained or wrongly updated network is 0.08 dB away: the restored-vs-input gap)
    for key, tol in (("val/psnr", 0.01), ("test/psnr", 0.01), ("test/ssim", 1e-3)):
        assert fast[key] == pytest.approx(plain[key], abs=tol), key


def test_bad_compile_mode_is_one_line_error(tmp_path):
    with pytest.raises(ConfigError, match=r"^callbacks.performance.compile_mode: one of"):
        train(compose_cfg(tmp_path, ["logger=csv", "callbacks.performance.compile=true", "callbacks.performance.compile_mode=fastest"]))


def test_gradient_accumulation_steps_once_per_k_batches(tmp_path):
    result = train(compose_cfg(tmp_path, ["logger=csv", "trainer.limit_train_batches=4",
                                          "trainer.accumulate_grad_batches=2", "test=false"]))
    assert result["global_step"] == 2


def test_manual_optimisation_refuses_trainer_accumulation_and_clipping(tmp_path):
    for key, value, hint in [("accumulate_grad_batches", 2, "data.batch_size"),
                             ("gradient_clip_val", 1.0, "approach.grad_clip")]:
        with pytest.raises(ConfigError, match=rf"^trainer.{key}: .*{hint}"):
            train(compose_cfg(tmp_path / key, ["task=generate", "logger=csv", f"trainer.{key}={value}"]))
        assert not (tmp_path / key / "checkpoints").exists()


def test_sync_batchnorm_on_cpu_is_one_line_error(tmp_path):
    with pytest.raises(ConfigError, match=r"^trainer.sync_batchnorm: .*CUDA"):
        train(compose_cfg(tmp_path, ["logger=csv", "trainer.sync_batchnorm=true"]))


@needs_gpu
@pytest.mark.gpu
def test_sync_batchnorm_converts_batchnorm_on_gpu(tmp_path):
    cfg = compose_cfg(tmp_path, ["logger=csv", "trainer=gpu", "trainer.sync_batchnorm=true", "trainer.devices=1",
                                 "trainer.strategy=ddp"])
    datamodule, model = build(cfg)
    trainer = build_trainer(cfg, model=model)
    trainer.fit(model, datamodule=datamodule)
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())


@needs_gpu
@pytest.mark.gpu
def test_gpu_bf16_channels_last_compile(tmp_path):
    result = train(compose_cfg(tmp_path, ["logger=csv", "trainer=gpu", "callbacks.performance.channels_last=true",
                                          "callbacks.performance.compile=true", "data.num_workers=2"]))
    assert result["val/psnr"] > result.get("val/psnr_input", 0) - 1
