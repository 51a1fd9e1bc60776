"""Image grids during training: (input | output | target) rows of validation images every N epochs
(:class:`SampleGrid`), fixed-latent samples of generators (:class:`GeneratorGrid`), and the
outputs of a test/evaluation run written as files (:class:`ImageWriter`)."""

from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from fusionlab.utils.grid import enlarge, make_grid, save_png, to_uint8


class EpochGrid(L.Callback):
    """Base of the training-time grids: which epochs draw one (``0, N, 2N, ...`` and the last), and
    saving a grid under ``save_dir`` and logging it to W&B when a W&B logger is attached."""

    def __init__(self, save_dir: str, every_n_epochs: int = 1, tile: int = 128) -> None:
        self.save_dir = Path(save_dir)
        self.every_n_epochs, self.tile = max(1, every_n_epochs), tile

    def _active(self, trainer: L.Trainer) -> bool:
        if trainer.sanity_checking:
            return False
        epoch = trainer.current_epoch
        last = trainer.max_epochs is not None and epoch == trainer.max_epochs - 1
        return epoch % self.every_n_epochs == 0 or last

    def _save(self, trainer, grid, name: str, key: str, caption: str) -> Path:
        path = save_png(grid, self.save_dir / name)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key=key, images=[str(path)], caption=[caption], step=trainer.global_step)
        return path


class SampleGrid(EpochGrid):
    """Collects the first ``max_images`` validation images; saves ``samples/val_epochNNN.png`` in
    ``save_dir`` and logs the grid to W&B as ``val/samples``.

    :param every_n_epochs: log on epochs ``0, N, 2N, ...`` and on the last one.
    :param tile: side of each (centre-cropped) tile in pixels.
    :param keys: the step outputs shown left to right (style transfer: content | style | output).
    """

    def __init__(self, save_dir: str, every_n_epochs: int = 1, max_images: int = 4, tile: int = 128,
                 keys: tuple[str, ...] = ("source", "output", "target")) -> None:
        super().__init__(save_dir, every_n_epochs, tile)
        self.keys, self.max_images = tuple(keys), max_images
        self.rows: list = []

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self.rows = []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not self._active(trainer) or not isinstance(outputs, dict) or len(self.rows) >= self.max_images:
            return
        for i in range(outputs["output"].shape[0]):
            if len(self.rows) < self.max_images:
                self.rows.append([outputs[k][i].detach().cpu() for k in self.keys])

    @rank_zero_only
    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        """Save the first test image's input, output and target (for comparison reports)."""
        if batch_idx != 0 or not isinstance(outputs, dict):
            return
        for key in self.keys:
            save_png(to_uint8(outputs[key][0]), self.save_dir / f"test_{key}.png")

    @rank_zero_only
    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not self.rows or not self._active(trainer):
            return
        self._save(trainer, make_grid(self.rows, tile=self.tile), f"val_epoch{trainer.current_epoch:03d}.png",
                   "val/samples", " | ".join(self.keys))
        self.rows = []


class GeneratorGrid(EpochGrid):
    """Samples of a generator from fixed latent vectors (the module's ``grid_rows(seed)``), saved as
    ``samples/gen_epochNNN.png`` and logged as ``val/samples`` every N epochs, so grids are comparable
    over training; latent interpolation strips (``interpolation_rows()``) when training ends."""

    def __init__(self, save_dir: str, every_n_epochs: int = 1, tile: int = 64, seed: int = 0) -> None:
        super().__init__(save_dir, every_n_epochs, tile)
        self.seed = seed

    def _save_rows(self, trainer, rows, name: str, key: str, caption: str) -> None:
        self._save(trainer, make_grid(enlarge(rows, self.tile), tile=self.tile), name, key, caption)

    @rank_zero_only
    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if self._active(trainer) and hasattr(pl_module, "grid_rows"):
            self._save_rows(trainer, pl_module.grid_rows(self.seed), f"gen_epoch{trainer.current_epoch:03d}.png",
                            "val/samples", "fixed latents (one row per generator for a mixture)")

    @rank_zero_only
    def on_train_end(self, trainer, pl_module) -> None:
        if hasattr(pl_module, "interpolation_rows"):
            was_training = pl_module.training
            pl_module.eval()  # BatchNorm: running statistics, and none updated
            try:
                self._save_rows(trainer, pl_module.interpolation_rows(), "interpolation.png", "val/interpolation",
                                "latent interpolation")
            finally:
                pl_module.train(was_training)


class ImageWriter(L.Callback):
    """Writes ``outputs["output"]`` of every test step as ``<save_dir>/<name>.png`` (restored images,
    stylised pairs, generated samples), so an evaluation leaves its images in its run folder."""

    def __init__(self, save_dir: str, max_images: int | None = None) -> None:
        self.save_dir, self.max_images = Path(save_dir), max_images
        self.written = 0

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self.written = 0

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        # every process writes the images it evaluated (under DDP each has its own share)
        if not isinstance(outputs, dict) or "output" not in outputs or "name" not in batch:
            return
        for image, name in zip(outputs["output"], batch["name"]):
            if self.max_images is not None and self.written >= self.max_images:
                return
            save_png(to_uint8(image.float()), self.save_dir / f"{Path(str(name)).stem}.png")
            self.written += 1
