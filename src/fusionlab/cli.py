"""What ``train.py`` and ``evaluate.py`` share: environment defaults, extras, one-line errors."""

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from fusionlab.utils.errors import FusionlabError

log = logging.getLogger("fusionlab")


def setup_environment(root: str | Path) -> None:
    """Project root for configs' paths; W&B offline unless the user chose otherwise."""
    os.environ.setdefault("FUSIONLAB_ROOT", str(Path(root).resolve()))
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")


def print_config(cfg: DictConfig) -> None:
    from rich.console import Console
    from rich.syntax import Syntax

    text = OmegaConf.to_yaml({k: v for k, v in cfg.items() if k != "hydra"}, resolve=False)
    Console(stderr=True).print(Syntax(text, "yaml", theme="ansi_dark", background_color="default"))


def run(fn: Callable[..., Any], cfg: DictConfig, *args: Any) -> Any:
    """Run ``fn(cfg)``; a :class:`FusionlabError` (bad config or input) ends the process with one
    line on stderr and exit status 2, nothing half-written."""
    if cfg.get("extras", {}).get("print_config", False):
        print_config(cfg)
    try:
        return fn(cfg, *args)
    except (FusionlabError, MissingMandatoryValue) as err:
        if isinstance(err, MissingMandatoryValue):
            message = f"Missing mandatory value: {err.full_key} (set it on the command line)"
        else:
            message = str(err)
        log.error("%s", message)
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
