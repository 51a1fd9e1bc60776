"""Calibrated per-pixel error bounds: which fusion-derived heuristic gives the tightest intervals?

Gray AWGN sigma=25 (train ../shared/data/gray/Train400, Set12 validates during training). Per bench
seed: a joint gated ensemble of three ResNets (EDSR-style, 4 blocks of width 32; online bagging, so
that the members see different patches) and three single ResNets of the same size trained with
different seeds (a deep ensemble of seeds). Every heuristic is calibrated by split
conformal prediction on Set12 (pixel quantile; and the risk-controlling variant, which bounds the
expected fraction of pixels outside their interval per image) and tested on BSD68:
  - member_std: std of the ensemble's members around its gated output;
  - gate_entropy: entropy of the gated fusion's per-pixel weights;
  - tta_std: std of the x8 copies around their mean (single ResNet, tta=x8);
  - seed_std: std of the three seeds' ResNets around their mean (deep ensemble);
  - constant: one width for every pixel, on each of the same predictions (the reference).

    OMP_NUM_THREADS=1 taskset -c 0 .venv/bin/python bench/uncertainty.py --phase train --shard 0/2 &
    OMP_NUM_THREADS=1 taskset -c 1 .venv/bin/python bench/uncertainty.py --phase train --shard 1/2
    .venv/bin/python bench/uncertainty.py --phase eval

The training phase caches each model under logs/bench/uncertainty/ keyed on its overrides and the
code version (bench/common.run_train). The eval phase reads those models (it does not retrain them:
it records each model's training code version beside the evaluation's) and writes
bench/results/uncertainty.{json,md} and docs/uncertainty_*.png.
"""

import argparse
import hashlib
import json
import math
import random
import sys
from pathlib import Path

import torch

from common import ROOT, SHARED, fmt_ci, machine, run_key, run_train, write_results
from ensemble import MEMBERS, data_overrides

from fusionlab.metrics.image import psnr_per_image
from fusionlab.reporting.stats import paired_difference, seed_interval
from fusionlab.utils.version import code_version

# the evaluation needs fusionlab.uncertainty; the training phase runs from older checkouts too
try:
    from fusionlab.uncertainty.conformal import (bounds, calibrate, image_metrics, min_images, nonconformity,
                                                 sparsification)
    from fusionlab.uncertainty.scores import fused_and_scores
except ImportError:  # pragma: no cover
    pass

OUT = ROOT / "logs" / "bench" / "uncertainty"
SINGLES = 3  # ResNets per deep ensemble of seeds


def planned_runs(seeds: list[int], ens_epochs: int, single_epochs: int, samples: int) -> list[dict]:
    """Every model of the benchmark: folder, overrides and planned cost (patch-epochs x members).
    Budgets are epochs, not minutes, so that a loaded machine slows the runs without changing them."""
    data = data_overrides(samples)
    resnet = MEMBERS["resnet"][1:]
    runs = []
    for s in seeds:
        members = [f"approach.members.m{i}.{o}" for i in range(3) for o in (o.split(".", 1)[1] for o in resnet)]
        ens = [*data, "approach=ensemble", "fusion=gated", "approach.mode=joint", "approach.member_loss_weight=0.5",
               "approach.bagging=true", *[f"model@approach.members.m{i}=resnet" for i in range(3)], *members,
               f"trainer.max_epochs={ens_epochs}", f"seed={s}"]
        runs.append({"dir": OUT / f"s{s}" / "ensemble_gated", "overrides": ens, "cost": 3 * ens_epochs})
        for k in range(SINGLES):
            single = [*data, *MEMBERS["resnet"], f"trainer.max_epochs={single_epochs}", f"seed={100 * s + k}"]
            runs.append({"dir": OUT / f"s{s}" / f"single_resnet_{k}", "overrides": single, "cost": single_epochs})
    return runs


def shard(runs: list[dict], spec: str) -> list[dict]:
    """The runs of shard ``i/n``: seed by seed (so that a seed's models are ready for evaluation
    early), each run to the least-loaded shard."""
    i, n = (int(v) for v in spec.split("/"))
    loads, mine = [0.0] * n, []
    for run in sorted(runs, key=lambda r: (r["dir"].parent.name, -r["cost"])):
        j = loads.index(min(loads))
        loads[j] += run["cost"]
        if j == i:
            mine.append(run)
    return mine


def cached(run: dict) -> bool:
    key = run["dir"] / "bench_key.json"
    return (run["dir"] / "metrics.json").is_file() and key.is_file() and \
        json.loads(key.read_text()) == run_key(run["overrides"])


def train_phase(args) -> None:
    todo = [r for r in planned_runs(args.seeds, args.ensemble_epochs, args.single_epochs, args.samples)
            if not cached(r)]
    runs = shard(todo, args.shard)
    for run in runs:
        metrics = run_train(run["dir"], run["overrides"])
        print(f"[uncertainty] {run['dir'].relative_to(OUT)}: val/psnr {metrics['val/psnr']:.3f}", flush=True)


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", choices=["train", "eval", "report", "all"], default="all")
    parser.add_argument("--shard", default="0/1", help="train/eval phase: i/n, this process's share of the work")
    parser.add_argument("--splits", type=int, default=20, help="random half/half splits of BSD68 (exchangeable)")
    parser.add_argument("--shift-seeds", type=int, nargs="+", default=[1], help="seeds whose models are also "
                        "tested under the shift (each costs a pass over BSD68)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--ensemble-epochs", type=int, default=4)
    parser.add_argument("--single-epochs", type=int, default=4)
    parser.add_argument("--samples", type=int, default=6400, help="patches per epoch (validation after each)")
    parser.add_argument("--out", default=str(OUT), help="where the models and analyses are kept")
    parser.add_argument("--max-images", type=int, default=None, help="dry runs: at most this many images per set")
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    parser.add_argument("--shift-sigma", type=float, default=35.0, help="test noise level of the shift rows")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    global OUT
    args = parse(argv)
    OUT = Path(args.out)
    if not (SHARED / "gray" / "Train400").is_dir():
        raise SystemExit(f"benchmark images not found at {SHARED}")
    if args.phase in ("train", "all"):
        train_phase(args)
    if args.phase in ("eval", "all"):
        eval_phase(args)
    if args.phase in ("report", "all"):
        report_phase(args)



# ---- evaluation: every heuristic on every seed's models -------------------------------------------
# name -> (models, heuristics centred on the same image, test-time self-ensemble)
GROUPS = {
    "gated ensemble of 3 ResNets": ("ensemble", ["member_std", "gate_entropy", "constant"], "none"),
    "single ResNet, x8 self-ensemble": ("single", ["tta_std", "constant"], "x8"),
    "deep ensemble of 3 seeds' ResNets": ("seeds", ["seed_std", "constant"], "none"),
}
REFERENCES = ("oracle", "random")  # ceiling: the true |error| as score; floor below constant: a random map


def load_group(s: int, which: str, tta: str) -> list:
    from fusionlab.inference import load

    # last.ckpt, not best.ckpt: best is chosen on Set12, which calibrates here
    if which == "ensemble":
        paths = [OUT / f"s{s}" / "ensemble_gated"]
    else:
        paths = [OUT / f"s{s}" / f"single_resnet_{k}" for k in range(SINGLES if which == "seeds" else 1)]
    for p in paths:
        if not (p / "metrics.json").is_file():
            raise SystemExit(f"{p}: model not trained yet (run --phase train first)")
    return [load(p / "checkpoints" / "last.ckpt", tta=tta).model for p in paths]


def datasets(sigmas: dict[str, float], max_images: int | None = None) -> dict:
    """Set12 and BSD68 clean images, degraded with seeded noise (as the evaluation protocol)."""
    from fusionlab.data.datamodule import ImageDataModule
    from fusionlab.data.datasets import FullImageDataset
    from fusionlab.tasks import GaussianNoise

    out = {}
    for name, (folder, sigma) in sigmas.items():
        task = GaussianNoise(sigma=sigma)
        dm = ImageDataModule(task, channels=1, patch_size=40, batch_size=1, samples_per_epoch=1,
                             test_dir=str(SHARED / "gray" / folder))
        images, names = dm.load_split("test")
        out[name] = FullImageDataset(images[:max_images], names[:max_images], task)
    return out


def group_maps(models: list, heuristics: list[str], dataset) -> list[tuple]:
    """``(name, fused clamped, {heuristic: score}, target)`` per image, references added."""
    from rich.progress import track

    g = torch.Generator().manual_seed(0)
    items = []
    for i in track(range(len(dataset)), description=f"{heuristics[0]} {len(dataset)} images", transient=True):
        item = dataset[i]
        fused, scores = fused_and_scores(models, item["source"][None], heuristics)
        fused, target = fused[0].clamp(0, 1), item["target"]
        scores = {h: v[0] for h, v in scores.items()}
        scores["random"] = torch.rand(fused.shape, generator=g)
        items.append((item["name"], fused, scores, target))
    return items


def coverage_width(items: list, h: str, lam: float) -> tuple[float, float]:
    """Mean over images of coverage and of width (gray levels) at one λ."""
    cov, wid = [], []
    for _, f, sc, t in items:
        lo, hi = bounds(f, sc[h], lam)
        cov.append(float(((t >= lo) & (t <= hi)).double().mean()))
        wid.append(float((hi - lo).double().mean() * 255))
    return sum(cov) / len(cov), sum(wid) / len(wid)


def lambdas_of(items: list, h: str, alphas: list[float]) -> dict:
    res = [nonconformity(f, sc[h], t) for _, f, sc, t in items]
    return {m: {f"{a:g}": (calibrate(res, a, m) if len(res) >= min_images(a, m) else None) for a in alphas}
            for m in ("quantile", "risk")}


def analyse(cal: list, test: list, shift: list | None, h: str, alphas: list[float], splits: int) -> dict:
    """The protocol's numbers for one heuristic: calibrated on Set12 and tested on BSD68 (per image
    and in all), on random half/half splits of BSD68 (calibration and test exchangeable), and
    under the shift."""
    if h == "oracle":
        return oracle_analysis(test, alphas)
    lams = lambdas_of(cal, h, alphas)
    per_image = [{"image": n, **{k: v for k, v in image_metrics(f, sc[h], t, {a: lams["quantile"][f"{a:g}"]
                                                                            for a in alphas}).items()
                                 if k not in ("oracle",)}} for n, f, sc, t in test]
    out = {"lambdas": lams, "per_image": per_image, "set12_to_bsd68": {}, "bsd68_splits": {}, "shift": {}}
    for m in ("quantile", "risk"):
        for a in alphas:
            lam = lams[m][f"{a:g}"]
            if lam is not None:
                out["set12_to_bsd68"][f"{m}@{a:g}"] = dict(zip(("coverage", "width"), coverage_width(test, h, lam)))
                if shift is not None:
                    out["shift"][f"{m}@{a:g}"] = dict(zip(("coverage", "width"), coverage_width(shift, h, lam)))
    rng = random.Random(0)
    for _ in range(splits):
        order = list(range(len(test)))
        rng.shuffle(order)
        half = len(order) // 2
        a_items, b_items = [test[i] for i in order[:half]], [test[i] for i in order[half:]]
        split_lams = lambdas_of(a_items, h, alphas)
        for m, by_alpha in split_lams.items():
            for a, lam in by_alpha.items():
                if lam is not None:
                    c, w = coverage_width(b_items, h, lam)
                    cell = out["bsd68_splits"].setdefault(f"{m}@{a}", {"coverage": [], "width": []})
                    cell["coverage"].append(c)
                    cell["width"].append(w)
    out["score_error_corr"] = sum(r["score_error_corr"] for r in per_image if r["score_error_corr"] == r["score_error_corr"]) / max(1, sum(r["score_error_corr"] == r["score_error_corr"] for r in per_image))
    out["ause"] = sum(r["ause"] for r in per_image) / len(per_image)
    out["sparsification"] = [sum(r["sparsification"][i] for r in per_image) / len(per_image)
                             for i in range(len(per_image[0]["sparsification"]))]
    for r in per_image:
        del r["sparsification"]
    return out


def oracle_analysis(test: list, alphas: list[float]) -> dict:
    """The ceiling: the narrowest intervals centred on the fused image that cover 1 − α of the test
    pixels -- the pixels with the smallest errors, each exactly as wide as its error (the others
    given no width)."""
    errors = [(t - f).abs() for _, f, _, t in test]
    pooled = torch.cat([e.flatten() for e in errors])
    out = {"lambdas": {}, "set12_to_bsd68": {}, "bsd68_splits": {}, "shift": {}, "per_image": []}
    q = {a: float(pooled.kthvalue(max(1, math.ceil((1 - a) * pooled.numel()))).values) for a in alphas}
    for (name, f, sc, t), e in zip(test, errors):
        curve, oracle = sparsification(e, e)
        row = {"image": name, "score_error_corr": 1.0, "ause": 0.0, "sparsification": curve.tolist()}
        for a in alphas:
            row[f"coverage@{a:g}"] = float((e <= q[a]).double().mean())
            row[f"width@{a:g}"] = float((2 * e * (e <= q[a])).double().mean() * 255)
        out["per_image"].append(row)
    for a in alphas:
        out["set12_to_bsd68"][f"quantile@{a:g}"] = {k: _mean([r[f"{k}@{a:g}"] for r in out["per_image"]])
                                                     for k in ("coverage", "width")}
    out["score_error_corr"], out["ause"] = 1.0, 0.0
    out["sparsification"] = [_mean(v) for v in zip(*[r.pop("sparsification") for r in out["per_image"]])]
    return out


def example_panels(items: list, heuristics: list[str], lams: dict, index: int = 0) -> dict:
    name, f, sc, t = items[index]
    panels = {"restored": f[0].numpy(), "|error|": ((t - f).abs() * 255)[0].numpy()}
    for h in heuristics:
        lo, hi = bounds(f, sc[h], lams[h])
        panels[f"{h}: half-width"] = ((hi - lo) / 2 * 255)[0].numpy()
    return {"image": name, "panels": panels}


def eval_seed(s: int, args, data: dict) -> dict:
    """Every group's heuristics on seed ``s``, cached in ``OUT/s<s>/analysis.pt``."""
    from fusionlab.uncertainty.calibration import file_sha256

    cache = OUT / f"s{s}" / "analysis.pt"
    shift = s in args.shift_seeds
    key = {"code_version": code_version(), "bench": hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12],
           "alphas": args.alphas, "splits": args.splits, "shift": shift,
           "max_images": args.max_images,
           "shift_sigma": args.shift_sigma,
           "checkpoints": sorted(file_sha256(p) for p in (OUT / f"s{s}").glob("*/checkpoints/last.ckpt"))}
    if cache.is_file():
        saved = torch.load(cache, weights_only=False)
        if saved.get("key") == key:
            return saved
    result = {"key": key, "seed": s, "groups": {}, "models": {}}
    for p in sorted((OUT / f"s{s}").glob("*/metrics.json")):
        m = json.loads(p.read_text())
        result["models"][p.parent.name] = {"val/psnr": m["val/psnr"], "test/psnr (best.ckpt)": m.get("test/psnr"),
                                           "params": m["params"], "epochs": m.get("epochs"),
                                           "train_time_s": m["train_time_s"], "code_version": m["code_version"]}
    for label, (which, heuristics, tta) in GROUPS.items():
        models = load_group(s, which, tta)
        maps = {k: group_maps(models, heuristics, ds) for k, ds in data.items() if k != "shift" or shift}
        psnr = [float(psnr_per_image(f[None], t[None])[0]) for _, f, _, t in maps["test"]]
        group = {"psnr": sum(psnr) / len(psnr), "per_image_psnr": psnr, "heuristics": {}}
        for h in [*heuristics, *REFERENCES]:
            group["heuristics"][h] = analyse(maps["cal"], maps["test"], maps.get("shift"), h, args.alphas, args.splits)
            print(f"[uncertainty] s{s} {label} {h}: {json.dumps(group['heuristics'][h]['set12_to_bsd68'])[:200]}",
                  flush=True)
        lam01 = {h: group["heuristics"][h]["lambdas"]["quantile"]["0.1"] for h in heuristics}  # needs alpha 0.1
        group["example"] = example_panels(maps["test"], heuristics, lam01)
        result["groups"][label] = group
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(result, cache)
    return result


def eval_phase(args) -> None:
    i, n = (int(v) for v in args.shard.split("/"))
    seeds = [s for j, s in enumerate(sorted(args.seeds, key=lambda s: (s not in args.shift_seeds, s))) if j % n == i]
    data = datasets({"cal": ("Set12", 25), "test": ("BSD68", 25), "shift": ("BSD68", args.shift_sigma)},
                    args.max_images)
    for s in seeds:
        eval_seed(s, args, data)


# ---- the tables ----------------------------------------------------------------------------------
def report_phase(args) -> None:
    per_seed = {}
    for s in args.seeds:
        path = OUT / f"s{s}" / "analysis.pt"
        if not path.is_file():
            raise SystemExit(f"{path}: seed {s} not evaluated yet (run --phase eval)")
        per_seed[s] = torch.load(path, weights_only=False)
    rows = summary_rows(per_seed, args)
    lines = markdown(rows, per_seed, args)
    figures(per_seed, args)
    write_results("uncertainty", {"args": vars(args), "seeds": args.seeds, "machine": machine(), "rows": rows,
                                  "models": {s: r["models"] for s, r in per_seed.items()},
                                  "eval_code_version": {s: r["key"]["code_version"] for s, r in per_seed.items()}},
                  "\n".join(lines) + "\n")


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def summary_rows(per_seed: dict, args) -> list[dict]:
    """One row per (prediction, heuristic): means over seeds with 95% t-intervals."""
    rows = []
    seeds = sorted(per_seed)
    for label, (_, heuristics, _) in GROUPS.items():
        groups = [per_seed[s]["groups"][label] for s in seeds]
        for h in [*heuristics, *REFERENCES]:
            res = [g["heuristics"][h] for g in groups]
            const = [g["heuristics"]["constant"] for g in groups]
            row = {"prediction": label, "heuristic": h, "psnr": seed_interval([g["psnr"] for g in groups]),
                   "score_error_corr": seed_interval([r["score_error_corr"] for r in res]),
                   "ause": seed_interval([r["ause"] for r in res])}
            for m in ("quantile", "risk"):
                for a in args.alphas:
                    cell = f"{m}@{a:g}"
                    if all(cell in r["set12_to_bsd68"] for r in res):
                        row[f"set12->bsd68 {cell}"] = {k: seed_interval([r["set12_to_bsd68"][cell][k] for r in res])
                                                      for k in ("coverage", "width")}
                    if all(cell in r["bsd68_splits"] for r in res):
                        row[f"bsd68 splits {cell}"] = {k: seed_interval([_mean(r["bsd68_splits"][cell][k]) for r in res])
                                                      for k in ("coverage", "width")}
                    shifted = [r["shift"][cell] for r in res if cell in r.get("shift", {})]
                    if shifted:
                        row[f"shift {cell}"] = {k: seed_interval([x[k] for x in shifted]) for k in ("coverage", "width")}
            # width at alpha = 0.1 against constant width on the same prediction: per seed, and per image
            w = lambda r: [p["width@0.1"] for p in r["per_image"]]  # noqa: E731
            row["width_ratio@0.1"] = seed_interval([_mean(w(r)) / _mean(w(c)) for r, c in zip(res, const)])
            per_image_h = [_mean(v) for v in zip(*[w(r) for r in res])]
            per_image_c = [_mean(v) for v in zip(*[w(c) for c in const])]
            row["width_vs_constant@0.1"] = paired_difference(per_image_h, per_image_c, higher_is_better=False)
            rows.append(row)
    return rows


def _cov(cell: dict | None) -> str:
    if not cell:
        return ""
    return f"{100 * cell['coverage']['mean']:.2f}% / {cell['width']['mean']:.1f}"


def markdown(rows: list[dict], per_seed: dict, args) -> list[str]:
    seeds = sorted(per_seed)
    lines = ["## Calibrated per-pixel error bounds (gray denoising, sigma=25)", "",
             "Models per seed (" + ", ".join(map(str, seeds)) + f"): a gated ensemble of 3 ResNets "
             f"({args.ensemble_epochs} epochs x {args.samples} patches, joint, online bagging) and 3 single ResNets "
             f"of different seeds ({args.single_epochs} epochs each); last.ckpt of each (best.ckpt is chosen on Set12, "
             "which calibrates here). Intervals `fused ± λ·score` (clipped to [0, 1]); λ by split conformal on Set12 "
             "(12 images, 1.77 M pixels) at the checkpoint's sigma=25; tested on BSD68 (68 images). "
             "Cells: coverage / mean width in gray levels (of 255), mean over seeds. `quantile`: the per-pixel "
             "finite-sample quantile; `risk`: conformal risk control of the per-image fraction of pixels outside "
             "(needs >= 19 images at alpha=0.05, so not on Set12). BSD68 splits: "
             f"{args.splits} random halves of BSD68 (34 calibrate, 34 test): calibration and test exchangeable, "
             "where the guarantee holds. Oracle (ceiling): the true |error| as score; random (floor): a uniform random map.",
             ""]
    header = ["prediction", "heuristic", "BSD68 PSNR"]
    header += [f"Set12→BSD68 α={a:g}" for a in args.alphas] + [f"splits α={a:g}" for a in args.alphas]
    header += ["width vs constant at α=0.1 (per image, gray levels)", "width ratio (over seeds)", "corr(score, |err|)",
               "AUSE"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        d = r["width_vs_constant@0.1"]
        diff = "" if r["heuristic"] == "constant" else \
            f"{d['mean']:+.2f} [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]" + ("" if d["distinguishable"] else " (n.d.)")
        cells = [r["prediction"], r["heuristic"], fmt_ci(r["psnr"], 2)]
        cells += [_cov(r.get(f"set12->bsd68 quantile@{a:g}")) for a in args.alphas]
        cells += [_cov(r.get(f"bsd68 splits quantile@{a:g}")) for a in args.alphas]
        no_order = r["heuristic"] == "constant"
        cells += [diff, fmt_ci(r["width_ratio@0.1"], 3), "–" if no_order else fmt_ci(r["score_error_corr"], 3),
                  "– (no order)" if no_order else fmt_ci(r["ause"], 3)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Risk control (same cells; Set12 has too few images at α=0.05):", "",
              "| prediction | heuristic | " + " | ".join(f"Set12→BSD68 α={a:g}" for a in args.alphas) + " | "
              + " | ".join(f"splits α={a:g}" for a in args.alphas) + " |", "|---|---|" + "---|" * 2 * len(args.alphas)]
    for r in rows:
        if r["heuristic"] in REFERENCES:
            continue
        cells = [r["prediction"], r["heuristic"]] + [_cov(r.get(f"set12->bsd68 risk@{a:g}"))
                                                     or f"needs {min_images(a, 'risk')} images" for a in args.alphas]
        cells += [_cov(r.get(f"bsd68 splits risk@{a:g}")) for a in args.alphas]
        lines.append("| " + " | ".join(cells) + " |")
    shift_seeds = [s for s in seeds if s in args.shift_seeds]
    lines += ["", f"Shift: calibrated on Set12 at sigma=25, tested on BSD68 at sigma={args.shift_sigma:g} "
                  f"(seed{'s' if len(shift_seeds) > 1 else ''} {', '.join(map(str, shift_seeds))}; quantile):", "",
              "| prediction | heuristic | " + " | ".join(f"α={a:g}" for a in args.alphas) + " |",
              "|---|---|" + "---|" * len(args.alphas)]
    for r in rows:
        if r["heuristic"] in REFERENCES or f"shift quantile@{args.alphas[0]:g}" not in r:
            continue
        lines.append("| " + " | ".join([r["prediction"], r["heuristic"]] + [_cov(r.get(f"shift quantile@{a:g}"))
                                                                          for a in args.alphas]) + " |")
    lines += ["", goal_lines(rows, args), "", "![sparsification and widths](../../docs/uncertainty_curves.png)", "",
              "![half-width maps](../../docs/uncertainty_example.png)"]
    return lines


def goal_lines(rows: list[dict], args) -> str:
    """The issue's goals, checked on these numbers: coverage per protocol, width against constant."""
    fusion = [r for r in rows if r["heuristic"] not in ("constant", *REFERENCES)]
    words = []
    for proto, what in (("bsd68 splits", "calibration and test exchangeable (random halves of BSD68)"),
                        ("set12->bsd68", "calibrated on Set12, tested on BSD68")):
        worst = max(((abs(r[f"{proto} quantile@{a:g}"]["coverage"]["mean"] - (1 - a)), r, a)
                     for r in fusion + [r for r in rows if r["heuristic"] == "constant"] for a in args.alphas
                     if f"{proto} quantile@{a:g}" in r), key=lambda t: t[0])
        gap, r, a = worst
        words.append(f"Goal 1, {what}: coverage within 1 point of 1 − α for every heuristic and α: "
                     f"{'met' if gap <= 0.01 else 'not met'} (largest gap {100 * gap:.2f} points: {r['heuristic']} "
                     f"on the {r['prediction']} at α={a:g}).")
    best = min(fusion, key=lambda r: r["width_ratio@0.1"]["mean"])
    ratio = best["width_ratio@0.1"]["mean"]
    words.append(f"Goal 2 (best fusion-derived heuristic at least 25% narrower than constant width at α=0.1): best is "
                 f"{best['heuristic']} on the {best['prediction']}, width ratio {fmt_ci(best['width_ratio@0.1'], 3)} "
                 f"({100 * abs(1 - ratio):.1f}% {'narrower' if ratio < 1 else 'wider'}): "
                 + ("met." if ratio <= 0.75 else "not met."))
    return "\n\n".join(words)


def figures(per_seed: dict, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fusionlab.uncertainty.conformal import FRACTIONS

    docs = ROOT / "docs"
    first = per_seed[sorted(per_seed)[0]]
    fig, axes = plt.subplots(1, len(GROUPS), figsize=(5 * len(GROUPS), 3.8), sharey=True)
    for ax, (label, (_, heuristics, _)) in zip(axes, GROUPS.items()):
        for h in [*heuristics, *REFERENCES]:
            if h == "constant":  # no order (its cached curve is raster order): random is that reference
                continue
            curves = [per_seed[s]["groups"][label]["heuristics"][h]["sparsification"] for s in sorted(per_seed)]
            ax.plot(FRACTIONS, [_mean(v) for v in zip(*curves)], "--" if h in REFERENCES else "-", label=h)
        ax.set(title=label, xlabel="fraction of pixels removed (most uncertain first)")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("remaining MAE / MAE (BSD68)")
    fig.suptitle(f"Sparsification on BSD68, mean over seeds {', '.join(map(str, sorted(per_seed)))}")
    fig.tight_layout()
    fig.savefig(docs / "uncertainty_curves.png", dpi=90)
    plt.close(fig)
    panels = []  # restored and |error| of the ensemble, then each heuristic's half-width (one constant)
    for label, group in first["groups"].items():
        ex = group["example"]["panels"]
        if not panels:
            panels += [(f"restored by the {label} ({group['example']['image']})", ex["restored"]),
                       ("its |error|", ex["|error|"]), ("constant: half-width", ex["constant: half-width"])]
        panels += [(f"{k} ({label})", v) for k, v in ex.items() if k.endswith("half-width") and "constant" not in k]
    cols = 4
    rows_n = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(3.6 * cols, 4.4 * rows_n))
    axes = axes.flatten()
    for ax, (title, image) in zip(axes, panels):
        gray = title.startswith("restored")
        ax.imshow(image, cmap="gray" if gray else "magma", vmin=0, vmax=1 if gray else 60)
        ax.set_title(title, fontsize=7)
    for ax in axes:
        ax.axis("off")
    fig.suptitle(f"seed {sorted(per_seed)[0]}: |error| and calibrated half-widths at α=0.1 (gray levels, 0-60)")
    fig.tight_layout()
    fig.savefig(docs / "uncertainty_example.png", dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main(sys.argv[1:])
