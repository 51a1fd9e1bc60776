"""The report at the end of a sweep: :class:`SweepReport` (a Hydra callback, ``conf/hydra/default.yaml``)
lists every job's status and objective in ``SWEEP_DIR/sweep_summary.json`` and ends the process with
status 1 when a job failed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from fusionlab.utils.io import atomic_write_json
from fusionlab.utils.jobs import FAILED_FILE

SUMMARY_FILE = "sweep_summary.json"


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
