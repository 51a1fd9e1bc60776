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
    ``src-1a2b3c4d5e6f@abc1234``; ``+dirty`` when ``src/``, ``conf/`` or ``bench/`` (but its ``results/``) differ from
    that commit (uncommitted or untracked files), so a number made from a dirty tree says so."""
    h = hashlib.sha256()
    files = sorted(PACKAGE.rglob("*.py")) + sorted((ROOT / "conf").rglob("*.yaml"))
    for path in files:
        h.update(str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name).encode())
        h.update(path.read_bytes())
    version = f"src-{h.hexdigest()[:12]}"
    commit = _git("rev-parse", "--short=7", "HEAD")
    if not commit:
        return version
    # bench/results/ is what the benchmarks write: a finished benchmark does not make the next one dirty
    dirty = bool(_git("status", "--porcelain", "--", "src", "conf", "bench", ":(exclude)bench/results"))
    return f"{version}@{commit}{'+dirty' if dirty else ''}"


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


@functools.lru_cache(maxsize=1)
def bench_version() -> str:
    """``bench-<hash>`` of ``bench/*.py``: the scripts that choose overrides, baselines and statistics.
    Recorded beside :func:`code_version` in every results file; not part of a cached run's key (a
    run's numbers follow from its overrides, which are in the key, and the sources), so editing a
    table's layout does not retrain anything."""
    h = hashlib.sha256()
    for path in sorted((ROOT / "bench").glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return f"bench-{h.hexdigest()[:12]}"


def source_hash(version: str) -> str:
    """The part of a code version that decides results (without the commit and dirty flag)."""
    return version.split("@", 1)[0]
