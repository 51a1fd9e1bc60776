"""Ensemble benchmark: does fusing members beat the best member and an equal-parameter single model?

Protocol (gray AWGN sigma=25, train ../shared/data/gray/Train400; Set12 validates and selects the
checkpoint, BSD68 is the held-out test):
  1. three members (dncnn, unet, resnet) trained as single models, same budget each;
  2. every fusion strategy trained two-stage on the same frozen members (fuser only);
  3. one DnCNN widened to the ensemble's total parameter count, same budget as a member;
  4. speed: M=4 same-architecture members, fused inference images/s, batched (vmap) vs loop.

    .venv/bin/python bench/ensemble.py [--epochs 3] [--fuser-epochs 2] [--samples 6400] [--seeds 1 2 3]
Every row is trained once per seed (members, fusers on that seed's members, the equal-parameter
single model). Tables: mean over seeds with its 95% t-interval; each strategy's paired per-image
difference to the best member (chosen per seed on Set12) on BSD68, with its 95% bootstrap interval.
Writes bench/results/ensemble.{json,md}. Runs are cached under logs/bench/ensemble/, keyed on their
overrides and the code version (a stale run is redone).
"""

import argparse
import math
import time

import torch

from common import (ROOT, SHARED, fmt_ci, fmt_diff, fmt_seed_diff, machine, paired_by_seed, paired_over_seeds, run_train,
                    seeds_summary, write_results)


MEMBERS = {
    "dncnn": ["model=dncnn", "model.depth=10", "model.width=32"],
    "unet": ["model=unet", "model.depth=2", "model.width=16"],
    "resnet": ["model=resnet", "model.n_blocks=4", "model.width=32"],
}
STRATEGIES = ["mean", "median", "weighted", "learned", "gated", "stacked", "attention"]


def data_overrides(samples: int) -> list[str]:
    return ["experiment=denoise_gray_sigma25", "loss=l2", f"data.samples_per_epoch={samples}",
            "data.batch_size=32", "data.patch_size=40", "trainer.accelerator=cpu"]


def member_override(i: int, name: str) -> list[str]:
    opts = [o.split("=", 1) for o in MEMBERS[name][1:]]
    return [f"model@approach.members.m{i}={name}", *[f"approach.members.m{i}.{k.split('.', 1)[1]}={v}" for k, v in opts]]


def speed(members: int = 4, batch: int = 4, size: int = 256, repeats: int = 5) -> dict:
    """Fused inference images/s of the loop and the forced vmap path on the same inputs."""
    from fusionlab.approaches.ensemble import OutputEnsemble
    from fusionlab.fusion import Mean
    from fusionlab.models import DnCNN

    torch.manual_seed(0)
    nets = [DnCNN(1, depth=10, width=32) for _ in range(members)]
    ens = OutputEnsemble(nets, Mean, torch.nn.MSELoss(), lambda params: None).eval()
    x = torch.rand(batch, 1, size, size)
    results = {}
    with torch.no_grad():
        outputs = {}
        for path in ("loop", "batched"):
            ens.bank.batched = path == "batched"  # forced either way (auto picks the loop on CPU)
            ens(x)  # warm-up (and weight stacking for the batched path)
            start = time.perf_counter()
            for _ in range(repeats):
                outputs[path] = ens(x)
            elapsed = time.perf_counter() - start
            results[path] = {"images_per_s": batch * repeats / elapsed, "ms_per_batch": 1000 * elapsed / repeats}
    results["max_abs_diff"] = float((outputs["loop"] - outputs["batched"]).abs().max())
    results["speedup"] = results["batched"]["images_per_s"] / results["loop"]["images_per_s"]
    results["setup"] = {"members": members, "backbone": "DnCNN(depth=10, width=32)", "batch": batch,
                        "size": f"{size}x{size}", "device": "cpu", **machine()}
    return results


def train_seed(out, data, args, seed: int) -> dict:
    """One seed of every row: members, each strategy on the frozen members, the single model."""
    seed_ov = [f"seed={seed}"]
    members = {}
    for name, opts in MEMBERS.items():
        members[name] = run_train(out / f"s{seed}" / f"member_{name}",
                                  [*data, *opts, f"trainer.max_epochs={args.epochs}", *seed_ov])
    ckpts = [str(out / f"s{seed}" / f"member_{n}" / "checkpoints" / "best.ckpt") for n in MEMBERS]
    # fixed weights for `weighted`: inverse validation MSE of each member (decided before fusing)
    inv_mse = [10 ** (members[n]["val/psnr"] / 10) for n in MEMBERS]
    weights = [w / sum(inv_mse) for w in inv_mse]
    strategies = {}
    for fusion in STRATEGIES:
        ov = [*data, "approach=ensemble", f"fusion={fusion}", "approach.mode=two_stage",
              f"approach.member_checkpoints=[{','.join(ckpts)}]", f"trainer.max_epochs={args.fuser_epochs}", *seed_ov]
        for i, name in enumerate(MEMBERS):
            ov += member_override(i, name)
        if fusion == "weighted":
            ov.append(f"fusion.weights=[{','.join(f'{w:.4f}' for w in weights)}]")
        strategies[fusion] = run_train(out / f"s{seed}" / f"fusion_{fusion}", ov)
    total = max(s["params"] for s in strategies.values())
    # equal-parameter single model: DnCNN depth 10 widened to the ensemble's parameter count
    width = round(math.sqrt(total / (9 * 8)))
    single = run_train(out / f"s{seed}" / "single_equal_params",
                       [*data, "model=dncnn", "model.depth=10", f"model.width={width}",
                        f"trainer.max_epochs={args.epochs}", *seed_ov])
    return {"members": members, "strategies": strategies, "single_equal_params": single, "width": width,
            "weighted_weights": weights}


def best_member_view(run: dict, member_names: list[str], chosen: str) -> dict:
    """A member's test records taken from a two-stage run (its ``psnr_member{i}`` columns)."""
    i = member_names.index(chosen)
    return {"per_image": [{"image": r["image"], "psnr": r[f"psnr_member{i}"], "ssim": r[f"ssim_member{i}"]}
                          for r in run["per_image"]]}


def slim(metrics: dict) -> dict:
    keep = ("val/", "test/", "params", "flops_per_image_256", "train_time_s", "wall_time_s", "epochs",
            "overrides", "code_version", "per_image")
    return {k: v for k, v in metrics.items() if k.startswith(keep)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--fuser-epochs", type=int, default=2)
    parser.add_argument("--samples", type=int, default=6400)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--speed-only", action="store_true")
    args = parser.parse_args()
    if not args.speed_only and not (SHARED / "gray" / "Train400").is_dir():
        raise SystemExit(f"benchmark images not found at {SHARED}")
    out = ROOT / "logs" / "bench" / "ensemble"
    result = {"args": vars(args), "machine": machine()}
    lines = ["## Ensemble benchmark (gray denoising, sigma=25)", ""]
    if not args.speed_only:
        data = data_overrides(args.samples)
        per_seed = {seed: train_seed(out, data, args, seed) for seed in args.seeds}
        names = list(MEMBERS)
        rows = {}
        for name in names:
            rows[f"member: {name}"] = [per_seed[s]["members"][name] for s in args.seeds]
        widths = sorted({per_seed[s]["width"] for s in args.seeds})
        rows[f"single DnCNN, equal params (width {'/'.join(map(str, widths))})"] = \
            [per_seed[s]["single_equal_params"] for s in args.seeds]
        for fusion in STRATEGIES:
            rows[f"ensemble two-stage: {fusion}"] = [per_seed[s]["strategies"][fusion] for s in args.seeds]
        # best member per seed, chosen on Set12 (validation): the baseline of every fused row
        best = {s: max(names, key=lambda n: per_seed[s]["members"][n]["val/psnr"]) for s in args.seeds}
        table, diffs = {}, {}
        for label, runs in rows.items():
            table[label] = {k: seeds_summary(runs, k) for k in ("val/psnr", "val/ssim", "test/psnr", "test/ssim")}
            table[label].update(params=runs[0]["params"],
                                train_time_s=seeds_summary(runs, "train_time_s"),
                                wall_time_s=seeds_summary(runs, "wall_time_s"))
            if label.startswith("ensemble"):
                baseline = [best_member_view(r, names, best[s]) for r, s in zip(runs, args.seeds)]
                diffs[label] = {m: paired_over_seeds(runs, baseline, m) for m in ("psnr", "ssim")}
                # over seeds: each seed's fuser against that seed's best member (paired by seed)
                diffs[label]["psnr_over_seeds"] = paired_by_seed(runs, baseline)
            else:
                baseline = [per_seed[s]["members"][best[s]] for s in args.seeds]
                if any(r is not b for r, b in zip(runs, baseline)):  # the best member itself: no row
                    diffs[label] = {m: paired_over_seeds(runs, baseline, m) for m in ("psnr", "ssim")}
        result.update(table=table, paired_vs_best_member=diffs, best_member_per_seed=best,
                      runs={label: [slim(r) for r in runs] for label, runs in rows.items()})
        lines += [f"Budget per seed: members and the single model {args.epochs} epochs x {args.samples} patches "
                  f"40x40 (batch 32, MSE loss); fusers {args.fuser_epochs} epochs on that seed's frozen members. "
                  f"Seeds {', '.join(map(str, args.seeds))}. Set12 validates (checkpoint choice, best member), "
                  "BSD68 (68 images) is the held-out test. PSNR/SSIM: mean over seeds ± half-width of the 95% "
                  "t-interval. Paired difference: per-image BSD68 PSNR minus the best member's (chosen per seed "
                  "on Set12), averaged over seeds, mean [95% bootstrap interval over the 68 images]; over seeds: "
                  "each seed's fused-minus-best-member mean PSNR, mean [95% t-interval over the seeds] (includes "
                  "training randomness); (n.d.) = not distinguishable (interval contains 0).", "",
                  "| model | params | Set12 PSNR | BSD68 PSNR | BSD68 SSIM | BSD68 PSNR vs best member (per image) | "
                  "win rate | vs best member over seeds | train time s |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for label, t in table.items():
            d = diffs.get(label, {}).get("psnr")
            vs, wins = (fmt_diff(d), f"{d['win_rate']:.0%}") if d else ("best member in every seed", "")
            over = diffs.get(label, {}).get("psnr_over_seeds")
            over_text = "" if over is None else fmt_seed_diff(over)
            lines.append(f"| {label} | {t['params']:,} | {fmt_ci(t['val/psnr'])} | {fmt_ci(t['test/psnr'])} | "
                         f"{fmt_ci(t['test/ssim'], 4)} | {vs} | {wins} | {over_text} | "
                         f"{t['train_time_s']['mean']:.0f} |")
        lines.append("")
        lines.append("Best member per seed (Set12): " + ", ".join(f"seed {s}: {b}" for s, b in best.items()) + ".")
        lines.append("")

    result["speed"] = speed()
    result["speed_small"] = speed(batch=1, size=64, repeats=50)
    s = result["speed"]
    lines += [f"Fused inference, {s['setup']['members']} x {s['setup']['backbone']}, batch {s['setup']['batch']} "
              f"of {s['setup']['size']}, CPU ({s['setup']['threads']} threads): loop "
              f"{s['loop']['images_per_s']:.2f} img/s, batched (vmap) {s['batched']['images_per_s']:.2f} img/s "
              f"(x{s['speedup']:.2f}; max |difference| {s['max_abs_diff']:.1e}).",
              f"Same at batch 1 of 64x64: loop {result['speed_small']['loop']['images_per_s']:.1f} img/s, batched "
              f"{result['speed_small']['batched']['images_per_s']:.1f} img/s (x{result['speed_small']['speedup']:.2f}).",
              "On this CPU the grouped kernels of the vmap path are slower than the loop, so "
              "`approach.batched=auto` uses the loop on CPU and the vmap path on CUDA only.", ""]
    write_results("ensemble" if not args.speed_only else "ensemble_speed", result, "\n".join(lines))


if __name__ == "__main__":
    main()
