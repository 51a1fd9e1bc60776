"""The evaluator contract shared by every task family."""

import torch
from torch import nn
from torchmetrics import MeanMetric

from fusionlab.evaluation.specs import MetricSpec, spec_record

STAGES = ("val", "test")


class Evaluator(nn.Module):
    """Turns one evaluation batch and the approach's named outputs into metric updates, step
    outputs for callbacks (``output``, ``target``, ``source``, ``name`` ...) and, at test, per-image
    records ``{"image": name, <metric>: value, ...}``.

    Scalar per-image metrics are kept in one :class:`torchmetrics.MeanMetric` per stage and name
    (synced across processes), so the logged epoch value is exactly the mean of the records.

    :cvar task: the task family this evaluator belongs to (``restoration``, ``style``, ``generate``).
    :cvar metrics: what each metric it logs is (:class:`~fusionlab.evaluation.specs.MetricSpec`): the
        one declaration the pipeline writes into the run records and reporting reads.
    :cvar track_best: track the primary metric as ``val/<metric>_best`` across epochs.
    """

    task = ""
    metrics: tuple[MetricSpec, ...] = ()
    track_best = False

    @property
    def best(self) -> tuple[str, str] | None:
        """``(primary metric, "max"|"min")`` tracked as ``val/<metric>_best``, or None."""
        first = next((s for s in self.metrics if s.primary), None)
        if not self.track_best or first is None:
            return None
        return first.name, "max" if first.higher_is_better else "min"

    def metric_specs(self) -> dict:
        """The ``metric_specs`` entry of this task's run records."""
        return spec_record(self.task, self.metrics)

    def __init__(self) -> None:
        super().__init__()
        self.means = nn.ModuleDict({stage: nn.ModuleDict() for stage in STAGES})
        self.records: list[dict] = []

    # ---- what a task implements ---------------------------------------------------------------
    def start(self, stage: str, module, datamodule) -> None:
        """Called when an evaluation epoch starts (references, per-epoch state)."""

    def update(self, stage: str, batch: dict, outputs: dict[str, torch.Tensor], module) -> dict:
        """Metrics of one batch; returns the step outputs that callbacks read."""
        raise NotImplementedError

    # ---- shared --------------------------------------------------------------------------------
    def add(self, stage: str, values: dict[str, torch.Tensor], names=None, ms: float | None = None) -> None:
        """Feed per-image values ``{metric: (B,)}`` to the stage's means; at test also as records."""
        means = self.means[stage]
        for key, v in values.items():
            if key not in means:
                means[key] = MeanMetric().to(v.device)
            means[key].update(v.detach().double())
        if stage == "test" and names is not None:
            columns = {k: v.detach().double().cpu().tolist() for k, v in values.items()}
            for i, name in enumerate(names):
                record = {"image": str(name), **{k: c[i] for k, c in columns.items()}}
                if ms is not None:
                    record["ms"] = ms
                self.records.append(record)

    def compute(self, stage: str) -> dict[str, torch.Tensor]:
        """``{stage/metric: mean}`` over the epoch, then reset."""
        out = {}
        for key, metric in self.means[stage].items():
            if metric.update_called:
                out[f"{stage}/{key}"] = metric.compute().float()
            metric.reset()
        return out

    def reset_records(self) -> None:
        self.records = []

    def gather_records(self) -> None:
        """Under DDP: every process's records, in dataset order, on every process (each process
        evaluated every ``world``-th image: the unrepeated sampler of ``data.datasets.make_loader``)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        parts: list = [None] * dist.get_world_size()
        dist.all_gather_object(parts, self.records)
        merged, seen = [], set()
        for i in range(max(len(p) for p in parts)):
            for part in parts:
                if i < len(part) and part[i]["image"] not in seen:
                    seen.add(part[i]["image"])
                    merged.append(part[i])
        self.records = merged


def fusion_weight_logs(stage: str, names, weights) -> dict:
    """The one key scheme of logged fusion weights, for members, branches and generators alike:
    ``<stage>/fusion_weight/<name>`` (``stage`` is train, val or test)."""
    return {f"{stage}/fusion_weight/{name}": w for name, w in zip(names, weights)}


class WeightMeter(nn.Module):
    """Mean of an operator's per-input weights (from :meth:`FusionOperator.fuse`) over an evaluation
    epoch: one torchmetrics ``MeanMetric`` per input, so the means are synchronised across DDP
    processes like every other evaluation metric."""

    def __init__(self, num_inputs: int) -> None:
        super().__init__()
        self.means = nn.ModuleList(MeanMetric() for _ in range(num_inputs))

    def add(self, weights: torch.Tensor | None) -> None:
        if weights is not None:
            for meter, w in zip(self.means, weights.detach().float()):
                meter.update(w)

    def mean_and_reset(self) -> torch.Tensor | None:
        """The epoch's mean weight per input (None when the operator returned no weights)."""
        if not self.means[0].update_called:
            return None
        mean = torch.stack([meter.compute() for meter in self.means])
        for meter in self.means:
            meter.reset()
        return mean
