"""Store the run's composed config in every checkpoint so evaluate.py can rebuild the model."""

from typing import Any

import lightning as L

from fusionlab.utils.checkpoints import CONFIG_KEY


class ConfigInCheckpoint(L.Callback):
    """Adds ``checkpoint["fusionlab_config"]``: the unresolved config as plain containers.

    :param config: the run config (a plain dict, so ``torch.load(weights_only=True)`` can read it).
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint[CONFIG_KEY] = self.config
