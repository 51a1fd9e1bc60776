"""Pictures of calibrated uncertainty: per-pixel heat maps and the evaluation's summary figure."""

from pathlib import Path

import numpy as np
import torch


def heat_map(half_width: torch.Tensor, vmax: float | None = None) -> np.ndarray:
    """A uint8 ``(H, W, 3)`` heat map (matplotlib's ``magma``) of a ``(C, H, W)`` half-width map
    (averaged over channels), from 0 to ``vmax`` (default: the map's 99th percentile)."""
    from matplotlib import colormaps

    m = half_width.float().mean(dim=0).cpu()
    top = float(vmax) if vmax else float(torch.quantile(m.flatten()[:: max(1, m.numel() // 1_000_000)], 0.99))
    scaled = (m / max(top, 1e-12)).clamp(0, 1).numpy()
    return (colormaps["magma"](scaled)[..., :3] * 255.0 + 0.5).astype(np.uint8)


def summary_figure(result: dict, example: dict | None, path: Path) -> Path:
    """``uncertainty.png``: the mean sparsification curve against the oracle's, coverage against
    1 − α, and, for the first test image, its error next to the calibrated half-width."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 4 if example else 2
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.6))
    ax = axes[0]
    frac = result["sparsification"]["fractions"]
    ax.plot(frac, result["sparsification"]["curve"], label=result["heuristic"])
    ax.plot(frac, result["sparsification"]["oracle"], "--", label="oracle (true error)")
    ax.axhline(1.0, color="gray", lw=0.8, label="random order")
    ax.set(xlabel="fraction of pixels removed (most uncertain first)", ylabel="remaining MAE / MAE",
           title=f"sparsification (AUSE {result['ause']:.3f})")
    ax.legend(fontsize=8)
    ax = axes[1]
    levels = sorted(result["alphas"], key=float)
    target = [1 - float(a) for a in levels]
    got = [result["alphas"][a]["coverage"] for a in levels]
    ax.plot(target, target, color="gray", lw=0.8, label="1 − α")
    ax.plot(target, got, "o-", label="measured on the test set")
    ax.set(xlabel="1 − α", ylabel="coverage", title=f"coverage ({result['method']})")
    ax.legend(fontsize=8)
    if example:  # error and half-width on one colour scale (0 to the larger 99th percentile)
        top = max(float(np.percentile(image, 99)) for _, image in example["panels"])
        for ax, (title, image) in zip(axes[2:], example["panels"]):
            im = ax.imshow(image, cmap="magma", vmin=0, vmax=max(top, 1e-6))
            ax.set_title(title, fontsize=9)
            ax.axis("off")
            fig.colorbar(im, ax=ax, fraction=0.046, label="gray levels")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
