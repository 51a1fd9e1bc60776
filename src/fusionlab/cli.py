"""What ``train.py`` and ``evaluate.py`` share: environment defaults, extras, one-line errors."""

import json
import logging
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from fusionlab.utils.errors import FusionlabError

log = logging.getLogger("fusionlab")


def setup_environment(entry_file: str | Path) -> None:
    """Project root for configs' paths; W&B offline unless the user chose otherwise; the entry
    script's command for DDP child processes (started from joblib workers too, whose own
    ``sys.argv`` is not the user's)."""
    entry = Path(entry_file).resolve()
    os.environ.setdefault("FUSIONLAB_ROOT", str(entry.parent))
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    if sys.argv and Path(sys.argv[0]).resolve() == entry:
        from fusionlab.utils.ddp_child import ENTRY_ENV, config_location_args

        os.environ[ENTRY_ENV] = json.dumps([str(entry), *config_location_args(sys.argv[1:])])
    # conf/hydra/launcher/{joblib,submitit_slurm}.yaml are checked against the plugins' schemas of
    # the same name (wanted: a typo in a launcher key fails); Hydra warns that this is deprecated.
    logging.getLogger("alembic").setLevel(logging.WARNING)  # imported by Optuna; chatty at INFO
    warnings.filterwarnings("ignore", message="(?s).*is validated against ConfigStore schema with the same name")


def print_config(cfg: DictConfig) -> None:
    from rich.console import Console
    from rich.syntax import Syntax

    text = OmegaConf.to_yaml({k: v for k, v in cfg.items() if k != "hydra"}, resolve=False)
    Console(stderr=True).print(Syntax(text, "yaml", theme="ansi_dark", background_color="default"))


def run(fn: Callable[..., Any], cfg: DictConfig, *args: Any) -> Any:
    """Run ``fn(cfg)``; a :class:`FusionlabError` (bad config or input) ends the process with one
    line on stderr and exit status 2, nothing half-written. In a multirun, a failing job is
    recorded and returns ``None`` instead, so the sweep goes on (:mod:`fusionlab.utils.jobs`)."""
    from fusionlab.utils.jobs import in_multirun, run_job

    if cfg.get("extras", {}).get("print_config", False):
        print_config(cfg)
    if in_multirun():
        return run_job(fn, cfg, *args)
    try:
        return fn(cfg, *args)
    except (FusionlabError, MissingMandatoryValue) as err:
        if isinstance(err, MissingMandatoryValue):
            message = f"Missing mandatory value: {err.full_key} (set it on the command line)"
        else:
            message = str(err)
        log.error("%s", message)
        print(f"error: {message}", file=sys.stderr)
        sys.exit(getattr(err, "exit_code", 2))
