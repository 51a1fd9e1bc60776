"""Training throughput in images per second, of training only: ``train/images_per_sec`` (every
``window`` batches) and ``train/images_per_sec_epoch`` (the epoch's mean).

Lightning validates inside the training epoch, before ``on_train_epoch_end``; the time from the
start of validation to its end (validation steps, FID, sample grids) and the checkpointing after it
are excluded here, so the number is the training step rate a user can compare between approaches.

Lightning's own ``ThroughputMonitor`` is deliberately not used: its values go straight to the
loggers (not to ``callback_metrics``, so ``metrics.json``, sweeps and reports could not read them),
and it counts the checkpoint saving that follows validation as training time.
"""

import time

import lightning as L
import torch


def batch_images(batch) -> int:
    """Images in a batch: the first dim of ``target`` (else of the first tensor)."""
    first = batch["target"] if "target" in batch else next(v for v in batch.values() if torch.is_tensor(v))
    return int(first.shape[0])


class Throughput(L.Callback):
    """Images per second of training (wall clock, synchronised on CUDA at the window edges), times
    the world size. Validation and what follows it until the next training batch are not counted."""

    def __init__(self, window: int = 20) -> None:
        self.window = max(1, window)
        self._reset(None)

    def _reset(self, now: float | None) -> None:
        self._window_start = self._segment_start = now
        self._window_images = self._epoch_images = 0
        self._closed = 0.0          # training seconds of the epoch's closed segments
        self._last_batch_end = None
        self._validation_started = None

    @staticmethod
    def _now(pl_module) -> float:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._reset(self._now(pl_module))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._segment_start is None:  # resumed mid-epoch, or the first batch after validation
            now = time.perf_counter()
            self._segment_start = now
            if self._window_start is None:
                self._window_start = now

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        n = batch_images(batch) * trainer.world_size
        self._window_images += n
        self._epoch_images += n
        self._last_batch_end = time.perf_counter()
        if (batch_idx + 1) % self.window == 0:
            now = self._now(pl_module)
            self._last_batch_end = now
            pl_module.log("train/images_per_sec", self._window_images / max(now - self._window_start, 1e-9),
                          on_step=True, on_epoch=False, rank_zero_only=True)
            self._window_start, self._window_images = now, 0

    def on_validation_start(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or self._segment_start is None or self._last_batch_end is None:
            return
        end = self._now(pl_module)  # the last training step has finished
        self._closed += max(0.0, end - self._segment_start)
        self._validation_started = end

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or getattr(self, "_validation_started", None) is None:
            return
        # the window and the segment restart at the next training batch: validation, checkpointing
        # and anything else before it are not training
        paused = time.perf_counter() - self._validation_started
        if self._window_start is not None:
            self._window_start += paused
        self._segment_start = None
        self._validation_started = None

    def train_seconds(self) -> float:
        """Training seconds of the current epoch so far."""
        open_segment = 0.0
        if self._segment_start is not None and self._last_batch_end is not None \
                and self._last_batch_end > self._segment_start:
            open_segment = self._last_batch_end - self._segment_start
        return self._closed + open_segment

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        seconds = self.train_seconds()
        if self._epoch_images and seconds > 0:
            pl_module.log("train/images_per_sec_epoch", self._epoch_images / seconds, on_step=False, on_epoch=True,
                          rank_zero_only=True)
