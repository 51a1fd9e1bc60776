"""Saved calibrations: the λ of each heuristic and α, kept beside the checkpoint
(``RUN/checkpoints/best.ckpt.calibration.json``) and in the evaluation's ``eval.json``, so that
``predict=`` can draw bounds later without the calibration images.

A calibration belongs to one checkpoint file (its SHA-256), one task (degradation and noise level
or scale, as saved in the checkpoint), one heuristic with its test-time setting and, for
``seed_std``, one set of member checkpoints. Using it with anything else is refused with one line.
"""

import functools
import hashlib
import json
from pathlib import Path

from fusionlab.utils.errors import ConfigError, DataError
from fusionlab.utils.io import atomic_write_json

SUFFIX = ".calibration.json"


@functools.lru_cache(maxsize=32)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (cached per path, size and modification time)."""
    st = Path(path).stat()
    return _file_sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def sidecar(ckpt_path: str | Path) -> Path:
    """Where a checkpoint's calibrations are kept: ``<ckpt>.calibration.json`` beside it."""
    return Path(f"{ckpt_path}{SUFFIX}")


def entry_key(entry: dict) -> tuple:
    """What makes two calibrations interchangeable (their λ would be for the same intervals)."""
    return (entry["heuristic"], entry["tta"], entry["tta_fusion"], tuple(entry.get("members_sha256") or ()))


def save(ckpt_path: str | Path, entry: dict) -> Path:
    """Add ``entry`` to the checkpoint's calibrations (replacing one with the same key), atomically."""
    path = sidecar(ckpt_path)
    entries = [e for e in _entries(path) if entry_key(e) != entry_key(entry)] if path.is_file() else []
    return atomic_write_json(path, {"calibrations": [*entries, entry]})


def _entries(path: Path) -> list[dict]:
    """Calibration entries of a sidecar file or of an ``eval.json`` that calibrated."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(path, f"unreadable calibration file ({type(exc).__name__}: {exc})", "calibration") from None
    if isinstance(data, dict) and isinstance(data.get("calibrations"), list):
        return data["calibrations"]
    calibration = (data.get("uncertainty") or {}).get("calibration") if isinstance(data, dict) else None
    if isinstance(calibration, dict):
        return [calibration]
    raise DataError(path, "holds no calibration (neither a .calibration.json nor an eval.json of a calibrating "
                          "evaluation)", "calibration")


def find(ckpt_path: str | Path, wanted: dict, alphas: list[float], method: str, task: dict,
         calibration: str | Path | None = None) -> dict:
    """The saved calibration matching ``wanted`` (heuristic, tta, tta_fusion, members_sha256) with
    a λ of ``method`` for every α, from ``calibration`` (a file) or the checkpoint's sidecar.

    :raises ConfigError: when there is none, or when it was made for another checkpoint or task.
    """
    path = Path(calibration) if calibration else sidecar(ckpt_path)
    key = "calibration" if calibration else "calibrate_dir"
    if not path.is_file():
        raise ConfigError(key, f"no saved calibration at {path}: calibrate first with evaluate.py "
                               f"ckpt_path={ckpt_path} uncertainty={wanted['heuristic']} calibrate_dir=DIR")
    matches = [e for e in _entries(path) if entry_key(e) == entry_key(wanted)]
    if not matches:
        have = sorted({f"{e['heuristic']} (tta={e['tta']})" for e in _entries(path)})
        raise ConfigError(key, f"{path} has no calibration for {wanted['heuristic']} with tta={wanted['tta']} "
                               f"and these members (it has: {', '.join(have) or 'none'}); calibrate with calibrate_dir=DIR")
    entry = matches[-1]
    if entry.get("task") != task:
        raise ConfigError("calibration", f"{path} was calibrated for another task or noise level "
                                         f"({_task_words(entry.get('task'))}) than this checkpoint's "
                                         f"({_task_words(task)})")
    if entry.get("checkpoint_sha256") != file_sha256(ckpt_path):
        raise ConfigError("calibration", f"{path} was calibrated for another checkpoint "
                                         f"({entry.get('checkpoint')}); calibrate this one with calibrate_dir=DIR")
    lambdas = entry.get("lambdas", {}).get(method) or {}
    missing = [a for a in alphas if lambdas.get(f"{a:g}") is None]
    if missing:
        have = sorted(k for k, v in lambdas.items() if v is not None)
        raise ConfigError("alpha", f"{path} has no {method} calibration at alpha={missing[0]:g} for "
                                   f"{wanted['heuristic']} (it has: {', '.join(have) or 'none'})")
    return entry


def _task_words(task: dict | None) -> str:
    task = task or {}
    name = str(task.get("_target_", "?")).rsplit(".", 1)[-1]
    values = ", ".join(f"{k}={v}" for k, v in task.items() if k != "_target_" and not isinstance(v, (dict, list)))
    return f"{name} {values}".strip()
