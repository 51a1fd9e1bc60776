"""The report's section on calibrated per-pixel error bounds: evaluations run with
``uncertainty=HEURISTIC`` (their ``eval.json`` ``uncertainty`` block), one row per run and level,
with their sparsification curves and coverage against 1 − α in one figure."""

import html

from fusionlab.reporting.figures import png


def rows(runs) -> list[dict]:
    out = []
    for run in runs:
        u = run.uncertainty
        if not u:
            continue
        for alpha, v in sorted(u.get("alphas", {}).items(), key=lambda kv: float(kv[0])):
            out.append({"run": run.name, "heuristic": u.get("heuristic"), "calibration": u.get("method"),
                        "tta": u.get("tta"), "alpha": float(alpha), "target coverage": 1 - float(alpha),
                        "coverage": v.get("coverage"), "width (gray levels)": v.get("width"),
                        "lambda": v.get("lambda"), "corr(score, |error|)": u.get("score_error_corr"),
                        "AUSE": u.get("ause"), "calibration images": (u.get("calibration") or {}).get("images"),
                        "shift": "yes" if u.get("shift") else "no"})
    return out


def figure(runs) -> str | None:
    """Sparsification curves (each run against its oracle) and measured coverage against 1 − α."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in runs if r.uncertainty and r.uncertainty.get("sparsification")]
    if not runs:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for run in runs:
        u, label = run.uncertainty, f"{run.name}: {run.uncertainty['heuristic']}"
        line, = left.plot(u["sparsification"]["fractions"], u["sparsification"]["curve"], label=label)
        left.plot(u["sparsification"]["fractions"], u["sparsification"]["oracle"], "--", color=line.get_color(), lw=0.8)
        levels = sorted(u["alphas"], key=float)
        right.plot([1 - float(a) for a in levels], [u["alphas"][a]["coverage"] for a in levels], "o-", label=label)
    left.set(xlabel="fraction of pixels removed (most uncertain first)", ylabel="remaining MAE / MAE",
             title="sparsification (dashed: oracle)")
    lo = min(1 - float(a) for r in runs for a in r.uncertainty["alphas"])
    right.plot([lo, 1], [lo, 1], color="gray", lw=0.8)
    right.set(xlabel="1 − α", ylabel="coverage on the test set", title="coverage")
    left.legend(fontsize=7)
    fig.tight_layout()
    return png(fig)


def section(runs, table) -> tuple[str, list[dict]]:
    """(HTML of the section, its rows); empty when no run calibrated error bounds."""
    found = rows(runs)
    if not found:
        return "", []
    plot = figure(runs)
    columns = list(found[0])
    img = f'<div class="figs"><img alt="uncertainty" src="data:image/png;base64,{plot}"></div>' if plot else ""
    note = ("Intervals fused ± λ·score, λ by split conformal calibration on images disjoint from the test set; "
            "coverage should be at least 1 − α (a shift, where the test set is degraded otherwise than the "
            "calibration, voids the guarantee). Narrower intervals at the same coverage are better.")
    return (f"<h2>Calibrated error bounds</h2>\n<p class=\"note\">{html.escape(note)}</p>\n"
            f"{table('uncertainty', columns, found)}\n{img}"), found
