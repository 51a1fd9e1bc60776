"""Paired comparisons of runs (and of a fused model with its own members) on per-image records.

Runs are grouped into settings (configs equal up to seed and where they write); a setting's
per-image value is the mean over its seeds. Every setting is compared with a baseline on the images
both were evaluated on: mean difference, 95% paired bootstrap interval, Wilcoxon p (Holm-adjusted
over every comparison of the report), win rate, and, when both settings have several seeds, the
difference of seed means with Welch's t-interval. The statistics are :mod:`fusionlab.reporting.stats`.
"""

import statistics
from collections.abc import Sequence

from fusionlab.reporting.stats import holm, paired_difference, seed_interval, verdict, welch_interval

# per task family: (metric, higher is better, unit) compared pairwise; the first is the primary one
TASK_METRICS = {
    "restoration": [("psnr", True, " dB"), ("ssim", True, "")],
    "style": [("content_ssim", True, ""), ("style_distance", False, "")],
    "generate": [],  # samples of different generators are not paired images
}


def task_of(records: Sequence[dict], metrics: dict) -> str:
    keys = set(records[0]) if records else {k.split("/", 1)[-1] for k in metrics}
    if "psnr" in keys:
        return "restoration"
    if "content_ssim" in keys:
        return "style"
    return "generate"


# ---- one run: fused vs its best member ------------------------------------------------------
def member_names(records: Sequence[dict]) -> list[str]:
    return sorted(k[len("psnr_"):] for k in (records[0] if records else {}) if k.startswith("psnr_member"))


def member_labels(config: dict) -> dict[str, str]:
    """``{"member0": "member0 (DnCNN)", ...}`` from a run's config (members in config order)."""
    members = ((config or {}).get("approach") or {}).get("members") or {}
    if not isinstance(members, dict):
        return {}
    return {f"member{i}": f"member{i} ({str(m.get('_target_', '?')).rsplit('.', 1)[-1]})"
            for i, m in enumerate(members.values()) if isinstance(m, dict)}


def member_comparison(result: dict, labels: dict[str, str] | None = None) -> dict | None:
    """Fused output vs the best member on the same test images, from a ``metrics.json`` /
    ``eval.json`` result. The best member is chosen on validation PSNR when the run has it (so the
    choice does not look at the test images), else on the test images themselves (which favours
    the member, i.e. is conservative for fusion)."""
    records = result.get("per_image") or []
    members = member_names(records)
    if not members or "psnr" not in records[0]:
        return None
    val = dict(result.get("val_metrics") or {})
    val.update({k: v for k, v in result.items() if k.startswith("val/") and isinstance(v, (int, float))})
    if all(f"val/psnr_{m}" in val for m in members):
        best, chosen_on = max(members, key=lambda m: val[f"val/psnr_{m}"]), "validation PSNR"
    else:
        best = max(members, key=lambda m: statistics.fmean(r[f"psnr_{m}"] for r in records))
        chosen_on = "test PSNR (same images: favours the member)"
    out = {"best_member": best, "chosen_on": chosen_on, "n_images": len(records)}
    for metric, higher, unit in TASK_METRICS["restoration"]:
        d = paired_difference([r[metric] for r in records], [r[f"{metric}_{best}"] for r in records],
                              higher_is_better=higher)
        d["verdict"] = verdict(d, metric.upper(), unit, "fused", (labels or {}).get(best, best), higher)
        out[metric] = d
    return out


def print_member_comparison(within: dict) -> None:
    from rich.console import Console

    d = within["psnr"]
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


def choose_baseline(settings: dict[str, list], baseline: str, task: str) -> str | None:
    """The baseline setting key: ``auto`` = the best single-model setting, else the best setting;
    otherwise the setting whose label or run folder name contains ``baseline``."""
    if not settings:
        return None
    primary = TASK_METRICS[task][0][0] if TASK_METRICS[task] else None
    if primary is None:
        return None

    def score(key: str) -> float:
        values = seed_values(settings[key], primary)
        return statistics.fmean(values) if values else float("-inf")

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
        base_key = choose_baseline(settings, baseline, task)
        if base_key is None:
            if baseline not in (None, "", "auto") and TASK_METRICS[task]:
                unmatched = baseline
            continue
        base_runs = settings[base_key]
        baselines[task] = base_runs[0].group_label
        for key, cand_runs in settings.items():
            if key == base_key:
                continue
            for metric, higher, unit in TASK_METRICS[task]:
                a, b = per_image_means(cand_runs, metric), per_image_means(base_runs, metric)
                names = sorted(set(a) & set(b))
                if len(names) < 2:
                    continue
                d = paired_difference([a[n] for n in names], [b[n] for n in names], higher_is_better=higher)
                ca, cb = seed_values(cand_runs, metric), seed_values(base_runs, metric)
                row = {"task": task, "candidate": cand_runs[0].group_label, "baseline": baselines[task],
                       "metric": metric, "higher_is_better": higher, "n_images": len(names),
                       "seeds_candidate": len(ca), "seeds_baseline": len(cb), **d,
                       "between_seed_std": _pooled_std(ca, cb), "between_image_std": d["std"],
                       "seed_difference": welch_interval(ca, cb) if len(ca) > 1 and len(cb) > 1 else None,
                       "verdict": verdict(d, metric.upper(), unit, cand_runs[0].group_label, baselines[task],
                                          higher)}
                comparisons.append(row)
    within = []
    for run in runs:
        result = {"per_image": run.records, **{k: v for k, v in run.metrics.items() if k.startswith("val/")}}
        member = member_comparison(result, member_labels(run.config))
        if member:
            within.append({"run": run.name, "label": run.label, "seed": run.seed, **member})
    _adjust(comparisons, within)
    return {"baselines": baselines, "comparisons": comparisons, "within_run": within,
            "unmatched_baseline": unmatched}


def _pooled_std(a: list[float], b: list[float]) -> float | None:
    stds = [seed_interval(v)["std"] for v in (a, b) if len(v) > 1]
    return statistics.fmean(stds) if stds else None


def _adjust(comparisons: list[dict], within: list[dict]) -> None:
    """Holm over every p-value in the report (each comparison, each metric, each within-run test)."""
    family = {f"c{i}": row["p_value"] for i, row in enumerate(comparisons)}
    for i, row in enumerate(within):
        for metric in ("psnr", "ssim"):
            family[f"w{i}{metric}"] = row[metric]["p_value"]
    adjusted = holm(family)
    for i, row in enumerate(comparisons):
        row["p_holm"] = adjusted[f"c{i}"]
    for i, row in enumerate(within):
        for metric in ("psnr", "ssim"):
            row[metric]["p_holm"] = adjusted[f"w{i}{metric}"]


def forest_plot(comparisons: list[dict], within: list[dict]) -> str | None:
    """PNG (base64) of every primary-metric difference with its 95% interval; green/red: better/worse,
    amber: the interval excludes 0 but the Holm-adjusted p does not pass 0.05, grey: not distinguishable."""
    import matplotlib.pyplot as plt

    from fusionlab.reporting.figures import png

    rows = [(f"{c['candidate']}\nvs {c['baseline']}", c, c["metric"]) for c in comparisons
            if c["metric"] in ("psnr", "content_ssim")]
    rows += [(f"{w['label']} (seed {w['seed']})\nfused vs {w['best_member']}", w["psnr"], "psnr") for w in within]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(rows) + 1.3))
    for y, (label, d, metric) in enumerate(rows):
        color = "#7f8c8d" if not d["distinguishable"] else "#b9770e" if not d.get("p_holm", 0) < 0.05 \
            else "#1e8449" if d["mean"] > 0 else "#c0392b"  # higher is better for PSNR/content SSIM
        ax.errorbar(d["mean"], y, xerr=[[d["mean"] - d["ci_low"]], [d["ci_high"] - d["mean"]]], fmt="o",
                    color=color, capsize=4)
        word = "" if d["distinguishable"] else "  not distinguishable"
        ax.annotate(f"{d['mean']:+.3f}{word}", (d["ci_high"], y), xytext=(6, -3), textcoords="offset points",
                    fontsize=7, color=color)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=7)
    ax.invert_yaxis()
    metrics = sorted({r[2] for r in rows})
    ax.set_xlabel(f"paired difference ({', '.join(m.upper() for m in metrics)}), mean and 95% bootstrap interval")
    ax.set_title("Differences to the baseline (and fused vs best member)", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    return png(fig)
