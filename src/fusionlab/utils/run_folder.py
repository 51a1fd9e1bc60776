"""A run folder holds one run: a new run refuses a folder that already holds results, and a folder is
locked while a run writes into it.

- :func:`check_run_folder` refuses (one line, exit 2) a folder with an earlier run's checkpoints or
  ``metrics.json`` unless the run resumes (``ckpt_path=last|auto|<a checkpoint in it>``) or replaces
  (``overwrite=true``: the earlier checkpoints and metrics are removed first, so they never mix);
  it also refuses a folder that cannot be written (read-only parent), before anything is written.
- :class:`RunLock` is ``RUN/.fusionlab.lock`` created with ``O_EXCL`` and holding the writer's pid:
  a second run into the same folder refuses with the holder's pid; a lock whose process is gone
  (killed run) is taken over with a warning.

:class:`RunFolderCheck` runs the check as a Hydra callback at ``on_run_start``, before Hydra writes
its log file into the folder, so a refused run changes no file of the earlier one; ``train()`` checks
again (multirun jobs, the compose API) and takes the lock.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
import warnings
from pathlib import Path

from fusionlab.utils.errors import DataError

log = logging.getLogger("fusionlab")

LOCK_FILE = ".fusionlab.lock"


def earlier_results(run_dir: Path) -> list[Path]:
    """The files that show ``run_dir`` already holds a run: checkpoints and ``metrics.json``."""
    found = sorted((run_dir / "checkpoints").glob("*.ckpt")) if (run_dir / "checkpoints").is_dir() else []
    return found + [p for p in [run_dir / "metrics.json"] if p.is_file()]


def resumes_here(ckpt_path: object, run_dir: Path) -> bool:
    """Whether ``ckpt_path`` continues the run in ``run_dir`` (``last``, ``auto``, or a file in it)."""
    if ckpt_path in (None, ""):
        return False
    if str(ckpt_path) in ("last", "auto"):
        return True
    try:
        return Path(ckpt_path).resolve().is_relative_to(run_dir.resolve())
    except OSError:
        return False


def _writable(run_dir: Path) -> str | None:
    """None when ``run_dir`` exists or can be made and written, else why not."""
    probe = run_dir
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable"
    return None


def check_run_folder(run_dir: str | Path, ckpt_path: object = None, overwrite: bool = False,
                     remove: bool = False) -> None:
    """Refuse ``run_dir`` when it holds an earlier run that this run would overwrite, when another
    run holds its lock, or when it cannot be written. With ``overwrite`` and ``remove``, the earlier
    run's checkpoints and ``metrics.json`` are deleted.

    :raises DataError: one line naming the folder and what to do.
    """
    run_dir = Path(run_dir)
    problem = _writable(run_dir)
    if problem:
        raise DataError(run_dir, f"cannot write the run folder ({problem}); choose another with hydra.run.dir=DIR")
    holder = RunLock(run_dir).holder()
    if holder is not None and holder != os.getpid():
        raise DataError(run_dir, f"another run (pid {holder}) is writing into this run folder; wait for it "
                        "or choose another with hydra.run.dir=DIR")
    found = earlier_results(run_dir)
    if not found or resumes_here(ckpt_path, run_dir):
        return
    if not overwrite:
        raise DataError(run_dir, f"the run folder already holds a run ({', '.join(p.name for p in found)}); "
                        "resume it with ckpt_path=last, replace it with overwrite=true, or choose another "
                        "folder with hydra.run.dir=DIR")
    if remove:
        for path in found:
            path.unlink(missing_ok=True)
        log.warning("overwrite=true: removed the earlier run's %s from %s", ", ".join(p.name for p in found), run_dir)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


class RunLock:
    """``RUN/.fusionlab.lock`` while a run writes into ``RUN`` (see the module docstring)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self.owned = False

    def holder(self) -> int | None:
        """The pid of a live process on this host holding the lock, else None."""
        try:
            pid_text, host = self.path.read_text().split()[:2]
            pid = int(pid_text)
        except (OSError, ValueError):
            return None
        return pid if host == socket.gethostname() and _alive(pid) else None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self.holder()
                if holder == os.getpid():
                    return self
                if holder is not None:
                    raise DataError(self.path.parent, f"another run (pid {holder}) is writing into this run "
                                    "folder; wait for it or choose another with hydra.run.dir=DIR") from None
                warnings.warn(f"{self.path}: left by a run that is gone; taking it over", stacklevel=2)
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()} {socket.gethostname()}\n")
            self.owned = True
            return self
        raise DataError(self.path.parent, "could not take the run folder's lock (another run races for it)")

    def release(self) -> None:
        if self.owned:
            self.path.unlink(missing_ok=True)
            self.owned = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def is_ddp_child() -> bool:
    """A DDP process other than rank 0 (Lightning sets ``LOCAL_RANK``/``NODE_RANK`` for them): it
    writes into rank 0's folder and must not refuse or lock it."""
    return int(os.environ.get("LOCAL_RANK", "0") or 0) > 0 or int(os.environ.get("NODE_RANK", "0") or 0) > 0


try:
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover
    Callback = object


class RunFolderCheck(Callback):
    """Hydra callback: :func:`check_run_folder` for a single run's folder before Hydra writes into it
    (``conf/hydra/default.yaml``; evaluation runs are not checked: they write into their own new folder)."""

    def on_run_start(self, config, **kwargs) -> None:
        from omegaconf import OmegaConf

        if "overwrite" not in config or is_ddp_child():  # train.yaml declares it; eval.yaml does not
            return
        try:
            run_dir = Path(OmegaConf.select(config, "hydra.run.dir"))
            check_run_folder(run_dir, config.get("ckpt_path"), bool(config.get("overwrite", False)))
        except DataError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        except OSError as err:
            if err.errno not in (errno.EACCES, errno.EROFS):
                raise
            print(f"error: {err.filename}: cannot write the run folder ({err.strerror})", file=sys.stderr)
            sys.exit(2)
