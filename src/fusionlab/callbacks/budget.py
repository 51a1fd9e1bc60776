"""Train for a budget of training minutes: a cosine learning rate over that budget, checkpoints at
given minutes, and a stop when the budget is spent (``budget=time``).

Training time is wall-clock time from the start of fitting, less what validation and the
checkpointing after it take (from ``on_validation_start`` to the next training batch), so that a
10-minute budget means 10 minutes of optimisation and data loading whatever the validation set.
A run stopped by the budget, resumed from ``last.ckpt``, goes on with the time it had spent.

Lightning's parts are deliberately not used here: ``Timer``/``trainer.max_time`` counts validation
and checkpointing as training time, ``ModelCheckpoint(train_time_interval=...)`` measures time the
same way and names files by epoch and step, and an epoch-indexed scheduler cannot end its cosine
at a wall-clock budget whose number of epochs is unknown in advance.
"""

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path

import lightning as L

from fusionlab.utils.errors import check

log = logging.getLogger("fusionlab")


def cosine_factor(fraction: float) -> float:
    """1 at the start of the budget, 0 at its end (half a cosine)."""
    return 0.5 * (1.0 + math.cos(math.pi * min(max(fraction, 0.0), 1.0)))


def mark_name(minutes: float) -> str:
    """File name of the checkpoint taken at ``minutes`` of training: ``t000.5m.ckpt``, ``t020.0m.ckpt``."""
    return f"t{minutes:05.1f}m.ckpt"


class TrainingBudget(L.Callback):
    """:param minutes: training minutes after which the run stops (after the batch that crosses it).
    :param cosine: set every optimiser group's learning rate each step to ``eta_min + (lr0 -
        eta_min) * (1 + cos(pi * t / budget)) / 2``; the approach must then have no scheduler
        (``approach.scheduler=null``), which is checked at the start.
    :param eta_min: the learning rate at the end of the budget.
    :param marks: training minutes (<= ``minutes``) at which a checkpoint is saved to
        ``dirpath/t<minutes>m.ckpt``: the points of a quality-per-minute curve. The end of the
        budget is always one of them.
    :param dirpath: folder of the mark checkpoints.
    """

    def __init__(self, minutes: float, cosine: bool = True, eta_min: float = 1e-5, marks: Sequence[float] = (),
                 dirpath: str | None = None) -> None:
        check(float(minutes) > 0, "callbacks.budget.minutes", f"must be > 0 minutes, got {minutes}")
        marks = sorted({float(m) for m in marks or ()} | {float(minutes)})
        check(all(0 < m <= float(minutes) for m in marks), "callbacks.budget.marks",
              f"every mark must be in (0, minutes={minutes}], got {list(marks)}")
        check(float(eta_min) >= 0, "callbacks.budget.eta_min", f"must be >= 0, got {eta_min}")
        self.minutes, self.cosine, self.eta_min = float(minutes), bool(cosine), float(eta_min)
        self.marks, self.dirpath = marks, dirpath
        self.spent = 0.0              # training seconds before this process (resumed runs)
        self._started = None          # perf_counter at which the current training segment began
        self._paused_at = None        # perf_counter at which validation began (None: not paused)
        self._next_mark = 0

    # ---- the clock ------------------------------------------------------------------------------
    def training_seconds(self) -> float:
        if self._started is None:
            return self.spent
        return self.spent + ((self._paused_at or time.perf_counter()) - self._started)

    def on_train_start(self, trainer, pl_module) -> None:
        if self.cosine and trainer.lr_scheduler_configs:
            check(False, "callbacks.budget.cosine", "the approach has its own learning-rate scheduler; "
                  "set approach.scheduler=null (the budget's cosine replaces it) or callbacks.budget.cosine=false")
        for opt in trainer.optimizers:
            for group in opt.param_groups:
                group.setdefault("budget_lr0", group["lr"])
        self._started, self._paused_at = time.perf_counter(), None
        self._next_mark = sum(m * 60 <= self.spent for m in self.marks)

    def on_validation_start(self, trainer, pl_module) -> None:
        if self._started is not None and self._paused_at is None and not trainer.sanity_checking:
            self._paused_at = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._paused_at is not None:  # validation + checkpointing since then: not training time
            self._started += time.perf_counter() - self._paused_at
            self._paused_at = None
        if self.cosine:
            factor = cosine_factor(self.training_seconds() / (60 * self.minutes))
            for opt in trainer.optimizers:
                for group in opt.param_groups:
                    group["lr"] = self.eta_min + (group["budget_lr0"] - self.eta_min) * factor

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        seconds = self.training_seconds()
        while self._next_mark < len(self.marks) and seconds >= 60 * self.marks[self._next_mark]:
            pause = time.perf_counter()
            self.save_mark(trainer, self.marks[self._next_mark], seconds)
            self._started += time.perf_counter() - pause  # saving is not training
            self._next_mark += 1
        if seconds >= 60 * self.minutes:
            trainer.should_stop = True

    def save_mark(self, trainer, minutes: float, seconds: float) -> None:
        if self.dirpath is None:
            return
        path = Path(self.dirpath) / mark_name(minutes)
        trainer.save_checkpoint(path)  # through the trainer's CheckpointIO (AtomicCheckpointIO in conf/trainer)
        log.info("budget: %.1f training minutes (%.0f s), step %d: %s", minutes, seconds, trainer.global_step, path.name)

    # ---- resuming -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"spent": self.training_seconds()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.spent = float(state_dict.get("spent", 0.0))
