"""Finding and reading runs for the comparison report: ``metrics.json`` (training) or ``eval.json``
(evaluation) with the run config and per-image records; settings and seeds."""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from fusionlab.evaluation.specs import MetricSpec, merged_specs, primary_spec, read_spec_record
from fusionlab.reporting.paired import legacy_specs
from fusionlab.reporting.stats import seed_interval
from fusionlab.utils.errors import DataError

log = logging.getLogger("fusionlab")
# A run's setting is its composed config minus these keys, which provably change nothing it computes
# (where it writes, how it logs and shows progress, how many loader workers), or are the repetition
# itself (seed), or are provenance (which trained checkpoints it started from, usually the members
# of the same seed: member_init here, and the keys each approach declares, EvaluatedModule.provenance).
# Everything else counts, callbacks included (weight averaging, time budgets,
# the checkpoint monitor). trainer.devices and trainer.num_nodes are replaced by the global batch
# (devices x nodes x data.batch_size), which is what they change.
NOT_SETTING = ("seed", "paths", "logger", "extras", "task_name", "tags", "ckpt_path", "test", "overwrite",
               "optimized_metric", "trainer.default_root_dir", "trainer.enable_progress_bar",
               "trainer.enable_model_summary", "trainer.log_every_n_steps", "trainer.devices", "trainer.num_nodes",
               "trainer.strategy", "trainer.plugins", "data.num_workers", "data.pin_memory",
               "data.persistent_workers", "callbacks.progress_bar", "callbacks.samples", "callbacks.generator_grid",
               "callbacks.throughput", "callbacks.lr_monitor", "member_init")
# leaf keys that are output folders wherever they appear (callbacks.model_checkpoint.dirpath, ...)
NOT_SETTING_LEAVES = ("dirpath", "save_dir", "cache_dir")


def _short(target: str | None) -> str:
    return str(target or "").rsplit(".", 1)[-1]


@dataclass
class RunSummary:
    """One run as the report sees it."""

    path: Path
    approach: str
    strategy: str
    backbones: str
    seed: int | None
    metrics: dict
    split: str = "test"
    samples: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    records: list = field(default_factory=list)
    uncertainty: dict | None = None  # an evaluation's calibrated error bounds (eval.json "uncertainty", no per_image)
    setting: str = ""  # the config values that distinguish this run's setting from the others'
    ignore: tuple = ()  # config keys that do not make settings (compare_ignore=)
    task: str = ""  # the task family of its evaluator
    specs: dict = field(default_factory=dict)  # {name: MetricSpec} declared by its evaluator
    description: dict = field(default_factory=dict)  # declared by its approach (EvaluatedModule.description)

    def metric(self, name: str) -> float | None:
        value = self.metrics.get(f"{self.split}/{name}")
        return None if value is None else float(value)

    @property
    def present(self) -> list[MetricSpec]:
        """The declared metrics this run has a value of."""
        return [s for s in self.specs.values() if self.metric(s.name) is not None]

    @property
    def primary(self) -> MetricSpec | None:
        return primary_spec(self.specs, lambda name: self.metric(name) is not None)

    def sort_key(self) -> tuple:
        """Its task, then best primary value first."""
        spec = self.primary
        value = self.metric(spec.name) if spec else None
        return self.task, 0.0 if value is None else (-value if spec.higher_is_better else value)

    @property
    def name(self) -> str:
        """The run folder with its parent (``s1/fusion_gated``, ``multirun/3``): unique and readable."""
        return f"{self.path.parent.name}/{self.path.name}"

    @property
    def label(self) -> str:
        return f"{self.approach}" + (f" [{self.strategy}]" if self.strategy != "-" else "") + f" {self.backbones}"

    @property
    def group(self) -> str:
        """Runs whose configs differ only by seed (and where they write/log) share a group."""
        return json.dumps(self.setting_values, sort_keys=True, default=str)

    @property
    def setting_values(self) -> dict[str, object]:
        ignore = (*self.ignore, *self.description.get("provenance", ()))
        return setting_config(self.config, ignore, self.metrics.get("world_size"))

    @property
    def group_label(self) -> str:
        return self.label + (f" ({self.setting})" if self.setting else "")

    @property
    def flops(self) -> tuple[str, float] | tuple[None, None]:
        """(key, value) of the FLOPs this run counted (per 256x256 image, or per generated sample)."""
        for key, value in self.metrics.items():
            if key.startswith(("flops_per_image_", "flops_per_sample")) and value is not None:
                return key, float(value)
        return None, None

    def row(self) -> dict:
        key, flops = self.flops
        row = {"run": self.name, "task": self.task, "approach": self.approach, "strategy": self.strategy,
               "backbones": self.backbones, "setting": self.setting or "-", "seed": self.seed,
               "params": self.metrics.get("params"),
               "GFLOPs": None if flops is None else flops / 1e9,
               "GFLOPs per": None if key is None else key.replace("flops_per_", "").replace("_", " ")}
        row.update({spec.name: self.metric(spec.name) for spec in self.present})
        row.update({"train time s": self.metrics.get("train_time_s"),
                    "img/s (train)": self.metrics.get("train/images_per_sec_epoch")})
        return row


def backbones(components: dict[str, str]) -> str:
    """``DnCNN+UNet+EDSR``, ``3xDCGANGenerator+DCGANDiscriminator``: the component classes in order,
    repeats counted (a branch's ``Encoder`` suffix dropped)."""
    parts: list[list] = []
    for key, cls in components.items():  # feature-fusion branches are encoders by construction
        name = str(cls).removesuffix("Encoder") if key.startswith("branch") and str(cls) != "Encoder" else str(cls)
        if parts and parts[-1][0] == name:
            parts[-1][1] += 1
        else:
            parts.append([name, 1])
    return "+".join(f"{n}x{name}" if n > 1 else name for name, n in parts)


def legacy_description(config: dict) -> dict:
    """What :meth:`EvaluatedModule.description` writes, read from the config of a record written
    before records carried it: the label from the approach class (when it still imports), the
    components from the config's member, branch or generator nodes."""
    from fusionlab.utils.hydra import approach_label

    node = config.get("approach", {}) or {}
    fusion = (config.get("fusion") or {}).get("_target_") if "fusion" in node else None
    if "members" in node:
        components = {f"member{i}": _short(m.get("_target_")) for i, m in enumerate(node["members"].values())}
    elif "branches" in node:
        components = {f"branch{i}": _short(b.get("_target_")) for i, b in enumerate(node["branches"].values())}
    elif "generator" in node:  # GANs: their own networks, never the unused top-level model node
        count = int(node.get("num_generators") or 1)
        components = {**{f"g{i}": _short((node.get("generator") or {}).get("_target_")) for i in range(count)},
                      "discriminator": _short((node.get("discriminator") or {}).get("_target_"))}
    else:
        components = {"net": _short((node.get("net") or {}).get("_target_"))}
    return {"label": approach_label(node.get("_target_")), "class": _short(node.get("_target_")),
            "strategy": _short(fusion).lower() if fusion else "-", "components": components,
            "provenance": ["approach.member_checkpoints", "approach.init_checkpoint"]}


def load_run(path: Path) -> RunSummary:
    """A run folder holding ``metrics.json`` (training) or ``eval.json`` (evaluation).

    :raises DataError: naming the file when it is missing, unreadable or malformed.
    """
    file = path / "metrics.json" if (path / "metrics.json").is_file() else path / "eval.json"
    try:
        data = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(file, f"unreadable metrics file ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise DataError(file, "metrics file does not hold a JSON object")
    metrics = {**data, **data.get("metrics", {}), **data.get("val_metrics", {})} if file.name == "eval.json" \
        else data
    config = data.get("config")
    if not isinstance(config, dict):
        raise DataError(file, "metrics file holds no run config")
    if not any(k.startswith(("test/", "val/")) for k in metrics):
        raise DataError(file, "metrics file holds no val/ or test/ metrics")
    records = data.get("per_image") or []
    if not isinstance(records, list) or not all(isinstance(r, dict) and "image" in r for r in records):
        raise DataError(file, "per_image must be a list of records with an 'image' name")
    description = data.get("approach") if isinstance(data.get("approach"), dict) else legacy_description(config)
    split = "test" if any(k.startswith("test/") for k in metrics) else "val"
    if "metric_specs" in data:
        task, specs = read_spec_record(data["metric_specs"], str(file))
    else:  # written before run records carried their metric specs
        task, specs = legacy_specs(records, {k for k in metrics if k.startswith(f"{split}/")})
    samples = {k: path / "samples" / f"test_{k}.png" for k in ("source", "output", "target")
               if (path / "samples" / f"test_{k}.png").is_file()}
    uncertainty = data.get("uncertainty") if isinstance(data.get("uncertainty"), dict) else None
    if uncertainty:
        uncertainty = {k: v for k, v in uncertainty.items() if k != "per_image"}
    return RunSummary(path, description["label"], description.get("strategy") or "-",
                      backbones(description.get("components") or {}), config.get("seed"), metrics, split, samples,
                      config, records, uncertainty=uncertainty, task=task, specs=specs, description=description)


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = json.dumps(value, sort_keys=True, default=str) if isinstance(value, (dict, list)) else value
    return out


def setting_config(config: dict, ignore: tuple[str, ...] = (), world_size: int | None = None) -> dict[str, object]:
    """The flattened config without the keys of ``NOT_SETTING`` and ``ignore`` (nor anything under
    them) and without output folders, plus ``global_batch`` (the processes that trained it, from the
    record's ``world_size`` or else from ``trainer.devices`` x ``trainer.num_nodes``, times
    ``data.batch_size``)."""
    skip = (*NOT_SETTING, *ignore)
    out = {k: v for k, v in flatten(config).items() if not any(k == n or k.startswith(n + ".") for n in skip)
           and k.rsplit(".", 1)[-1] not in NOT_SETTING_LEAVES}
    if "global_batch" not in ignore:
        out["global_batch"] = global_batch(config, world_size)
    return out


def global_batch(config: dict, world_size: int | None = None) -> object:
    """devices x nodes x batch size; a device spec that names no count (``auto``) is kept as it is."""
    trainer, data = config.get("trainer") or {}, config.get("data") or {}
    batch = data.get("batch_size")
    if world_size is None:
        devices = trainer.get("devices", 1)
        devices = len(devices) if isinstance(devices, list) else devices
        if not isinstance(devices, int) or devices < 1:
            return f"{batch} x devices={devices} x nodes={trainer.get('num_nodes', 1)}"
        world_size = devices * int(trainer.get("num_nodes", 1) or 1)
    return batch * world_size if isinstance(batch, int) else batch


def label_settings(runs: list[RunSummary], ignore: tuple[str, ...] = ()) -> None:
    """Set each run's ``setting`` (and its group): the config values that tell it apart from other
    runs with the same approach/strategy/backbones label, e.g. ``optimizer.lr=0.001``; keys in
    ``ignore`` (``compare_ignore=``: values derived per seed, say) do not make settings."""
    for run in runs:
        run.ignore = tuple(ignore)
    flat = [r.setting_values for r in runs]
    keys = sorted({k for f in flat for k in f})
    by_label: dict[str, list[dict]] = {}
    for run, f in zip(runs, flat):
        by_label.setdefault(run.label, []).append(f)
    varying = {label: [k for k in keys if len({json.dumps(f.get(k), default=str) for f in fs}) > 1]
               for label, fs in by_label.items()}
    all_varying = sorted({k for ks in varying.values() for k in ks})
    for run, f in zip(runs, flat):
        own = [k for k in varying[run.label] if f.get(k) is not None]
        run.setting = ", ".join(f"{_short_key(k, all_varying)}={_fmt(f.get(k))}" for k in own)


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _short_key(key: str, keys: list[str]) -> str:
    parts = key.split(".")
    for n in range(min(2, len(parts)), len(parts) + 1):  # at least parent.leaf: m0.width, optimizer.lr
        tail = ".".join(parts[-n:])
        if sum(k == tail or k.endswith("." + tail) for k in keys) == 1:
            return tail
    return key


def describe_seeds(seeds: list) -> str:
    """``"3 seeds: 1, 2, 3"``; repeats of one seed are named as such, not counted as seeds."""
    distinct = sorted({s for s in seeds}, key=lambda s: (s is None, s if isinstance(s, int) else 0))
    text = f"{len(distinct)} seed{'s' if len(distinct) != 1 else ''}: {', '.join(map(str, distinct))}"
    repeats = len(seeds) - len(distinct)
    if repeats:
        text += f" ({repeats} repeat{'s' if repeats > 1 else ''} of the same seed, averaged)"
    return text


def aggregate(runs: list[RunSummary]) -> list[dict]:
    """One row per setting: its seeds, and per metric the mean over distinct seeds with a 95%
    t-interval, the between-seed std (n-1) and the between-image std (per-image values averaged
    over seeds)."""
    from fusionlab.reporting.paired import per_image_means, seed_values

    groups: dict[str, list[RunSummary]] = {}
    for r in runs:
        groups.setdefault(r.group, []).append(r)
    rows = []
    for members in groups.values():
        first = members[0]
        seeds = [m.seed for m in members]
        row: dict[str, object] = {"task": first.task, "approach": first.approach, "strategy": first.strategy,
                                  "backbones": first.backbones, "setting": first.setting or "-",
                                  "label": first.group_label, "seeds": describe_seeds(seeds),
                                  "n": len(set(seeds)), "runs": len(members)}
        specs = merged_specs(m.specs for m in members)
        row["metrics"] = [spec.name for spec in specs.values() if any(m.metric(spec.name) is not None for m in members)]
        for name in row["metrics"]:
            s = seed_interval(seed_values(members, name))
            images = per_image_means(members, name) if specs[name].per_item and all(m.records for m in members) \
                else {}
            row[f"{name}_mean"] = s["mean"] if s["n"] else None
            row[f"{name}_std"] = s["std"] if s["n"] > 1 else None
            row[f"{name}_ci"] = [s["ci_low"], s["ci_high"]] if s["n"] > 1 else None
            row[f"{name}_image_std"] = (seed_interval(list(images.values()))["std"] if len(images) > 1 else None)
        primary = primary_spec(specs, lambda name: row.get(f"{name}_mean") is not None)
        row["primary"] = primary.name if primary else None
        row["primary_higher_is_better"] = primary.higher_is_better if primary else True
        rows.append(row)

    def order(r: dict) -> tuple:  # task, then best primary mean first
        value = r.get(f"{r['primary']}_mean") if r["primary"] else None
        return r["task"], 0.0 if value is None else (-value if r["primary_higher_is_better"] else value)

    rows.sort(key=order)
    return rows


def find_runs(paths: list[str | Path]) -> tuple[list[RunSummary], list[str]]:
    """Runs under the given folders (a multirun folder, run folders, or a mix); problems are
    reported by name and skipped."""
    runs, problems, seen = [], [], set()
    for root in map(Path, paths):
        if not root.exists():
            problems.append(f"{root}: does not exist")
            continue
        candidates = [root] if (root / "metrics.json").exists() or (root / "eval.json").exists() else sorted(
            {p.parent for pattern in ("metrics.json", "eval.json") for p in root.rglob(pattern)
             if "wandb" not in p.parts})
        for failed in sorted(root.rglob("failed.json")):  # multirun jobs that failed (utils/jobs.py)
            try:
                error = json.loads(failed.read_text()).get("error", "?")
            except (OSError, json.JSONDecodeError):
                error = "?"
            problems.append(f"{failed.parent}: job failed ({error})")
        for run_dir in candidates:
            if run_dir in seen:
                continue
            seen.add(run_dir)
            try:
                runs.append(load_run(run_dir))
            except DataError as err:
                problems.append(str(err))
    return runs, problems
