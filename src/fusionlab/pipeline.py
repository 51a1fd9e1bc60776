"""``train(cfg)`` and ``evaluate(cfg)``: instantiate from config, fit/test, write results.

The root ``train.py`` / ``evaluate.py`` are thin ``@hydra.main`` wrappers around these.
"""

import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from fusionlab.callbacks.checkpoint_config import CONFIG_KEY, ConfigInCheckpoint
from fusionlab.callbacks.faults import EpochSeeds, SaveOnSigterm
from fusionlab.metrics.cost import count_parameters, flops_per_image
from fusionlab.reporting.paired import member_comparison, member_labels, print_member_comparison
from fusionlab.reporting.tables import print_eval_table
from fusionlab.utils.errors import ConfigError, DataError
from fusionlab.utils.hydra import check_complete, instantiate, instantiate_dict, to_plain
from fusionlab.utils.io import atomic_write_json
from fusionlab.utils.version import code_version
from fusionlab.utils.ddp_child import install_ddp_child_command
from fusionlab.utils.resume import previous_wandb_id, resolve_ckpt_path, wandb_reachable

log = logging.getLogger("fusionlab")

# Keys that describe how a run executes, not what model it trains: evaluation takes them from
# its own config (conf/eval.yaml), everything else from the checkpoint's saved config.
RUNTIME_KEYS = ("paths", "trainer", "logger", "callbacks", "extras", "task_name", "ckpt_path", "tta", "tta_fusion")
# evaluate.py options for an approach's ``write_inference`` (style mixing / region fusion).
INFERENCE_KEYS = ("styles", "weights", "mask", "blur", "alpha", "preserve_color")


def to_plain_value(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _scalars(metrics: dict[str, Any], prefix: str) -> dict[str, float]:
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


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit the configured approach, test the best checkpoint, write ``metrics.json``.

    :return: the final metrics (``val/*``, ``test/*``, ``params``, ``wall_time_s``).
    """
    started = time.perf_counter()
    check_complete(cfg)
    L.seed_everything(cfg.seed, workers=True)
    out_dir = Path(cfg.paths.output_dir)
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), out_dir)
    prepare_wandb(cfg, resume=ckpt_path is not None)
    try:
        datamodule, model = build(cfg)
        saved = ConfigInCheckpoint(to_plain(cfg, resolve=False))
        faults = [EpochSeeds(cfg.seed), SaveOnSigterm(str(out_dir / "checkpoints"))]
        trainer = build_trainer(cfg, [saved, *faults], model)
        cost = model_cost(model, cfg)
        log_config(trainer, cfg, cost)

        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=False)
        fit_time = time.perf_counter() - started
        val = {**_scalars(trainer.callback_metrics, "train/images_per_sec_epoch"),
               **_scalars(trainer.callback_metrics, "val/")}
        ckpt_cb = trainer.checkpoint_callback
        best = ckpt_cb.best_model_path if ckpt_cb is not None and ckpt_cb.best_model_path else None
        test: dict[str, float] = {}
        records: list[dict] = []
        if cfg.get("test", True):
            trainer.test(model, datamodule=datamodule, ckpt_path=best, weights_only=False)
            test = _scalars(trainer.callback_metrics, "test/")
            records = list(model.test_records)
        result = {
            **val,
            **test,
            **cost,
            "train_time_s": round(fit_time, 3),
            "wall_time_s": round(time.perf_counter() - started, 3),
            "epochs": trainer.current_epoch,
            "global_step": trainer.global_step,
            "best_checkpoint": best,
            "code_version": code_version(),
            "per_image": records,
            "config": to_plain(cfg, resolve=True),
        }
        within = member_comparison(result, member_labels(result["config"]))
        if within:
            result["fusion_vs_best_member"] = within
        if trainer.is_global_zero:
            atomic_write_json(out_dir / "metrics.json", result)
            log.info("metrics written to %s", out_dir / "metrics.json")
            print_summary(result, out_dir)
        return result
    finally:
        finish_wandb()


def print_summary(result: dict, out_dir: Path) -> None:
    """The run's headline numbers: restored vs degraded-input PSNR/SSIM (or every ``val/``/``test/``
    metric for tasks without PSNR), cost, and where the results are."""
    from rich.console import Console

    lines = []
    for stage in ("val", "test"):
        if f"{stage}/psnr" in result:
            lines.append(f"{stage}: PSNR {result[f'{stage}/psnr']:.2f} dB (degraded input "
                         f"{result.get(f'{stage}/psnr_input', float('nan')):.2f} dB), SSIM "
                         f"{result.get(f'{stage}/ssim', float('nan')):.4f}")
        else:
            values = {k.split("/", 1)[1]: v for k, v in result.items() if k.startswith(f"{stage}/")}
            if values:
                lines.append(f"{stage}: " + ", ".join(f"{k} {v:.4g}" for k, v in values.items()))
    lines.append(f"params {result.get('params', 0):,}, train time {result.get('train_time_s', 0):.0f} s; "
                 f"results in {out_dir}")
    Console().print("[bold]" + "\n".join(lines))


# ---- evaluation ------------------------------------------------------------------------------
def load_checkpoint_config(ckpt_path: str | Path) -> DictConfig:
    """The run config saved inside a fusionlab checkpoint.

    :raises DataError: naming the file when it is missing, unreadable or not fusionlab's.
    """
    path = Path(ckpt_path)
    if not path.is_file():
        raise DataError(path, "checkpoint file does not exist", "ckpt_path")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as exc:
        raise DataError(path, f"cannot read checkpoint ({type(exc).__name__}: {exc})", "ckpt_path") from None
    if not isinstance(ckpt, dict) or CONFIG_KEY not in ckpt:
        raise DataError(path, "not a fusionlab checkpoint (it holds no saved run config)", "ckpt_path")
    return OmegaConf.create(ckpt[CONFIG_KEY])


def saved_metrics(ckpt_path: str | Path) -> dict[str, float]:
    """The training run's ``metrics.json`` beside the checkpoint (``RUN/checkpoints/x.ckpt``), if
    any: its validation metrics choose the best member without looking at the test images."""
    import json

    path = Path(ckpt_path).resolve().parent.parent / "metrics.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, (int, float))} if isinstance(data, dict) else {}


def merge_eval_config(saved: DictConfig, eval_cfg: DictConfig, overrides: list[str], groups: set[str]) -> DictConfig:
    """The saved training config, with runtime keys and the user's command-line overrides from
    the evaluation config: a group override (``data=folder``) replaces that whole node, a key
    override (``task.sigma=50``) sets that one value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    merged = saved.copy()
    OmegaConf.set_struct(merged, False)
    for key in RUNTIME_KEYS:
        if key in eval_cfg:
            merged[key] = eval_cfg[key]
    parsed = OverridesParser.create().parse_overrides(overrides)
    for ov in sorted(parsed, key=lambda o: o.key_or_group not in groups):  # groups first
        key = ov.key_or_group
        if key.split(".")[0] in RUNTIME_KEYS or key.startswith("hydra"):
            continue
        if key in groups:
            merged[key] = eval_cfg[key]
            continue
        if key.split(".")[0] in ("data", "task", "approach") and OmegaConf.select(
                saved, key, default="__absent__", throw_on_missing=False) == "__absent__" \
                and not (key.split(".")[0] in groups and key.split(".")[0] in [o.key_or_group for o in parsed]):
            target = str(OmegaConf.select(saved, key.split(".")[0] + "._target_", default="") or "")
            raise ConfigError(key, f"makes no sense for this checkpoint: its {key.split('.')[0]} "
                                   f"({target.rsplit('.', 1)[-1] or '?'}) has no such setting")
        value = OmegaConf.select(eval_cfg, key, throw_on_missing=False)
        OmegaConf.update(merged, key, value, force_add=True)
    return merged


def evaluate(cfg: DictConfig, overrides: list[str] | None = None, groups: set[str] | None = None) -> dict:
    """Test a checkpoint with the config it was trained with (plus overrides); write ``eval.json``."""
    started = time.perf_counter()
    if cfg.get("compare"):
        return compare(cfg)
    if cfg.get("predict") is not None:
        return predict(cfg)
    if cfg.get("ckpt_path") is None:
        raise ConfigError("ckpt_path", "give the checkpoint to evaluate (ckpt_path=RUN/checkpoints/best.ckpt) "
                          "or runs to compare (compare=MULTIRUN_DIR)")
    ckpt_path = Path(cfg.ckpt_path)
    saved = load_checkpoint_config(ckpt_path)
    run_cfg = merge_eval_config(saved, cfg, overrides or [], groups or set())
    out_dir = Path(cfg.paths.output_dir)
    try:
        L.seed_everything(run_cfg.seed, workers=True)
        datamodule, model = build(run_cfg)
        trainer = build_trainer(run_cfg, model=model)
        cost = model_cost(model, run_cfg)
        log_config(trainer, run_cfg, {**cost, "checkpoint": str(ckpt_path)})
        trainer.test(model, datamodule=datamodule, ckpt_path=str(ckpt_path), weights_only=False)
        metrics = _scalars(trainer.callback_metrics, "test/")
        records = list(model.test_records)
        extras = {}
        if hasattr(model, "write_inference") and trainer.is_global_zero:
            model.eval()
            extras = model.write_inference(datamodule, out_dir, {k: to_plain_value(cfg.get(k)) for k in INFERENCE_KEYS})
        result = {
            "checkpoint": str(ckpt_path.resolve()),
            "code_version": code_version(),
            "metrics": metrics,
            **cost,
            "ms_per_image": (sum(r["ms"] for r in records) / len(records)) if records and "ms" in records[0] else None,
            "per_image": records,
            **extras,
            "val_metrics": _scalars(saved_metrics(ckpt_path), "val/"),
            "wall_time_s": round(time.perf_counter() - started, 3),
            "config": to_plain(run_cfg, resolve=True),
        }
        within = member_comparison(result, member_labels(result["config"]))
        if within:
            result["fusion_vs_best_member"] = within
        if trainer.is_global_zero:
            print_eval_table(records, metrics, title=f"{ckpt_path}")
            if within:
                print_member_comparison(within)
            atomic_write_json(out_dir / "eval.json", result)
            log.info("evaluation written to %s", out_dir / "eval.json")
            for logger in trainer.loggers:
                _log_eval_table(logger, records)
        return result
    finally:
        finish_wandb()


def predict(cfg: DictConfig) -> dict:
    """``evaluate.py ckpt_path=CKPT predict=PATH``: restore your own images (a file or a folder,
    taken as already degraded) into ``output_dir`` (default: this run's ``predictions/``), or, for a
    generation checkpoint, write ``samples`` images (``predict=samples``)."""
    from fusionlab.inference import load, predict_files, predict_samples

    if cfg.get("ckpt_path") is None:
        raise ConfigError("ckpt_path", "give the checkpoint to predict with (ckpt_path=RUN/checkpoints/best.ckpt)")
    predictor = load(cfg.ckpt_path, tta=str(cfg.get("tta") or "none"))
    out_dir = Path(cfg.get("output_dir") or Path(cfg.paths.output_dir) / "predictions")
    if predictor.task == "generate":
        result = predict_samples(predictor, int(cfg.get("samples") or 16), int(cfg.get("predict_seed") or 0), out_dir)
    elif predictor.task == "restoration":
        tile = cfg.get("tile")
        result = predict_files(predictor, cfg.predict, out_dir, None if tile is None else int(tile),
                               int(cfg.get("overlap") or 0))
    else:
        raise ConfigError("predict", f"predict on a {predictor.task} checkpoint is not available yet "
                                     "(use evaluate.py with data.content_dir / styles= for style transfer)")
    print(f"predict: {len(result['written'])} written to {out_dir}, {len(result['failed'])} skipped")
    return result


def _log_eval_table(logger, records: list[dict]) -> None:
    from lightning.pytorch.loggers import WandbLogger

    if isinstance(logger, WandbLogger) and records:
        columns = list(records[0].keys())
        logger.log_table(key="test/per_image", columns=columns, data=[[r[c] for c in columns] for r in records])


def compare(cfg: DictConfig) -> dict:
    """``evaluate.py compare=PATH [baseline=auto|RUN|SETTING]``: the comparison report of the runs
    under PATH (a multirun folder, or a list of run folders): ``report.html``, ``comparison.json``
    (paired differences, intervals, p-values, win rates) and, when W&B is configured, the same
    tables in W&B."""
    from fusionlab.reporting.compare import build_report, comparison_rows

    paths = [cfg.compare] if isinstance(cfg.compare, str) else list(cfg.compare)
    ignore = tuple(str(k) for k in (cfg.get("compare_ignore") or []))
    report, runs, problems, result = build_report(paths, cfg.paths.output_dir, str(cfg.get("baseline") or "auto"),
                                                  ignore)
    log.info("comparison of %d runs written to %s", len(runs), report)
    for c in result["comparisons"]:
        print(c["verdict"])
    for w in result["within_run"]:
        print(f"{w['run']}: {w['psnr']['verdict']}")
    print(f"report: {report}")
    wandb_cfg = (cfg.get("logger") or {}).get("wandb")
    if wandb_cfg:
        import wandb

        rows = [r.row() for r in runs]
        flat = comparison_rows(result)
        with wandb.init(project=wandb_cfg.project, group=wandb_cfg.group, job_type="compare",
                        dir=str(cfg.paths.output_dir), mode=wandb_cfg.mode, tags=list(cfg.tags)) as run:
            tables = {"compare/runs": wandb.Table(columns=list(rows[0]), data=[list(r.values()) for r in rows])}
            if flat:
                tables["compare/paired"] = wandb.Table(columns=list(flat[0]), data=[list(r.values()) for r in flat])
            run.log(tables)
    return {"report": str(report), "comparison": str(Path(report).with_name("comparison.json")), "runs": len(runs),
            "comparisons": len(result["comparisons"]), "within_run": len(result["within_run"]), "skipped": problems}
