"""Fault tolerance: a checkpoint on SIGTERM (what SLURM sends before preemption), and random number
generators seeded per epoch so that a resumed run continues the same stream."""

import logging
import random
import time
import zlib
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger("fusionlab")


class SaveOnSigterm(L.Callback):
    """On SIGTERM Lightning finishes the current batch and raises ``SIGTERMException``; this saves
    ``<dirpath>/last.ckpt`` (atomically, through the trainer's checkpoint IO) before the process
    exits, so a requeued job resumes with ``ckpt_path=last``. Any other exception writes nothing, so
    a run that fails on a bad config or image leaves no checkpoint behind.

    Lightning's ``OnExceptionCheckpoint`` is deliberately not used (it was tried): once it is among
    the callbacks, Lightning turns ``fit(ckpt_path=None)`` into ``ckpt_path="last"``, so a new run in a
    folder holding a checkpoint would silently resume from it, and the run's ``last.ckpt`` handling
    changed (the smoke runs lost their ``last.ckpt``); fusionlab resumes only when asked
    (``ckpt_path=last|auto``). Under SLURM, ``trainer=slurm`` adds Lightning's
    ``SLURMEnvironment(auto_requeue=True)``: on SIGUSR1 it saves ``hpc_ckpt_N.ckpt`` and requeues the
    job, which resumes from it."""

    def __init__(self, dirpath: str, filename: str = "last") -> None:
        self.path = Path(dirpath) / f"{filename}.ckpt"

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException) and trainer.state.fn == "fit":
            trainer.save_checkpoint(self.path)
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
        # Lightning sets the sampler's epoch from its progress counters, which after a resume from
        # the end-of-epoch checkpoint of a run with trainer.max_steps are one ahead of current_epoch
        # (the resumed run trained on the patches of the epoch after): use the epoch itself.
        sampler = getattr(trainer.train_dataloader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(trainer.current_epoch)



class FitClock(L.Callback):
    """Wall time spent in ``trainer.fit``, carried in every checkpoint (``fusionlab_fit_time_s``), so
    that a resumed run's ``train_time_s`` counts the time before the interruption too (up to the
    checkpoint it resumed from), not only the time since the resume."""

    KEY = "fusionlab_fit_time_s"

    def __init__(self) -> None:
        self.before, self.started = 0.0, None

    def on_fit_start(self, trainer, pl_module) -> None:
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        return self.before + (time.perf_counter() - self.started if self.started is not None else 0.0)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint[self.KEY] = self.elapsed()

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        self.before = float(checkpoint.get(self.KEY, 0.0))
