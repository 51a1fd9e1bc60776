"""Comparison report: ``report.html`` (self-contained), ``comparison.json`` and ``report.json``.

Runs are found and grouped by :mod:`fusionlab.reporting.runs`, compared pairwise on per-image
records by :mod:`fusionlab.reporting.paired`, and drawn by :mod:`fusionlab.reporting.figures`.
The page opens offline (plots are embedded PNGs; the tables sort with a few lines of inline JS).
"""

import html
import json
import logging
from pathlib import Path

from fusionlab.reporting.figures import restoration_grid, scatter_quality_cost, strategy_bars, zoomed_crops
from fusionlab.reporting.paired import compare_settings, forest_plot
from fusionlab.evaluation.specs import merged_specs
from fusionlab.reporting.runs import aggregate, find_runs, label_settings
from fusionlab.reporting.uncertainty import section as uncertainty_section
from fusionlab.utils.errors import ConfigError, DataError
from fusionlab.utils.io import atomic_write_text

log = logging.getLogger("fusionlab")


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return '<td data-v="">–</td>'
    if isinstance(value, float):
        text = f"{value:,.4f}" if abs(value) < 10 else f"{value:,.2f}"
        return f'<td data-v="{value}">{text}</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td data-v="{value}">{value:,}</td>'
    return f'<td data-v="{html.escape(str(value))}">{html.escape(str(value))}</td>'


def _table(table_id: str, columns: list[str], rows: list[dict]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "\n".join("<tr>" + "".join(_cell(r.get(c)) for c in columns) + "</tr>" for r in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>'


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>fusionlab comparison</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1400px; }}
table {{ border-collapse: collapse; font-size: 13px; margin-bottom: 6px; }}
th, td {{ border: 1px solid #ddd; padding: 4px 8px; text-align: right; }}
th {{ background: #f3f3f3; cursor: pointer; user-select: none; }}
td:first-child, td:nth-child(2) {{ text-align: left; }}
tr:nth-child(even) {{ background: #fafafa; }}
.figs img {{ margin: 8px 12px 8px 0; border: 1px solid #eee; vertical-align: top; max-width: 100%; }}
.note {{ color: #666; font-size: 12px; }}
ul.verdicts li {{ margin: 3px 0; }}
.better {{ color: #1e8449; font-weight: 600; }} .worse {{ color: #a93226; font-weight: 600; }}
.weak {{ color: #b9770e; }} .no {{ color: #555; }}
</style></head>
<body data-report="fusionlab">
<h1>fusionlab: comparison of {n_runs} runs</h1>
<p class="note">{subtitle}</p>
<h2>Does it beat the baseline?</h2>
{verdicts}
<div class="figs">{forest}</div>
{comparisons}
<h2>Settings over seeds</h2>
{settings}
<h2>Runs</h2>
{runs}
<p class="note">Click a column header to sort. Metrics on the {split} set; FLOPs per 256x256 image (restoration,
style) or per generated sample (generation).</p>
{problems}
<div class="figs">{figures}</div>
{uncertainty}
<script>
document.querySelectorAll('table th').forEach((th, col) => th.addEventListener('click', () => {{
  const body = th.closest('table').tBodies[0];
  const asc = th.dataset.order !== 'asc'; th.dataset.order = asc ? 'asc' : 'desc';
  const key = r => {{ const v = r.cells[col].dataset.v; const n = parseFloat(v); return isNaN(n) ? v : n; }};
  [...body.rows].sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (asc ? 1 : -1))
    .forEach(r => body.appendChild(r));
}}));
const imgs = [...document.images];
Promise.all(imgs.map(i => i.complete ? Promise.resolve() : new Promise(r => {{ i.onload = i.onerror = r; }})))
  .then(() => {{ document.body.dataset.plotsRendered = imgs.filter(i => i.naturalWidth > 0).length; }});
</script>
</body></html>
"""

HOW = ("Metrics with one value per test image are compared image by image on the same test images (a "
       "setting's per-image value is the mean over its seeds): mean, 95% paired bootstrap interval "
       "(scipy.stats.bootstrap, BCa, fixed seed), Wilcoxon signed-rank p, win rate = share of images improved; "
       "when both settings have several seeds, the difference of seed means with Welch's 95% t-interval is "
       "shown too. Metrics of one number per run (FID, mode coverage, FD) and of independent samples are "
       "compared over seeds only (Welch's t-interval and p; at least 2 seeds on each side). p-values are "
       "Holm-adjusted over every test on this page. A difference whose interval contains 0 is not "
       "distinguishable (grey); one whose interval excludes 0 but whose Holm-adjusted p is not below 0.05 "
       "is marked weak (amber); green: better, red: worse, in each metric's own direction.")


ALPHA = 0.05


def verdict_class(d: dict, higher_is_better: bool = True) -> tuple[str, str]:
    """(CSS class, qualifier): better/worse when the interval excludes 0 and the Holm-adjusted
    Wilcoxon p is below 0.05; "weak" when only the (unadjusted) interval excludes 0."""
    if not d.get("distinguishable"):
        return "no", ""
    if not d.get("p_holm", 0.0) < ALPHA:
        return "weak", f" — weak: not significant after Holm correction (p={d.get('p_holm', float('nan')):.2g})"
    return ("better" if (d["mean"] > 0) == higher_is_better else "worse"), ""


def _verdicts(result: dict) -> str:
    items = []
    for c in result["comparisons"]:
        cls, qualifier = verdict_class(c, c["higher_is_better"])
        seeds = c.get("seed_difference")
        extra = (f"; seeds: {c['seeds_candidate']} vs {c['seeds_baseline']}" if c["kind"] != "paired images" or not seeds
                 else f"; over seeds {seeds['mean']:+.3f} [{seeds['ci_low']:+.3f}, {seeds['ci_high']:+.3f}]")
        n = f'n={c["n_images"]} images' if c["n_images"] else "over seeds"
        wins = f', wins {c["win_rate"]:.0%}' if c["win_rate"] is not None else ""
        items.append(f'<li class="{cls}">{html.escape(c["verdict"] + qualifier)} ({n}, '
                     f'Holm p={c["p_holm"]:.3g}{wins}{html.escape(extra)})</li>')
    for w in result["within_run"]:
        d = w[w["primary"]]
        cls, qualifier = verdict_class(d, d["higher_is_better"])
        items.append(f'<li class="{cls}">{html.escape(w["run"])} (seed {w["seed"]}): {html.escape(d["verdict"] + qualifier)} '
                     f'(best member chosen on {html.escape(w["chosen_on"])}; Holm p={d["p_holm"]:.3g}, '
                     f'wins {d["win_rate"]:.0%})</li>')
    if not items:
        return "<p>No paired comparison: the runs share no task with per-image records on the same images.</p>"
    base = "; ".join(f"{t}: <b>{html.escape(b)}</b>" for t, b in result["baselines"].items())
    head = f"<p>Baseline {base}.</p>" if base else ""
    return f'{head}<ul class="verdicts">{"".join(items)}</ul><p class="note">{HOW}</p>'


def comparison_rows(result: dict) -> list[dict]:
    """Flat rows (one per comparison and metric) for the HTML table, W&B and readers."""
    rows = []
    for c in result["comparisons"]:
        rows.append({"candidate": c["candidate"], "baseline": c["baseline"], "metric": c["metric"],
                     "compared": c["kind"], "images": c["n_images"],
                     "seeds": f"{c['seeds_candidate']} vs {c['seeds_baseline']}",
                     "mean diff": c["mean"], "CI low": c["ci_low"], "CI high": c["ci_high"],
                     "p (Wilcoxon)": c["p_value"], "p (Holm)": c["p_holm"], "win rate": c["win_rate"],
                     "image std": c["between_image_std"], "seed std": c["between_seed_std"],
                     "distinguishable": "yes" if c["distinguishable"] else "no"})
    for w in result["within_run"]:
        for metric in w["metrics"]:
            d = w[metric]
            rows.append({"candidate": f"{w['run']}: fused", "baseline": f"{w['run']}: {w['best_member']}",
                         "metric": metric, "compared": "paired images", "images": d["n"], "seeds": "1 run", "mean diff": d["mean"],
                         "CI low": d["ci_low"], "CI high": d["ci_high"], "p (Wilcoxon)": d["p_value"],
                         "p (Holm)": d["p_holm"], "win rate": d["win_rate"], "image std": d["std"],
                         "seed std": None, "distinguishable": "yes" if d["distinguishable"] else "no"})
    return rows


def _settings_rows(settings: list[dict], specs: dict) -> tuple[list[str], list[dict]]:
    present = [n for n in specs if any(s.get(f"{n}_mean") is not None for s in settings)]
    rows = []
    for s in settings:
        row = {"setting": s["label"], "task": s["task"], "seeds": s["seeds"]}
        for n in (n for n in present if n in s["metrics"]):
            mean, ci = s[f"{n}_mean"], s[f"{n}_ci"]
            digits = specs[n].digits
            row[n] = None if mean is None else (f"{mean:.{digits}f}" + (
                f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else ""))
            row[f"{n} seed std"] = s[f"{n}_std"]
            if specs[n].per_item:
                row[f"{n} image std"] = s[f"{n}_image_std"]
        rows.append(row)
    columns = ["setting", "task", "seeds"] + [c for n in present for c in (
        (n, f"{n} seed std", f"{n} image std") if specs[n].per_item else (n, f"{n} seed std"))]
    return columns, rows


def _by_task(table_id: str, items: list, task_of, to_columns_rows) -> str:
    """One table per task family (their metrics differ), headed by the task when there are several."""
    tasks = list(dict.fromkeys(task_of(i) for i in items))
    parts = []
    for task in tasks:
        columns, rows = to_columns_rows([i for i in items if task_of(i) == task])
        head = f"<h3>{html.escape(task)}</h3>" if len(tasks) > 1 else ""
        parts.append(head + _table(f"{table_id}-{task}" if len(tasks) > 1 else table_id, columns, rows))
    return "".join(parts)


def _run_columns(rows: list[dict]) -> tuple[list[str], list[dict]]:
    return [c for c in rows[0] if any(row.get(c) is not None for row in rows)], rows


def build_report(paths: list[str | Path], out_dir: str | Path, baseline: str = "auto",
                 ignore: tuple[str, ...] = ()) -> tuple[Path, list, list[str], dict]:
    """Write ``report.html``, ``comparison.json`` and ``report.json`` into ``out_dir``.

    :param baseline: ``auto`` (per task: the best single-model setting, else the best setting), or
        a run folder name or a substring of a setting's label.
    :param ignore: config keys that do not make settings (values derived per seed, say).
    :raises DataError: when no run could be read.
    """
    runs, problems = find_runs(paths)
    label_settings(runs, tuple(ignore))
    for p in problems:
        log.warning("skipped: %s", p)
    if not runs:
        detail = "; ".join(problems) if problems else "no metrics.json or eval.json found"
        raise DataError(", ".join(map(str, paths)), f"no runs to compare ({detail})", "compare")
    runs.sort(key=lambda r: r.sort_key())
    specs = merged_specs(r.specs for r in runs)
    table = [r.row() for r in runs]
    columns = list(dict.fromkeys(c for row in table for c in row if row.get(c) is not None))
    settings = aggregate(runs)
    result = compare_settings(runs, baseline)
    if result["unmatched_baseline"]:  # refused before anything is written
        labels = sorted({r.group_label for r in runs})
        raise ConfigError("baseline", f"{result['unmatched_baseline']!r} matches no run folder and no setting; "
                          f"settings: {'; '.join(labels[:6])}{' ...' if len(labels) > 6 else ''} (or baseline=auto)")
    figures = [f for f in (scatter_quality_cost(runs), strategy_bars(settings), zoomed_crops(runs),
                           restoration_grid(runs)) if f]
    forests = forest_plot(result["comparisons"], result["within_run"])
    flat = comparison_rows(result)
    uncertainty_html, uncertainty_rows = uncertainty_section(runs, _table)
    problems_html = ("<h3>Skipped</h3><ul>" + "".join(f"<li>{html.escape(p)}</li>" for p in problems) + "</ul>"
                     if problems else "")
    page = PAGE.format(
        n_runs=len(runs), split=runs[0].split,
        subtitle=html.escape(", ".join(str(p) for p in paths)),
        verdicts=_verdicts(result),
        forest="".join(f'<img alt="forest plot" src="data:image/png;base64,{f}">' for f in forests),
        comparisons=_table("comparisons", list(flat[0]), flat) if flat else "",
        settings=_by_task("settings", settings, lambda s: s["task"], lambda items: _settings_rows(items, specs)),
        runs=_by_task("runs", table, lambda r: r["task"], _run_columns),
        problems=problems_html,
        figures="".join(f'<img alt="figure" src="data:image/png;base64,{b}">' for b in figures),
        uncertainty=uncertainty_html,
    )
    out_dir = Path(out_dir)
    report = atomic_write_text(out_dir / "report.html", page)
    comparison = {"baseline_option": baseline, **result, "settings": settings, "skipped": problems,
                  "metric_specs": {name: spec.to_json() for name, spec in specs.items()},
                  "method": HOW, "uncertainty": uncertainty_rows}
    atomic_write_text(out_dir / "comparison.json", json.dumps(comparison, indent=2, default=str))
    atomic_write_text(out_dir / "report.json", json.dumps({"columns": columns, "rows": table, "settings": settings,
                                                          "comparisons": flat, "skipped": problems},
                                                         indent=2, default=str))
    return report, runs, problems, {**result, "settings": settings}
