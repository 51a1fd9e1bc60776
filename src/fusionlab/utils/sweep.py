"""Multirun jobs that fail alone, DDP inside a multirun job, and the report at the end of a sweep.

* :func:`run_job` wraps one multirun job: an exception is logged with its traceback, written to
  ``JOB_DIR/failed.json`` and turned into no objective (None), so the sweep goes on (Optuna
  records a failed trial); the environment the job changed (DDP's ``LOCAL_RANK``, ``MASTER_PORT``, ...)
  is restored so the next job in the same process starts clean.
* :func:`job_subprocess_cmd` replaces Lightning's command for DDP child processes under Hydra,
  which re-runs ``sys.argv``: inside a multirun that would start a new sweep in every child.
  The children get the job's own overrides and ``hydra.run.dir`` = the job's folder.
* :class:`SweepReport` (a Hydra callback, ``conf/hydra/default.yaml``) lists every job's status
  and objective in ``SWEEP_DIR/sweep_summary.json`` and ends the process with status 1 when a
  job failed.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from fusionlab.utils.errors import FusionlabError
from fusionlab.utils.io import atomic_write_json

log = logging.getLogger("fusionlab")

ENTRY_ENV = "FUSIONLAB_ENTRY"  # JSON list: entry script + --config-* arguments
FAILED_FILE = "failed.json"
SUMMARY_FILE = "sweep_summary.json"
# Hydra overrides a DDP child must not inherit: it is one plain run in the job's folder.
_CHILD_DROPS = ("hydra.run.", "hydra.sweep.", "hydra.sweeper", "hydra/sweeper", "hydra.launcher",
                "hydra/launcher", "hydra.mode", "hydra.job.name", "hydra.output_subdir", "hydra.callbacks")


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


# ---- DDP children of a multirun job --------------------------------------------------------------
def job_subprocess_cmd(local_rank: int) -> tuple[list[str], str]:
    """Command and cwd for DDP process ``local_rank`` of the current Hydra job (run or multirun)."""
    import __main__
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd, to_absolute_path

    hc = HydraConfig.get()
    if ENTRY_ENV in os.environ:  # set by train.py / evaluate.py at start (cli.setup_environment)
        command = [sys.executable, *json.loads(os.environ[ENTRY_ENV])]
    elif __main__.__spec__ is None:
        command = [sys.executable, to_absolute_path(sys.argv[0]), *config_location_args(sys.argv[1:])]
    else:
        command = [sys.executable, "-m", __main__.__spec__.name, *config_location_args(sys.argv[1:])]
    command += [o for o in hc.overrides.hydra if not o.lstrip("~+").startswith(_CHILD_DROPS)]
    command += list(hc.overrides.task)
    command += [f'hydra.run.dir="{hc.runtime.output_dir}"', f"hydra.job.name=train_ddp_process_{local_rank}",
                "hydra.output_subdir=null"]
    return command, get_original_cwd()


def config_location_args(argv: list[str]) -> list[str]:
    """``--config-name/-cn``, ``--config-path/-cp``, ``--config-dir/-cd`` from the command line."""
    flags = {"--config-name", "-cn", "--config-path", "-cp", "--config-dir", "-cd"}
    kept, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg in flags and i + 1 < len(argv):
            kept += argv[i:i + 2]
            i += 2
            continue
        if arg.split("=", 1)[0] in flags:
            kept.append(arg)
        i += 1
    return kept


def install_ddp_child_command() -> None:
    """Point Lightning's script launcher at :func:`job_subprocess_cmd` (idempotent)."""
    from lightning.pytorch.strategies.launchers import subprocess_script

    subprocess_script._hydra_subprocess_cmd = job_subprocess_cmd


# ---- the end of a sweep --------------------------------------------------------------------------
def summarise_sweep(sweep_dir: Path, key: str | None) -> dict[str, Any]:
    """Status, overrides and objective of every job folder under ``sweep_dir``."""
    jobs = []
    for job_dir in sorted((p for p in sweep_dir.iterdir() if p.is_dir()), key=_job_order):
        overrides_file = job_dir / ".hydra" / "overrides.yaml"
        if not overrides_file.is_file():
            continue
        overrides = list(OmegaConf.load(overrides_file))
        entry: dict[str, Any] = {"job": job_dir.name, "overrides": overrides}
        if (job_dir / FAILED_FILE).is_file():
            entry.update(status="failed", error=json.loads((job_dir / FAILED_FILE).read_text())["error"])
        elif (job_dir / "metrics.json").is_file():
            metrics = json.loads((job_dir / "metrics.json").read_text())
            entry.update(status="ok", objective=metrics.get(key) if key else None)
        elif (job_dir / "eval.json").is_file():  # an evaluate.py multirun
            entry.update(status="ok")
        else:
            entry.update(status="unfinished")
        jobs.append(entry)
    failed = [j for j in jobs if j["status"] != "ok"]
    return {"sweep_dir": str(sweep_dir), "optimized_metric": key, "jobs": jobs,
            "n_ok": len(jobs) - len(failed), "n_failed": len(failed)}


def _job_order(path: Path) -> tuple[int, str]:
    return (int(path.name), "") if path.name.isdigit() else (sys.maxsize, path.name)


class SweepReport(Callback):
    """Hydra callback: after a multirun, write ``sweep_summary.json``, print which jobs failed (with
    their overrides and error) and exit with status 1 if any did (``fail_on_error: false`` keeps 0)."""

    def __init__(self, fail_on_error: bool = True) -> None:
        self.fail_on_error = fail_on_error

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        key = config.get("optimized_metric")
        summary = summarise_sweep(sweep_dir, key)
        atomic_write_json(sweep_dir / SUMMARY_FILE, summary)
        lines = [f"sweep: {summary['n_ok']} of {len(summary['jobs'])} jobs finished; summary in "
                 f"{sweep_dir / SUMMARY_FILE}"]
        for job in summary["jobs"]:
            if job["status"] != "ok":
                lines.append(f"  job {job['job']} {job['status']}: {' '.join(job['overrides'])}"
                             + (f" -> {job['error']}" if "error" in job else ""))
        print("\n".join(lines), file=sys.stderr)
        if summary["n_failed"] and self.fail_on_error:
            sys.exit(1)
