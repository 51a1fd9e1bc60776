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
    """Saves Python's, NumPy's and torch's RNG states in every checkpoint and restores them on
    resume: with ``trainer.deterministic=true``, a killed and resumed run draws the same patches and
    noise as an uninterrupted one."""

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint[RNG_KEY] = {"python": random.getstate(), "numpy": np.random.get_state(),
                               "torch": torch.get_rng_state(),
                               "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        state = checkpoint.get(RNG_KEY)
        if not state or trainer.state.fn != "fit":
            return
        random.setstate(state["python"])
        np.random.set_state(state["numpy"])
        torch.set_rng_state(state["torch"])
        if state.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
