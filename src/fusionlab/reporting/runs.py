"""Finding and reading runs for the comparison report: ``metrics.json`` (training) or ``eval.json``
(evaluation) with the run config and per-image records; settings and seeds."""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from fusionlab.reporting.paired import task_of
from fusionlab.reporting.stats import seed_interval
from fusionlab.utils.errors import DataError

log = logging.getLogger("fusionlab")
APPROACH_NAMES = {"SingleModel": "single", "OutputEnsemble": "ensemble",
                  "FeatureFusionRestorer": "feature_fusion", "GanStyleTransfer": "gan_style",
                  "UnconditionalGan": "gan", "GanMixture": "gan_mixture"}
# Config keys that do not change what a run computes (where it writes, how it logs) or that are
# the repetition itself (seed): runs differing only in these are one setting, aggregated.
# Which trained checkpoints a run started from (two-stage members, member_init) is provenance --
# usually the members of the same seed -- not a setting.
NOT_SETTING = ("seed", "paths", "logger", "callbacks", "extras", "task_name", "tags", "ckpt_path", "test",
               "optimized_metric", "trainer.default_root_dir", "trainer.enable_progress_bar", "trainer.plugins",
               "trainer.devices", "trainer.num_nodes", "trainer.strategy", "trainer.log_every_n_steps",
               "data.num_workers", "data.pin_memory", "data.persistent_workers", "approach.member_checkpoints",
               "approach.init_checkpoint", "member_init")
# metrics shown per run and aggregated over seeds (each task has some of them)
AGGREGATED = ("psnr", "ssim", "content_ssim", "style_distance", "nn_distance", "fid", "kid")


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

    def metric(self, name: str) -> float | None:
        value = self.metrics.get(f"{self.split}/{name}")
        return None if value is None else float(value)

    @property
    def task(self) -> str:
        return task_of(self.records, {k: v for k, v in self.metrics.items() if k.startswith(f"{self.split}/")})

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
        return json.dumps(setting_config(self.config, self.ignore), sort_keys=True, default=str)

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
        row.update({name: self.metric(name) for name in AGGREGATED})
        row.update({"train time s": self.metrics.get("train_time_s"),
                    "img/s (train)": self.metrics.get("train/images_per_sec_epoch")})
        return row


def describe(config: dict) -> tuple[str, str, str]:
    """(approach, strategy, backbones) from a run's config."""
    approach_cfg = config.get("approach", {}) or {}
    cls = _short(approach_cfg.get("_target_"))
    approach = APPROACH_NAMES.get(cls, cls or "?")
    strategy = _short((config.get("fusion") or {}).get("_target_")).lower() if "fusion" in approach_cfg else "-"
    if "members" in approach_cfg:
        parts = [_short(m.get("_target_")) for m in approach_cfg["members"].values()]
    elif "branches" in approach_cfg:
        parts = [_short(b.get("_target_")).replace("Encoder", "") for b in approach_cfg["branches"].values()]
    elif "generator" in approach_cfg:  # GANs: their own networks, never the unused top-level model node
        parts = [_short((approach_cfg.get("generator") or {}).get("_target_")),
                 _short((approach_cfg.get("discriminator") or {}).get("_target_"))]
        if approach_cfg.get("num_generators"):
            parts[0] = f"{approach_cfg['num_generators']}x{parts[0]}"
    else:
        parts = [_short((approach_cfg.get("net") or {}).get("_target_"))]
    return approach, strategy or "-", "+".join(p for p in parts if p)


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
    approach, strategy, backbones = describe(config)
    split = "test" if any(k.startswith("test/") for k in metrics) else "val"
    samples = {k: path / "samples" / f"test_{k}.png" for k in ("source", "output", "target")
               if (path / "samples" / f"test_{k}.png").is_file()}
    uncertainty = data.get("uncertainty") if isinstance(data.get("uncertainty"), dict) else None
    if uncertainty:
        uncertainty = {k: v for k, v in uncertainty.items() if k != "per_image"}
    return RunSummary(path, approach, strategy, backbones, config.get("seed"), metrics, split, samples, config,
                      records, uncertainty=uncertainty)


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = json.dumps(value, sort_keys=True, default=str) if isinstance(value, (dict, list)) else value
    return out


def setting_config(config: dict, ignore: tuple[str, ...] = ()) -> dict[str, object]:
    """The flattened config without the keys of ``NOT_SETTING`` and ``ignore`` (nor anything under them)."""
    skip = (*NOT_SETTING, *ignore)
    return {k: v for k, v in flatten(config).items() if not any(k == n or k.startswith(n + ".") for n in skip)}


def label_settings(runs: list[RunSummary], ignore: tuple[str, ...] = ()) -> None:
    """Set each run's ``setting`` (and its group): the config values that tell it apart from other
    runs with the same approach/strategy/backbones label, e.g. ``optimizer.lr=0.001``; keys in
    ``ignore`` (``compare_ignore=``: values derived per seed, say) do not make settings."""
    for run in runs:
        run.ignore = tuple(ignore)
    flat = [setting_config(r.config, ignore) for r in runs]
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
        for name in AGGREGATED:
            s = seed_interval(seed_values(members, name))
            images = per_image_means(members, name) if all(m.records for m in members) else {}
            row[f"{name}_mean"] = s["mean"] if s["n"] else None
            row[f"{name}_std"] = s["std"] if s["n"] > 1 else None
            row[f"{name}_ci"] = [s["ci_low"], s["ci_high"]] if s["n"] > 1 else None
            row[f"{name}_image_std"] = (seed_interval(list(images.values()))["std"] if len(images) > 1 else None)
        rows.append(row)
    rows.sort(key=lambda r: (r["task"], -(r["psnr_mean"] or r["content_ssim_mean"] or 0)))
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
