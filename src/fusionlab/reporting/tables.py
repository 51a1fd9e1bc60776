"""Console tables (rich) for evaluation results."""

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
