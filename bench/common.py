"""Helpers for the benchmarks: run the real pipeline (compose + train/evaluate) and write results."""

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("FUSIONLAB_ROOT", str(ROOT))
os.environ.setdefault("WANDB_MODE", "offline")
sys.path.insert(0, str(ROOT))

from fusionlab.utils.hydra import compose_config  # noqa: E402  (also registers the resolvers)

from fusionlab.pipeline import train  # noqa: E402
from fusionlab.reporting.stats import paired_difference, seed_interval  # noqa: E402
from fusionlab.utils.version import bench_version, code_version, source_hash  # noqa: E402
from fusionlab.utils.io import atomic_write_json, atomic_write_text  # noqa: E402

SHARED = Path(os.environ.get("FUSIONLAB_SHARED_DATA", ROOT.parent / "shared" / "data"))


def compose_train(out_dir: Path, overrides: list[str], logger: str = "csv"):
    """``conf/train.yaml`` composed as the CLI would, writing into ``out_dir``, without progress bars."""
    base = ["extras.print_config=false", f"paths.output_dir={out_dir}", f"logger={logger}",
            "callbacks.progress_bar=null", "trainer.enable_progress_bar=false"]
    return compose_config("train", [*base, *overrides])


def run_key(overrides: list[str]) -> dict:
    """What decides a cached run's numbers: its overrides and the code version (sources + conf)."""
    return {"overrides": list(overrides), "code_version": source_hash(code_version())}


def run_train(out_dir: Path, overrides: list[str]) -> dict:
    """Train with ``conf/train.yaml`` + overrides into ``out_dir``; reuse a finished run only when it
    was made with the same overrides and the same code version (``bench_key.json``), else redo it.
    The returned metrics carry ``overrides`` and ``code_version``."""
    import shutil

    out_dir = Path(out_dir)
    done, key_file = out_dir / "metrics.json", out_dir / "bench_key.json"
    key = run_key(overrides)
    if done.is_file() and key_file.is_file() and json.loads(key_file.read_text()) == key:
        return {**json.loads(done.read_text()), **key}
    if out_dir.exists():
        print(f"[bench] {out_dir.name}: cached run is stale (other overrides or code), redoing it", flush=True)
        shutil.rmtree(out_dir)
    cfg = compose_train(out_dir, overrides)
    started = time.perf_counter()
    metrics = train(cfg)
    atomic_write_json(key_file, key)
    print(f"[bench] {out_dir.name}: {time.perf_counter() - started:.0f}s  "
          f"val/psnr={metrics.get('val/psnr', float('nan')):.3f} test/psnr={metrics.get('test/psnr', float('nan')):.3f}",
          flush=True)
    return {**metrics, **key}


def evaluate_checkpoint(ckpt_path: Path, out_dir: Path, overrides: list[str] = ()) -> dict:
    """``evaluate.py ckpt_path=CKPT`` + overrides on the checkpoint's test set, written into
    ``out_dir`` and cached there under the same key rule as :func:`run_train`. Returns
    ``{"test/psnr", "test/ssim", "per_image", "ms_per_image"}``."""
    from hydra.core.global_hydra import GlobalHydra

    from fusionlab.pipeline import evaluate

    out_dir = Path(out_dir)
    key = run_key([str(ckpt_path), *overrides])
    done, key_file = out_dir / "eval.json", out_dir / "bench_key.json"
    if not (done.is_file() and key_file.is_file() and json.loads(key_file.read_text()) == key):
        GlobalHydra.instance().clear()
        cfg = compose_config("eval", [f"ckpt_path={ckpt_path}", *overrides, "logger=csv", "extras.print_config=false",
                                      f"paths.output_dir={out_dir}", "callbacks.progress_bar=null",
                                      "trainer.enable_progress_bar=false"])
        # the overrides go on top of the checkpoint's saved config, as evaluate.py's command line does
        # (a bare ``group=option`` replaces that node; ``key.sub=value`` sets one value)
        evaluate(cfg, list(overrides), {o.split("=")[0] for o in overrides if "." not in o.split("=")[0]})
        atomic_write_json(key_file, key)
    result = json.loads(done.read_text())
    return {"test/psnr": result["metrics"]["test/psnr"], "test/ssim": result["metrics"]["test/ssim"],
            "per_image": result["per_image"], "ms_per_image": result.get("ms_per_image"),
            "seed": int(result["config"]["seed"])}


def seeds_summary(runs: list[dict], key: str) -> dict:
    """Mean over seeds of ``key`` with its 95% t-interval (:func:`fusionlab.reporting.stats.seed_interval`)."""
    return seed_interval([r[key] for r in runs])


def paired_over_seeds(candidate: list[dict], baseline: list[dict], metric: str = "psnr",
                      baseline_metric: str | None = None) -> dict:
    """Per-image paired difference (test records), each side averaged over its seeds first:
    mean, 95% bootstrap interval, Wilcoxon p, win rate (:func:`paired_difference`)."""
    def per_image(runs, m):
        tables = [{r["image"]: r[m] for r in run["per_image"]} for run in runs]
        names = sorted(set(tables[0]).intersection(*tables[1:]))
        return {n: sum(t[n] for t in tables) / len(tables) for n in names}

    a, b = per_image(candidate, metric), per_image(baseline, baseline_metric or metric)
    names = sorted(set(a) & set(b))
    return paired_difference([a[n] for n in names], [b[n] for n in names])


def paired_by_seed(candidate: list[dict], baseline: list[dict], metric: str = "psnr") -> dict:
    """Over seeds: each seed's candidate-minus-baseline mean ``metric`` (test records), paired by
    seed (:func:`seed_of`; a seed on one side only is an error, not a silent mis-pairing), mean with its 95% t-interval (includes training randomness, unlike the per-image interval)."""
    def mean(run):
        return sum(r[metric] for r in run["per_image"]) / len(run["per_image"])

    by_seed = {seed_of(b): b for b in baseline}
    missing = sorted({seed_of(c) for c in candidate} ^ set(by_seed))
    if missing:
        raise ValueError(f"paired_by_seed: seeds {missing} are on one side only; pair runs of the same seeds")
    return seed_interval([mean(c) - mean(by_seed[seed_of(c)]) for c in candidate])


def seed_of(run: dict) -> int:
    """The seed of a run's metrics (its saved config), for pairing runs by seed, never by order."""
    return int(run["seed"] if "seed" in run else run["config"]["seed"])


def fmt_seed_diff(d: dict) -> str:
    """``mean [low, high]`` of :func:`paired_by_seed`, ``(n.d.)`` when the interval contains 0."""
    if d["n"] < 2:
        return f"{d['mean']:+.3f} (one seed)"
    word = "" if d["ci_low"] > 0 or d["ci_high"] < 0 else " (n.d.)"
    return f"{d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]{word}"


def fmt_ci(s: dict, digits: int = 3) -> str:
    """``mean ± half-width`` of a 95% interval (or the mean alone with one seed)."""
    if s["n"] < 2:
        return f"{s['mean']:.{digits}f}"
    return f"{s['mean']:.{digits}f} ± {(s['ci_high'] - s['ci_low']) / 2:.{digits}f}"


def fmt_diff(d: dict) -> str:
    word = "" if d["distinguishable"] else " (n.d.)"
    return f"{d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]{word}"


def write_results(name: str, data: dict, markdown: str) -> None:
    out = ROOT / "bench" / "results"
    data = {"code_version": code_version(), "bench_version": bench_version(),
            "command": " ".join(["python", *sys.argv]), **data}
    atomic_write_json(out / f"{name}.json", data)
    atomic_write_text(out / f"{name}.md", markdown)
    print(markdown)


def machine() -> dict:
    import platform

    import torch

    return {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def load_model(ckpt_path):
    """A trained model rebuilt from its checkpoint's saved config, best weights loaded, eval mode."""
    import torch

    from fusionlab.pipeline import build, load_checkpoint_config

    cfg = load_checkpoint_config(ckpt_path)
    cfg.paths = {"root_dir": str(ROOT), "shared_data": str(SHARED), "output_dir": "/tmp", "log_dir": "/tmp",
                 "cache_dir": "/tmp"}
    _, model = build(cfg)
    model.load_state_dict(torch.load(ckpt_path, map_location="cpu", weights_only=False)["state_dict"])
    return model.eval(), cfg
