"""Comparison report: collect runs (metrics.json / eval.json + config) and write ``report.html``.

The page is self-contained (plots are embedded PNGs, the table sorts with a few lines of inline
JavaScript) and opens offline. Plots: quality vs cost, per-strategy bars with the spread over
seeds, and the first test image restored by each run.
"""

import base64
import html
import io
import json
import logging
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from fusionlab.utils.errors import DataError
from fusionlab.utils.io import atomic_write_text

log = logging.getLogger("fusionlab")
APPROACH_NAMES = {"SingleModel": "single", "GeneratorEnsemble": "ensemble",
                  "FeatureFusionTranslator": "feature_fusion"}
# Config keys that do not change what a run computes (where it writes, how it logs) or that are
# the repetition itself (seed): runs differing only in these are one setting, aggregated.
NOT_SETTING = ("seed", "paths", "logger", "callbacks", "extras", "task_name", "tags", "ckpt_path", "test",
               "optimized_metric", "trainer.default_root_dir", "trainer.enable_progress_bar", "trainer.plugins",
               "trainer.devices", "trainer.num_nodes", "trainer.strategy", "trainer.log_every_n_steps",
               "data.num_workers", "data.pin_memory", "data.persistent_workers")
AGGREGATED = ("psnr", "ssim", "fid")


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
    setting: str = ""  # the config values that distinguish this run's setting from the others'

    def metric(self, name: str) -> float | None:
        value = self.metrics.get(f"{self.split}/{name}")
        return None if value is None else float(value)

    @property
    def label(self) -> str:
        return f"{self.approach}" + (f" [{self.strategy}]" if self.strategy != "-" else "") + f" {self.backbones}"

    @property
    def group(self) -> str:
        """Runs whose configs differ only by seed (and where they write/log) share a group."""
        return json.dumps(setting_config(self.config), sort_keys=True, default=str)

    @property
    def group_label(self) -> str:
        return self.label + (f" ({self.setting})" if self.setting else "")

    def row(self) -> dict:
        flops = self.metrics.get("flops_per_image_256")
        return {
            "run": self.path.name, "approach": self.approach, "strategy": self.strategy,
            "backbones": self.backbones, "setting": self.setting or "-", "seed": self.seed,
            "params": self.metrics.get("params"),
            "GFLOPs/img": None if flops is None else flops / 1e9,
            "PSNR": self.metric("psnr"), "SSIM": self.metric("ssim"),
            "FID": self.metric("fid"), "train time s": self.metrics.get("train_time_s"),
            "img/s (train)": self.metrics.get("train/images_per_sec_epoch"),
        }


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
    else:
        parts = [_short((approach_cfg.get("net") or config.get("model") or {}).get("_target_"))]
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
    metrics = {**data, **data.get("metrics", {})} if file.name == "eval.json" else data
    config = data.get("config")
    if not isinstance(config, dict):
        raise DataError(file, "metrics file holds no run config")
    if not any(k.startswith(("test/", "val/")) for k in metrics):
        raise DataError(file, "metrics file holds no val/ or test/ metrics")
    approach, strategy, backbones = describe(config)
    split = "test" if any(k.startswith("test/") for k in metrics) else "val"
    samples = {k: path / "samples" / f"test_{k}.png" for k in ("source", "output", "target")
               if (path / "samples" / f"test_{k}.png").is_file()}
    return RunSummary(path, approach, strategy, backbones, config.get("seed"), metrics, split, samples, config)


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = json.dumps(value, sort_keys=True, default=str) if isinstance(value, (dict, list)) else value
    return out


def setting_config(config: dict) -> dict[str, object]:
    """The flattened config without the keys of ``NOT_SETTING`` (nor anything under them)."""
    return {k: v for k, v in flatten(config).items()
            if not any(k == n or k.startswith(n + ".") for n in NOT_SETTING)}


def label_settings(runs: list["RunSummary"]) -> None:
    """Set each run's ``setting``: the values of the config keys that vary between the runs
    (e.g. ``approach.optimizer.lr=0.001``), shortest key suffix that is still unambiguous."""
    flat = [setting_config(r.config) for r in runs]
    keys = sorted({k for f in flat for k in f})
    # only keys that differ between runs of the same approach/strategy/backbones (the label
    # already tells those apart, with all the keys that come with a different fusion operator)
    by_label: dict[str, list[dict]] = {}
    for run, f in zip(runs, flat):
        by_label.setdefault(run.label, []).append(f)
    varying = [k for k in keys if any(len({json.dumps(f.get(k), default=str) for f in fs}) > 1
                                      for fs in by_label.values())]
    for run, f in zip(runs, flat):
        run.setting = ", ".join(f"{_short_key(k, varying)}={_fmt(f.get(k))}" for k in varying)


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _short_key(key: str, keys: list[str]) -> str:
    parts = key.split(".")
    for n in range(min(2, len(parts)), len(parts) + 1):  # at least parent.leaf: m0.width, optimizer.lr
        tail = ".".join(parts[-n:])
        if sum(k == tail or k.endswith("." + tail) for k in keys) == 1:
            return tail
    return key


def aggregate(runs: list["RunSummary"]) -> list[dict]:
    """One row per setting: number of seeds and mean ± sample std (n-1) of PSNR/SSIM/FID."""
    groups: dict[str, list[RunSummary]] = {}
    for r in runs:
        groups.setdefault(r.group, []).append(r)
    rows = []
    for members in groups.values():
        members.sort(key=lambda m: (m.seed is None, m.seed if isinstance(m.seed, int) else 0))
        first = members[0]
        row: dict[str, object] = {"approach": first.approach, "strategy": first.strategy,
                                  "backbones": first.backbones, "setting": first.setting or "-",
                                  "seeds": ", ".join(str(m.seed) for m in members), "n": len(members)}
        for name in AGGREGATED:
            values = [v for v in (m.metric(name) for m in members) if v is not None]
            row[f"{name}_mean"] = statistics.fmean(values) if values else None
            row[f"{name}_std"] = statistics.stdev(values) if len(values) > 1 else None
        rows.append(row)
    rows.sort(key=lambda r: -(r["psnr_mean"] or 0))
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
        for failed in sorted(root.rglob("failed.json")):  # multirun jobs that failed (utils/sweep.py)
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


# ---- figures -------------------------------------------------------------------------------
def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def scatter_quality_cost(runs: list[RunSummary]) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    use_flops = all(r.metrics.get("flops_per_image_256") for r in runs)
    for approach in sorted({r.approach for r in runs}):
        sel = [r for r in runs if r.approach == approach]
        xs = [r.metrics.get("flops_per_image_256", 0) / 1e9 if use_flops else r.metrics.get("params", 0) for r in sel]
        ax.scatter(xs, [r.metric("psnr") for r in sel], label=approach, s=40)
        for x, r in zip(xs, sel):
            ax.annotate(r.strategy if r.strategy != "-" else r.backbones, (x, r.metric("psnr")), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("GFLOPs per 256x256 image" if use_flops else "parameters")
    ax.set_ylabel(f"PSNR (dB, {runs[0].split})")
    ax.set_title("Quality vs cost")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def strategy_bars(runs: list[RunSummary]) -> str:
    import matplotlib.pyplot as plt

    groups: dict[str, list[float]] = {}
    for r in runs:
        groups.setdefault(r.group_label, []).append(r.metric("psnr"))
    labels = sorted(groups, key=lambda k: statistics.fmean(groups[k]))
    means = [statistics.fmean(groups[k]) for k in labels]
    stds = [statistics.stdev(groups[k]) if len(groups[k]) > 1 else 0.0 for k in labels]
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * len(labels) + 1.2))
    ax.barh(range(len(labels)), means, xerr=stds, capsize=3, color="#4c72b0")
    ax.set_yticks(range(len(labels)), [f"{k} (n={len(groups[k])})" for k in labels], fontsize=8)
    lo = min(m - s for m, s in zip(means, stds))
    ax.set_xlim(lo - 0.5, max(m + s for m, s in zip(means, stds)) + 0.3)
    ax.set_xlabel(f"PSNR (dB, {runs[0].split}); bars: mean, whiskers: std over seeds")
    ax.set_title("Per setting")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def restoration_grid(runs: list[RunSummary]) -> str | None:
    import matplotlib.pyplot as plt
    from skimage import io as skio

    with_samples = [r for r in runs if "output" in r.samples]
    if not with_samples:
        return None
    first = with_samples[0]
    panels = [("input", first.samples.get("source")), ("target", first.samples.get("target"))]
    panels += [(f"{r.label}\n{r.metric('psnr'):.2f} dB", r.samples["output"]) for r in with_samples]
    panels = [(t, p) for t, p in panels if p is not None]
    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, path) in zip(axes.flat, panels):
        image = skio.imread(str(path))
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255)
        ax.set_title(title, fontsize=7)
    fig.suptitle("First test image, restored by each run", fontsize=9)
    return _png(fig)


# ---- page ----------------------------------------------------------------------------------
def _cell(value) -> str:
    if value is None:
        return '<td data-v="">–</td>'
    if isinstance(value, float):
        text = f"{value:,.4f}" if abs(value) < 10 else f"{value:,.2f}"
        return f'<td data-v="{value}">{text}</td>'
    if isinstance(value, int):
        return f'<td data-v="{value}">{value:,}</td>'
    return f'<td data-v="{html.escape(str(value))}">{html.escape(str(value))}</td>'


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>fusionlab comparison</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; }}
th, td {{ border: 1px solid #ddd; padding: 4px 8px; text-align: right; }}
th {{ background: #f3f3f3; cursor: pointer; user-select: none; }}
td:nth-child(-n+5) {{ text-align: left; }}
tr:nth-child(even) {{ background: #fafafa; }}
.figs img {{ margin: 8px 12px 8px 0; border: 1px solid #eee; vertical-align: top; }}
.note {{ color: #666; font-size: 12px; }}
</style></head>
<body data-report="fusionlab">
<h1>fusionlab: comparison of {n_runs} runs</h1>
<p class="note">{subtitle}</p>
<table id="runs"><thead><tr>{header}</tr></thead><tbody>
{rows}
</tbody></table>
<p class="note">Click a column header to sort. PSNR/SSIM/FID on the {split} set; FLOPs per 256x256 image.</p>
{settings}
{problems}
<div class="figs">{figures}</div>
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


def settings_table(settings: list[dict]) -> str:
    """Mean ± std over seeds per setting; shown when some setting was run with several seeds."""
    if all(s["n"] == 1 for s in settings):
        return ""
    head = ["approach", "strategy", "backbones", "setting", "seeds"] + [n.upper() for n in AGGREGATED]

    def pm(row: dict, name: str) -> str:
        mean, std = row[f"{name}_mean"], row[f"{name}_std"]
        if mean is None:
            return '<td data-v="">–</td>'
        digits = 4 if name == "ssim" else 2
        text = f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")
        return f'<td data-v="{mean}">{text}</td>'

    rows = "\n".join("<tr>" + "".join(_cell(r[k]) for k in ("approach", "strategy", "backbones", "setting"))
                     + f'<td data-v="{r["n"]}">{r["n"]}: {html.escape(r["seeds"])}</td>'
                     + "".join(pm(r, n) for n in AGGREGATED) + "</tr>" for r in settings)
    return ("<h3>Over seeds: mean ± std (n-1)</h3><table id=\"settings\"><thead><tr>"
            + "".join(f"<th>{h}</th>" for h in head) + f"</tr></thead><tbody>\n{rows}\n</tbody></table>")


def build_report(paths: list[str | Path], out_dir: str | Path) -> tuple[Path, list[RunSummary], list[str]]:
    """Write ``report.html`` (and ``report.json``) into ``out_dir``.

    :raises DataError: when no run could be read.
    """
    runs, problems = find_runs(paths)
    label_settings(runs)
    for p in problems:
        log.warning("skipped: %s", p)
    if not runs:
        detail = "; ".join(problems) if problems else "no metrics.json or eval.json found"
        raise DataError(", ".join(map(str, paths)), f"no runs to compare ({detail})", "compare")
    runs.sort(key=lambda r: -(r.metric("psnr") or 0))
    table = [r.row() for r in runs]
    columns = list(table[0])
    settings = aggregate(runs)
    figures = [("quality vs cost", scatter_quality_cost(runs)), ("per strategy", strategy_bars(runs))]
    grid = restoration_grid(runs)
    if grid:
        figures.append(("restorations", grid))
    problems_html = ("<h3>Skipped</h3><ul>" + "".join(f"<li>{html.escape(p)}</li>" for p in problems) + "</ul>"
                     if problems else "")
    page = PAGE.format(
        n_runs=len(runs), split=runs[0].split,
        subtitle=html.escape(", ".join(str(p) for p in paths)),
        header="".join(f"<th>{html.escape(c)}</th>" for c in columns),
        rows="\n".join("<tr>" + "".join(_cell(row[c]) for c in columns) + "</tr>" for row in table),
        settings=settings_table(settings),
        problems=problems_html,
        figures="".join(f'<img alt="{t}" src="data:image/png;base64,{b}">' for t, b in figures),
    )
    out_dir = Path(out_dir)
    report = atomic_write_text(out_dir / "report.html", page)
    atomic_write_text(out_dir / "report.json", json.dumps({"columns": columns, "rows": table, "settings": settings,
                                                          "skipped": problems}, indent=2, default=str))
    return report, runs, problems
