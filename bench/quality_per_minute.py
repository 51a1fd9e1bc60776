"""Quality per minute of CPU training: BSD68 PSNR against training wall-clock minutes, per fusion level.

Gray AWGN sigma=25 (train Train400, validate Set12, test BSD68). Every model trains under
``budget=time``: a budget of training minutes on this machine (validation not counted), the learning
rate annealed by a cosine over the budget, and a checkpoint at each mark. Each mark's checkpoint is
then tested on BSD68 (the weights at that minute, no selection on the test set). Levels:
  - single model: ResNet (the best single backbone of bench/fusion_levels at its budget);
  - output level: the mean ensemble of DnCNN, U-Net and ResNet members, each trained for a third of
    the budget; a point at t minutes fuses the members' checkpoints at t/3 minutes each;
  - feature level: ``experiment=denoise_fast_cpu`` (4 encoder branches, stacked fusion);
  - weight level: not as a curve (bench/weight_fusion.py measures soups, SWA and EMA at a fixed
    budget; each extra curve costs --minutes of CPU);
  - test time: the feature-level model's final checkpoint under ``tta=x8`` (8x the inference).

    .venv/bin/python bench/quality_per_minute.py [--minutes 20] [--seed 1]
One seed (each curve is --minutes of CPU time; the machine's load is recorded with every run).
Writes bench/results/quality_per_minute.{json,md} and docs/quality_per_minute.png; runs are cached
under logs/bench/quality_per_minute/, keyed on their overrides and the code version.
"""

import argparse
import os

from common import ROOT, evaluate_checkpoint, machine, run_train, write_results
from ensemble import MEMBERS, data_overrides

from fusionlab.callbacks.budget import mark_name

FF = ["experiment=denoise_fast_cpu", "trainer.accelerator=cpu"]
GOAL_DB, BM3D_DB = 28.90, 28.63  # the goal; BM3D as measured here by bench/denoise_protocol.py


def marks(minutes: float) -> list[float]:
    return [m for m in (1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60) if m < minutes] + [minutes]


def budget(minutes: float) -> list[str]:
    ms = ",".join(f"{m:g}" for m in marks(minutes))
    return ["budget=time", f"callbacks.budget.minutes={minutes:g}", f"callbacks.budget.marks=[{ms}]",
            "trainer.max_epochs=1000", "approach.scheduler=null"]


def curve(run_dir, minutes: float) -> list[dict]:
    """BSD68 PSNR/SSIM of each mark checkpoint of a budget run."""
    points = []
    for m in marks(minutes):
        ckpt = run_dir / "checkpoints" / mark_name(m)
        r = evaluate_checkpoint(ckpt, run_dir / f"eval_t{m:g}")
        points.append({"minutes": m, "psnr": r["test/psnr"], "ssim": r["test/ssim"]})
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--samples", type=int, default=6400, help="patches per epoch (validation after each)")
    args = parser.parse_args()
    out = ROOT / "logs" / "bench" / "quality_per_minute"
    data = [*data_overrides(args.samples), f"seed={args.seed}"]
    curves, runs = {}, {}

    def train(name, overrides):
        metrics = run_train(out / name, overrides)
        runs[name] = {"train_time_s": metrics["train_time_s"], "params": metrics["params"],
                      "flops_256": metrics.get("flops_per_image_256"), "load_avg_after": os.getloadavg(),
                      "overrides": metrics["overrides"]}
        return out / name

    # feature level first: it is the recipe (experiment=denoise_fast_cpu)
    ff = train("feature_fusion", [*FF, f"seed={args.seed}", f"data.samples_per_epoch={args.samples}",
                                  *budget(args.minutes)])
    curves["feature fusion: stacked (denoise_fast_cpu)"] = curve(ff, args.minutes)
    single = train("single_resnet", [*data, *MEMBERS["resnet"], *budget(args.minutes)])
    curves["single: resnet"] = curve(single, args.minutes)
    third = args.minutes / 3
    member_dirs = {name: train(f"member_{name}", [*data, *opts, *budget(third)]) for name, opts in MEMBERS.items()}
    ens_points = []
    for m in marks(third):
        ckpts = [str(d / "checkpoints" / mark_name(m)) for d in member_dirs.values()]
        ov = [*data, "approach=ensemble", "fusion=mean", "approach.mode=two_stage",
              f"approach.member_checkpoints=[{','.join(ckpts)}]", "trainer.max_epochs=1",
              "data.samples_per_epoch=32", "trainer.limit_val_batches=1"]
        for i, (name, opts) in enumerate(MEMBERS.items()):
            ov += [f"model@approach.members.m{i}={name}",
                   *[f"approach.members.m{i}.{o.split('.', 1)[1]}" for o in opts[1:]]]
        r = run_train(out / f"ensemble_t{m:g}", ov)
        ens_points.append({"minutes": 3 * m, "psnr": r["test/psnr"], "ssim": r["test/ssim"]})
    curves["output ensemble (mean of 3, each trained a third)"] = ens_points
    x8 = evaluate_checkpoint(ff / "checkpoints" / mark_name(args.minutes), ff / "eval_x8", ["tta=x8"])
    tta = {"minutes": args.minutes, "psnr": x8["test/psnr"], "ssim": x8["test/ssim"]}

    finals = {label: pts[-1] for label, pts in curves.items()}
    best = max(finals, key=lambda k: finals[k]["psnr"])
    reach = {label: next((p["minutes"] for p in pts if p["psnr"] >= GOAL_DB), None) for label, pts in curves.items()}
    all_marks = sorted({p["minutes"] for pts in curves.values() for p in pts})
    lines = ["## Quality per minute of CPU training (gray denoising, sigma=25, BSD68)", "",
             f"Budget runs of {args.minutes:g} training minutes on this machine ({machine()['threads']} threads; "
             f"validation not counted), seed {args.seed}, patches 40x40, batch 32, Adam 1e-3 with a cosine over the "
             "budget. Each cell: BSD68 PSNR (dB) of the checkpoint taken at that many training minutes. Output "
             "ensemble: the mean of 3 members each trained for a third of the minutes. One seed: differences below "
             "about 0.05 dB are within seed noise at this budget (bench/fusion_levels over-seeds intervals).", "",
             "| level | " + " | ".join(f"{m:g} min" for m in all_marks) + f" | reaches {GOAL_DB} dB at |",
             "|---|" + "---:|" * (len(all_marks) + 1)]
    for label, pts in curves.items():
        by = {p["minutes"]: p["psnr"] for p in pts}
        cells = [f"{by[m]:.2f}" if m in by else "" for m in all_marks]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {reach[label] if reach[label] else 'no'} |")
    met = finals[best]["psnr"] >= GOAL_DB
    lines += ["", f"Test time: the feature-fusion model's {args.minutes:g}-minute checkpoint under tta=x8: "
              f"{tta['psnr']:.2f} dB ({tta['psnr'] - finals['feature fusion: stacked (denoise_fast_cpu)']['psnr']:+.2f} dB, "
              "8x the inference FLOPs, no extra training).",
              f"Goal (>= {GOAL_DB} dB on BSD68 within {args.minutes:g} minutes of CPU training; BM3D {BM3D_DB} dB): best "
              f"recipe {best}, {finals[best]['psnr']:.2f} dB: {'met' if met else 'not met'}"
              + (f"; with tta=x8 at test time {tta['psnr']:.2f} dB" if not met else "") + ".",
              "", "![quality per minute](../../docs/quality_per_minute.png)", ""]
    plot(curves, tta, args.minutes)
    write_results("quality_per_minute", {"args": vars(args), "curves": curves, "tta_x8": tta, "runs": runs,
                                         "goal_db": GOAL_DB, "best": best, "machine": machine()}, "\n".join(lines))


def plot(curves: dict, tta: dict, minutes: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, pts in curves.items():
        ax.plot([p["minutes"] for p in pts], [p["psnr"] for p in pts], marker="o", label=label)
    ax.scatter([tta["minutes"]], [tta["psnr"]], marker="*", s=140, color="k", zorder=5,
               label="feature fusion, tta=x8 at test")
    ax.axhline(GOAL_DB, ls="--", color="tab:red", lw=1, label=f"goal {GOAL_DB} dB")
    ax.axhline(BM3D_DB, ls=":", color="gray", lw=1, label=f"BM3D {BM3D_DB} dB (measured here)")
    ax.set_xlabel("training minutes (2-core CPU)")
    ax.set_ylabel("BSD68 PSNR (dB), sigma=25")
    ax.set_xlim(0, minutes * 1.03)
    lows = [p["psnr"] for pts in curves.values() for p in pts]
    ax.set_ylim(max(min(lows), 25.0) - 0.2, max(max(lows), tta["psnr"], GOAL_DB) + 0.2)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.savefig(ROOT / "docs" / "quality_per_minute.png", dpi=110, bbox_inches="tight")
    plt.close(fig)


if __name__ == "__main__":
    main()
