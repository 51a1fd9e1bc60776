"""From config to objects: the data module and the approach (:func:`build`), the Trainer with its
callbacks and loggers (:func:`build_trainer`), and the model's cost (:func:`model_cost`)."""

from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from fusionlab.metrics.cost import count_parameters, flops_per_image
from fusionlab.utils.ddp_child import install_ddp_child_command
from fusionlab.utils.errors import ConfigError
from fusionlab.utils.hydra import instantiate, instantiate_dict


def to_plain_value(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def scalars(metrics: dict[str, Any], prefix: str) -> dict[str, float]:
    return {k: float(v) for k, v in sorted(metrics.items()) if k.startswith(prefix)}


def build(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule]:
    """The data module (with its task's degradation) and the approach's LightningModule."""
    task = instantiate(cfg.task, "task")
    datamodule = instantiate(cfg.data, "data", task=task)
    model = instantiate(cfg.approach, "approach")
    model.set_tta(str(cfg.get("tta") or "none"), str(cfg.get("tta_fusion") or "mean"))
    return datamodule, model


def build_trainer(cfg: DictConfig, extra_callbacks: list[L.Callback] = (), model: L.LightningModule | None = None
                  ) -> L.Trainer:
    callbacks = instantiate_dict(cfg.get("callbacks"), "callbacks") + list(extra_callbacks)
    loggers = instantiate_dict(cfg.get("logger"), "logger")
    if not loggers:  # Lightning's LearningRateMonitor refuses to run without a logger
        from lightning.pytorch.callbacks import LearningRateMonitor

        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    extra = {}
    install_ddp_child_command()  # DDP children of a multirun job run that job, in its folder
    if getattr(model, "ddp_find_unused_parameters", False) and cfg.trainer.get("strategy") == "ddp":
        # adversarial approaches: each backward reaches one network only (see approaches/adversarial.py)
        extra["strategy"] = "ddp_find_unused_parameters_true"
    if model is not None and not model.automatic_optimization:  # the GAN approaches step by hand
        if (cfg.trainer.get("accumulate_grad_batches") or 1) != 1:
            raise ConfigError("trainer.accumulate_grad_batches", "must be 1 for approaches that optimise "
                              "manually (GANs); raise data.batch_size instead")
        if cfg.trainer.get("gradient_clip_val") is not None:
            raise ConfigError("trainer.gradient_clip_val", "must be null for approaches that optimise "
                              "manually (GANs); set approach.grad_clip instead")
    if cfg.trainer.get("sync_batchnorm") and (cfg.trainer.get("accelerator") == "cpu" or not torch.cuda.is_available()):
        raise ConfigError("trainer.sync_batchnorm", "PyTorch's SyncBatchNorm runs on CUDA devices only; "
                          "set it to false on CPU (trainer=ddp_cpu)")
    return instantiate(cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False, **extra)


def model_cost(model: L.LightningModule, cfg: DictConfig) -> dict[str, int]:
    """Parameters and FLOPs per ``metrics.flops_size``-square image (``flops_per_image_<size>``), or
    per generated sample at the generator's resolution (``flops_per_sample_<size>``)."""
    size = int(cfg.metrics.flops_size)
    key = model.flops_key(size) if hasattr(model, "flops_key") else f"flops_per_image_{size}"
    return {"params": count_parameters(model), key: flops_per_image(model, int(cfg.data.channels), size)}
