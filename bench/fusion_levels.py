"""Fusion-level benchmark: single model vs output-level ensemble vs feature fusion, at their cost.

Same protocol and budget as bench/ensemble.py (gray AWGN sigma=25, train Train400, Set12 validates,
BSD68 tests), reusing its cached runs (single models = its members; ensemble = its best strategy on
Set12). Feature fusion (4 branches: plain, dilated, multiscale, residual; width 24) is trained with
each operator for the members' budget. Reports PSNR, SSIM, parameters, FLOPs per 256x256 image and
inference images/s (batch 1, 256x256, eval mode, this machine).

    .venv/bin/python bench/ensemble.py && .venv/bin/python bench/fusion_levels.py [--epochs 3] [--seeds 1 2 3]
Every row has one run per seed; PSNR/SSIM are means over seeds with 95% t-intervals, and each row's
paired per-image BSD68 difference to the best single model (chosen per seed on Set12) has a 95%
bootstrap interval. Writes bench/results/fusion_levels.{json,md}.
"""

import argparse
import json
import math
import time

import torch

from common import (ROOT, evaluate_checkpoint, fmt_ci, fmt_diff, fmt_seed_diff, load_model, machine, paired_by_seed, paired_over_seeds,
                    run_train, seeds_summary, write_results)
from ensemble import STRATEGIES, data_overrides

# `mean` is the fixed-weight operator with uniform weights (fusion=weighted without weights is the same thing)
OPERATORS = ["mean", "learned", "stacked", "attention", "gated"]


def evaluate_tta(run_dir, tta: str) -> dict:
    """A cached run's best checkpoint evaluated on its test set (BSD68) with the test-time
    self-ensemble ``tta``, cached in ``RUN/eval_<tta>/``."""
    return evaluate_checkpoint(run_dir / "checkpoints" / "best.ckpt", run_dir / f"eval_{tta}", [f"tta={tta}"])


@torch.no_grad()
def cost_and_speed(run_dir, repeats: int = 5) -> dict:
    from fusionlab.metrics.cost import count_parameters, flops_per_image

    model, _ = load_model(run_dir / "checkpoints" / "best.ckpt")
    x = torch.rand(1, 1, 256, 256)
    model(x)
    start = time.perf_counter()
    for _ in range(repeats):
        model(x)
    return {"params": count_parameters(model), "flops_256": flops_per_image(model, 1, 256),
            "images_per_s": repeats / (time.perf_counter() - start)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--fuser-epochs", type=int, default=None,
                        help="accepted so run_all.sh can pass the ensemble's budget; checked against ensemble.json")
    parser.add_argument("--samples", type=int, default=6400)
    parser.add_argument("--width", type=int, default=24)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    ens_json = ROOT / "bench" / "results" / "ensemble.json"
    if not ens_json.is_file():
        raise SystemExit("run bench/ensemble.py first (its runs are reused here)")
    ens = json.loads(ens_json.read_text())
    if args.fuser_epochs is not None and ens["args"]["fuser_epochs"] != args.fuser_epochs:
        raise SystemExit(f"bench/results/ensemble.json was made with --fuser-epochs {ens['args']['fuser_epochs']}")
    if ens["args"]["samples"] != args.samples:
        raise SystemExit(f"bench/results/ensemble.json was made with --samples {ens['args']['samples']}: "
                         "rerun bench/ensemble.py with the same --samples")
    if sorted(ens["args"]["seeds"]) != sorted(args.seeds) or ens["args"]["epochs"] != args.epochs:
        raise SystemExit(f"bench/results/ensemble.json was made with seeds {ens['args']['seeds']} and "
                         f"{ens['args']['epochs']} epochs: rerun bench/ensemble.py with the same --seeds/--epochs")
    ens_dir = ROOT / "logs" / "bench" / "ensemble"
    out = ROOT / "logs" / "bench" / "fusion_levels"
    data = data_overrides(args.samples)
    runs: dict[str, list] = {}  # label -> [(run_dir, metrics) per seed]
    for label, seed_runs in ens["runs"].items():
        if label.startswith(("member: ", "single DnCNN")):
            name = label.split(": ", 1)[1] if label.startswith("member") else None
            folder = f"member_{name}" if name else "single_equal_params"
            runs[("single: " + name) if name else label] = [
                (ens_dir / f"s{s}" / folder, m) for s, m in zip(args.seeds, seed_runs)]
    best_ens = max(STRATEGIES, key=lambda k: ens["table"][f"ensemble two-stage: {k}"]["val/psnr"]["mean"])
    runs[f"ensemble (best on Set12: {best_ens})"] = [
        (ens_dir / f"s{s}" / f"fusion_{best_ens}", m)
        for s, m in zip(args.seeds, ens["runs"][f"ensemble two-stage: {best_ens}"])]
    branch_widths = [f"approach.branches.{b}.width={args.width}" for b in ("plain", "dilated", "multiscale", "residual")]
    for op in OPERATORS:
        seed_runs = []
        for seed in args.seeds:
            ov = [*data, "approach=feature_fusion", f"fusion={op}", f"approach.width={args.width}", *branch_widths,
                  f"trainer.max_epochs={args.epochs}", f"seed={seed}"]
            folder = out / f"s{seed}" / f"ff_{op}"
            seed_runs.append((folder, run_train(folder, ov)))
        runs[f"feature fusion: {op}"] = seed_runs
    best = {s: ens["best_member_per_seed"][str(s)] for s in args.seeds}
    baseline = [runs[f"single: {best[s]}"][i][1] for i, s in enumerate(args.seeds)]
    rows, diffs = {}, {}
    for label, seed_runs in runs.items():
        metrics = [m for _, m in seed_runs]
        rows[label] = {**cost_and_speed(seed_runs[0][0]),
                       **{k: seeds_summary(metrics, k) for k in ("val/psnr", "val/ssim", "test/psnr", "test/ssim")},
                       "train_time_s": seeds_summary(metrics, "train_time_s")}
        if any(m is not b for m, b in zip(metrics, baseline)):
            diffs[label] = {**paired_over_seeds(metrics, baseline, "psnr"),
                            "over_seeds": paired_by_seed(metrics, baseline)}
    # test-time fusion: the best single model (per seed) and the best fused model on Set12, each x8
    best_ff = max((k for k in rows if k.startswith("feature fusion")), key=lambda k: rows[k]["val/psnr"]["mean"])
    tta_sources = {"best single x8 (tta=x8)": [runs[f"single: {best[s]}"][i] for i, s in enumerate(args.seeds)],
                   f"{best_ff} x8 (tta=x8)": runs[best_ff]}
    tta_gain = {}
    for label, seed_runs in tta_sources.items():
        plain = [m for _, m in seed_runs]
        x8 = [evaluate_tta(run_dir, "x8") for run_dir, _ in seed_runs]
        base_row = rows[best_ff] if label.startswith("feature") else None
        rows[label] = {"params": base_row["params"] if base_row else float("nan"),  # the best single differs by seed
                       "flops_256": 8 * base_row["flops_256"] if base_row else float("nan"),
                       "images_per_s": float("nan"),
                       "val/psnr": {"n": 0, "mean": float("nan")},
                       **{k: seeds_summary(x8, k) for k in ("test/psnr", "test/ssim")},
                       "train_time_s": seeds_summary(plain, "train_time_s")}
        diffs[label] = {**paired_over_seeds(x8, baseline, "psnr"), "over_seeds": paired_by_seed(x8, baseline)}
        tta_gain[label] = {**paired_over_seeds(x8, plain, "psnr"), "over_seeds": paired_by_seed(x8, plain)}
    ens_row = rows[f"ensemble (best on Set12: {best_ens})"]
    lines = ["## Fusion levels (gray denoising, sigma=25)", "",
             f"Budget as bench/ensemble.py ({args.epochs} epochs x {args.samples} patches per model, seeds "
             f"{', '.join(map(str, args.seeds))}); feature fusion: 4 branches of width {args.width}. PSNR/SSIM: mean "
             "over seeds ± half-width of the 95% t-interval. vs best single: paired per-image BSD68 PSNR difference "
             "to the best single model (chosen per seed on Set12), averaged over seeds, mean [95% bootstrap "
             "interval over the 68 images]; x8 rows: the checkpoints above evaluated with tta=x8 (Set12 not rerun); over seeds: each seed's difference of mean PSNRs, paired by seed, mean [95% "
             "t-interval] (includes training randomness); (n.d.) = not distinguishable. FLOPs per 256x256 image (torch FlopCounterMode); images/s: "
             f"batch 1 of 256x256 on this machine's CPU ({torch.get_num_threads()} threads).", "",
             "| model | params | GFLOPs/img | FLOPs vs ensemble | img/s | Set12 PSNR | BSD68 PSNR | BSD68 SSIM | "
             "BSD68 PSNR vs best single (per image) | over seeds | train time s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    def cell(value: float, fmt: str) -> str:
        return "–" if math.isnan(value) else format(value, fmt)

    for label, r in rows.items():
        d = diffs.get(label)
        lines.append(f"| {label} | {cell(r['params'], ',')} | {cell(r['flops_256'] / 1e9, '.2f')} | "
                     f"{cell(r['flops_256'] / ens_row['flops_256'], '.0%')} | {cell(r['images_per_s'], '.2f')} | "
                     f"{fmt_ci(r['val/psnr']) if r['val/psnr']['n'] else '–'} | {fmt_ci(r['test/psnr'])} | "
                     f"{fmt_ci(r['test/ssim'], 4)} | {fmt_diff(d) if d else 'best single'} | "
                     f"{fmt_seed_diff(d['over_seeds']) if d else ''} | "
                     f"{r['train_time_s']['mean']:.0f} |")
    ff_vs_ens = {}
    ens_metrics = [m for _, m in runs[f"ensemble (best on Set12: {best_ens})"]]
    for op in ("attention", "gated"):
        label = f"feature fusion: {op}"
        ff_metrics = [m for _, m in runs[label]]
        ff_vs_ens[label] = {**paired_over_seeds(ff_metrics, ens_metrics, "psnr"),
                            "over_seeds": paired_by_seed(ff_metrics, ens_metrics)}
    goal = [label for label, d in ff_vs_ens.items()
            if d["mean"] >= 0 and rows[label]["flops_256"] <= 0.6 * ens_row["flops_256"]]
    lines += ["", "Feature fusion vs the best ensemble (paired BSD68 PSNR, per image; over seeds): " + "; ".join(
        f"{label}: {fmt_diff(d)}; {fmt_seed_diff(d['over_seeds'])}" for label, d in ff_vs_ens.items()) + ".",
              "Goal (feature fusion with attention or gated reaches the ensemble's BSD68 PSNR at <= 60% of its "
              f"FLOPs): {'met on the mean by ' + ', '.join(goal) if goal else 'not met in this run'} (whether the "
              "difference is distinguishable is in the line above).", "",
              "Test-time self-ensemble (tta=x8: the 8 flips/rotations restored, inverted and averaged; 8x the FLOPs) "
              "vs the same checkpoints without it (paired BSD68 PSNR, per image; over seeds): " + "; ".join(
                  f"{label}: {fmt_diff(d)}; {fmt_seed_diff(d['over_seeds'])}" for label, d in tta_gain.items()) + ".",
              "Goal (x8 adds >= 0.1 dB to a single model on BSD68): " + (
                  "met" if tta_gain["best single x8 (tta=x8)"]["mean"] >= 0.1 else "not met") + " on the mean.", ""]
    write_results("fusion_levels", {"args": vars(args), "rows": rows, "paired_vs_best_single": diffs,
                                    "tta_x8_vs_plain": tta_gain,
                                    "feature_fusion_vs_ensemble": ff_vs_ens, "ensemble_strategy": best_ens,
                                    "machine": machine()}, "\n".join(lines))


if __name__ == "__main__":
    main()
