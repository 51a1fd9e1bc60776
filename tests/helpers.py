"""Shared test helpers: compose the real configs, make tiny image folders, run the CLI."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import DictConfig, open_dict

from fusionlab.utils.hydra import compose_config

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED = Path(os.environ.get("FUSIONLAB_SHARED_DATA", ROOT.parent / "shared" / "data"))

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def compose_cfg(tmp_path: Path, overrides: list[str] = (), config_name: str = "train",
                smoke: bool = True, hydra_node: bool = False) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` as the CLI would, writing into ``tmp_path``."""
    base = ["extras.print_config=false", f"paths.output_dir={tmp_path}"]
    if smoke:
        base.append("debug=smoke")
    return compose_config(config_name, [*base, *overrides], return_hydra_config=hydra_node)


def fusion_operators() -> dict[str, type]:
    """The operator registry users choose from (``fusion=NAME``: ``conf/fusion/NAME.yaml``), name -> class."""
    from hydra.utils import get_class
    from omegaconf import OmegaConf

    return {f.stem: get_class(OmegaConf.load(f)["_target_"]) for f in sorted((CONF / "fusion").glob("*.yaml"))}


def groups_of(cfg: DictConfig) -> set[str]:
    return set(cfg.hydra.runtime.choices) if "hydra" in cfg else set()


def write_images(folder: Path, n: int, size: tuple[int, int] = (48, 64), channels: int = 1,
                 seed: int = 0, ext: str = "png") -> list[Path]:
    """``n`` smooth random images (so denoising is learnable) as 8-bit files."""
    from skimage import io as skio
    from skimage.filters import gaussian

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        shape = (*size, channels) if channels > 1 else size
        img = gaussian(rng.random(shape), sigma=2, channel_axis=-1 if channels > 1 else None)
        img = (255 * (img - img.min()) / (np.ptp(img) + 1e-8)).astype(np.uint8)
        path = folder / f"img{i:02d}.{ext}"
        skio.imsave(str(path), img, check_contrast=False)
        paths.append(path)
    return paths


def run_cli(args: list[str], timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python <args>`` from the project root as a user would."""
    inherited = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}  # a fresh W&B service, as a user has
    full_env = {**inherited, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


def patch(cfg: DictConfig, **values) -> DictConfig:
    with open_dict(cfg):
        for key, value in values.items():
            node = cfg
            *parents, leaf = key.split(".")
            for p in parents:
                node = node[p]
            node[leaf] = value
    return cfg
