"""Fault tolerance: a checkpoint on SIGTERM (what SLURM sends before preemption), and the random
number generators' states inside checkpoints so that a resumed run continues the same stream."""

import logging
import random
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger("fusionlab")
RNG_KEY = "fusionlab_rng"


class SaveOnSigterm(L.Callback):
    """On SIGTERM Lightning finishes the current batch and raises ``SIGTERMException``; this saves
    ``<dirpath>/last.ckpt`` (atomically, through the trainer's checkpoint IO) before the process
    exits, so a requeued job resumes with ``ckpt_path=last``."""

    def __init__(self, dirpath: str, filename: str = "last") -> None:
        self.path = Path(dirpath) / f"{filename}.ckpt"

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException) and trainer.state.fn == "fit":
            trainer.save_checkpoint(self.path)
            log.warning("SIGTERM: checkpoint saved to %s; resume with ckpt_path=last", self.path)


class RNGStateInCheckpoint(L.Callback):
    """Saves Python's, NumPy's and torch's RNG states in every checkpoint and restores them when the
    resumed run starts its next training epoch: with ``trainer.deterministic=true``, a run killed at
    any point after its first checkpoint and resumed from the end-of-epoch ``last.ckpt`` draws the
    same patches and noise as an uninterrupted one, and ends with the same metrics.

    The states are not set in ``on_load_checkpoint``: Lightning restarts the checkpoint's epoch
    (whose end it had not marked complete) and creates that epoch's data iterator again, which draws
    from the global RNG (the random sampler's seed) before the next epoch starts. The saved states
    are the ones the uninterrupted run had at the start of that next epoch, so they are set there.
    A mid-epoch checkpoint (SIGTERM) resumes with the same budget but not the same data stream:
    Lightning does not fast-forward a random sampler.
    """

    def __init__(self) -> None:
        self._pending: dict | None = None

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint[RNG_KEY] = {"python": random.getstate(), "numpy": np.random.get_state(),
                               "torch": torch.get_rng_state(),
                               "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        state = checkpoint.get(RNG_KEY)
        self._pending = state if state and trainer.state.fn == "fit" else None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if self._pending is None:
            return
        state, self._pending = self._pending, None
        random.setstate(state["python"])
        np.random.set_state(state["numpy"])
        torch.set_rng_state(state["torch"])
        if state.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
