"""What a metric is, declared once by the evaluator that computes it.

Each evaluator lists its metrics as :class:`MetricSpec` entries (``Evaluator.metrics``). The
pipeline writes them into ``metrics.json`` / ``eval.json`` (``metric_specs``: the task family and
the specs), and reporting reads only them: which columns a run has, which are aggregated over
seeds, which are compared image by image, in which direction a difference is better, and which one
is the task's primary metric (the baseline choice, the sort order, the forest plot). A new metric
is therefore one entry here in its evaluator, plus the code that computes it.
"""

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields

from fusionlab.utils.errors import DataError


@dataclass(frozen=True)
class MetricSpec:
    """One metric of a task.

    :param name: the logged name, without the stage (``psnr`` is logged as ``val/psnr``, ``test/psnr``).
    :param higher_is_better: the direction of "better" (distances: False).
    :param unit: printed after differences (``" dB"``).
    :param per_item: each test image (or generated sample) has its own value in the records; if not,
        the metric is one number per run (FID, mode coverage) and runs compare over seeds only.
    :param paired: per-item values of two runs refer to the same input (the same test image), so
        they can be differenced image by image; independent samples of two generators cannot.
    :param space: what the metric is computed on (``pixels``, ``Inception-v3 pool3``, ...); a number
        computed in another feature space is another metric with another name.
    :param primary: the task's headline metric (the first primary metric a run has is used).
    :param digits: decimals in the report's tables.
    """

    name: str
    higher_is_better: bool = True
    unit: str = ""
    per_item: bool = True
    paired: bool = True
    space: str = "pixels"
    primary: bool = False
    digits: int = 4

    @property
    def pairable(self) -> bool:
        return self.per_item and self.paired

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object, where: str) -> "MetricSpec":
        known = {f.name for f in fields(cls)}
        if not isinstance(data, Mapping) or not isinstance(data.get("name"), str) or set(data) - known:
            raise DataError(where, f"metric_specs entries must be objects with a name and the keys "
                                   f"{sorted(known)}, got {data!r}")
        return cls(**data)


def spec_record(task: str, specs: Iterable[MetricSpec]) -> dict:
    """The ``metric_specs`` entry of ``metrics.json`` / ``eval.json``."""
    return {"task": task, "metrics": [s.to_json() for s in specs]}


def read_spec_record(data: object, where: str) -> tuple[str, dict[str, MetricSpec]]:
    """``(task, {name: spec})`` from a ``metric_specs`` entry.

    :raises DataError: naming ``where`` when the entry is malformed.
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("task"), str) \
            or not isinstance(data.get("metrics"), list):
        raise DataError(where, "metric_specs must be an object with a task name and a list of metrics")
    specs = [MetricSpec.from_json(d, where) for d in data["metrics"]]
    return data["task"], {s.name: s for s in specs}


def primary_spec(specs: Mapping[str, MetricSpec], has_value) -> MetricSpec | None:
    """The first primary metric for which ``has_value(name)`` holds, else the first metric that has a
    value (generation on data without a digit reader has no ``fd_digits``: its FID, say)."""
    present = [s for s in specs.values() if has_value(s.name)]
    return next((s for s in present if s.primary), present[0] if present else None)


def merged_specs(groups: Iterable[Mapping[str, MetricSpec]]) -> dict[str, MetricSpec]:
    """Every metric of several runs, in declaration order (the first declaration of a name wins)."""
    out: dict[str, MetricSpec] = {}
    for specs in groups:
        for name, spec in specs.items():
            out.setdefault(name, spec)
    return out
