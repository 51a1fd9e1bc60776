"""Console tables (rich) for evaluation results, and a run's headline numbers."""

from pathlib import Path

from rich.console import Console
from rich.table import Table


def print_eval_table(records: list[dict], metrics: dict[str, float], title: str = "") -> None:
    """Per-image PSNR/SSIM (and any per-output columns) with the mean row and ms per image."""
    console = Console()
    if not records:
        console.print(f"[yellow]no test images evaluated[/] {title}")
        return
    columns = [c for c in records[0] if c != "image"]
    table = Table(title=f"evaluation: {title}", show_footer=False)
    table.add_column("image")
    for c in columns:
        table.add_column(c, justify="right")
    for r in records:
        table.add_row(str(r["image"]), *(f"{r[c]:.4f}" if "ssim" in c else f"{r[c]:.2f}" for c in columns))
    mean = {c: sum(r[c] for r in records) / len(records) for c in columns}
    table.add_section()
    table.add_row("[bold]mean", *(f"[bold]{mean[c]:.4f}" if "ssim" in c else f"[bold]{mean[c]:.2f}" for c in columns))
    console.print(table)
    summary = "  ".join(f"{k}={v:.4f}" for k, v in metrics.items())
    console.print(f"[bold]{summary}")


def print_summary(result: dict, out_dir: Path) -> None:
    """The run's headline numbers: restored vs degraded-input PSNR/SSIM (or every ``val/``/``test/``
    metric for tasks without PSNR), cost, and where the results are."""
    lines = []
    for stage in ("val", "test"):
        if f"{stage}/psnr" in result:
            lines.append(f"{stage}: PSNR {result[f'{stage}/psnr']:.2f} dB (degraded input "
                         f"{result.get(f'{stage}/psnr_input', float('nan')):.2f} dB), SSIM "
                         f"{result.get(f'{stage}/ssim', float('nan')):.4f}")
        else:
            values = {k.split("/", 1)[1]: v for k, v in result.items() if k.startswith(f"{stage}/")}
            if values:
                lines.append(f"{stage}: " + ", ".join(f"{k} {v:.4g}" for k, v in values.items()))
    lines.append(f"params {result.get('params', 0):,}, train time {result.get('train_time_s', 0):.0f} s; "
                 f"results in {out_dir}")
    Console().print("[bold]" + "\n".join(lines))
