"""``train(cfg)``: fit the configured approach, test its best checkpoint, write ``metrics.json``."""

import logging
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from fusionlab.callbacks.checkpoint_config import ConfigInCheckpoint
from fusionlab.callbacks.faults import EpochSeeds, FitClock, SaveOnSigterm
from fusionlab.pipeline import builders
from fusionlab.pipeline.builders import scalars
from fusionlab.pipeline.wandb_run import finish_wandb, log_config, prepare_wandb
from fusionlab.reporting.paired import member_comparison, member_labels
from fusionlab.reporting.tables import print_summary
from fusionlab.schemas import check_run_options
from fusionlab.utils.hydra import check_complete, to_plain
from fusionlab.utils.io import atomic_write_json
from fusionlab.utils.checkpoints import check_resumable, read_checkpoint
from fusionlab.utils.resume import resolve_ckpt_path
from fusionlab.utils.run_folder import RunLock, check_run_folder, is_ddp_child
from fusionlab.utils.version import code_version

log = logging.getLogger("fusionlab")

SIGTERM_EXIT = 143  # 128 + SIGTERM, what a shell reports for a process ended by the signal


def averaged_weights(trainer: L.Trainer, model: L.LightningModule, best: str | None, out_dir: Path
                     ) -> tuple[str | None, str | None]:
    """``(checkpoint for trainer.test, checkpoint reported as best)`` such that training-time weight
    averaging (``weight_averaging=ema|swa``) is what gets tested.

    - ``EMAWeightAveraging`` (Lightning's ``WeightAveraging``) saves the average as the checkpoint's
      ``state_dict``, but when the trainer that fitted loads a checkpoint it restores the raw weights
      (``current_model_state``) for resuming; so the average is loaded here and the model is tested
      as it is.
    - ``StochasticWeightAveraging`` puts the average into the model in an extra epoch that only
      recomputes BatchNorm statistics and takes no optimizer step, so ``ModelCheckpoint`` never
      saves it: it is saved here as ``last.ckpt``, reported as the best checkpoint and tested.
    """
    from lightning.pytorch.callbacks import StochasticWeightAveraging, WeightAveraging

    if any(isinstance(c, StochasticWeightAveraging) for c in trainer.callbacks):
        path = out_dir / "checkpoints" / "last.ckpt"
        trainer.save_checkpoint(path)
        return None, str(path)
    if best and any(isinstance(c, WeightAveraging) for c in trainer.callbacks):
        model.load_state_dict(read_checkpoint(best)["state_dict"])
        return None, best
    return best, best


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit the configured approach, test the best checkpoint, write ``metrics.json``.

    :return: the final metrics (``val/*``, ``test/*``, ``params``, ``wall_time_s``).
    """
    started = time.perf_counter()
    check_complete(cfg)
    check_run_options(cfg)
    L.seed_everything(cfg.seed, workers=True)
    out_dir = Path(cfg.paths.output_dir)
    lock = None if is_ddp_child() else RunLock(out_dir)
    if lock is not None:
        check_run_folder(out_dir, cfg.get("ckpt_path"), bool(cfg.get("overwrite", False)), remove=False)
        lock.acquire()
    try:
        return _train(cfg, out_dir, started)
    finally:
        if lock is not None:
            lock.release()


def _train(cfg: DictConfig, out_dir: Path, started: float) -> dict[str, float]:
    if not is_ddp_child():
        check_run_folder(out_dir, cfg.get("ckpt_path"), bool(cfg.get("overwrite", False)), remove=True)
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), out_dir)
    prepare_wandb(cfg, resume=ckpt_path is not None)
    try:
        datamodule, model = builders.build(cfg)
        saved = ConfigInCheckpoint(to_plain(cfg, resolve=False))
        clock = FitClock()
        faults = [EpochSeeds(cfg.seed), clock, SaveOnSigterm(str(out_dir / "checkpoints"))]
        trainer = builders.build_trainer(cfg, [saved, *faults], model)
        cost = builders.model_cost(model, cfg)
        if ckpt_path is not None:
            check_resumable(ckpt_path, model, cfg.task.get("_target_"))
        log_config(trainer, cfg, cost)

        try:
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=False)
        except SIGTERMException:  # a SystemExit without a code: the shell and schedulers would read success
            log.warning("SIGTERM: stopped with exit status %d (last.ckpt saved; resume with ckpt_path=last)",
                        SIGTERM_EXIT)
            raise SystemExit(SIGTERM_EXIT) from None
        fit_time = clock.elapsed()  # accumulated over resumes
        val = {**scalars(trainer.callback_metrics, "train/images_per_sec_epoch"),
               **scalars(trainer.callback_metrics, "val/")}
        ckpt_cb = trainer.checkpoint_callback
        best = ckpt_cb.best_model_path if ckpt_cb is not None and ckpt_cb.best_model_path else None
        tested, best = averaged_weights(trainer, model, best, out_dir)
        test: dict[str, float] = {}
        records: list[dict] = []
        if cfg.get("test", True):
            trainer.test(model, datamodule=datamodule, ckpt_path=tested, weights_only=False)
            test = scalars(trainer.callback_metrics, "test/")
            records = list(model.test_records)
        result = {
            **val,
            **test,
            **cost,
            "train_time_s": round(fit_time, 3),
            "wall_time_s": round(time.perf_counter() - started, 3),
            "epochs": trainer.current_epoch,
            "global_step": trainer.global_step,
            "world_size": trainer.world_size,  # processes that trained it: part of its setting (global batch)
            "best_checkpoint": best,
            "code_version": code_version(),
            "metric_specs": model.evaluator.metric_specs(),
            "approach": model.description(),
            "per_image": records,
            "config": to_plain(cfg, resolve=True),
        }
        within = member_comparison(result, member_labels(result["approach"]))
        if within:
            result["fusion_vs_best_member"] = within
        if trainer.is_global_zero:
            atomic_write_json(out_dir / "metrics.json", result)
            log.info("metrics written to %s", out_dir / "metrics.json")
            print_summary(result, out_dir)
        return result
    finally:
        finish_wandb()
