"""Fusion-level benchmark: single model vs output-level ensemble vs feature fusion, at their cost.

Same protocol and budget as bench/ensemble.py (gray AWGN sigma=25, train Train400, Set12 validates,
BSD68 tests), reusing its cached runs (single models = its members; ensemble = its best strategy on
Set12). Feature fusion (4 branches: plain, dilated, multiscale, residual; width 24) is trained with
each operator for the members' budget. Reports PSNR, SSIM, parameters, FLOPs per 256x256 image and
inference images/s (batch 1, 256x256, eval mode, this machine).

    .venv/bin/python bench/ensemble.py && .venv/bin/python bench/fusion_levels.py
Writes bench/results/fusion_levels.{json,md}.
"""

import argparse
import json
import time

import torch

from common import ROOT, load_model, machine, run_train, write_results
from ensemble import data_overrides

OPERATORS = ["weighted", "learned", "stacked", "attention", "gated"]


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
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--samples", type=int, default=6400)
    parser.add_argument("--width", type=int, default=24)
    args = parser.parse_args()
    ens_json = ROOT / "bench" / "results" / "ensemble.json"
    if not ens_json.is_file():
        raise SystemExit("run bench/ensemble.py first (its runs are reused here)")
    ens = json.loads(ens_json.read_text())
    ens_dir = ROOT / "logs" / "bench" / "ensemble"
    out = ROOT / "logs" / "bench" / "fusion_levels"
    data = data_overrides(args.samples)
    runs = {}
    for name in ens["members"]:
        runs[f"single: {name}"] = (ens_dir / f"member_{name}", ens["members"][name])
    runs["single: DnCNN, ensemble's params"] = (ens_dir / "single_equal_params", ens["single_equal_params"])
    best = max(ens["strategies"], key=lambda k: ens["strategies"][k]["val/psnr"])
    runs[f"ensemble (best on Set12: {best})"] = (ens_dir / f"fusion_{best}", ens["strategies"][best])
    branch_widths = [f"approach.branches.{b}.width={args.width}" for b in ("plain", "dilated", "multiscale", "residual")]
    for op in OPERATORS:
        ov = [*data, "approach=feature_fusion", f"fusion={op}", f"approach.width={args.width}", *branch_widths,
              f"trainer.max_epochs={args.epochs}"]
        if op == "weighted":
            ov.append("fusion.weights=[1,1,1,1]")
        runs[f"feature fusion: {op}"] = (out / f"ff_{op}", run_train(out / f"ff_{op}", ov))
    rows = {}
    for label, (run_dir, m) in runs.items():
        rows[label] = {**cost_and_speed(run_dir), **{k: m[k] for k in ("val/psnr", "val/ssim", "test/psnr", "test/ssim")}}
    ens_row = rows[f"ensemble (best on Set12: {best})"]
    lines = ["## Fusion levels (gray denoising, sigma=25)", "",
             f"Budget as bench/ensemble.py; feature fusion: 4 branches of width {args.width}, "
             f"{args.epochs} epochs x {args.samples} patches. FLOPs per 256x256 image (torch FlopCounterMode); "
             f"images/s: batch 1 of 256x256 on this machine's CPU ({torch.get_num_threads()} threads).", "",
             "| model | params | GFLOPs/img | FLOPs vs ensemble | img/s | Set12 PSNR | Set12 SSIM | BSD68 PSNR | BSD68 SSIM |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, r in rows.items():
        lines.append(f"| {label} | {r['params']:,} | {r['flops_256'] / 1e9:.2f} | {r['flops_256'] / ens_row['flops_256']:.0%} | "
                     f"{r['images_per_s']:.2f} | {r['val/psnr']:.3f} | {r['val/ssim']:.4f} | {r['test/psnr']:.3f} | {r['test/ssim']:.4f} |")
    goal = [label for label, r in rows.items() if label.startswith("feature fusion: ") and
            label.split(": ")[1] in ("attention", "gated") and r["test/psnr"] >= ens_row["test/psnr"]
            and r["flops_256"] <= 0.6 * ens_row["flops_256"]]
    lines += ["", "Goal (feature fusion with attention or gated reaches the ensemble's BSD68 PSNR at <= 60% of its "
              f"FLOPs): {'met by ' + ', '.join(goal) if goal else 'not met in this run'}.", ""]
    write_results("fusion_levels", {"args": vars(args), "rows": rows, "ensemble_strategy": best, "machine": machine()},
                  "\n".join(lines))


if __name__ == "__main__":
    main()
