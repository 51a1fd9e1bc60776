"""Multirun jobs that fail alone.

:func:`run_job` wraps one multirun job: an exception is logged with its traceback, written to
``JOB_DIR/failed.json`` and turned into no objective (None), so the sweep goes on (Optuna records a
failed trial); the environment the job changed (DDP's ``LOCAL_RANK``, ``MASTER_PORT``, ...) is
restored so the next job in the same process starts clean. :func:`objective` is what a job returns
to the sweeper.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from fusionlab.utils.errors import FusionlabError
from fusionlab.utils.io import atomic_write_json

log = logging.getLogger("fusionlab")

FAILED_FILE = "failed.json"


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@contextmanager
def restored_environ() -> Iterator[None]:
    """Undo what a job wrote into ``os.environ`` (Lightning's DDP launcher sets ``LOCAL_RANK``,
    ``WORLD_SIZE``, ``MASTER_PORT`` there; a later job would take itself for a child process)."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_job(fn: Callable[..., Any], cfg: DictConfig, *args: Any) -> Any:
    """One multirun job: its failure is recorded, not raised (see the module docstring)."""
    out_dir = Path(cfg.paths.output_dir)
    with restored_environ():
        try:
            return fn(cfg, *args)
        except Exception as err:  # noqa: BLE001 -- any failure of one job must not end the sweep
            if isinstance(err, FusionlabError):  # bad config or input: one line (traceback in failed.json)
                log.error("job failed: %s", err)
            else:
                log.exception("job failed: %s", err)
            record_failure(out_dir, err)
            print(f"error: job in {out_dir} failed: {type(err).__name__}: {err}", file=sys.stderr)
            return None
        finally:
            _teardown_distributed()


def record_failure(out_dir: Path, err: BaseException) -> None:
    """``failed.json``: the error and its traceback, next to the job's log."""
    from hydra.core.hydra_config import HydraConfig

    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    atomic_write_json(out_dir / FAILED_FILE, {
        "error": f"{type(err).__name__}: {err}",
        "overrides": overrides,
        "traceback": "".join(traceback.format_exception(type(err), err, err.__traceback__)),
    })


def _teardown_distributed() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def objective(metrics: dict[str, Any] | None, key: str | None) -> float | None:
    """The value returned to the sweeper, None for a failed job or a missing metric: the Optuna
    sweeper records that trial as failed and goes on (with ``max_failure_rate: 1.0``; a NaN would
    make Optuna 2.x raise inside the sweeper and end the search)."""
    if key is None or not metrics:
        return None
    if key not in metrics:
        log.warning("optimized_metric %s is not among this run's metrics (%s)", key,
                    ", ".join(k for k in metrics if k.startswith("val/")))
        return None
    value = float(metrics[key])
    return value if math.isfinite(value) else None
