"""Runs that survive being killed: resolving ``ckpt_path`` (``last``, truncated files), the W&B run
to continue, and W&B's fallback to offline when it cannot be reached."""

import logging
import os
import socket
import warnings
from pathlib import Path
from urllib.parse import urlparse

from fusionlab.utils.checkpoints import checkpoint_problem
from fusionlab.utils.errors import ConfigError, DataError

log = logging.getLogger("fusionlab")


def resolve_ckpt_path(ckpt_path: str | None, run_dir: str | Path) -> str | None:
    """The checkpoint to resume from.

    ``last``: the newest valid ``*.ckpt`` in ``RUN/checkpoints`` (a truncated one is skipped with a
    warning naming it); ``auto``: the same, or a fresh start when the folder holds none (a
    requeued SLURM job resumes, its first launch starts); a path: that file, refused with a
    one-line error naming it when it is missing or truncated.
    """
    if ckpt_path in (None, ""):
        return None
    if str(ckpt_path) == "auto":
        folder = Path(run_dir) / "checkpoints"
        if not any(folder.glob("*.ckpt")):
            log.info("ckpt_path=auto: no checkpoint in %s, starting from scratch", folder)
            return None
        ckpt_path = "last"
    if str(ckpt_path) == "last":
        folder = Path(run_dir) / "checkpoints"
        candidates = sorted(folder.glob("*.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True)
        for path in candidates:
            problem = checkpoint_problem(path)
            if problem is None:
                log.info("resuming from %s", path)
                return str(path)
            warnings.warn(f"{path}: skipped, {problem}; trying an older checkpoint", stacklevel=2)
        raise ConfigError("ckpt_path", f"last: no valid checkpoint in {folder} (resume needs "
                          f"hydra.run.dir=<the run folder>)")
    path = Path(ckpt_path)
    if not path.is_file():
        raise DataError(path, "checkpoint file does not exist", "ckpt_path")
    problem = checkpoint_problem(path)
    if problem:
        raise DataError(path, f"{problem}; ckpt_path=last falls back to the newest valid checkpoint", "ckpt_path")
    return str(path)


def previous_wandb_id(run_dir: str | Path) -> str | None:
    """The id of the newest W&B run in ``RUN/wandb`` (``offline-run-<time>-<id>`` / ``run-<time>-<id>``)."""
    runs = sorted(Path(run_dir).glob("wandb/*run-*-*"), key=lambda p: p.name.split("-")[-2])
    runs = [p for p in runs if p.is_dir()]
    return runs[-1].name.rsplit("-", 1)[-1] if runs else None


def wandb_reachable(timeout: float = 3.0) -> str | None:
    """None when the W&B server answers a TCP connection within ``timeout`` s, else why not."""
    url = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    host, port = url.hostname or "api.wandb.ai", url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"{host}:{port} unreachable ({exc.__class__.__name__}: {exc})"


