"""Generation benchmark on stacked digits: does a mixture or an output-level fusion of generators
cover more modes than one DCGAN at the same generator parameters and epochs?

Data: ``data=stacked_digits`` (three of scikit-learn's digits as R, G, B: 1,000 modes), 16 px.
Rows (3 seeds each, every row trained for --epochs epochs of --samples images):
  - single DCGAN, generator width chosen so that its parameters equal the K-member rows' total;
  - VAE (decoder of that same width, encoder on top);
  - mixture of K DCGANs (``approach=gan_mixture``, members of width w_K, learned pi);
  - mixture of K-1 DCGANs + the VAE decoder of width w_K trained first on its own, frozen;
  - output-level fusion, joint (``approach=generator_fusion``, K DCGANs of width w_K, learned weights);
  - output-level fusion, two-stage (K-1 single DCGANs of width w_K and the VAE decoder, each trained
    on its own, frozen; a gated fuser and the discriminator trained for --fuser-epochs).
Metrics over --test-samples fixed-latent samples (``fusionlab.metrics.digits``): modes covered of
1,000, KL(histogram || uniform), fd_digits, precision, recall, nearest-training distance, and the
training wall time (the members' own training is added to the two-stage and GAN+VAE rows).

    .venv/bin/python bench/generation.py [--epochs 10] [--samples 6400] [--members 3] [--seeds 1 2 3]
Mean over seeds ± half-width of the 95% t-interval. Writes bench/results/generation_<data>.{json,md}
and one picture per model family to docs/generation_<data>_*.png (real digits: generation_real_<data>.png); runs are cached under logs/bench/generation/,
keyed on their overrides and the code version.
"""

import argparse
import shutil

from common import ROOT, fmt_ci, machine, run_train, seeds_summary, write_results



def declared_metrics(rows: dict[str, list[dict]]) -> list:
    """The evaluator's metric specs (written into every run's metrics.json) that every run has:
    the table's columns, in the evaluator's order, with their direction and digits."""
    from fusionlab.reporting.paired import specs_of

    runs = [r for rs in rows.values() for r in rs]
    return [s for s in specs_of(runs[0]).values() if all(isinstance(r.get(f"test/{s.name}"), (int, float)) for r in runs)]


def generator_params(width: int, latent: int = 64, size: int = 16, channels: int = 3) -> int:
    from fusionlab.models import DCGANGenerator

    return sum(p.numel() for p in DCGANGenerator(latent, channels, size, width).parameters())


def member_width(total: int, k: int, channels: int) -> int:
    """The width whose generator has about ``total / k`` parameters."""
    return min(range(2, 257), key=lambda w: abs(k * generator_params(w, channels=channels) - total))


def real_grid(data: str, path) -> None:
    """64 training images (8x8), enlarged like the runs' grids."""
    from fusionlab.data.digits import DigitsDataModule
    from fusionlab.utils.grid import enlarge, make_grid, save_png

    images = DigitsDataModule(stacked=data == "stacked_digits", image_size=16, reference_count=64).load()[:64]
    rows = [list(images[i:i + 8]) for i in range(0, 64, 8)]
    save_png(make_grid(enlarge(rows, 64), tile=64), path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--fuser-epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=6400)
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--width", type=int, default=32, help="the single DCGAN's generator width")
    parser.add_argument("--test-samples", type=int, default=10000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--data", choices=["stacked_digits", "digits"], default="stacked_digits")
    args = parser.parse_args()
    channels, n_modes = (3, 1000) if args.data == "stacked_digits" else (1, 10)
    k, total = args.members, generator_params(args.width, channels=channels)
    wk = member_width(total, k, channels)
    data = ["task=generate", f"data={args.data}", "data.image_size=16", f"data.samples_per_epoch={args.samples}",
            f"data.test_samples={args.test_samples}", "data.val_samples=1000", "metrics.fid.extractor=none",
            "trainer.accelerator=cpu"]
    epochs = [f"trainer.max_epochs={args.epochs}"]
    out = ROOT / "logs" / "bench" / "generation" / args.data
    rows: dict[str, list[dict]] = {}
    dirs: dict[str, object] = {}
    for seed in args.seeds:
        s = [f"seed={seed}"]
        base = out / f"s{seed}"

        def run(label, folder, overrides, extra_time=0.0):
            m = run_train(base / folder, [*data, *s, *overrides])
            rows.setdefault(label, []).append({**m, "train_time_s": m["train_time_s"] + extra_time})
            dirs.setdefault(label, base / folder)
            return m

        run("single DCGAN", "gan", ["approach=gan", f"approach.generator.width={args.width}", *epochs])
        run("VAE", "vae", ["approach=vae", f"approach.generator.width={args.width}", *epochs])
        members = [f"+generator@approach.generators.gan{i}=dcgan" for i in range(k)] + \
            [f"approach.generators.gan{i}.width={wk}" for i in range(k)]
        run(f"mixture of {k} DCGANs", "mixture", ["approach=gan_mixture", f"approach.num_generators={k}", *members,
                                                   "approach.learn_weights=true", *epochs])
        # the members trained on their own, for the GAN+VAE mixture and the two-stage fusion
        small_vae = run_train(base / "vae_member", [*data, *s, "approach=vae", f"approach.generator.width={wk}", *epochs])
        gans = [run_train(base / f"gan_member{i}", [*data, f"seed={100 * seed + i}", "approach=gan",
                                                     f"approach.generator.width={wk}", *epochs]) for i in range(k - 1)]
        vae_ckpt = str(base / "vae_member" / "checkpoints" / "last.ckpt")
        hetero = [f"+generator@approach.generators.gan{i}=dcgan" for i in range(k - 1)] + \
            [f"approach.generators.gan{i}.width={wk}" for i in range(k - 1)] + \
            ["+generator@approach.generators.vae=dcgan", f"approach.generators.vae.width={wk}"]
        nulls = ",".join(["null"] * (k - 1))
        run(f"mixture of {k - 1} DCGANs + VAE decoder (frozen)", "mixture_vae",
            ["approach=gan_mixture", f"approach.num_generators={k}", *hetero, "approach.learn_weights=true",
             f"approach.member_checkpoints=[{nulls},{vae_ckpt}]", "approach.frozen_members=[vae]", *epochs],
            extra_time=small_vae["train_time_s"])
        fusion_members = [f"~approach.generators.g{i}" for i in (1, 2)] + \
            [f"+generator@approach.generators.gan{i}=dcgan" for i in range(k)] + \
            [f"approach.generators.gan{i}.width={wk}" for i in range(k)]
        run("output fusion, joint (learned weights)", "fusion_joint",
            ["approach=generator_fusion", "fusion=learned", *fusion_members, *epochs])
        two_stage = [f"~approach.generators.g{i}" for i in (1, 2)] + \
            [f"+generator@approach.generators.gan{i}=dcgan" for i in range(k - 1)] + \
            [f"approach.generators.gan{i}.width={wk}" for i in range(k - 1)] + \
            ["+generator@approach.generators.vae=dcgan", f"approach.generators.vae.width={wk}"]
        ckpts = [str(base / f"gan_member{i}" / "checkpoints" / "last.ckpt") for i in range(k - 1)] + [vae_ckpt]
        run("output fusion, two-stage (gated; DCGANs + VAE decoder)", "fusion_two_stage",
            ["approach=generator_fusion", "approach.mode=two_stage", "fusion=gated", *two_stage,
             f"approach.member_checkpoints=[{','.join(ckpts)}]", f"trainer.max_epochs={args.fuser_epochs}"],
            extra_time=small_vae["train_time_s"] + sum(g["train_time_s"] for g in gans))
    specs = declared_metrics(rows)
    table = {label: {m: seeds_summary(runs, m) for m in (*(f"test/{s.name}" for s in specs), "train_time_s")}
             for label, runs in rows.items()}
    lines = [f"## Generation on {args.data.replace('_', ' ')} ({n_modes:,} modes, 16 px)", "",
             f"{args.epochs} epochs x {args.samples} images per row (two-stage fuser: {args.fuser_epochs}); the single "
             f"DCGAN and the VAE decoder have width {args.width} ({total:,} generator parameters), the {k} members of "
             f"the other rows width {wk} ({k * generator_params(wk, channels=channels):,} in all). {args.test_samples:,} samples per run; "
             f"classifier-read metrics (fusionlab/metrics/digits.py). Seeds {', '.join(map(str, args.seeds))}: mean ± "
             "half-width of the 95% t-interval. Train time includes the members' own training for the rows that "
             "reuse trained members.", "",
             "| model | " + " | ".join(f"{s.name} {'↑' if s.higher_is_better else '↓'}" for s in specs) + " | train s |",
             "|---|" + "---:|" * (len(specs) + 1)]
    for label, r in table.items():
        lines.append(f"| {label} | " + " | ".join(fmt_ci(r[f"test/{s.name}"], s.digits) for s in specs)
                     + f" | {r['train_time_s']['mean']:.0f} |")
    single = table["single DCGAN"]["test/modes_covered"]["mean"]
    fused = {label: r for label, r in table.items() if label.startswith(("mixture", "output"))}
    best = max(fused, key=lambda lb: fused[lb]["test/modes_covered"]["mean"])
    b = fused[best]
    met = b["test/modes_covered"]["mean"] >= 0.95 * n_modes and b["test/mode_kl"]["mean"] <= 0.1 and \
        b["test/modes_covered"]["mean"] > single
    lines += ["", f"Goal (a fused or mixture model covers >= 95% of the {n_modes:,} modes with KL <= 0.1, the single DCGAN "
              f"fewer): best {best}, {b['test/modes_covered']['mean']:.0f} modes, KL {b['test/mode_kl']['mean']:.3f} "
              f"(single DCGAN {single:.0f}): {'met' if met else 'not met'}.", ""]
    docs = ROOT / "docs"
    real_grid(args.data, docs / f"generation_real_{args.data}.png")
    for label, folder in dirs.items():  # one picture per family: the last grid of the first seed
        grids = sorted((folder / "samples").glob("gen_epoch*.png"))
        if grids:
            name = label.split(",")[0].split(" (")[0].replace(" ", "_").lower()
            shutil.copy(grids[-1], docs / f"generation_{args.data}_{name}.png")
    write_results(f"generation_{args.data}", {"args": vars(args), "member_width": wk, "rows": table,
                                 "runs": {lb: [{k2: v for k2, v in r.items() if k2.startswith(("test/", "val/", "train_"))}
                                               for r in rs] for lb, rs in rows.items()},
                                 "machine": machine()}, "\n".join(lines))


if __name__ == "__main__":
    main()
