"""``compare(cfg)``: the comparison report of several runs (``evaluate.py compare=PATH``)."""

import logging
from pathlib import Path

from omegaconf import DictConfig

log = logging.getLogger("fusionlab")


def wandb_tables(wandb, runs: list, result: dict) -> dict:
    """The report's tables as W&B tables: runs, settings over seeds, paired comparisons (columns:
    every key any row has, since runs of different tasks have different metrics)."""
    from fusionlab.reporting.compare import comparison_rows

    def table(rows: list[dict]):
        columns = list(dict.fromkeys(c for r in rows for c in r))
        return wandb.Table(columns=columns, data=[[_cell(r.get(c)) for c in columns] for r in rows])

    tables = {"compare/runs": table([r.row() for r in runs])}
    if result.get("settings"):
        tables["compare/settings"] = table(result["settings"])
    if flat := comparison_rows(result):
        tables["compare/paired"] = table(flat)
    return tables


def _cell(value):
    return str(value) if isinstance(value, (list, dict)) else value


def compare(cfg: DictConfig) -> dict:
    """``evaluate.py compare=PATH [baseline=auto|RUN|SETTING]``: the comparison report of the runs
    under PATH (a multirun folder, or a list of run folders): ``report.html``, ``comparison.json``
    (paired differences, intervals, p-values, win rates) and, when W&B is configured, the same
    tables in W&B."""
    from fusionlab.reporting.compare import build_report

    paths = [cfg.compare] if isinstance(cfg.compare, str) else list(cfg.compare)
    ignore = tuple(str(k) for k in (cfg.get("compare_ignore") or []))
    report, runs, problems, result = build_report(paths, cfg.paths.output_dir, str(cfg.get("baseline") or "auto"),
                                                  ignore)
    log.info("comparison of %d runs written to %s", len(runs), report)
    for c in result["comparisons"]:
        print(c["verdict"])
    for w in result["within_run"]:
        print(f"{w['run']}: {w[w['primary']]['verdict']}")
    print(f"report: {report}")
    wandb_cfg = (cfg.get("logger") or {}).get("wandb")
    if wandb_cfg:
        import wandb

        with wandb.init(project=wandb_cfg.project, group=wandb_cfg.group, job_type="compare",
                        dir=str(cfg.paths.output_dir), mode=wandb_cfg.mode, tags=list(cfg.tags)) as run:
            run.log(wandb_tables(wandb, runs, result))
    return {"report": str(report), "comparison": str(Path(report).with_name("comparison.json")), "runs": len(runs),
            "comparisons": len(result["comparisons"]), "within_run": len(result["within_run"]), "skipped": problems}
