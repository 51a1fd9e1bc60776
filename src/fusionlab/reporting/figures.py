"""Figures of the comparison report, as base64 PNGs embedded in the page (no network to open it)."""

import base64
import io
import math

import numpy as np


def png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def scatter_quality_cost(runs) -> str | None:
    """PSNR vs FLOPs per 256x256 image (or parameters) of the restoration runs."""
    import matplotlib.pyplot as plt

    runs = [r for r in runs if r.metric("psnr") is not None]
    if not runs:
        return None
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
    ax.set_title("Quality vs cost (restoration runs)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return png(fig)


def strategy_bars(settings: list[dict]) -> str | None:
    """Mean PSNR per setting with its 95% t-interval over seeds (restoration settings)."""
    import matplotlib.pyplot as plt

    rows = [s for s in settings if s.get("psnr_mean") is not None]
    if not rows:
        return None
    rows = sorted(rows, key=lambda s: s["psnr_mean"])
    means = [s["psnr_mean"] for s in rows]
    err = [[(m - s["psnr_ci"][0]) if s["psnr_ci"] else 0.0 for m, s in zip(means, rows)],
           [(s["psnr_ci"][1] - m) if s["psnr_ci"] else 0.0 for m, s in zip(means, rows)]]
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * len(rows) + 1.2))
    ax.barh(range(len(rows)), means, xerr=err, capsize=3, color="#4c72b0")
    ax.set_yticks(range(len(rows)), [f"{s['label']} (seeds={s['n']})" for s in rows], fontsize=8)
    lo = min(m - e for m, e in zip(means, err[0]))
    ax.set_xlim(lo - 0.5, max(m + e for m, e in zip(means, err[1])) + 0.3)
    ax.set_xlabel("PSNR (dB); bars: mean over seeds, whiskers: 95% t-interval (none with one seed)")
    ax.set_title("Per setting")
    ax.grid(axis="x", alpha=0.3)
    return png(fig)


def _read(path) -> np.ndarray:
    from skimage import io as skio

    image = skio.imread(str(path)).astype(np.float64) / 255.0
    return image if image.ndim == 2 else image[..., :3]


def image_panels(panels: list[tuple[str, np.ndarray]], max_cols: int, tile: tuple[float, float],
                 title_size: int, suptitle: str, suptitle_size: int) -> str:
    """Titled images in a grid (nearest-neighbour display: pixels stay visible)."""
    import matplotlib.pyplot as plt

    cols = min(max_cols, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(tile[0] * cols, tile[1] * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, image) in zip(axes.flat, panels):
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=title_size)
    fig.suptitle(suptitle, fontsize=suptitle_size)
    return png(fig)


def restoration_grid(runs) -> str | None:
    """The first test image restored by each run, whole (thumbnails)."""
    with_samples = [r for r in runs if "output" in r.samples and r.metric("psnr") is not None]
    if not with_samples:
        return None
    first = with_samples[0]
    panels = [("input", first.samples.get("source")), ("target", first.samples.get("target"))]
    panels += [(f"{r.label}\n{r.metric('psnr'):.2f} dB", r.samples["output"]) for r in with_samples]
    panels = [(t, p) for t, p in panels if p is not None]
    return image_panels([(t, _read(p)) for t, p in panels], 4, (3.2, 3.4), 7,
                        "First test image, restored by each run", 9)


def disagreement_window(outputs: list[np.ndarray], target: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the ``size`` square where the runs' squared errors differ most (the
    spread over runs of the per-pixel squared error, summed over the window)."""
    errors = np.stack([((o - target) ** 2).reshape(o.shape[0], o.shape[1], -1).mean(-1) for o in outputs])
    spread = errors.std(axis=0)
    h, w = spread.shape
    size = min(size, h, w)
    integral = np.pad(spread.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size] + integral[:-size, :-size]
    y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(y), int(x)


def zoomed_crops(runs, size: int = 48, max_runs: int = 8) -> str | None:
    """Full-resolution crops of the first test image where the runs disagree most, each with its
    crop PSNR: what a 0.1 dB difference looks like."""

    sel = [r for r in runs if {"output", "target"} <= set(r.samples) and r.metric("psnr") is not None]
    if len(sel) < 2:
        return None
    target = _read(sel[0].samples["target"])
    same = [r for r in sel if _read(r.samples["target"]).shape == target.shape]
    # best and worst first, then the rest, so the extremes are always shown
    same.sort(key=lambda r: -r.metric("psnr"))
    same = same[: max_runs - 1] + ([same[-1]] if len(same) > max_runs - 1 else [])
    if len(same) < 2:
        return None
    outputs = [_read(r.samples["output"]) for r in same]
    y, x = disagreement_window(outputs, target, size)
    s = min(size, target.shape[0], target.shape[1])
    crop = (slice(y, y + s), slice(x, x + s))

    def crop_psnr(image: np.ndarray) -> float:
        mse = float(((image[crop] - target[crop]) ** 2).mean())
        return 10 * math.log10(1.0 / mse) if mse > 0 else float("inf")

    panels = []
    if "source" in same[0].samples:
        panels.append((f"input\n{crop_psnr(_read(same[0].samples['source'])):.2f} dB", _read(same[0].samples["source"])))
    panels.append(("target", target))
    panels += [(f"{r.group_label}\nseed {r.seed}: {crop_psnr(o):.2f} dB (image {r.metric('psnr'):.2f})", o)
               for r, o in zip(same, outputs)]
    return image_panels([(t, im[crop]) for t, im in panels], 5, (2.6, 2.9), 6,
                        f"{s}x{s} crop at ({x}, {y}) of the first test image, full resolution (pixels "
                        "enlarged), where the runs disagree most; PSNR of the crop", 8)


__all__ = ["png", "scatter_quality_cost", "strategy_bars", "restoration_grid", "zoomed_crops",
           "disagreement_window"]
