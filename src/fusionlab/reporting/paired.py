"""Paired comparisons of runs (and of a fused model with its own members) on per-image records.

Runs are grouped into settings (configs equal up to seed and where they write); a setting's
per-image value is the mean over its seeds. Which metrics are compared, in which direction, is what
the runs' evaluators declared (:class:`~fusionlab.evaluation.specs.MetricSpec`, in the records).
Every setting is compared with a baseline of its task:

- on a *pairable* metric (one value per test image, the same images for both: PSNR, SSIM, content
  SSIM) image by image: mean difference, 95% paired bootstrap interval, Wilcoxon p, win rate, and,
  when both settings have several seeds, the difference of seed means with Welch's t-interval;
- on a metric of one number per run, or of independent samples (FID, mode coverage, FD of digit
  features; generated samples are not the same items), over seeds only: the difference of seed
  means with Welch's t-interval and p, when both settings have at least 2 seeds.

p-values are Holm-adjusted over every comparison of the report. The statistics are
:mod:`fusionlab.reporting.stats`.
"""

import statistics
from collections.abc import Mapping, Sequence

from fusionlab.evaluation.specs import MetricSpec, merged_specs, primary_spec, read_spec_record
from fusionlab.reporting.stats import holm, paired_difference, seed_interval, verdict, welch_interval

MIN_SEEDS = 2  # a seed-level comparison needs an interval on both sides


def specs_of(result: dict) -> dict[str, MetricSpec]:
    """The metric specs of a ``metrics.json`` / ``eval.json`` result."""
    if "metric_specs" not in result:
        metrics = {**result, **(result.get("metrics") or {})}
        return legacy_specs(result.get("per_image") or [], {k for k in metrics if k.startswith(("test/", "val/"))})[1]
    return read_spec_record(result["metric_specs"], "metric_specs")[1]


def legacy_specs(records: list[dict], metric_keys: set[str]) -> tuple[str, dict[str, MetricSpec]]:
    """(task, specs) of a record written before records carried ``metric_specs``: the task family
    whose primary metric it holds, with that evaluator's specs."""
    from fusionlab.evaluation import SPECS_BY_TASK

    names = set(records[0]) if records else {k.split("/", 1)[-1] for k in metric_keys}
    for task, specs in SPECS_BY_TASK.items():
        if task != "generate" and next(s.name for s in specs.values() if s.primary) in names:
            return task, dict(specs)
    return "generate", dict(SPECS_BY_TASK["generate"])


# ---- one run: fused vs its best member ------------------------------------------------------
def member_names(records: Sequence[dict], primary: str = "psnr") -> list[str]:
    """The fused run's members with per-image values of ``primary`` (``psnr_member0`` ...)."""
    return sorted(k[len(primary) + 1:] for k in (records[0] if records else {}) if k.startswith(f"{primary}_member"))


def member_labels(description: dict | None) -> dict[str, str]:
    """``{"member0": "member0 (DnCNN)", ...}`` from a run's approach description."""
    return {name: f"{name} ({cls})" for name, cls in ((description or {}).get("components") or {}).items()}


def member_comparison(result: dict, labels: dict[str, str] | None = None,
                      specs: Mapping[str, MetricSpec] | None = None) -> dict | None:
    """Fused output vs the best member on the same test images, from a ``metrics.json`` /
    ``eval.json`` result. The best member is chosen on validation PSNR when the run has it (so the
    choice does not look at the test images), else on the test images themselves (which favours
    the member, i.e. is conservative for fusion). Compared on every pairable metric the members
    have; ``primary`` names the main one (the verdict printed)."""
    records = result.get("per_image") or []
    specs = {n: s for n, s in (specs_of(result) if specs is None else specs).items()
             if s.pairable and records and n in records[0]}
    spec = primary_spec(specs, lambda name: True)
    members = member_names(records, spec.name) if spec else []
    if not members:
        return None
    key = spec.name
    val = dict(result.get("val_metrics") or {})
    val.update({k: v for k, v in result.items() if k.startswith("val/") and isinstance(v, (int, float))})
    sign = 1.0 if spec.higher_is_better else -1.0
    if all(f"val/{key}_{m}" in val for m in members):
        best, chosen_on = max(members, key=lambda m: sign * val[f"val/{key}_{m}"]), f"validation {key.upper()}"
    else:
        best = max(members, key=lambda m: sign * statistics.fmean(r[f"{key}_{m}"] for r in records))
        chosen_on = f"test {key.upper()} (same images: favours the member)"
    out = {"best_member": best, "chosen_on": chosen_on, "n_images": len(records), "primary": key, "metrics": []}
    for metric in (m for m in specs.values() if f"{m.name}_{best}" in records[0]):
        d = paired_difference([r[metric.name] for r in records], [r[f"{metric.name}_{best}"] for r in records],
                              higher_is_better=metric.higher_is_better)
        d["verdict"] = verdict(d, metric.name.upper(), metric.unit, "fused", (labels or {}).get(best, best),
                               metric.higher_is_better)
        d["higher_is_better"] = metric.higher_is_better
        out[metric.name] = d
        out["metrics"].append(metric.name)
    return out


def print_member_comparison(within: dict) -> None:
    from rich.console import Console

    d = within[within["primary"]]
    Console().print(f"[bold]fusion vs best member ({within['best_member']}, chosen on {within['chosen_on']}), "
                    f"{within['n_images']} images:[/bold] {d['verdict']}; Wilcoxon p={d['p_value']:.3g}, "
                    f"fused better on {d['win_rate']:.0%} of images")


# ---- several runs ---------------------------------------------------------------------------------
def per_image_means(runs: Sequence, metric: str) -> dict[str, float]:
    """Image name -> mean over the runs (seeds) of ``metric``, on the images every run has."""
    tables = [{r["image"]: r[metric] for r in run.records if r.get(metric) is not None} for run in runs]
    common = set(tables[0]).intersection(*tables[1:]) if tables else set()
    return {name: statistics.fmean(t[name] for t in tables) for name in sorted(common)}


def seed_values(runs: Sequence, metric: str) -> list[float]:
    """One value per distinct seed (repeats of one seed are averaged: they are not new seeds)."""
    by_seed: dict = {}
    for run in runs:
        value = run.metric(metric)
        if value is not None:
            by_seed.setdefault(run.seed, []).append(value)
    return [statistics.fmean(v) for v in by_seed.values()]


def choose_baseline(settings: dict[str, list], baseline: str, primary: MetricSpec | None) -> str | None:
    """The baseline setting key: ``auto`` = the best single-model setting on the task's primary
    metric, else the best setting; otherwise the setting whose label or run folder name contains
    ``baseline``."""
    if not settings or primary is None:
        return None

    def score(key: str) -> float:
        values = seed_values(settings[key], primary.name)
        if not values:
            return float("-inf")
        return statistics.fmean(values) * (1.0 if primary.higher_is_better else -1.0)

    if baseline in (None, "", "auto"):
        singles = [k for k, runs in settings.items() if runs[0].approach == "single"]
        pool = singles or list(settings)
        return max(pool, key=score)
    for key, runs in settings.items():
        if any(baseline in (r.path.name, r.name, str(r.path)) for r in runs) \
                or baseline in runs[0].group_label:
            return key
    return None


def compare_settings(runs: Sequence, baseline: str = "auto") -> dict:
    """Every setting against the baseline of its task (see module docstring), plus each fusing
    run against its best member; p-values Holm-adjusted over all of them.

    :return: ``{"baselines": {task: label}, "comparisons": [...], "within_run": [...],
        "unmatched_baseline": str | None}``.
    """
    by_task: dict[str, dict[str, list]] = {}
    for run in runs:
        by_task.setdefault(run.task, {}).setdefault(run.group, []).append(run)
    comparisons, baselines, unmatched = [], {}, None
    for task, settings in by_task.items():
        specs = merged_specs(r.specs for group in settings.values() for r in group)
        primary = primary_spec(specs, lambda name: any(r.metric(name) is not None for g in settings.values()
                                                       for r in g))
        base_key = choose_baseline(settings, baseline, primary)
        if base_key is None:
            if baseline not in (None, "", "auto") and primary is not None:
                unmatched = baseline
            continue
        base_runs = settings[base_key]
        baselines[task] = base_runs[0].group_label
        for key, cand_runs in settings.items():
            if key != base_key:
                comparisons += [row for spec in specs.values()
                                if (row := _compare(task, spec, spec is primary, cand_runs, base_runs))]
    within = []
    for run in runs:
        result = {"per_image": run.records, **{k: v for k, v in run.metrics.items() if k.startswith("val/")}}
        member = member_comparison(result, member_labels(run.description), run.specs)
        if member:
            within.append({"run": run.name, "label": run.label, "seed": run.seed, **member})
    _adjust(comparisons, within)
    return {"baselines": baselines, "comparisons": comparisons, "within_run": within,
            "unmatched_baseline": unmatched}


def _compare(task: str, spec: MetricSpec, primary: bool, cand_runs: Sequence, base_runs: Sequence) -> dict | None:
    """One metric of a candidate setting against the baseline: image by image where the metric is
    pairable, else over seeds (None where neither is possible)."""
    higher = spec.higher_is_better
    ca, cb = seed_values(cand_runs, spec.name), seed_values(base_runs, spec.name)
    candidate, base = cand_runs[0].group_label, base_runs[0].group_label
    row = {"task": task, "candidate": candidate, "baseline": base, "metric": spec.name, "primary": primary,
           "higher_is_better": higher, "unit": spec.unit, "space": spec.space,
           "seeds_candidate": len(ca), "seeds_baseline": len(cb), "between_seed_std": _pooled_std(ca, cb),
           "seed_difference": welch_interval(ca, cb) if len(ca) > 1 and len(cb) > 1 else None}
    if spec.pairable:
        a, b = per_image_means(cand_runs, spec.name), per_image_means(base_runs, spec.name)
        names = sorted(set(a) & set(b))
        if len(names) < 2:
            return None
        d = paired_difference([a[n] for n in names], [b[n] for n in names], higher_is_better=higher)
        row.update(kind="paired images", n_images=len(names), **d, between_image_std=d["std"])
    else:
        if min(len(ca), len(cb)) < MIN_SEEDS:
            return None
        d = dict(row["seed_difference"])
        d.update(n=min(len(ca), len(cb)), std=None, win_rate=None,
                 distinguishable=bool(d["ci_low"] > 0 or d["ci_high"] < 0))
        row.update(kind="over seeds", n_images=None, **d, between_image_std=None)
    row["verdict"] = verdict(d if spec.pairable else {**d, "n": None}, spec.name.upper(), spec.unit, candidate,
                             base, higher)
    return row


def _pooled_std(a: list[float], b: list[float]) -> float | None:
    stds = [seed_interval(v)["std"] for v in (a, b) if len(v) > 1]
    return statistics.fmean(stds) if stds else None


def _adjust(comparisons: list[dict], within: list[dict]) -> None:
    """Holm over every p-value in the report (each comparison, each metric, each within-run test)."""
    family = {f"c{i}": row["p_value"] for i, row in enumerate(comparisons)}
    for i, row in enumerate(within):
        for metric in row["metrics"]:
            family[f"w{i}:{metric}"] = row[metric]["p_value"]
    adjusted = holm(family)
    for i, row in enumerate(comparisons):
        row["p_holm"] = adjusted[f"c{i}"]
    for i, row in enumerate(within):
        for metric in row["metrics"]:
            row[metric]["p_holm"] = adjusted[f"w{i}:{metric}"]


def forest_plot(comparisons: list[dict], within: list[dict]) -> list[str]:
    """PNGs (base64), one per primary metric: every difference to the baseline (and fused vs best
    member) with its 95% interval; green/red: better/worse (in the metric's direction), amber: the
    interval excludes 0 but the Holm-adjusted p does not pass 0.05, grey: not distinguishable."""
    rows: dict[str, list] = {}
    for c in comparisons:
        if c["primary"]:
            how = "" if c["kind"] == "paired images" else " (over seeds)"
            rows.setdefault(c["metric"], []).append((f"{c['candidate']}\nvs {c['baseline']}{how}", c))
    for w in within:
        d = w[w["primary"]]
        rows.setdefault(w["primary"], []).append((f"{w['label']} (seed {w['seed']})\nfused vs {w['best_member']}", d))
    return [_forest(metric, items) for metric, items in rows.items()]


def _forest(metric: str, rows: list[tuple[str, dict]]) -> str:
    import matplotlib.pyplot as plt

    from fusionlab.reporting.figures import png

    fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(rows) + 1.3))
    for y, (label, d) in enumerate(rows):
        better = (d["mean"] > 0) == d.get("higher_is_better", True)
        color = "#7f8c8d" if not d["distinguishable"] else "#b9770e" if not d.get("p_holm", 0) < 0.05 \
            else "#1e8449" if better else "#c0392b"
        ax.errorbar(d["mean"], y, xerr=[[d["mean"] - d["ci_low"]], [d["ci_high"] - d["mean"]]], fmt="o",
                    color=color, capsize=4)
        word = "" if d["distinguishable"] else "  not distinguishable"
        ax.annotate(f"{d['mean']:+.3f}{word}", (d["ci_high"], y), xytext=(6, -3), textcoords="offset points",
                    fontsize=7, color=color)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=7)
    ax.invert_yaxis()
    direction = "higher" if rows[0][1].get("higher_is_better", True) else "lower"
    ax.set_xlabel(f"difference in {metric.upper()} ({direction} is better), mean and 95% interval")
    ax.set_title(f"{metric.upper()}: differences to the baseline (and fused vs best member)", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    return png(fig)
