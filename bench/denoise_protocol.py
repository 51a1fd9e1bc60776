"""The DnCNN denoising protocol, side by side with classical denoisers and published figures.

AWGN sigma in {15, 25, 50} on ../shared/data/gray/Set12 and gray/BSD68: clean image in [0, 1], noise
N(0, (sigma/255)^2) seeded per image name (the pipeline's own val/test noise), not clipped; PSNR/SSIM
on the output clipped to [0, 1] (fusionlab.metrics: mean of per-image values). On the very same
noisy images it runs the given checkpoints and the classical methods a user would otherwise pick:
BM3D (`bm3d` package, `pip install -e .[bench]`), scikit-image non-local means and total variation
(parameters set from sigma by a fixed rule, not tuned on these sets). Published PSNRs of BM3D and
DnCNN-S (DnCNN paper, Tables II-III) are listed as quoted, not measured.

    .venv/bin/python bench/denoise_protocol.py [--checkpoints RUN/checkpoints/best.ckpt ...] [--limit N]
Writes bench/results/denoise_protocol.{json,md}.
"""

import argparse
import time

import numpy as np
import torch
from rich.progress import track

from common import SHARED, load_model, machine, write_results

from fusionlab.data.images import list_images, load_image
from fusionlab.metrics.image import prepare_for_metrics, psnr_per_image, ssim_per_image
from fusionlab.tasks.degradations import GaussianNoise

PUBLISHED = {  # DnCNN paper (Zhang et al., TIP 2017), Tables II-III: PSNR dB
    ("BSD68", 15): {"BM3D": 31.07, "DnCNN-S": 31.73},
    ("BSD68", 25): {"BM3D": 28.57, "DnCNN-S": 29.23},
    ("BSD68", 50): {"BM3D": 25.62, "DnCNN-S": 26.23},
    ("Set12", 25): {"BM3D": 29.97, "DnCNN-S": 30.44},
}


def classical(name: str):
    from skimage.restoration import denoise_nl_means, denoise_tv_chambolle

    if name == "bm3d":
        import bm3d

        return lambda noisy, s: bm3d.bm3d(noisy, sigma_psd=s)
    if name == "nlm":  # h = 0.8 sigma, as scikit-image's own example
        return lambda noisy, s: denoise_nl_means(noisy, h=0.8 * s, sigma=s, patch_size=7, patch_distance=11,
                                                 fast_mode=True)
    if name == "tv":  # Chambolle TV, weight proportional to sigma
        return lambda noisy, s: denoise_tv_chambolle(noisy, weight=1.0 * s)
    raise ValueError(name)


def load_checkpoint_model(path: str):
    model, cfg = load_model(path)
    return model, f"checkpoint {path.split('/')[-3]} (trained sigma={cfg.task.get('sigma')})"


def score(out: torch.Tensor, clean: torch.Tensor) -> tuple[float, float]:
    p, t = prepare_for_metrics(out[None]), prepare_for_metrics(clean[None])
    return psnr_per_image(p, t).item(), ssim_per_image(p, t).item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", nargs="*", default=[])
    parser.add_argument("--sigmas", nargs="*", type=int, default=[15, 25, 50])
    parser.add_argument("--sets", nargs="*", default=["Set12", "BSD68"])
    parser.add_argument("--methods", nargs="*", default=["bm3d", "nlm", "tv"])
    parser.add_argument("--limit", type=int, default=None, help="first N images of each set (quick runs)")
    args = parser.parse_args()
    methods = {m: classical(m) for m in args.methods}
    models = [load_checkpoint_model(c) for c in args.checkpoints]
    results: dict = {}
    for set_name in args.sets:
        files = list_images(SHARED / "gray" / set_name, "--sets")[: args.limit]
        for sigma in args.sigmas:
            task = GaussianNoise(sigma)
            per = {"noisy input": []}
            seconds: dict[str, float] = {}
            for path in track(files, description=f"{set_name} sigma={sigma}"):
                clean = load_image(path, 1)
                noisy, _ = task(clean, task.eval_generator(path.name))
                per["noisy input"].append(score(noisy, clean))
                for label, fn in methods.items():
                    start = time.perf_counter()
                    out = fn(noisy[0].double().numpy(), sigma / 255.0)
                    seconds[label] = seconds.get(label, 0.0) + time.perf_counter() - start
                    per.setdefault(label, []).append(score(torch.from_numpy(np.asarray(out)).float()[None], clean))
                for model, label in models:
                    start = time.perf_counter()
                    out = model.restore(noisy[None])["main"][0]
                    seconds[label] = seconds.get(label, 0.0) + time.perf_counter() - start
                    per.setdefault(label, []).append(score(out, clean))
            results[f"{set_name}/{sigma}"] = {
                label: {"psnr": float(np.mean([v[0] for v in vals])), "ssim": float(np.mean([v[1] for v in vals])),
                        "s_per_image": seconds.get(label, 0.0) / len(files), "images": len(files)}
                for label, vals in per.items()}
    keys = list(results)
    labels = list(results[keys[0]])
    lines = ["## Denoising protocol (gray AWGN; PSNR dB / SSIM, mean over images)", "",
             "Measured here on the same seeded noisy images" + (f" (first {args.limit} images per set)" if args.limit else "")
             + ":", "", "| method | " + " | ".join(k.replace("/", " σ=") for k in keys) + " |",
             "|---|" + "---:|" * len(keys)]
    for label in labels:
        lines.append(f"| {label} | " + " | ".join(f"{results[k][label]['psnr']:.2f} / {results[k][label]['ssim']:.4f}"
                                                  for k in keys) + " |")
    lines += ["", "Quoted from the DnCNN paper (Zhang et al., TIP 2017, Tables II-III), not measured here (PSNR dB):",
              "", "| method | " + " | ".join(k.replace("/", " σ=") for k in keys) + " |", "|---|" + "---:|" * len(keys)]
    for method in ("BM3D", "DnCNN-S"):
        cells = []
        for k in keys:
            s, sig = k.split("/")
            cells.append(f"{PUBLISHED[(s, int(sig))][method]:.2f}" if (s, int(sig)) in PUBLISHED else "–")
        lines.append(f"| {method} (published) | " + " | ".join(cells) + " |")
    lines.append("")
    write_results("denoise_protocol", {"args": vars(args), "results": results, "published": {
        f"{s}/{g}": v for (s, g), v in PUBLISHED.items()}, "machine": machine()}, "\n".join(lines))


if __name__ == "__main__":
    main()
