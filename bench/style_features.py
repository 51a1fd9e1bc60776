"""Style transfer without downloaded weights: the discriminator's feature space against fixed random
multi-scale filter banks (approach.features=random_multiscale), on the embedded default and on the
shared paintings.

Each (experiment, feature space, seed) is trained with the experiment's own budget and tested on
its fixed test pairs. Reported: content SSIM (gray SSIM of output vs content), style distance in
the fixed yardstick space shared by all runs (``style_distance_fixed``: random banks with another
seed and other sizes than the training space's defaults; the same family as random_multiscale, so
read it with that bias in mind), the same distance for the unstylised content (the level a
stylisation must go below), and the last validation grid (content | style | output per row) of the
first seed, copied to docs/.

    .venv/bin/python bench/style_features.py [--experiments style_default style_paintings] [--seeds 1]
Goal (issue): on style_default's test pairs, content SSIM >= 0.5 with a lower style distance than the
unstylised content. Writes bench/results/style_features.{json,md}; runs are cached under
logs/bench/style_features/, keyed on their overrides and the code version.
"""

import argparse
import json
import shutil

from common import ROOT, fmt_ci, machine, run_train, seeds_summary, write_results

from fusionlab.utils.version import source_hash

SPACES = ["discriminator", "random_multiscale"]
KEYS = ("test/content_ssim", "test/style_distance_fixed", "test/style_distance_content", "train_time_s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", nargs="+", default=["style_default", "style_paintings"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    args = parser.parse_args()
    out = ROOT / "logs" / "bench" / "style_features"
    table, runs = {}, {}
    for exp in args.experiments:
        for space in SPACES:
            label = f"{exp}: {space}"
            runs[label] = []
            for seed in args.seeds:
                folder = out / exp / space / f"s{seed}"
                runs[label].append(run_train(folder, [f"experiment={exp}", f"approach.features={space}", f"seed={seed}",
                                                      "metrics.fid.extractor=none", "trainer.accelerator=cpu"]))
                grids = sorted((folder / "samples").glob("val_epoch*.png"))
                if seed == args.seeds[0] and grids:
                    shutil.copy(grids[-1], ROOT / "docs" / f"style_{exp}_{space}.png")
            table[label] = {k: seeds_summary(runs[label], k) for k in KEYS}
    code = {label: source_hash(rs[0]["code_version"]) for label, rs in runs.items()}
    # rows of experiments not run now are kept from the previous results, marked with their code version
    previous = ROOT / "bench" / "results" / "style_features.json"
    if previous.is_file():
        prev = json.loads(previous.read_text())
        for label, row in prev["rows"].items():
            if label.split(":")[0] not in args.experiments:
                table[label], runs[label] = row, prev["runs"][label]
                code[label] = prev.get("row_code", {}).get(label, source_hash(prev["code_version"]))
    lines = ["## Style transfer: feature spaces without downloaded weights", "",
             f"Each experiment's own budget; seeds {', '.join(map(str, args.seeds))} (mean ± half-width of the 95% "
             "t-interval when more than one). Content SSIM: gray SSIM of output vs content (higher keeps more "
             "content). Style distance: mean/std distance to the style image in one fixed random multi-scale space "
             "shared by all runs (lower is closer to the style); 'content level' is that distance for the unstylised "
             "content.", "",
             "| experiment: feature space | content SSIM | style distance | content level | train s | code |",
             "|---|---:|---:|---:|---:|---|"]
    for label, r in table.items():
        lines.append(f"| {label} | {fmt_ci(r['test/content_ssim'])} | {fmt_ci(r['test/style_distance_fixed'], 4)} | "
                     f"{fmt_ci(r['test/style_distance_content'], 4)} | {r['train_time_s']['mean']:.0f} | {code[label]} |")
    verdicts = []
    for label, r in table.items():
        if label.startswith("style_default"):
            ok = r["test/content_ssim"]["mean"] >= 0.5 and \
                r["test/style_distance_fixed"]["mean"] < r["test/style_distance_content"]["mean"]
            verdicts.append(f"{label}: {'met' if ok else 'not met'}")
    lines += ["", "Goal (style_default: content SSIM >= 0.5 and a style distance below the content level): "
              + "; ".join(verdicts) + ".", ""]
    write_results("style_features", {"args": vars(args), "rows": table, "row_code": code,
                                     "runs": {k: [{m: v for m, v in r.items() if m.startswith(("test/", "val/", "train"))}
                                                  for r in rs] for k, rs in runs.items()},
                                     "machine": machine()}, "\n".join(lines))


if __name__ == "__main__":
    main()
