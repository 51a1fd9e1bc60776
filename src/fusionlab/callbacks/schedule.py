"""When validation runs, and what it costs.

Lightning validates every ``check_val_every_n_epoch`` epochs or every ``val_check_interval``
batches: evenly spaced. Curves of quality against training length are read on a log scale (1k, 2k,
4k ... steps), and a generation validation of 10,000 samples read by two classifiers is too costly
to run after every short epoch, so :class:`ValidationSchedule` validates after the listed epochs
only (it sets the trainer's ``check_val_every_n_epoch`` before each epoch; there is no Lightning
option for an uneven schedule). Whatever the schedule, it logs the cumulative seconds spent in
validation (``val/eval_time_s``, the sanity check excluded) and the training batches seen so far
(``val/batches``, the x-axis of the curves), so a run's evaluation cost is a number in its
``metrics.json`` and every point of ``metrics.csv``.
"""

import time
from collections.abc import Sequence

import lightning as L
import torch

from fusionlab.utils.errors import check


class ValidationSchedule(L.Callback):
    """:param epochs: 1-based epochs after which to validate (null: the trainer's own schedule)."""

    def __init__(self, epochs: Sequence[int] | None = None) -> None:
        values = None if epochs is None else sorted({int(e) for e in epochs})
        check(values is None or (values and values[0] >= 1), "callbacks.validation_schedule.epochs",
              f"must be a list of epochs >= 1 or null, got {epochs!r}")
        self.epochs = values
        self.eval_seconds = 0.0
        self._started: float | None = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if self.epochs is not None:
            # validate after this epoch iff it is listed (0-based current_epoch; see the module doc)
            trainer.check_val_every_n_epoch = 1 if trainer.current_epoch + 1 in self.epochs else 2**31 - 1

    def on_validation_start(self, trainer, pl_module) -> None:
        self._started = None if trainer.sanity_checking else time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        # after the module's on_validation_epoch_end, where the epoch's metrics are computed (callbacks'
        # epoch-end hooks run before the module's, so timing up to there would miss that cost). self.log
        # is not allowed in this hook: the values go to the loggers and callback_metrics directly.
        if self._started is None:
            return
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        self.eval_seconds += time.perf_counter() - self._started
        self._started = None
        values = {"val/eval_time_s": float(self.eval_seconds),
                  "val/batches": float(trainer.fit_loop.epoch_loop.batch_progress.total.completed)}
        trainer.callback_metrics.update({k: torch.tensor(v) for k, v in values.items()})
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics(values, step=trainer.global_step)

    def state_dict(self) -> dict:
        return {"eval_seconds": self.eval_seconds}

    def load_state_dict(self, state_dict: dict) -> None:
        self.eval_seconds = float(state_dict.get("eval_seconds", 0.0))
