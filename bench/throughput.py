"""Training throughput: the full pipeline against a minimal hand-written PyTorch loop.

For each approach's default model (the configs `make train` uses, embedded scikit-image data):

* **pipeline**: ``train.py``'s Trainer (``build_trainer``: its callbacks, checkpointing, CSV +
  W&B offline loggers, the NaN guard of the GAN approaches) fitting one epoch of ``--batches``
  batches;
* **plain loop**: the same networks, loss and optimizer(s), ``forward / backward / step`` by hand
  over the same DataLoader (same seed, so the same batches), nothing else;
* **data only**: that DataLoader iterated alone (decoding, cropping, degradation, collation).

Images/sec are timed from the start of batch ``--warmup`` to the end of the last batch (first
batches pay one-off costs: allocator, cuDNN autotuning, ``torch.compile``). Pipeline and loop
alternate ``--repeats`` times; the table reports medians. On a CUDA machine ``--gpu-variants``
adds pipeline runs in bf16-mixed, channels_last and torch.compile.

    .venv/bin/python bench/throughput.py                      # -> bench/results/throughput.{json,md}
    .venv/bin/python bench/throughput.py --approaches single ensemble --batches 60
"""

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import compose_train, machine, write_results

import lightning as L
import torch

from fusionlab.callbacks.throughput import batch_images
from fusionlab.pipeline import build, build_trainer

APPROACHES = {  # name -> (overrides selecting its default model on the embedded data, batches per run)
    "single": (["approach=single"], 60),
    "ensemble": (["approach=ensemble"], 40),
    "feature_fusion": (["approach=feature_fusion"], 40),
    "gan_style": (["task=style"], 40),
    "gan": (["task=generate"], 250),  # small steps (~40 ms on CPU): more of them for a stable timing
    "gan_mixture": (["task=generate", "approach=gan_mixture"], 250),
}


def timing_cfg(out_dir: Path, overrides: list[str]):
    """A run that only trains (no validation, no test, no FID), for timing."""
    return compose_train(out_dir, ["metrics.fid.extractor=none", "trainer.max_epochs=1",
                                   "trainer.limit_val_batches=0", "trainer.num_sanity_val_steps=0", "test=false",
                                   *overrides], logger="[csv,wandb]")


class Timer(L.Callback):
    """Images and seconds from the start of batch ``warmup`` to the end of the last batch."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.images, self.start, self.end = warmup, 0, None, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.warmup:
            sync(pl_module.device)
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx >= self.warmup:
            self.images += batch_images(batch)
            sync(pl_module.device)
            self.end = time.perf_counter()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_pipeline(overrides: list[str], batches: int, warmup: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = timing_cfg(Path(tmp), [*overrides, f"trainer.limit_train_batches={batches}"])
        L.seed_everything(cfg.seed, workers=True)
        datamodule, model = build(cfg)
        timer = Timer(warmup)
        trainer = build_trainer(cfg, [timer], model)
        trainer.fit(model, datamodule=datamodule)
        from fusionlab.pipeline import finish_wandb

        finish_wandb()
    return timer.images / (timer.end - timer.start)


def plain_step_fn(model: L.LightningModule) -> tuple[Callable[[dict], None], list[torch.optim.Optimizer]]:
    """The approach's forward/backward/step written by hand (what a researcher's script does)."""
    from fusionlab.approaches.adversarial import AdversarialModule
    from fusionlab.approaches.ensemble import OutputEnsemble

    optimizers = model.configure_optimizers()
    if isinstance(optimizers, tuple):  # ([opt_g, opt_d], [schedulers])
        optimizers = optimizers[0]
    elif isinstance(optimizers, dict):
        optimizers = [optimizers["optimizer"]]
    elif not isinstance(optimizers, list):
        optimizers = [optimizers]

    if isinstance(model, AdversarialModule):
        opt_g, opt_d = optimizers
        d_params = list(model.discriminator_parameters())

        def step(batch: dict) -> None:
            fake, ctx = model.generate(batch)
            d_terms, _ = model.d_terms(batch, fake.detach(), ctx)
            opt_d.zero_grad(set_to_none=True)
            model._total(d_terms, discriminator=True).backward()
            opt_d.step()
            for p in d_params:
                p.requires_grad_(False)
            g_terms = model.g_terms(batch, fake, ctx)
            opt_g.zero_grad(set_to_none=True)
            model._total(g_terms, discriminator=False).backward()
            opt_g.step()
            for p in d_params:
                p.requires_grad_(True)
            if model.ema is not None:
                model.ema.update(model.generator)
        return step, optimizers

    (opt,) = optimizers
    if isinstance(model, OutputEnsemble):
        def step(batch: dict) -> None:
            outs = model.member_outputs(batch["source"])
            loss = model.loss(model.fusion(outs, batch["source"]), batch["target"])
            if model.mode == "joint" and model.member_loss_weight > 0:
                loss = loss + model.member_loss_weight * model._member_loss(outs, batch["target"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return step, optimizers

    def step(batch: dict) -> None:  # single model, feature fusion: one network, one loss
        loss = model.loss(model(batch["source"]), batch["target"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step, optimizers


def run_plain(overrides: list[str], batches: int, warmup: int, device: torch.device) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = timing_cfg(Path(tmp), overrides)
        L.seed_everything(cfg.seed, workers=True)
        datamodule, model = build(cfg)
        datamodule.setup("fit")
        model.to(device).train()
        step, _ = plain_step_fn(model)
        images, start = 0, None
        for i, batch in enumerate(datamodule.train_dataloader()):
            if i == batches:
                break
            if i == warmup:
                sync(device)
                start = time.perf_counter()
            batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
            step(batch)
            if i >= warmup:
                images += batch_images(batch)
        sync(device)
        return images / (time.perf_counter() - start)


def run_data(overrides: list[str], batches: int, warmup: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = timing_cfg(Path(tmp), overrides)
        L.seed_everything(cfg.seed, workers=True)
        datamodule, _ = build(cfg)
        datamodule.setup("fit")
        images, start = 0, None
        for i, batch in enumerate(datamodule.train_dataloader()):
            if i == batches:
                break
            if i == warmup:
                start = time.perf_counter()
            if i >= warmup:
                images += batch_images(batch)
        return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--approaches", nargs="+", default=list(APPROACHES), choices=list(APPROACHES))
    parser.add_argument("--batches", type=int, default=None, help="training batches per measurement "
                        "(default: per approach, a few seconds on CPU)")
    parser.add_argument("--warmup", type=int, default=5, help="batches not timed")
    parser.add_argument("--repeats", type=int, default=3, help="pipeline/loop alternations (median)")
    parser.add_argument("--gpu-variants", action="store_true", help="on CUDA: also bf16, channels_last, compile")
    parser.add_argument("--name", default="throughput", help="results file stem")
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    hw = ["trainer.accelerator=gpu", "trainer.devices=1", "trainer.precision=32"] if cuda else \
        ["trainer.accelerator=cpu"]
    rows = {}
    for name in args.approaches:
        approach_overrides, default_batches = APPROACHES[name]
        batches = args.batches or default_batches
        overrides = [*approach_overrides, *hw, f"data.samples_per_epoch={batches * 256}"]  # epoch >= batches
        pipe, plain = [], []
        for r in range(args.repeats):
            pipe.append(run_pipeline(overrides, batches, args.warmup))
            plain.append(run_plain(overrides, batches, args.warmup, device))
            print(f"[throughput] {name} #{r}: pipeline {pipe[-1]:.1f} img/s, plain loop {plain[-1]:.1f} img/s",
                  flush=True)
        data = run_data(overrides, batches, args.warmup)
        row = {"batches": batches, "pipeline_img_s": statistics.median(pipe), "plain_img_s": statistics.median(plain),
               "data_img_s": data, "pipeline_runs": pipe, "plain_runs": plain}
        row["ratio"] = row["pipeline_img_s"] / row["plain_img_s"]
        row["data_headroom"] = data / row["plain_img_s"]
        if cuda and args.gpu_variants:
            for variant, extra in {"bf16-mixed": ["trainer.precision=bf16-mixed"],
                                   "bf16 + channels_last": ["trainer.precision=bf16-mixed", "callbacks.performance.channels_last=true"],
                                   "bf16 + compile": ["trainer.precision=bf16-mixed", "callbacks.performance.compile=true"]}.items():
                row[f"pipeline_{variant}_img_s"] = statistics.median(
                    run_pipeline([*overrides, *extra], batches, args.warmup) for _ in range(args.repeats))
        rows[name] = row
        print(f"[throughput] {name}: ratio {row['ratio']:.3f}, data headroom {row['data_headroom']:.1f}x", flush=True)

    env = machine()
    lines = [f"Training throughput, {env['cuda'] or 'CPU (' + str(env['threads']) + ' threads)'}, torch {env['torch']}; "
             f"the first {args.warmup} batches of each run untimed; median of {args.repeats} alternating runs.", "",
             "| approach | batches | pipeline img/s | plain loop img/s | pipeline / plain | data loading img/s | "
             "data / training |", "|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['batches']} | {r['pipeline_img_s']:.1f} | {r['plain_img_s']:.1f} | {r['ratio']:.3f} | "
                     f"{r['data_img_s']:.0f} | {r['data_headroom']:.1f}x |")
    if cuda and args.gpu_variants:
        lines += ["", "| approach | fp32 | bf16-mixed | bf16 + channels_last | bf16 + compile |", "|---|---|---|---|---|"]
        for name, r in rows.items():
            lines.append(f"| {name} | {r['pipeline_img_s']:.1f} | {r['pipeline_bf16-mixed_img_s']:.1f} | "
                         f"{r['pipeline_bf16 + channels_last_img_s']:.1f} | {r['pipeline_bf16 + compile_img_s']:.1f} |")
    lines += ["", "Goals: pipeline / plain >= 0.95; data / training >= 3x."]
    write_results(args.name, {"machine": env, "args": vars(args), "rows": rows}, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
