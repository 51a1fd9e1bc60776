"""``compare(cfg)``: the comparison report of several runs (``evaluate.py compare=PATH``)."""

import logging
from pathlib import Path

from omegaconf import DictConfig

log = logging.getLogger("fusionlab")


def compare(cfg: DictConfig) -> dict:
    """``evaluate.py compare=PATH [baseline=auto|RUN|SETTING]``: the comparison report of the runs
    under PATH (a multirun folder, or a list of run folders): ``report.html``, ``comparison.json``
    (paired differences, intervals, p-values, win rates) and, when W&B is configured, the same
    tables in W&B."""
    from fusionlab.reporting.compare import build_report, comparison_rows

    paths = [cfg.compare] if isinstance(cfg.compare, str) else list(cfg.compare)
    ignore = tuple(str(k) for k in (cfg.get("compare_ignore") or []))
    report, runs, problems, result = build_report(paths, cfg.paths.output_dir, str(cfg.get("baseline") or "auto"),
                                                  ignore)
    log.info("comparison of %d runs written to %s", len(runs), report)
    for c in result["comparisons"]:
        print(c["verdict"])
    for w in result["within_run"]:
        print(f"{w['run']}: {w['psnr']['verdict']}")
    print(f"report: {report}")
    wandb_cfg = (cfg.get("logger") or {}).get("wandb")
    if wandb_cfg:
        import wandb

        rows = [r.row() for r in runs]
        flat = comparison_rows(result)
        with wandb.init(project=wandb_cfg.project, group=wandb_cfg.group, job_type="compare",
                        dir=str(cfg.paths.output_dir), mode=wandb_cfg.mode, tags=list(cfg.tags)) as run:
            tables = {"compare/runs": wandb.Table(columns=list(rows[0]), data=[list(r.values()) for r in rows])}
            if flat:
                tables["compare/paired"] = wandb.Table(columns=list(flat[0]), data=[list(r.values()) for r in flat])
            run.log(tables)
    return {"report": str(report), "comparison": str(Path(report).with_name("comparison.json")), "runs": len(runs),
            "comparisons": len(result["comparisons"]), "within_run": len(result["within_run"]), "skipped": problems}
