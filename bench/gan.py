"""Adversarial approaches on the CPU: wall time of the two "done when" experiments, and a mixture of
generators against one generator with about the same total parameters.

    .venv/bin/python bench/gan.py            # results -> bench/results/gan.{json,md}

FID needs the standard Inception weights, which this machine does not have (no network): the
generation comparison therefore reports ``fid_proxy``/``kid_proxy`` (a fixed random network's
feature distance, *not* FID, not comparable with published numbers) and the nearest-training-image
distance. With the weights (``python -m fusionlab.metrics.fid prefetch``) run with ``--fid`` to get
real FID/KID.
"""

import argparse

from common import ROOT, machine, run_train, write_results

RUNS = ROOT / "logs" / "bench" / "gan"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fid", action="store_true", help="standard FID (needs the Inception weights)")
    args = parser.parse_args()
    extractor = "inception" if args.fid else "random_proxy"
    fid = "fid" if args.fid else "fid_proxy"
    kid = fid.replace("fid", "kid")
    fid_opts = [f"metrics.fid.extractor={extractor}", "metrics.fid.min_samples=50"]
    rows = {}
    style = run_train(RUNS / "style_default", ["experiment=style_default"])
    rows["style_default (gan_style, adain)"] = style
    single = run_train(RUNS / "gan_w32", ["experiment=generate_faces", "approach.generator.width=32", *fid_opts])
    rows["gan: 1 generator, width 32"] = single
    mix = run_train(RUNS / "gan_mixture_3xw16", ["experiment=generate_faces", "approach=gan_mixture",
                                                   "approach.generator.width=16", *fid_opts])
    rows["gan_mixture: 3 generators, width 16, cls 0.5"] = mix

    lines = ["| run | params (G + D) | train time (s) | test metrics |", "|---|---|---|---|"]
    for name, m in rows.items():
        if "test/content_ssim" in m:
            shown = f"content SSIM {m['test/content_ssim']:.3f}, style distance {m['test/style_distance']:.4f}"
        else:
            shown = (f"{fid} {m.get(f'test/{fid}', float('nan')):.2f}, {kid} {m.get(f'test/{kid}', float('nan')):.3f}, "
                     f"nn_distance {m['test/nn_distance']:.4f} (train spacing {m['test/nn_distance_train']:.4f})")
        lines.append(f"| {name} | {m['params']:,} | {m['train_time_s']:.0f} | {shown} |")
    note = ("\n`params` counts generator + discriminator (not the EMA copy). "
            + ("" if args.fid else f"`{fid}` is a random-network distance for relative comparison on this machine, "
               "not FID."))
    write_results("gan", {"machine": machine(), "extractor": extractor,
                          "rows": {k: {kk: v for kk, v in m.items() if kk != "config"} for k, m in rows.items()}},
                  "\n".join(lines) + "\n" + note + "\n")
    print("grids:", *(str(p) for p in sorted(RUNS.glob("*/samples/*epoch*.png"))[-3:]))


if __name__ == "__main__":
    main()
