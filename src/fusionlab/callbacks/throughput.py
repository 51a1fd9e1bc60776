"""Training throughput in images per second, logged as ``train/images_per_sec``."""

import time

import lightning as L
import torch


class Throughput(L.Callback):
    """Images per second over each window of ``window`` training batches (wall clock, synchronised
    on CUDA), plus the epoch's mean. Images are counted from the batch's first tensor (``target``,
    ``content``, ...), times the world size."""

    def __init__(self, window: int = 20) -> None:
        self.window = max(1, window)
        self._start = self._epoch_start = None
        self._images = self._epoch_images = 0

    @staticmethod
    def _now(pl_module) -> float:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = self._epoch_start = self._now(pl_module)
        self._images = self._epoch_images = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._start is None:  # resumed mid-epoch: no epoch start was seen
            self.on_train_epoch_start(trainer, pl_module)
        first = batch["target"] if "target" in batch else next(v for v in batch.values() if torch.is_tensor(v))
        n = first.shape[0] * trainer.world_size
        self._images += n
        self._epoch_images += n
        if (batch_idx + 1) % self.window == 0:
            now = self._now(pl_module)
            pl_module.log("train/images_per_sec", self._images / max(now - self._start, 1e-9),
                          on_step=True, on_epoch=False, rank_zero_only=True)
            self._start, self._images = now, 0

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._epoch_start is not None and self._epoch_images:
            rate = self._epoch_images / max(self._now(pl_module) - self._epoch_start, 1e-9)
            pl_module.log("train/images_per_sec_epoch", rate, on_step=False, on_epoch=True,
                          rank_zero_only=True)
