"""``evaluate(cfg)``: test a checkpoint with the config it was trained with (plus overrides) and
write ``eval.json``; ``predict(cfg)``: apply a checkpoint to your own images."""

import logging
import time
from pathlib import Path

import lightning as L
from omegaconf import DictConfig, OmegaConf

from fusionlab.utils.checkpoints import architecture_mismatch, load_checkpoint_config, read_checkpoint
from fusionlab.pipeline import uncertainty
from fusionlab.pipeline.builders import build, build_trainer, model_cost, scalars, to_plain_value
from fusionlab.pipeline.uncertainty import options as uncertainty_options
from fusionlab.pipeline.wandb_run import finish_wandb, log_config, log_eval_table, log_uncertainty
from fusionlab.reporting.paired import member_comparison, member_labels, print_member_comparison
from fusionlab.reporting.tables import print_eval_table
from fusionlab.schemas import check_run_options
from fusionlab.utils.errors import ConfigError, DataError, FilesFailed
from fusionlab.utils.hydra import to_plain
from fusionlab.utils.io import atomic_write_json
from fusionlab.utils.version import code_version

log = logging.getLogger("fusionlab")

# Keys that describe how a run executes, not what model it trains: evaluation takes them from
# its own config (conf/eval.yaml), everything else from the checkpoint's saved config.
RUNTIME_KEYS = ("paths", "trainer", "logger", "callbacks", "extras", "task_name", "ckpt_path", "tta", "tta_fusion")
# evaluate.py options of calibrated per-pixel error bounds (fusionlab.pipeline.uncertainty)
UNCERTAINTY_KEYS = ("uncertainty", "uncertainty_members", "calibrate_dir", "calibration", "conformal", "alpha")
# evaluate.py options for an approach's ``write_inference`` (style mixing / region fusion).
INFERENCE_KEYS = ("styles", "weights", "mask", "blur", "alpha", "preserve_color")


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


def _interpolated_prefix(cfg: DictConfig, key: str) -> tuple[str, str] | None:
    """``(prefix, "${target}")`` when ``key`` passes through an interpolation of ``cfg``
    (``approach.net.width`` with ``approach.net: ${model}``): setting it would replace the link."""
    parts, node = key.split("."), cfg
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node, DictConfig) or part not in node:
            return None
        if OmegaConf.is_interpolation(node, part):
            return ".".join(parts[: i + 1]), str(node._get_node(part)._value())
        node = node[part]
    return None


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
            if key in eval_cfg:  # data=NAME, task=NAME replace the node; debug=NAME set runtime keys only
                merged[key] = eval_cfg[key]
            continue
        if key.split(".")[0] in ("data", "task", "approach") and OmegaConf.select(
                saved, key, default="__absent__", throw_on_missing=False) == "__absent__" \
                and not (key.split(".")[0] in groups and key.split(".")[0] in [o.key_or_group for o in parsed]):
            target = str(OmegaConf.select(saved, key.split(".")[0] + "._target_", default="") or "")
            raise ConfigError(key, f"makes no sense for this checkpoint: its {key.split('.')[0]} "
                                   f"({target.rsplit('.', 1)[-1] or '?'}) has no such setting")
        link = _interpolated_prefix(saved, key)
        if link is not None:
            prefix, target = link
            raise ConfigError(key, f"{prefix} is {target} in this checkpoint's config: override "
                                   f"{target.strip('${}')}{key[len(prefix):]} instead")
        value = OmegaConf.select(eval_cfg, key, throw_on_missing=False)
        OmegaConf.update(merged, key, value, force_add=True)
    return merged


def evaluate(cfg: DictConfig, overrides: list[str] | None = None, groups: set[str] | None = None) -> dict:
    """Test a checkpoint with the config it was trained with (plus overrides); write ``eval.json``."""
    started = time.perf_counter()
    check_run_options(cfg)
    if cfg.get("compare"):
        from fusionlab.pipeline.compare import compare

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
        if not hasattr(model, "write_inference"):
            refuse_style_options(cfg, type(model).__name__)
        uq = uncertainty_options(cfg)
        models = uncertainty.checked_models(uq, model) if uq else []  # checked before anything is computed
        problem = architecture_mismatch(read_checkpoint(ckpt_path)["state_dict"], model)
        if problem:  # an override of approach.* / model.* changed the network
            raise DataError(ckpt_path, f"does not fit the network this evaluation builds ({problem}): "
                            "evaluate it with its own approach and model keys", "ckpt_path")
        trainer = build_trainer(run_cfg, model=model)
        cost = model_cost(model, run_cfg)
        log_config(trainer, run_cfg, {**cost, "checkpoint": str(ckpt_path)})
        trainer.test(model, datamodule=datamodule, ckpt_path=str(ckpt_path), weights_only=False)
        metrics = scalars(trainer.callback_metrics, "test/")
        records = list(model.test_records)
        extras = {}
        if hasattr(model, "write_inference") and trainer.is_global_zero:
            model.eval()
            extras = model.write_inference(datamodule, out_dir, {k: to_plain_value(cfg.get(k)) for k in INFERENCE_KEYS})
        result = {
            "checkpoint": str(ckpt_path.resolve()),
            "code_version": code_version(),
            "metrics": metrics,
            "metric_specs": model.evaluator.metric_specs(),
            "approach": model.description(),
            **cost,
            "ms_per_image": (sum(r["ms"] for r in records) / len(records)) if records and "ms" in records[0] else None,
            "per_image": records,
            **extras,
            "val_metrics": scalars(saved_metrics(ckpt_path), "val/"),
            "wall_time_s": round(time.perf_counter() - started, 3),
            "config": to_plain(run_cfg, resolve=True),
        }
        if uq and trainer.is_global_zero:
            model.eval()
            uncertainty.add_to(result, uncertainty.run(uq, run_cfg, saved, models, datamodule, ckpt_path, out_dir))
            log_uncertainty(trainer, result["uncertainty"])
        within = member_comparison(result, member_labels(result["approach"]))
        if within:
            result["fusion_vs_best_member"] = within
        if trainer.is_global_zero:
            _report(trainer, result, within, out_dir)
        return result
    finally:
        finish_wandb()


def _report(trainer, result: dict, within: dict | None, out_dir: Path) -> None:
    """Print the per-image table (and fused vs best member), write ``eval.json``, log the table."""
    print_eval_table(result["per_image"], result["metrics"], title=f"{result['checkpoint']}")
    if within:
        print_member_comparison(within)
    atomic_write_json(out_dir / "eval.json", result)
    log.info("evaluation written to %s", out_dir / "eval.json")
    for logger in trainer.loggers:
        log_eval_table(logger, result["per_image"])


def predict(cfg: DictConfig) -> dict:
    """``evaluate.py ckpt_path=CKPT predict=PATH``: restore your own images (a file or a folder,
    taken as already degraded), or stylise them with a style checkpoint (``styles=[...]``, with
    ``weights``, ``mask``, ``alpha``, ``preserve_color``), into ``output_dir`` (default: this run's
    ``predictions/``); for a generation checkpoint, write ``samples`` images (``predict=samples``)
    and ``interpolations`` latent strips."""
    from fusionlab.inference import load, predict_files, predict_samples, stylize_files

    if cfg.get("ckpt_path") is None:
        raise ConfigError("ckpt_path", "give the checkpoint to predict with (ckpt_path=RUN/checkpoints/best.ckpt)")
    predictor = load(cfg.ckpt_path, tta=str(cfg.get("tta") or "none"), tta_fusion=str(cfg.get("tta_fusion") or "mean"))
    if predictor.task != "style":
        refuse_style_options(cfg, f"a {predictor.task} checkpoint")
    if predictor.task == "generate" and str(cfg.predict) != "samples":
        raise ConfigError("predict", f"{cfg.predict!r}: a generation checkpoint makes samples and reads no images; "
                          "use predict=samples (with samples=N, interpolations=K)")
    out_dir = Path(cfg.get("output_dir") or Path(cfg.paths.output_dir) / "predictions")
    uq = uncertainty_options(cfg)
    if uq and predictor.task == "restoration":
        bounds = saved_bounds(cfg, uq, predictor)
        tile = cfg.get("tile")
        result = predict_files(predictor, cfg.predict, out_dir, None if tile is None else int(tile),
                               int(cfg.get("overlap") or 0), bounds=bounds)
        print(f"predict: {len(result['written'])} files (restored, lower, upper, uncertainty heat map) written to "
              f"{out_dir}, {len(result['failed'])} skipped; intervals of {bounds['heuristic']} at "
              f"alpha={bounds['alpha']:g} (lambda={bounds['lambda']:.4g})")
        return _check_failed(result)
    if uq:
        raise ConfigError("uncertainty", f"per-pixel bounds are for restoration checkpoints; this one is {predictor.task}")
    if predictor.task == "generate":
        result = predict_samples(predictor, int(cfg.get("samples") or 16), int(cfg.get("predict_seed") or 0), out_dir,
                                 int(cfg.get("interpolations") or 0))
    elif predictor.task == "restoration":
        tile = cfg.get("tile")
        result = predict_files(predictor, cfg.predict, out_dir, None if tile is None else int(tile),
                               int(cfg.get("overlap") or 0))
    else:  # style: your content images in your style image(s)
        options = {k: to_plain_value(cfg.get(k)) for k in INFERENCE_KEYS}
        alpha = 1.0 if options["alpha"] is None else float(options["alpha"])
        result = stylize_files(predictor, cfg.predict, out_dir, options["styles"], options["weights"], alpha,
                               bool(options["preserve_color"]), options["mask"],
                               float(2.0 if options["blur"] is None else options["blur"]))
    print(f"predict: {len(result['written'])} written to {out_dir}, {len(result['failed'])} skipped")
    return _check_failed(result)


def refuse_style_options(cfg: DictConfig, what: str) -> None:
    """The style options (``styles``, ``weights``, ``mask``, ``preserve_color``) are for style
    checkpoints; on any other they would be silently ignored: refuse them with one line."""
    for key in ("styles", "weights", "mask"):
        if cfg.get(key) is not None:
            raise ConfigError(key, f"is an option of style checkpoints; {what} has no use for it (remove {key}=)")
    if cfg.get("preserve_color"):
        raise ConfigError("preserve_color", f"is an option of style checkpoints; {what} has no use for it")


def _check_failed(result: dict) -> dict:
    """``result`` when every input file was processed; else :class:`FilesFailed` (exit status 1)."""
    failed = result.get("failed") or []
    if failed:
        names = ", ".join(Path(f.split(": skipped", 1)[0]).name for f in failed[:5])
        more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
        raise FilesFailed(f"predict: {len(failed)} file(s) failed ({names}{more}; each is named above); "
                          f"{len(result.get('written') or [])} written", result)
    return result


def saved_bounds(cfg: DictConfig, uq: dict, predictor) -> dict:
    """The saved calibration that ``predict=`` draws bounds with: one α, this checkpoint, its task."""
    from fusionlab.uncertainty import calibration

    if len(uq["alphas"]) != 1:
        raise ConfigError("alpha", f"predict draws one interval per pixel: give one level, got {uq['alphas']}")
    if uq["calibrate_dir"]:
        raise ConfigError("calibrate_dir", "predict uses a saved calibration: calibrate with evaluate.py (without "
                                           "predict=) first, then predict with the same uncertainty= and tta=")
    members = uncertainty.checked_models(uq, predictor.model)[1:]
    task = OmegaConf.to_container(load_checkpoint_config(cfg.ckpt_path).task, resolve=True)
    entry = calibration.find(cfg.ckpt_path, uncertainty.wanted_entry(uq, predictor.model), uq["alphas"], uq["method"],
                             task, uq["calibration"])
    alpha = uq["alphas"][0]
    return {"heuristic": uq["heuristic"], "members": members, "alpha": alpha,
            "lambda": entry["lambdas"][uq["method"]][f"{alpha:g}"]}
