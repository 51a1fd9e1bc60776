"""Generation benchmark on stacked digits (1,000 modes): does a mixture or a fusion of generators
cover the modes better than one DCGAN, than one DCGAN of the same size, and than packing?

Two regimes, the same rows in each (16 px, batch 64, an epoch = 1,000 generator updates):
  - ``standard``: the discriminator of ``discriminator=dcgan`` (width 32);
  - ``collapse``: the discriminator's width divided by 4 (32 -> 8 filters in its first layer, 16 in
    its second): a quarter of the generator's filters layer by layer (the generator has 32 at 8x8
    and 64 at 4x4), which is how PacGAN's code builds its "D = 1/4 G" setting of Table 3
    (fjxmlzn/PacGAN, stacked_MNIST_experiments/unrolled_GAN_experiment/D=0.25G/model.py: D convs of
    2, 4, 8 filters against G's 8, 16, 32). A quarter of the generator's *parameters* would be
    width 27 here (25,570 against the standard 35,425): this discriminator is already a third of
    the generator in parameters, so that reading would hardly change the setting.
Rows (the fused models and the equal-size controls have about K times the single's generator
parameters, K = --members):
  - single DCGAN (width --width) and single DCGAN of the fused models' total size;
  - PacDCGAN2 (``discriminator.pack=2``) of that total size: the non-fusion control for collapse;
  - VAE (decoder of width --width, Gaussian likelihood, KL warm-up; no discriminator: one run
    serves both regimes);
  - mixture of K (MGAN: shared trunk, K input layers, fixed uniform pi, diversity 0.01);
  - mixture of K-1 DCGANs + the VAE's decoder (frozen), one member per draw;
  - shared-latent output fusion, joint (K DCGANs, learned weights: one wider generator);
  - output fusion, two-stage (the single DCGAN and the VAE decoder frozen, a gated fuser trained
    for --fuser-steps; its train time includes the members').
Every run is validated after 1k, 2k, 4k ... updates on --samples fixed-latent samples and tested
on as many others, all read by two classifiers (the project's CNN and scikit-learn's SVC); the
table gives both readers' modes and KL, their agreement, fd_digits against training and held-out
stacks, precision, recall, the updates each row needed to reach 950 modes for both readers, the
evaluation's share of the run's time, and beside them the real-data rows (training and held-out
stacks) and a uniform-noise row at the same sample count.

    OMP_NUM_THREADS=1 .venv/bin/python bench/generation.py --regime standard --seeds 1 &
    OMP_NUM_THREADS=1 .venv/bin/python bench/generation.py --regime collapse --seeds 1; wait
    .venv/bin/python bench/generation.py --regime standard collapse --seeds 1   # the report from the cache

Runs are cached under logs/bench/generation/ (keyed on overrides + code version), so parallel
invocations on disjoint seeds or regimes share them, and a final invocation over all of them only
writes the report: bench/results/generation_stacked_digits.{json,md}, docs/generation_curves.png
and one picture per row and regime (docs/generation_<regime>_<row>.png).
"""

import argparse
import csv
import math
import shutil
from pathlib import Path

from common import ROOT, fmt_ci, machine, run_train, seeds_summary, write_results

from fusionlab.reporting.stats import welch_interval

OUT = ROOT / "logs" / "bench" / "generation"
EPOCH = 1000   # generator updates per epoch (data.samples_per_epoch / data.batch_size)
GOAL = 950     # modes
# (key, column title, digits): the table's columns, read from test/<key>
COLUMNS = [("modes_covered", "modes CNN ↑", 0), ("modes_covered_svc", "modes SVC ↑", 0),
           ("modes_covered_agreed", "modes agreed ↑", 0), ("mode_kl", "KL CNN ↓", 3), ("mode_kl_svc", "KL SVC ↓", 3),
           ("reader_agreement", "agreement", 2), ("fd_digits", "fd train ↓", 1), ("fd_digits_heldout", "fd held-out ↓", 1),
           ("precision", "precision ↑", 3), ("recall", "recall ↑", 3)]
CURVE_KEYS = ("modes_covered", "modes_covered_svc", "mode_kl", "mode_kl_svc", "fd_digits", "fd_digits_heldout",
              "precision", "recall")
FUSED = ("mgan", "mixture_gan_vae", "fusion_joint", "fusion_two_stage")
LABELS = {"single": "single DCGAN", "single_wide": "single DCGAN, fused size", "pac2": "PacDCGAN2, fused size",
          "vae": "VAE", "mgan": "mixture of K (MGAN, shared trunk)", "mixture_gan_vae": "mixture of K-1 DCGANs + VAE decoder",
          "fusion_joint": "shared-latent output fusion, joint", "fusion_two_stage": "output fusion, two-stage (DCGAN + VAE)"}


def params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def g_params(width: int) -> int:
    from fusionlab.models import DCGANGenerator

    return params(DCGANGenerator(64, 3, 16, width))


def d_params(width: int) -> int:
    from fusionlab.models import DCGANDiscriminator

    return params(DCGANDiscriminator(3, 16, width))


def mgan_params(width: int, k: int) -> int:
    from fusionlab.models.dcgan import SharedTrunkGenerators

    return params(SharedTrunkGenerators(k, 64, 3, 16, width))


def closest(target: int, size) -> int:
    return min(range(2, 257), key=lambda w: abs(size(w) - target))


def sizes(width: int, k: int) -> dict:
    single = g_params(width)
    total = k * single
    return {"single": single, "total": total, "wide": closest(total, g_params), "mgan": closest(total, lambda w: mgan_params(w, k)),
            "d_standard": 32, "d_collapse": 8, "d_quarter_of_g": closest(single // 4, d_params)}


def validation_epochs(epochs: int) -> list[int]:
    points = [2**i for i in range(12) if 2**i <= epochs]
    return points + ([epochs] if epochs not in points else [])


def curve(run_dir: Path) -> dict[int, dict[str, float]]:
    """Validation points of a run: generator updates -> metrics (from its CSV log)."""
    files = sorted((run_dir / "csv").rglob("metrics.csv"))
    points: dict[int, dict[str, float]] = {}
    for row in csv.DictReader(files[-1].open()) if files else []:
        if row.get("val/modes_covered"):
            points[(int(row["epoch"]) + 1) * EPOCH] = {k: float(row[f"val/{k}"]) for k in CURVE_KEYS if row.get(f"val/{k}")}
    return points


def steps_to_goal(points: dict[int, dict[str, float]]) -> float:
    """The first validation point at which both readers count >= GOAL modes (inf: never)."""
    for step in sorted(points):
        p = points[step]
        if p.get("modes_covered", 0) >= GOAL and p.get("modes_covered_svc", 0) >= GOAL:
            return float(step)
    return math.inf


def run_rows(args, regime: str, seed: int, sz: dict) -> dict[str, dict]:
    epochs = args.steps // EPOCH
    common = ["experiment=generate_stacked_digits", f"seed={seed}", f"data.val_samples={args.samples}",
              f"data.test_samples={args.samples}", "metrics.fid.extractor=none", "trainer.accelerator=cpu"]
    length = [f"trainer.max_epochs={epochs}",
              f"callbacks.validation_schedule.epochs=[{','.join(map(str, validation_epochs(epochs)))}]"]
    d = [f"approach.discriminator.width={sz['d_' + regime]}"]
    w, k = args.width, args.members
    base = OUT / regime / f"s{seed}"
    out: dict[str, dict] = {}

    def run(name, folder, overrides, extra=0.0):
        if args.rows and name not in args.rows:
            return None
        m = run_train(folder, [*common, *overrides])
        out[name] = {**m, "train_time_s": m["train_time_s"] + extra, "dir": str(folder), "curve": curve(folder)}
        return m

    single = run("single", base / "single", ["approach=gan", f"approach.generator.width={w}", *d, *length])
    run("single_wide", base / "single_wide", ["approach=gan", f"approach.generator.width={sz['wide']}", *d, *length])
    run("pac2", base / "pac2", ["approach=gan", f"approach.generator.width={sz['wide']}",
                                "approach.discriminator.pack=2", *d, *length])
    vae_dir = OUT / "vae" / f"s{seed}"  # no discriminator: the same run in both regimes
    vae = run("vae", vae_dir, ["approach=vae", f"approach.generator.width={w}", *length])
    run("mgan", base / "mgan", ["approach=gan_mixture", f"approach.num_generators={k}",
                                f"approach.generator.width={sz['mgan']}", *d, *length])
    vae_ckpt = vae_dir / "checkpoints" / "last.ckpt"
    if vae is not None:
        gans = [f"+generator@approach.generators.gan{i}=dcgan" for i in range(k - 1)] + \
            [f"approach.generators.gan{i}.width={w}" for i in range(k - 1)]
        run("mixture_gan_vae", base / "mixture_gan_vae",
            ["approach=gan_mixture", "approach.share_layers=false", f"approach.num_generators={k}", *gans,
             "+generator@approach.generators.vae=dcgan", f"approach.generators.vae.width={w}",
             f"approach.member_checkpoints=[{','.join(['null'] * (k - 1))},{vae_ckpt}]",
             "approach.frozen_members=[vae]", *d, *length], extra=vae["train_time_s"])
    fusion = ["approach=generator_fusion", "~approach.generators.g1", "~approach.generators.g2"]
    run("fusion_joint", base / "fusion_joint",
        [*fusion, "fusion=learned", *[f"+generator@approach.generators.gan{i}=dcgan" for i in range(k)],
         *[f"approach.generators.gan{i}.width={w}" for i in range(k)], *d, *length])
    if single is not None and vae is not None:
        fuser_epochs = max(1, args.fuser_steps // EPOCH)
        run("fusion_two_stage", base / "fusion_two_stage",
            [*fusion, "approach.mode=two_stage", "fusion=gated", "+generator@approach.generators.gan=dcgan",
             f"approach.generators.gan.width={w}", "+generator@approach.generators.vae=dcgan",
             f"approach.generators.vae.width={w}",
             f"approach.member_checkpoints=[{base / 'single' / 'checkpoints' / 'last.ckpt'},{vae_ckpt}]", *d,
             f"trainer.max_epochs={fuser_epochs}",
             f"callbacks.validation_schedule.epochs=[{','.join(map(str, validation_epochs(fuser_epochs)))}]"],
            extra=single["train_time_s"] + vae["train_time_s"])
    return out


def reference_rows(samples: int) -> dict[str, dict]:
    """Training stacks, held-out stacks and uniform noise, scored by the runs' own evaluator."""
    from types import SimpleNamespace

    import torch

    from fusionlab.data.digits import DigitsDataModule, digit_split, stack_digits
    from fusionlab.evaluation.generation import GenerationEvaluator

    dm = DigitsDataModule(stacked=True, image_size=16, cache_dir=str(ROOT / ".cache" / "digits"))
    ev = GenerationEvaluator()
    ev.start("test", SimpleNamespace(device=torch.device("cpu")), dm)
    train, test = digit_split(16)["train"], digit_split(16)["test"]
    return {"real: training stacks": ev.score_images(stack_digits(*train, samples, seed=11)[0]),
            "real: held-out stacks": ev.score_images(stack_digits(*test, samples, seed=12)[0]),
            "uniform noise": ev.score_images(torch.rand(samples, 3, 16, 16, generator=torch.Generator().manual_seed(0)))}


def summarise(runs: list[dict]) -> dict:
    s = {key: seeds_summary(runs, f"test/{key}") for key, _, _ in COLUMNS}
    s["train_time_s"] = seeds_summary(runs, "train_time_s")
    s["eval_fraction"] = seeds_summary([{"f": r.get("val/eval_time_s", float("nan")) / r["train_time_s"]} for r in runs], "f")
    goal = [steps_to_goal(r["curve"]) for r in runs]
    s["steps_to_goal"] = goal
    return s


def fmt_goal(values: list[float]) -> str:
    reached = [v for v in values if math.isfinite(v)]
    if not reached:
        return "never"
    text = f"{sum(reached) / len(reached) / 1000:.0f}k"
    return text if len(reached) == len(values) else f"{text} ({len(reached)}/{len(values)} seeds)"


def compare(a: list[dict], b: list[dict], key: str) -> dict:
    return welch_interval([r[f"test/{key}"] for r in a], [r[f"test/{key}"] for r in b])


def verdict(d: dict, higher: bool = True) -> str:
    if not math.isfinite(d["ci_low"]):
        return f"{d['mean']:+.3f} (one seed: no interval)"
    better = d["ci_low"] > 0 if higher else d["ci_high"] < 0
    worse = d["ci_high"] < 0 if higher else d["ci_low"] > 0
    word = "distinguishable, better" if better else "distinguishable, worse" if worse else "not distinguishable"
    return f"{d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}], {word}"


def regime_report(regime: str, rows: dict[str, list[dict]], refs: dict, args, sz: dict) -> tuple[list[str], dict]:
    table = {name: summarise(runs) for name, runs in rows.items()}
    seeds = sorted({int(r["config"]["seed"]) for runs in rows.values() for r in runs})
    d = sz["d_" + regime]
    lines = [f"### {regime} regime: discriminator width {d} ({d_params(d):,} parameters)", "",
             "| model | " + " | ".join(t for _, t, _ in COLUMNS) + " | 950 modes at | eval share | train s |",
             "|---|" + "---:|" * (len(COLUMNS) + 3)]
    for name, ref in refs.items():
        lines.append(f"| *{name}* | " + " | ".join(f"{ref[k]:.{dg}f}" for k, _, dg in COLUMNS) + " | | | |")
    for name, s in table.items():
        lines.append(f"| {LABELS[name]} | " + " | ".join(fmt_ci(s[k], dg) for k, _, dg in COLUMNS)
                     + f" | {'(fuser steps) ' if name == 'fusion_two_stage' else ''}{fmt_goal(s['steps_to_goal'])} | "
                     f"{fmt_ci(s['eval_fraction'], 2)} | {s['train_time_s']['mean']:.0f} |")
    lines += ["", f"Seeds {', '.join(map(str, seeds))} (mean ± half-width of the 95% t-interval over seeds); "
              f"{args.samples:,} samples per run and per reference row; {args.steps // 1000}k generator updates "
              f"(two-stage fuser: {args.fuser_steps // 1000}k on top of its members')."]
    claims = {}
    fused = [n for n in FUSED if n in table]
    if fused:
        best = max(fused, key=lambda n: min(table[n]["modes_covered"]["mean"], table[n]["modes_covered_svc"]["mean"]))
        b = table[best]
        claims["best_fused"] = best
        if regime == "collapse" and "pac2" in rows:
            both = {key: compare(rows[best], rows["pac2"], key) for key in ("modes_covered", "modes_covered_svc")}
            kl = {key: compare(rows[best], rows["pac2"], key) for key in ("mode_kl", "mode_kl_svc")}
            cover = min(b["modes_covered"]["mean"], b["modes_covered_svc"]["mean"])
            kl_max = max(b["mode_kl"]["mean"], b["mode_kl_svc"]["mean"])
            beats = all(v["ci_low"] > 0 for v in both.values())
            met = cover >= GOAL and kl_max <= 0.3 and beats
            claims["collapse_goal"] = met
            lines += ["", f"Goal (collapse regime: a fused model covers >= {GOAL} modes with KL <= 0.3 for both readers and "
                      f"beats PacDCGAN2 at equal size by more than the seed interval): best fused row **{LABELS[best]}**, "
                      f"{cover:.0f} modes (lower of the two readers), KL {kl_max:.3f} (higher of the two); against PacDCGAN2, "
                      f"modes CNN {verdict(both['modes_covered'])}, modes SVC {verdict(both['modes_covered_svc'])}, "
                      f"KL CNN {verdict(kl['mode_kl'], False)}: **{'met' if met else 'not met'}**."]
        if regime == "standard" and "single" in rows:
            kl = {key: compare(rows[best], rows["single"], key) for key in ("mode_kl", "mode_kl_svc")}
            sooner = sum(v for v in b["steps_to_goal"]) < sum(v for v in table["single"]["steps_to_goal"])
            lower = all(v["ci_high"] < 0 for v in kl.values())
            claims["standard_goal"] = sooner and lower
            lines += ["", f"Goal (standard regime: the best fused row reaches {GOAL} modes sooner than the single DCGAN and "
                      f"ends with a lower KL, distinguishable over seeds): best fused row **{LABELS[best]}**, 950 modes at "
                      f"{fmt_goal(b['steps_to_goal'])} against {fmt_goal(table['single']['steps_to_goal'])}; KL CNN "
                      f"{verdict(kl['mode_kl'], False)}, KL SVC {verdict(kl['mode_kl_svc'], False)}: "
                      f"**{'met' if sooner and lower else 'not met'}**."]
        if "single_wide" in rows:
            wide = compare(rows[best], rows["single_wide"], "modes_covered")
            lines += [f"Against the single DCGAN of the same total size, modes (CNN): {verdict(wide)}."]
    return lines, {"table": table, "claims": claims}


def curves_figure(all_rows: dict[str, dict[str, list[dict]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    regimes = list(all_rows)
    fig, axes = plt.subplots(len(regimes), 3, figsize=(15, 4.2 * len(regimes)), squeeze=False)
    for i, regime in enumerate(regimes):
        for j, (key, title) in enumerate([("modes_covered", "modes (CNN)"), ("modes_covered_svc", "modes (SVC)"),
                                           ("mode_kl", "KL (CNN)")]):
            ax = axes[i][j]
            for name, runs in all_rows[regime].items():
                steps = sorted(set.intersection(*[set(r["curve"]) for r in runs]))
                if len(steps) < 2:
                    continue
                mean = [sum(r["curve"][s].get(key, math.nan) for r in runs) / len(runs) for s in steps]
                ax.plot(steps, mean, marker="o", label=LABELS[name])
            ax.set_xscale("log", base=2)
            ax.set_title(f"{regime}: {title}")
            ax.set_xlabel("generator updates")
            if key.startswith("modes"):
                ax.axhline(GOAL, color="grey", ls=":", lw=1)
        axes[i][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regime", nargs="+", choices=["standard", "collapse"], default=["standard", "collapse"])
    parser.add_argument("--steps", type=int, default=32000, help="generator updates per run (multiple of 1,000)")
    parser.add_argument("--fuser-steps", type=int, default=4000)
    parser.add_argument("--samples", type=int, default=10000, help="samples at validation and test")
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--width", type=int, default=32, help="the single DCGAN's generator width")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--rows", nargs="*", default=None, choices=list(LABELS), help="a subset of the rows")
    args = parser.parse_args()
    sz = sizes(args.width, args.members)
    all_rows: dict[str, dict[str, list[dict]]] = {}
    for regime in args.regime:
        for seed in args.seeds:
            for name, m in run_rows(args, regime, seed, sz).items():
                all_rows.setdefault(regime, {}).setdefault(name, []).append(m)
    refs = reference_rows(args.samples)
    lines = ["## Generation on stacked digits (1,000 modes, 16 px)", "",
             f"Generator parameters: single DCGAN (width {args.width}) {sz['single']:,}; fused models and equal-size "
             f"controls about {sz['total']:,} (single of width {sz['wide']}; MGAN trunk width {sz['mgan']}, "
             f"{mgan_params(sz['mgan'], args.members):,}; K = {args.members} members of width {args.width} elsewhere). "
             "Readers: the project's CNN and scikit-learn's SVC (fusionlab/metrics/digits.py), both at 8 px; "
             "`modes agreed` counts modes over the samples both read alike.", ""]
    results = {}
    for regime, rows in all_rows.items():
        text, res = regime_report(regime, rows, refs, args, sz)
        lines += [*text, ""]
        results[regime] = res
    docs = ROOT / "docs"
    curves_figure(all_rows, docs / "generation_curves.png")
    lines += ["![curves](../../docs/generation_curves.png)", ""]
    for regime, rows in all_rows.items():
        for name, runs in rows.items():
            grids = sorted((Path(runs[0]["dir"]) / "samples").glob("gen_epoch*.png"))
            if grids:
                shutil.copy(grids[-1], docs / f"generation_{regime}_{name}.png")
    write_results("generation_stacked_digits", {
        "args": vars(args), "sizes": sz, "reference_rows": refs,
        "results": {r: {"claims": v["claims"], "table": v["table"]} for r, v in results.items()},
        "runs": {r: {n: [{k: v for k, v in m.items() if k.startswith(("test/", "val/", "train_")) or k in ("curve", "dir")}
                         for m in runs] for n, runs in rows.items()} for r, rows in all_rows.items()},
        "machine": machine()}, "\n".join(lines))


if __name__ == "__main__":
    main()
