"""Fault tolerance: a checkpoint on SIGTERM (what SLURM sends before preemption), and random number
generators seeded per epoch so that a resumed run continues the same stream."""

import logging
import random
import zlib
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import OnExceptionCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger("fusionlab")


class SaveOnSigterm(OnExceptionCheckpoint):
    """On SIGTERM Lightning finishes the current batch and raises ``SIGTERMException``; this saves
    ``<dirpath>/last.ckpt`` (atomically, through the trainer's checkpoint IO) before the process
    exits, so a requeued job resumes with ``ckpt_path=last``.

    Lightning's :class:`OnExceptionCheckpoint`, narrowed to SIGTERM during fit: on any other
    exception (a bad config or image, found before or during training) nothing is written, so a
    failed run leaves no checkpoint behind. Under SLURM, ``trainer=slurm`` adds Lightning's
    ``SLURMEnvironment(auto_requeue=True)``: on SIGUSR1 it saves ``hpc_ckpt_N.ckpt`` and requeues
    the job, which resumes from it."""

    def __init__(self, dirpath: str, filename: str = "last") -> None:
        super().__init__(dirpath, filename)
        self.path = Path(self.ckpt_path)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException) and trainer.state.fn == "fit":
            super().on_exception(trainer, pl_module, exception)
            log.warning("SIGTERM: checkpoint saved to %s; resume with ckpt_path=last", self.path)


class EpochSeeds(L.Callback):
    """Seeds Python's, NumPy's and torch's global RNGs at the start of every training epoch from
    (run seed, epoch), so everything random in training steps (GAN latents, bagging weights) is a
    function of the seed, the epoch and the step; the training data is already one
    (:class:`~fusionlab.data.datasets.EpochSampler`). With ``trainer.deterministic=true``, a run
    killed at any point after its first checkpoint and resumed from the end-of-epoch ``last.ckpt``
    ends with the same metrics as an uninterrupted one.

    Saving RNG states in checkpoints is not enough: Lightning restarts the checkpoint's epoch (its
    end is not marked complete) and creates data iterators again, which draw from the global RNG a
    different number of times than the uninterrupted run did. A mid-epoch checkpoint (SIGTERM)
    resumes with the same budget, not the same stream: Lightning does not fast-forward samplers.

    :param seed: the run's seed (``cfg.seed``).
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        epoch_seed = zlib.crc32(f"{self.seed}:epoch{trainer.current_epoch}".encode())
        random.seed(epoch_seed)
        np.random.seed(epoch_seed)
        torch.manual_seed(epoch_seed)  # all devices
