"""Weight-space fusion benchmark: model soups, SWA and EMA against the output ensemble of the same members.

Protocol and data as bench/ensemble.py (gray AWGN sigma=25, train ../shared/data/gray/Train400,
Set12 validates and picks checkpoints and greedy soups, BSD68 tests), one architecture (the
ensemble benchmark's DnCNN member: depth 10, width 32, BatchNorm). Per seed:
  1. a base model trained for --epochs;
  2. M members fine-tuned from it (member_init=BASE) for --finetune-epochs, each with its own seed
     and learning rate (the model-soup recipe: one shared initialisation);
  3. the output ensemble of the M members (fusion=mean, two-stage: M forwards per image);
  4. the uniform and greedy soups of the M members (one forward per image; BatchNorm recomputed
     on --bn-batches training batches);
  5. (--part averaging) the same architecture trained from scratch for --epochs + --finetune-epochs,
     plain, with SWA and with EMA (the training-time weight averages).

    .venv/bin/python bench/weight_fusion.py --part soups [--epochs 2] [--finetune-epochs 1] [--samples 3200] [--seeds 1 2 3]
    .venv/bin/python bench/weight_fusion.py --part averaging [same budget]
PSNR/SSIM are means over seeds with 95% t-intervals; differences are paired per BSD68 image
(averaged over seeds, 95% bootstrap interval) and paired by seed (95% t-interval). Writes
bench/results/weight_fusion.{json,md} (soups) and weight_averaging.{json,md} (SWA, EMA); runs are
cached under logs/bench/weight_fusion/, keyed on their overrides and the code version.
"""

import argparse

import torch

from common import (ROOT, fmt_ci, fmt_diff, fmt_seed_diff, machine, paired_by_seed, paired_over_seeds, run_train,
                    seeds_summary, write_results)
from ensemble import MEMBERS, data_overrides, slim

LEARNING_RATES = [1e-3, 5e-4, 2e-3, 7e-4, 1.5e-3, 3e-4]  # member k fine-tunes with LEARNING_RATES[k]


def train_averaging(out, data, args, seed: int) -> dict:
    """Plain, SWA and EMA runs of the architecture from scratch, for the soups' total epochs."""
    arch = MEMBERS["dncnn"]
    total = args.epochs + args.finetune_epochs
    scratch = [*data, *arch, f"trainer.max_epochs={total}", f"seed={seed}"]
    return {"scratch": run_train(out / "scratch", scratch),
            "swa": run_train(out / "swa", [*scratch, "weight_averaging=swa",
                                           f"callbacks.weight_averaging.swa_epoch_start={args.swa_start}",
                                           f"callbacks.weight_averaging.swa_lrs={args.swa_lr}"]),
            "ema": run_train(out / "ema", [*scratch, "weight_averaging=ema",
                                           f"callbacks.weight_averaging.decay={args.ema_decay}"])}


def train_seed(out, data, args, seed: int) -> dict:
    arch = MEMBERS["dncnn"]
    lr = "approach.optimizer.lr"
    runs = {"base": run_train(out / "base", [*data, *arch, f"trainer.max_epochs={args.epochs}", f"seed={seed}"])}
    base = out / "base" / "checkpoints" / "best.ckpt"
    ckpts = []
    for k in range(args.members):
        folder = out / f"member{k}"
        runs[f"member{k}"] = run_train(folder, [*data, *arch, f"member_init={base}", f"seed={100 * seed + k}",
                                                f"{lr}={LEARNING_RATES[k % len(LEARNING_RATES)]}",
                                                f"trainer.max_epochs={args.finetune_epochs}"])
        ckpts.append(str(folder / "checkpoints" / "best.ckpt"))
    members = f"approach.member_checkpoints=[{','.join(ckpts)}]"
    ens = [*data, "approach=ensemble", "fusion=mean", "approach.mode=two_stage", members,
           "trainer.max_epochs=1", f"seed={seed}"]
    for i in range(args.members):
        add = "+" if i >= 3 else ""  # the approach's default has 3 members (m0..m2)
        ens += [f"{add}model@approach.members.m{i}=dncnn", *[f"approach.members.m{i}.{o.split('.', 1)[1]}" for o in arch[1:]]]
    ens += [f"~approach.members.m{i}" for i in range(args.members, 3)]  # the approach's default has 3 members
    runs["ensemble"] = run_train(out / "ensemble_mean", ens)
    for recipe in ("uniform", "greedy"):
        runs[f"soup {recipe}"] = run_train(out / f"soup_{recipe}", [
            *data, "approach=soup", *arch, members, f"approach.recipe={recipe}", f"approach.bn_batches={args.bn_batches}",
            f"seed={seed}"])
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="base model epochs")
    parser.add_argument("--finetune-epochs", type=int, default=1)
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--samples", type=int, default=3200)
    parser.add_argument("--bn-batches", type=int, default=50)
    parser.add_argument("--swa-start", type=float, default=0.34, help="SWA from this fraction of the epochs")
    parser.add_argument("--swa-lr", type=float, default=1e-4)
    parser.add_argument("--ema-decay", type=float, default=0.99)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--part", choices=["soups", "averaging"], default="soups")
    args = parser.parse_args()
    data = data_overrides(args.samples)
    out = ROOT / "logs" / "bench" / "weight_fusion"
    if args.part == "averaging":
        return averaging_table(args, {s: train_averaging(out / f"s{s}", data, args, s) for s in args.seeds})
    per_seed = {s: train_seed(out / f"s{s}", data, args, s) for s in args.seeds}
    # the best member per seed, picked on Set12
    best = {s: max((k for k in r if k.startswith("member")), key=lambda k: r[k]["val/psnr"]) for s, r in per_seed.items()}
    rows = {"base model": "base", "best member (picked on Set12)": None, "output ensemble of the members (mean)": "ensemble",
            "soup: uniform": "soup uniform", "soup: greedy": "soup greedy"}
    runs = {label: [per_seed[s][key or best[s]] for s in args.seeds] for label, key in rows.items()}
    ensemble, best_member = runs["output ensemble of the members (mean)"], runs["best member (picked on Set12)"]
    table, vs_member, vs_ensemble = {}, {}, {}
    for label, seed_runs in runs.items():
        table[label] = {k: seeds_summary(seed_runs, k) for k in ("val/psnr", "test/psnr", "test/ssim", "train_time_s")}
        table[label]["params"] = seed_runs[0]["params"]
        table[label]["flops_256"] = seed_runs[0]["flops_per_image_256"]
        for ref, store in ((best_member, vs_member), (ensemble, vs_ensemble)):
            if seed_runs is not ref:
                store[label] = {**paired_over_seeds(seed_runs, ref), "over_seeds": paired_by_seed(seed_runs, ref)}
    fine_tune_s = [sum(per_seed[s][f"member{k}"]["train_time_s"] for k in range(args.members)) for s in args.seeds]
    lines = ["## Weight-space fusion (gray denoising, sigma=25)", "",
             f"DnCNN (depth 10, width 32, BatchNorm); base trained {args.epochs} epochs x {args.samples} patches, "
             f"{args.members} members fine-tuned from it for {args.finetune_epochs} epoch(s) each (own seed and "
             f"learning rate), soups with BatchNorm recomputed on {args.bn_batches} training batches. Seeds "
             f"{', '.join(map(str, args.seeds))}: mean ± half-width of the 95% t-interval; differences: paired per "
             "BSD68 image (mean over seeds, [95% bootstrap interval]) and by seed ([95% t-interval]); (n.d.) = not "
             "distinguishable. FLOPs per 256x256 image.", "",
             "| model | params | GFLOPs/img | Set12 PSNR | BSD68 PSNR | BSD68 SSIM | vs best member (per image) | "
             "over seeds | vs ensemble (per image) | over seeds | train s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, r in table.items():
        dm, de = vs_member.get(label), vs_ensemble.get(label)
        lines.append(f"| {label.strip()} | {r['params']:,} | {r['flops_256'] / 1e9:.2f} | {fmt_ci(r['val/psnr'])} | "
                     f"{fmt_ci(r['test/psnr'])} | {fmt_ci(r['test/ssim'], 4)} | "
                     f"{fmt_diff(dm) if dm else '–'} | {fmt_seed_diff(dm['over_seeds']) if dm else ''} | "
                     f"{fmt_diff(de) if de else '–'} | {fmt_seed_diff(de['over_seeds']) if de else ''} | "
                     f"{r['train_time_s']['mean']:.0f} |")
    gap = {k: vs_ensemble[k] for k in ("soup: uniform", "soup: greedy")}
    best_soup = max(gap, key=lambda k: gap[k]["mean"])
    ratio = table[best_soup]["flops_256"] / table["output ensemble of the members (mean)"]["flops_256"]
    met = gap[best_soup]["mean"] >= -0.05
    lines += ["", f"Training cost: the soups and the ensemble reuse the base ({table['base model']['train_time_s']['mean']:.0f} s) "
              f"and the {args.members} fine-tunes ({sum(fine_tune_s) / len(fine_tune_s):.0f} s in all); their own "
              "train-time column is the soup's BatchNorm pass or the (parameter-free) fuser's epoch.",
              f"Goal (a soup within 0.05 dB of the output ensemble on BSD68 at 1/M of its FLOPs): best soup "
              f"{best_soup}, {gap[best_soup]['mean']:+.3f} dB vs the ensemble at {ratio:.0%} of its FLOPs: "
              f"{'met' if met else 'not met'} on the mean (per-image interval {fmt_diff(gap[best_soup])}).", ""]
    write_results("weight_fusion", {"args": vars(args), "rows": table, "vs_best_member": vs_member,
                                    "vs_ensemble": vs_ensemble, "best_member_per_seed": best,
                                    "runs": {label: [slim(r) for r in rs] for label, rs in runs.items()},
                                    "machine": machine(), "threads": torch.get_num_threads()}, "\n".join(lines))


def averaging_table(args, per_seed: dict) -> None:
    total = args.epochs + args.finetune_epochs
    labels = {"scratch": f"from scratch, {total} epochs", "swa": "+ SWA", "ema": "+ EMA"}
    runs = {labels[k]: [per_seed[s][k] for s in args.seeds] for k in labels}
    plain = runs[labels["scratch"]]
    table, diffs = {}, {}
    for label, seed_runs in runs.items():
        table[label] = {k: seeds_summary(seed_runs, k) for k in ("val/psnr", "test/psnr", "test/ssim", "train_time_s")}
        if seed_runs is not plain:
            diffs[label] = {**paired_over_seeds(seed_runs, plain), "over_seeds": paired_by_seed(seed_runs, plain)}
    lines = ["## Training-time weight averaging (gray denoising, sigma=25)", "",
             f"DnCNN (depth 10, width 32, BatchNorm) trained from scratch for {total} epochs x {args.samples} patches "
             f"(the soups' total: base + fine-tune), plain, with Lightning's StochasticWeightAveraging from "
             f"{args.swa_start:.0%} of the epochs (swa_lrs {args.swa_lr:g}; BatchNorm recomputed) and with its "
             f"EMA (fusionlab WarmupEMAWeightAveraging: decay {args.ema_decay} after a warm-up, buffers averaged). Tested: the averaged weights. Seeds "
             f"{', '.join(map(str, args.seeds))}: mean ± half-width of the 95% t-interval; vs plain: paired per BSD68 "
             "image [95% bootstrap interval] and by seed [95% t-interval]; (n.d.) = not distinguishable.", "",
             "| model | Set12 PSNR (last validation) | BSD68 PSNR | BSD68 SSIM | vs plain (per image) | over seeds | train s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for label, r in table.items():
        d = diffs.get(label)
        lines.append(f"| {label} | {fmt_ci(r['val/psnr'])} | {fmt_ci(r['test/psnr'])} | {fmt_ci(r['test/ssim'], 4)} | "
                     f"{fmt_diff(d) if d else '–'} | {fmt_seed_diff(d['over_seeds']) if d else ''} | "
                     f"{r['train_time_s']['mean']:.0f} |")
    write_results("weight_averaging", {"args": vars(args), "rows": table, "vs_plain": diffs,
                                       "runs": {label: [slim(r) for r in rs] for label, rs in runs.items()},
                                       "machine": machine()}, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
