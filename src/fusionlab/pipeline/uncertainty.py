"""``evaluate.py ckpt_path=CKPT uncertainty=HEURISTIC calibrate_dir=DIR alpha=0.1``: calibrated
per-pixel error bounds of a restoration checkpoint, measured on its test set.

The calibration images are degraded with the checkpoint's own task (its saved noise level or
scale), never with the command line's test-time overrides: a test set degraded otherwise
(``task.sigma=35``) is a shift the calibration did not see, reported as such. λ is saved beside the
checkpoint (:mod:`fusionlab.uncertainty.calibration`) and in ``eval.json``; without
``calibrate_dir`` the saved λ is used.
"""

import hashlib
import logging
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from fusionlab.uncertainty import calibration as saved_calibrations
from fusionlab.uncertainty.conformal import METHODS, calibrate, check_alphas, image_metrics, min_images, nonconformity
from fusionlab.uncertainty.conformal import FRACTIONS, bounds
from fusionlab.uncertainty.scores import check_heuristic, fused_and_score
from fusionlab.utils.errors import ConfigError, DataError
from fusionlab.utils.hydra import instantiate, to_plain
from fusionlab.utils.version import code_version

log = logging.getLogger("fusionlab")
DEFAULT_ALPHA = 0.1


def options(cfg: DictConfig) -> dict | None:
    """The uncertainty options of an evaluation config, checked (None: no ``uncertainty=``)."""
    heuristic = cfg.get("uncertainty")
    if heuristic in (None, "", "none"):
        for key in ("calibrate_dir", "calibration"):
            if cfg.get(key):
                raise ConfigError(key, "is used with uncertainty=HEURISTIC (constant, member_std, gate_entropy, "
                                       "tta_std, seed_std); none was given")
        return None
    method = str(cfg.get("conformal") or "quantile")
    if method not in METHODS:
        raise ConfigError("conformal", f"must be one of {list(METHODS)}, got {method!r}")
    alpha = cfg.get("alpha")
    alpha = OmegaConf.to_container(alpha) if OmegaConf.is_config(alpha) else alpha
    members = cfg.get("uncertainty_members") or []
    members = [members] if isinstance(members, str) else list(members)
    for i, m in enumerate(members):
        if not Path(str(m)).is_file():
            raise DataError(m, "member checkpoint does not exist", f"uncertainty_members[{i}]")
    calibrate_dir = cfg.get("calibrate_dir")
    if calibrate_dir is not None and not Path(str(calibrate_dir)).is_dir():
        raise DataError(calibrate_dir, "calibration folder does not exist", "calibrate_dir")
    return {"heuristic": str(heuristic), "method": method,
            "alphas": check_alphas(DEFAULT_ALPHA if alpha is None else alpha),
            "members": [str(m) for m in members], "calibrate_dir": calibrate_dir, "calibration": cfg.get("calibration")}


def checked_models(opts: dict, model) -> list:
    """``[model, *uncertainty_members]`` (the members loaded with the model's test-time setting),
    checked to give the heuristic: one line naming the key otherwise."""
    from fusionlab.inference import load

    models = [model, *(load(p, tta=model.tta, tta_fusion=model.tta_fusion).model for p in opts["members"])]
    check_heuristic(opts["heuristic"], models)
    return models


def wanted_entry(opts: dict, model) -> dict:
    """The fields that say which calibration fits (see :func:`calibration.entry_key`)."""
    return {"heuristic": opts["heuristic"], "tta": model.tta, "tta_fusion": model.tta_fusion,
            "members_sha256": [saved_calibrations.file_sha256(m) for m in opts["members"]]}


def calibration_set(run_cfg: DictConfig, saved: DictConfig, folder: str):
    """The calibration images of ``folder``, degraded with the checkpoint's saved task."""
    from fusionlab.data.datasets import FullImageDataset

    cfg = run_cfg.copy()
    OmegaConf.set_struct(cfg, False)
    cfg.task = saved.task
    cfg.data.test_dir, cfg.data.test_images = str(folder), None
    task = instantiate(cfg.task, "task")
    datamodule = instantiate(cfg.data, "data", task=task)
    try:
        images, names = datamodule.load_split("test")
    except DataError as err:  # the folder came in through calibrate_dir, not data.test_dir
        raise DataError(err.path, err.message, "calibrate_dir") from None
    return FullImageDataset(images, names, task)


def _fingerprints(dataset) -> dict[str, str]:
    out = {}
    for image, name in zip(dataset.images, dataset.names):
        image = image() if callable(image) else image
        out[hashlib.sha1(image.float().contiguous().numpy().tobytes()).hexdigest()] = name
    return out


def check_disjoint(calibration, test) -> None:
    """Calibration and test sets share no image (compared by decoded pixels, not by name)."""
    shared = set(_fingerprints(calibration)) & set(fp := _fingerprints(test))
    if shared:
        names = sorted(fp[s] for s in shared)
        raise ConfigError("calibrate_dir", f"{len(shared)} of its images are also test images ({', '.join(names[:3])}"
                                           f"{' ...' if len(names) > 3 else ''}): calibrate on images disjoint from "
                                           "the test set")


def _cropped(x: torch.Tensor, border: int) -> torch.Tensor:
    return x[..., border:-border, border:-border] if border > 0 else x


def maps(models: list, dataset, heuristic: str, description: str):
    """``(name, fused, score, target)`` per image of ``dataset`` (``(C, H, W)`` each), with the
    evaluator's border crop; one image at a time, with a progress bar."""
    from rich.progress import track

    border = int(getattr(models[0].evaluator, "crop_border", 0))
    device = next(models[0].parameters()).device
    for m in models[1:]:  # seed_std members come from their files on the CPU
        m.to(device).eval()
    for i in track(range(len(dataset)), description=description, transient=True):
        item = dataset[i]
        fused, score = fused_and_score(models, item["source"][None].to(device), heuristic)
        yield item["name"], *(_cropped(t, border)[0].cpu() for t in (fused, score, item["target"][None]))


def calibrate_entry(opts: dict, models: list, dataset, ckpt_path: Path, saved: DictConfig, wanted: dict) -> dict:
    """λ of every method and α on the calibration set (None where a method needs more images)."""
    residuals = [nonconformity(f, s, t) for _, f, s, t in maps(models, dataset, opts["heuristic"], "calibrating")]
    n = len(residuals)
    needed = min_images(min(opts["alphas"]), opts["method"])
    if n < needed:
        raise ConfigError("calibrate_dir", f"{n} calibration images are too few for alpha={min(opts['alphas']):g} "
                                           f"with conformal={opts['method']}: it needs at least {needed}")
    lambdas = {m: {f"{a:g}": (calibrate(residuals, a, m) if n >= min_images(a, m) else None) for a in opts["alphas"]}
               for m in METHODS}
    return {**wanted, "lambdas": lambdas, "alphas": opts["alphas"], "calibrate_dir": str(Path(opts["calibrate_dir"]).resolve()),
            "images": n, "pixels": int(sum(r.numel() for r in residuals)),
            "task": to_plain(saved.task, resolve=True), "checkpoint": str(ckpt_path.resolve()),
            "checkpoint_sha256": saved_calibrations.file_sha256(ckpt_path),
            "members": [str(Path(m).resolve()) for m in opts["members"]],
            "code_version": code_version(), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}


def _half_width_panels(fused, score, target, lam: float) -> list:
    lower, upper = bounds(fused, score, lam)
    error = (target.float() - fused.float().clamp(0, 1)).abs().mean(dim=0) * 255
    return [("|error| (gray levels)", error.numpy()), ("calibrated half-width", ((upper - lower) / 2).mean(dim=0).numpy() * 255)]


def summarise(per_image: list[dict], alphas: list[float], lambdas: dict) -> dict:
    n = len(per_image)
    mean = lambda key: sum(r[key] for r in per_image) / n  # noqa: E731
    curve = [sum(r["sparsification"][i] for r in per_image) / n for i in range(len(FRACTIONS))]
    oracle = [sum(r["oracle"][i] for r in per_image) / n for i in range(len(FRACTIONS))]
    return {"alphas": {f"{a:g}": {"lambda": lambdas[f"{a:g}"], "coverage": mean(f"coverage@{a:g}"),
                                  "width": mean(f"width@{a:g}"),
                                  "images_below_target": sum(r[f"coverage@{a:g}"] < 1 - a for r in per_image)}
                       for a in alphas},
            "score_error_corr": mean("score_error_corr"), "ause": mean("ause"),
            "sparsification": {"fractions": list(FRACTIONS), "curve": curve, "oracle": oracle}}


def run(opts: dict, run_cfg: DictConfig, saved: DictConfig, models: list, datamodule,
        ckpt_path: Path, out_dir: Path) -> dict:
    """Calibrate (or load the saved λ), then measure the intervals on the test set. Returns the
    ``uncertainty`` block of ``eval.json`` (with ``per_image``)."""
    from fusionlab.uncertainty.figures import summary_figure

    model = models[0]
    wanted = wanted_entry(opts, model)
    task = to_plain(saved.task, resolve=True)
    if opts["calibrate_dir"]:
        cal = calibration_set(run_cfg, saved, opts["calibrate_dir"])
        check_disjoint(cal, datamodule.test_set)
        entry = calibrate_entry(opts, models, cal, ckpt_path, saved, wanted)
        log.info("calibration saved to %s", saved_calibrations.save(ckpt_path, entry))
    else:
        entry = saved_calibrations.find(ckpt_path, wanted, opts["alphas"], opts["method"], task, opts["calibration"])
    lambdas = {f"{a:g}": entry["lambdas"][opts["method"]][f"{a:g}"] for a in opts["alphas"]}
    test_task = to_plain(run_cfg.task, resolve=True)
    if test_task != task:
        log.warning("uncertainty: the test set is degraded otherwise (%s) than the calibration (%s): a shift, "
                    "coverage is not guaranteed", test_task, task)
    per_image, example = [], None
    for name, fused, score, target in maps(models, datamodule.test_set, opts["heuristic"], "uncertainty on test"):
        per_image.append({"image": str(name), **image_metrics(fused, score, target,
                                                              {float(a): lam for a, lam in lambdas.items()})})
        if example is None:
            example = {"panels": _half_width_panels(fused, score, target, lambdas[f"{opts['alphas'][0]:g}"])}
    result = {"heuristic": opts["heuristic"], "method": opts["method"], "tta": model.tta,
              "calibration": entry, "shift": None if test_task == task else {"calibrated": task, "tested": test_task},
              **summarise(per_image, opts["alphas"], lambdas), "per_image": per_image}
    result["figure"] = str(summary_figure(result, example, out_dir / "uncertainty.png"))
    return result


def add_to(evaluation: dict, result: dict) -> None:
    """Put an uncertainty result into an evaluation (``eval.json``): the block itself, its scalars
    as ``test/uq_*`` metrics, and each image's values (``uq_coverage@0.1`` ...) in its record."""
    evaluation["uncertainty"] = result
    metrics = evaluation["metrics"]
    metrics.update({"test/uq_score_error_corr": result["score_error_corr"], "test/uq_ause": result["ause"]})
    for a, v in result["alphas"].items():
        metrics[f"test/uq_coverage@{a}"], metrics[f"test/uq_width@{a}"] = v["coverage"], v["width"]
    columns = {r["image"]: {f"uq_{k}": v for k, v in r.items() if k not in ("image", "sparsification", "oracle")}
               for r in result["per_image"]}
    for record in evaluation["per_image"]:
        record.update(columns.get(record["image"], {}))
