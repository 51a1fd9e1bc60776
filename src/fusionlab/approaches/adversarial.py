"""Manual-optimisation machinery shared by the adversarial approaches (style transfer, generation).

:class:`AdversarialModule` owns the training step; a subclass says what the networks compute:

- ``generate(batch) -> (fake, ctx)``: the generator's images for this batch (with gradients);
- ``d_terms(batch, fake, ctx) -> (terms, stats)``: the discriminator's loss terms on *detached*
  fakes, and statistics to log (``d_real``, ``d_fake``: mean logits);
- ``g_terms(batch, fake, ctx) -> terms``: the generator's loss terms.

Each batch makes one D step; every ``n_critic``-th batch also makes one G step. Loss terms are
weighted by ``loss_weights[name]`` (the D's own ``adv`` term has weight 1) and logged unweighted as
``train/d_<name>`` / ``train/g_<name>``; totals as ``train/loss_d`` / ``train/loss_g``.

Correctness rules, each tested:

- only the optimizer whose parameters received gradients is stepped (``toggled_optimizer``), so a
  ``16-mixed`` GradScaler never sees an optimizer without gradients, and D is not updated during
  the G step; fakes are detached for the D step;
- gradient clipping runs in ``on_before_optimizer_step``, after the GradScaler has unscaled;
- under DDP each backward reaches one network only, so :attr:`ddp_find_unused_parameters` tells the
  pipeline to use ``ddp_find_unused_parameters_true`` (what Lightning's GAN example needs);
- a NaN/Inf loss raises :class:`~fusionlab.utils.errors.TrainingDiverged` naming the loss, the
  term and the batch, *before* any optimizer step, so the weights and ``last.ckpt`` stay good;
- ``trainer.global_step`` counts optimizer steps (D and G), so this module counts batches itself
  (``batches_seen``, saved in checkpoints) for ``n_critic``; budget runs in epochs or
  ``limit_train_batches``.

An exponential moving average of the generator (``ema_decay``) is kept when enabled and used for
validation, test and export (:attr:`inference_generator`).
"""

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from fusionlab.evaluation import EvaluatedModule
from fusionlab.losses.adversarial import GANLoss
from fusionlab.utils.errors import ConfigError, TrainingDiverged


def warmup_ema_multi_avg_fn(decay: float) -> Callable:
    """``multi_avg_fn`` for :class:`~torch.optim.swa_utils.AveragedModel`: ``ema = d * ema + (1 - d) * model``
    with ``d`` warming up as ``min(decay, (1 + n) / (10 + n))`` over the updates ``n`` (TensorFlow's
    ``ExponentialMovingAverage(num_updates)``), so short runs do not evaluate the initial weights.
    torch's ``get_ema_multi_avg_fn`` has the fixed decay only."""

    @torch.no_grad()
    def update(ema: list[torch.Tensor], model: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        n = float(num_averaged)
        floats = [(e, p) for e, p in zip(ema, model) if e.is_floating_point()]
        if floats:
            torch._foreach_lerp_([e for e, _ in floats], [p.to(e.dtype) for e, p in floats],
                                 1.0 - min(decay, (1 + n) / (10 + n)))
        for e, p in zip(ema, model):  # integer buffers (BatchNorm's num_batches_tracked) are copied
            if not e.is_floating_point():
                e.copy_(p)

    return update


class EMA(AveragedModel):
    """The generator's exponential moving average: torch's :class:`AveragedModel` (parameters
    averaged with :func:`warmup_ema_multi_avg_fn`, buffers such as BatchNorm statistics and
    spectral-norm vectors copied from the trained network), frozen. ``update(generator)`` after
    each generator step; ``.module`` is the averaged network."""

    exclude_from_cost = True  # a copy: not counted in the model's parameters

    def __init__(self, module: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ConfigError("approach.ema_decay", f"must be in (0, 1) or null, got {decay}")
        super().__init__(module, multi_avg_fn=warmup_ema_multi_avg_fn(float(decay)), use_buffers=False)
        self.decay = float(decay)
        self.requires_grad_(False)

    def update(self, source: nn.Module) -> None:
        self.update_parameters(source)


class AdversarialModule(EvaluatedModule):
    """Base of the GAN approaches (see the module docstring for the contract).

    :param generator: the network trained by ``optimizer_g``.
    :param discriminator: the network trained by ``optimizer_d``.
    :param gan_loss: a :class:`~fusionlab.losses.GANLoss`.
    :param loss_weights: weight per loss term name; the subclass lists its terms in ``LOSS_TERMS``.
    :param n_critic: D steps per G step (counted in batches).
    :param grad_clip: max gradient norm for both networks (null: no clipping).
    :param ema_decay: decay of the generator EMA (null: no EMA).
    """

    LOSS_TERMS: tuple[str, ...] = ("adv",)
    ddp_find_unused_parameters = True

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        gan_loss: GANLoss,
        optimizer_g: Callable[..., torch.optim.Optimizer],
        optimizer_d: Callable[..., torch.optim.Optimizer],
        scheduler_g: Callable | None = None,
        scheduler_d: Callable | None = None,
        loss_weights: dict[str, float] | None = None,
        n_critic: int = 1,
        grad_clip: float | None = None,
        ema_decay: float | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.generator, self.discriminator, self.gan_loss = generator, discriminator, gan_loss
        self.optimizer_g, self.optimizer_d = optimizer_g, optimizer_d
        self.scheduler_g, self.scheduler_d = scheduler_g, scheduler_d
        weights = dict(loss_weights or {})
        unknown = sorted(set(weights) - set(self.LOSS_TERMS))
        if unknown:
            raise ConfigError("approach.loss_weights", f"unknown loss term(s) {unknown}; this approach has "
                              f"{list(self.LOSS_TERMS)}")
        bad = {k: v for k, v in weights.items() if not (isinstance(v, (int, float)) and v >= 0 and math.isfinite(v))}
        if bad:
            raise ConfigError("approach.loss_weights", f"weights must be finite numbers >= 0, got {bad}")
        self.loss_weights = {k: float(weights.get(k, 0.0)) for k in self.LOSS_TERMS}
        if int(n_critic) < 1:
            raise ConfigError("approach.n_critic", f"must be an integer >= 1, got {n_critic}")
        if grad_clip is not None and not grad_clip > 0:
            raise ConfigError("approach.grad_clip", f"must be > 0 or null, got {grad_clip}")
        self.n_critic, self.grad_clip = int(n_critic), grad_clip
        self.ema = EMA(generator, ema_decay) if ema_decay is not None else None
        self.register_buffer("batches_seen", torch.zeros((), dtype=torch.long))
        self._epoch_sums: dict[str, tuple[torch.Tensor, int]] = {}  # key -> (sum, batches that logged it)

    # ---- contract for subclasses ----------------------------------------------------------
    def generate(self, batch: dict) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def d_terms(self, batch: dict, fake: torch.Tensor, ctx: dict) -> tuple[dict[str, torch.Tensor], dict]:
        raise NotImplementedError

    def g_terms(self, batch: dict, fake: torch.Tensor, ctx: dict) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def weight(self, name: str) -> float:
        return self.loss_weights.get(name, 0.0)

    @property
    def inference_generator(self) -> nn.Module:
        """The EMA generator when enabled, else the trained one."""
        return self.ema.module if self.ema is not None else self.generator

    # ---- training -------------------------------------------------------------------------
    def _total(self, terms: dict[str, torch.Tensor], discriminator: bool) -> torch.Tensor:
        total = 0.0
        for name, value in terms.items():
            w = 1.0 if (discriminator and name == "adv") else self.weight(name)
            if w:
                total = total + w * value.float()
        return total

    def _guard(self, which: str, total: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        if bool(torch.isfinite(total)):
            return
        culprit = next((k for k, v in terms.items() if not bool(torch.isfinite(v))), "the weighted sum")
        ckpt = getattr(self.trainer.checkpoint_callback, "last_model_path", "") or "none written yet"
        raise TrainingDiverged(
            f"{which} is {float(total)} (term {culprit!r}) at batch {int(self.batches_seen)}, epoch "
            f"{self.current_epoch}: training stopped before this step touched the weights; last good "
            f"checkpoint: {ckpt}. Try a lower learning rate, grad_clip, or precision=32.")

    def training_step(self, batch: dict, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        g_step = (int(self.batches_seen) + 1) % self.n_critic == 0
        with torch.set_grad_enabled(g_step):
            fake, ctx = self.generate(batch)

        with self.toggled_optimizer(opt_d):
            d_terms, stats = self.d_terms(batch, fake.detach(), ctx)
            loss_d = self._total(d_terms, discriminator=True)
            self._guard("loss_d", loss_d, d_terms)
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(loss_d)
            opt_d.step()
        logs = {"train/loss_d": loss_d.detach(), **{f"train/{k}": v for k, v in stats.items()},
                **{f"train/d_{k}": v.detach() for k, v in d_terms.items() if k != "adv"}}

        if g_step:
            with self.toggled_optimizer(opt_g):
                g_terms = self.g_terms(batch, fake, ctx)
                loss_g = self._total(g_terms, discriminator=False)
                self._guard("loss_g", loss_g, g_terms)
                opt_g.zero_grad(set_to_none=True)
                self.manual_backward(loss_g)
                opt_g.step()
            if self.ema is not None:
                self.ema.update(self.generator)
            logs.update({"train/loss_g": loss_g.detach(), **{f"train/g_{k}": v.detach() for k, v in g_terms.items()}})
        self.batches_seen += 1
        self._log_train(logs)

    def _log_train(self, logs: dict[str, torch.Tensor]) -> None:
        """Step values when the loggers write (every ``trainer.log_every_n_steps`` batches) and
        running sums for the epoch means (``<key>_epoch``): ``self.log`` of ~10 terms on every
        batch cost 7% of a small GAN's step on CPU (bench/throughput.py)."""
        for key, value in logs.items():  # counted per key: G terms exist only every n_critic batches
            total, count = self._epoch_sums.get(key, (0.0, 0))
            self._epoch_sums[key] = (total + value.detach().float(), count + 1)
        connector = getattr(self.trainer, "_logger_connector", None)
        if connector is None or connector.should_update_logs:
            self.log_dict(logs, prog_bar=False, on_step=True, on_epoch=False)

    def on_train_epoch_start(self) -> None:
        self._epoch_sums = {}

    def on_before_optimizer_step(self, optimizer) -> None:
        # after the GradScaler has unscaled the gradients (16-mixed), before the step
        if self.grad_clip is not None:
            self.clip_gradients(optimizer, gradient_clip_val=self.grad_clip, gradient_clip_algorithm="norm")

    def on_train_epoch_end(self) -> None:
        if self._epoch_sums:
            self.log_dict({f"{k}_epoch": total / count for k, (total, count) in self._epoch_sums.items()},
                          on_step=False, on_epoch=True, sync_dist=True)
        schedulers = self.lr_schedulers()
        if schedulers is None:
            return
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            scheduler.step()

    def generator_parameters(self) -> Iterable[nn.Parameter]:
        return self.generator.parameters()

    def discriminator_parameters(self) -> Iterable[nn.Parameter]:
        return self.discriminator.parameters()

    def configure_optimizers(self):
        opt_g = self.optimizer_g(params=list(self.generator_parameters()))
        opt_d = self.optimizer_d(params=list(self.discriminator_parameters()))
        schedulers = [factory(optimizer=opt) for factory, opt in ((self.scheduler_g, opt_g), (self.scheduler_d, opt_d))
                      if factory is not None]
        return [opt_g, opt_d], schedulers
