"""FID/KID of an approach's outputs against its reference images, at validation every N epochs and
at test. The extractor lives here, not in the model, so it stays out of checkpoints and optimizers."""

import logging

import lightning as L
import torch

from fusionlab.metrics.fid import FeatureDistances, build_extractor, tensor_digest, warn_skipped

log = logging.getLogger("fusionlab")


class FIDCallback(L.Callback):
    """Feeds ``outputs["output"]`` of each validation/test step (the generated or restored images)
    to :class:`~fusionlab.metrics.fid.FeatureDistances` against the data module's
    ``reference_images(stage)`` (clean test images, the style set, the training images), fed once
    per reference set, and logs ``{stage}/fid`` and ``{stage}/kid`` (or ``*_proxy``). Reference
    features are cached on disk, keyed by the set's content, the extractor and its weights.

    Under DDP each process feeds its own share of the references (torchmetrics sums the states
    across processes); the cache is read and written by single-process runs only.

    :param min_samples: FID is not reported below this many generated and reference images. With
        the 2048-d Inception features the covariance is singular below 2048 samples and FID is
        strongly biased upward on small sets, hence the default of 2048. KID is unbiased and is
        reported from 2 samples on.
    """

    def __init__(self, extractor: str = "inception", weights_path: str | None = None, every_n_epochs: int = 5,
                 kid_subset_size: int = 50, min_samples: int = 2048, cache_dir: str | None = None) -> None:
        self.extractor, self.weights_path = extractor, weights_path
        self.every_n_epochs, self.min_samples = max(1, every_n_epochs), min_samples
        self.kid_subset_size, self.cache_dir = kid_subset_size, cache_dir
        self.metrics: FeatureDistances | None = None
        self.real_key: str | None = None
        self.active = False

    def setup(self, trainer, pl_module, stage: str) -> None:
        if self.metrics is not None:
            return
        extractor, name, identity = build_extractor(self.extractor, self.weights_path)
        if extractor is None:
            if not name.startswith("disabled"):
                warn_skipped(name)
            return
        self.metrics = FeatureDistances(extractor, name, identity, self.kid_subset_size, self.cache_dir)

    def _start(self, trainer, pl_module, stage: str) -> None:
        last = trainer.max_epochs is not None and trainer.current_epoch == trainer.max_epochs - 1
        datamodule = trainer.datamodule
        references = datamodule.reference_images(stage) if hasattr(datamodule, "reference_images") else None
        self.active = self.metrics is not None and references is not None and not trainer.sanity_checking and (
            stage == "test" or trainer.current_epoch % self.every_n_epochs == 0 or last)
        if not self.active:
            return
        self.metrics.to(pl_module.device)
        self.metrics.reset_fake()
        images, names = references
        key = tensor_digest(images, names)
        if key == self.real_key:
            return
        self.metrics.reset_real()
        self.real_key = key
        world, rank = trainer.world_size, trainer.global_rank
        if world == 1 and self.metrics.load_real(key):
            return
        self._feed_references(images[rank::world], pl_module.device)
        if world == 1:
            self.metrics.save_real(key)

    def _feed_references(self, images: list[torch.Tensor], device: torch.device, batch: int = 50) -> None:
        for start in range(0, len(images), batch):
            chunk = images[start : start + batch]
            if len({tuple(im.shape) for im in chunk}) == 1:
                self.metrics.update(torch.stack(chunk).to(device), real=True)
            else:
                for im in chunk:
                    self.metrics.update(im[None].to(device), real=True)

    def _batch(self, outputs) -> None:
        if self.active and isinstance(outputs, dict) and "output" in outputs:
            self.metrics.update(outputs["output"], real=False)

    def _end(self, trainer, pl_module, stage: str) -> None:
        if not self.active:
            return
        for key, value in self.metrics.compute(self.min_samples, stage, trainer.world_size).items():
            pl_module.log(f"{stage}/{key}", value, sync_dist=False)

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._start(trainer, pl_module, "val")

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._batch(outputs)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self._end(trainer, pl_module, "val")

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._start(trainer, pl_module, "test")

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._batch(outputs)

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self._end(trainer, pl_module, "test")
