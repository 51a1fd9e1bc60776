"""Weights & Biases around a run: settings decided before the logger exists (resume, offline
fallback), the config and tables sent to every logger, and closing the run between multirun jobs."""

import logging
from typing import Any

import lightning as L
from omegaconf import DictConfig

from fusionlab.utils.hydra import to_plain
from fusionlab.utils.resume import previous_wandb_id, wandb_reachable

log = logging.getLogger("fusionlab")


def log_config(trainer: L.Trainer, cfg: DictConfig, extra: dict[str, Any]) -> None:
    """Send the resolved run config (plus parameter counts) to every logger."""
    hparams = {**to_plain(cfg, resolve=True), **extra}
    for logger in trainer.loggers:
        logger.log_hyperparams(hparams)


def prepare_wandb(cfg: DictConfig, resume: bool) -> None:
    """W&B settings decided before the logger exists: continue the run folder's W&B run when
    resuming in it, and fall back to offline (one warning, seconds) when the server is unreachable."""
    node = (cfg.get("logger") or {}).get("wandb")
    if not node:
        return
    from omegaconf import open_dict

    with open_dict(cfg):
        if resume and node.get("id") is None:
            run_id = previous_wandb_id(cfg.paths.output_dir)
            if run_id:
                node.id, node.resume = run_id, "allow"
                log.info("continuing W&B run %s", run_id)
        if str(node.get("mode", "offline")) == "online":
            problem = wandb_reachable()
            if problem:
                import warnings

                warnings.warn(f"W&B {problem}: logging offline to {cfg.paths.output_dir}/wandb instead "
                              f"(upload later with `wandb sync`)", stacklevel=2)
                node.mode = "offline"


def finish_wandb() -> None:
    """Close the W&B run so that the next multirun job never reuses it."""
    try:
        import wandb
    except ImportError:
        return
    if wandb.run is not None:
        wandb.finish()


def log_eval_table(logger, records: list[dict]) -> None:
    from lightning.pytorch.loggers import WandbLogger

    if isinstance(logger, WandbLogger) and records:
        columns = list(records[0].keys())
        logger.log_table(key="test/per_image", columns=columns, data=[[r[c] for c in columns] for r in records])


def log_uncertainty(trainer, result: dict) -> None:
    """The uncertainty summary figure and the coverage/width per alpha, to every W&B logger."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key="test/uncertainty", images=[result["figure"]],
                             caption=[f"{result['heuristic']} ({result['method']})"])
            rows = [[a, v["lambda"], v["coverage"], v["width"]] for a, v in result["alphas"].items()]
            logger.log_table(key="test/uncertainty_alphas", columns=["alpha", "lambda", "coverage", "width"], data=rows)
