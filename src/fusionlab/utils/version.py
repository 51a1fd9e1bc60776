"""The code version recorded in every results file and keying the benchmark cache."""

import functools
import hashlib
import subprocess
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
ROOT = PACKAGE.parents[1]


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """``src-<hash>``: the hash of the package's sources and of ``conf/`` (what decides a run's
    numbers; a README edit does not change it), with the git commit when git knows the tree, e.g.
    ``src-1a2b3c4d5e6f@abc1234``."""
    h = hashlib.sha256()
    files = sorted(PACKAGE.rglob("*.py")) + sorted((ROOT / "conf").rglob("*.yaml"))
    for path in files:
        h.update(str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name).encode())
        h.update(path.read_bytes())
    version = f"src-{h.hexdigest()[:12]}"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=7", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{version}@{commit}" if commit else version


def source_hash(version: str) -> str:
    """The part of a code version that decides results (without the commit)."""
    return version.split("@", 1)[0]
