"""Super-resolution x2/x3/x4 under the SRCNN protocol: bicubic, the project's single, ensemble and
feature-fusion models (trained within a CPU budget), SRCNN as published.

Protocol: ``experiment=sr_x{2,3,4}`` (train the Y channel of CBSD432, validate Set5, test Set14);
MATLAB-compatible bicubic degradation (``fusionlab/tasks/imresize.py``); PSNR/SSIM on Y with the
border cropped by the scale. Each model trains under ``budget=time`` for --minutes training minutes on
this machine (validation not counted, cosine learning rate over the budget), then is tested on Set14
(the experiment's test set) and evaluated on Set5 (``evaluate.py data.test_dir=.../Set5``). The
bicubic row is the degraded input of those very runs. vs bicubic: paired per-image PSNR difference,
mean [95% bootstrap interval]. SRCNN's Set5 figures are quoted from its paper (Dong et al., TPAMI
2016), not measured; SRCNN trained for days on a GPU, these models for minutes on 2 CPU cores.

    .venv/bin/python bench/superres.py [--minutes 3] [--scales 2 3 4] [--seed 1]
One seed (each row is --minutes of CPU time). Writes bench/results/superres.{json,md}; runs are
cached under logs/bench/superres/, keyed on their overrides and the code version.
"""

import argparse

import numpy as np

from common import SHARED, ROOT, evaluate_checkpoint, fmt_diff, machine, run_train, write_results

from fusionlab.reporting.stats import paired_difference

MODELS = {  # label -> overrides on top of experiment=sr_xN
    "single (ResNet)": [],
    "output ensemble (DnCNN + U-Net + ResNet, gated, joint)": ["approach=ensemble", "fusion=gated"],
    "feature fusion (4 branches, stacked)": ["approach=feature_fusion", "fusion=stacked"],
}
SRCNN_SET5 = {2: 36.66, 3: 32.75, 4: 30.48}  # SRCNN paper (TPAMI 2016), Set5, Y; quoted
BICUBIC_SET5 = {2: 33.66, 3: 30.39, 4: 28.42}  # same paper, quoted (tests/test_sr_protocol.py reproduces them)


def budget(minutes: float) -> list[str]:
    return ["budget=time", f"callbacks.budget.minutes={minutes:g}", "trainer.max_epochs=1000",
            "approach.scheduler=null"]


def summary(records: list[dict]) -> dict:
    psnr, inp = [r["psnr"] for r in records], [r["psnr_input"] for r in records]
    return {"psnr": float(np.mean(psnr)), "ssim": float(np.mean([r["ssim"] for r in records])),
            "bicubic_psnr": float(np.mean(inp)), "bicubic_ssim": float(np.mean([r["ssim_input"] for r in records])),
            "vs_bicubic": paired_difference(psnr, inp), "n": len(records)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="training minutes per model and scale")
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4], choices=[2, 3, 4])
    parser.add_argument("--models", nargs="+", default=list(range(len(MODELS))), type=int,
                        help="indices into MODELS (0 single, 1 ensemble, 2 feature fusion)")
    parser.add_argument("--samples", type=int, default=3200, help="patches per epoch (validation after each)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    out = ROOT / "logs" / "bench" / "superres"
    labels = [list(MODELS)[i] for i in args.models]
    rows: dict[int, dict] = {}
    for scale in args.scales:
        rows[scale] = {}
        for i, label in zip(args.models, labels):
            folder = out / f"x{scale}" / f"model{i}"
            m = run_train(folder, [f"experiment=sr_x{scale}", *MODELS[label], f"seed={args.seed}",
                                   f"data.samples_per_epoch={args.samples}", "data.num_workers=0",
                                   "metrics.fid.extractor=none", "trainer.accelerator=cpu", *budget(args.minutes)])
            set5 = evaluate_checkpoint(folder / "checkpoints" / "last.ckpt", folder / "eval_set5",
                                       [f"data.test_dir={SHARED / 'sr' / 'Set5'}"])
            rows[scale][label] = {"Set5": summary(set5["per_image"]), "Set14": summary(m["per_image"]),
                                  "params": m["params"], "train_time_s": m["train_time_s"], "epochs": m["epochs"],
                                  "flops_256": m.get("flops_per_image_256"), "code_version": m["code_version"]}
    lines = ["## Super-resolution, SRCNN protocol (PSNR dB on Y, border cropped by the scale)", "",
             f"Trained here on the Y channel of CBSD432 for {args.minutes:g} training minutes per model and scale on "
             f"this 2-core CPU (`budget=time`, cosine learning rate over the budget, {args.samples} patches 48x48 per "
             f"epoch, seed {args.seed}); last checkpoint tested. Bicubic: the MATLAB-compatible degraded input of "
             "the same runs. vs bicubic: paired per-image PSNR difference, mean [95% bootstrap interval]. SRCNN: "
             "Set5 figures quoted from its paper (trained for days on a GPU), not measured here.", ""]
    for scale in args.scales:
        first = next(iter(rows[scale].values()))
        lines += [f"### x{scale}", "",
                  "| method | params | epochs | Set5 PSNR | Set5 SSIM | Set5 vs bicubic | Set14 PSNR | Set14 SSIM "
                  "| Set14 vs bicubic |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
                  f"| bicubic (measured) | – | – | {first['Set5']['bicubic_psnr']:.2f} | "
                  f"{first['Set5']['bicubic_ssim']:.4f} | reference | {first['Set14']['bicubic_psnr']:.2f} | "
                  f"{first['Set14']['bicubic_ssim']:.4f} | reference |",
                  f"| bicubic (published, SRCNN paper) | – | – | {BICUBIC_SET5[scale]:.2f} | | | | | |",
                  f"| SRCNN (published, not measured) | – | – | {SRCNN_SET5[scale]:.2f} | | | | | |"]
        for label, r in rows[scale].items():
            lines.append(f"| {label} | {r['params']:,} | {r['epochs']} | {r['Set5']['psnr']:.2f} | "
                         f"{r['Set5']['ssim']:.4f} | {fmt_diff(r['Set5']['vs_bicubic'])} | {r['Set14']['psnr']:.2f} | "
                         f"{r['Set14']['ssim']:.4f} | {fmt_diff(r['Set14']['vs_bicubic'])} |")
        lines.append("")
    write_results("superres", {"args": vars(args), "rows": {str(s): r for s, r in rows.items()},
                               "published": {"SRCNN_Set5": SRCNN_SET5, "bicubic_Set5": BICUBIC_SET5},
                               "machine": machine()}, "\n".join(lines))


if __name__ == "__main__":
    main()
