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

import fusionlab.utils.hydra  # noqa: E402,F401  (resolvers)
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402

from fusionlab.pipeline import train  # noqa: E402
from fusionlab.utils.io import atomic_write_json, atomic_write_text  # noqa: E402

SHARED = Path(os.environ.get("FUSIONLAB_SHARED_DATA", ROOT.parent / "shared" / "data"))


def run_train(out_dir: Path, overrides: list[str]) -> dict:
    """Train with ``conf/train.yaml`` + overrides into ``out_dir``; reuse a finished run."""
    out_dir = Path(out_dir)
    done = out_dir / "metrics.json"
    if done.is_file():
        return json.loads(done.read_text())
    GlobalHydra.instance().clear()
    base = ["extras.print_config=false", f"paths.output_dir={out_dir}", f"paths.work_dir={out_dir}",
            "logger=csv", "callbacks.progress_bar=null", "trainer.enable_progress_bar=false"]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[*base, *overrides])
    started = time.perf_counter()
    metrics = train(cfg)
    print(f"[bench] {out_dir.name}: {time.perf_counter() - started:.0f}s  "
          f"val/psnr={metrics.get('val/psnr', float('nan')):.3f} test/psnr={metrics.get('test/psnr', float('nan')):.3f}",
          flush=True)
    return metrics


def write_results(name: str, data: dict, markdown: str) -> None:
    out = ROOT / "bench" / "results"
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
                 "work_dir": str(ROOT), "cache_dir": "/tmp"}
    _, model = build(cfg)
    model.load_state_dict(torch.load(ckpt_path, map_location="cpu", weights_only=False)["state_dict"])
    return model.eval(), cfg
