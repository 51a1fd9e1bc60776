"""Log (input | output | target) grids of validation images every N epochs."""

from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from fusionlab.reporting.grid import make_grid, save_png, to_uint8


class SampleGrid(L.Callback):
    """Collects the first ``max_images`` validation images; saves ``samples/val_epochNNN.png`` in
    ``save_dir`` and logs the grid to W&B as ``val/samples`` when a W&B logger is attached.

    :param every_n_epochs: log on epochs ``0, N, 2N, ...`` and on the last one.
    :param tile: side of each (centre-cropped) tile in pixels.
    """

    def __init__(self, save_dir: str, every_n_epochs: int = 1, max_images: int = 4, tile: int = 128) -> None:
        self.save_dir = Path(save_dir)
        self.every_n_epochs, self.max_images, self.tile = max(1, every_n_epochs), max_images, tile
        self.rows: list = []

    def _active(self, trainer: L.Trainer) -> bool:
        if trainer.sanity_checking:
            return False
        epoch = trainer.current_epoch
        last = trainer.max_epochs is not None and epoch == trainer.max_epochs - 1
        return epoch % self.every_n_epochs == 0 or last

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self.rows = []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not self._active(trainer) or not isinstance(outputs, dict) or len(self.rows) >= self.max_images:
            return
        for i in range(outputs["output"].shape[0]):
            if len(self.rows) < self.max_images:
                self.rows.append([outputs[k][i].detach().cpu() for k in ("source", "output", "target")])

    @rank_zero_only
    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        """Save the first test image's input, output and target (for comparison reports)."""
        if batch_idx != 0 or not isinstance(outputs, dict):
            return
        for key in ("source", "output", "target"):
            save_png(to_uint8(outputs[key][0]), self.save_dir / f"test_{key}.png")

    @rank_zero_only
    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not self.rows or not self._active(trainer):
            return
        grid = make_grid(self.rows, tile=self.tile)
        path = save_png(grid, self.save_dir / f"val_epoch{trainer.current_epoch:03d}.png")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="val/samples", images=[str(path)],
                                 caption=["input | output | target"], step=trainer.global_step)
        self.rows = []
