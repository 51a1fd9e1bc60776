"""FID/KID of an approach's outputs against its reference images, at validation every N epochs and
at test. The extractor lives here, not in the model, so it stays out of checkpoints and optimizers."""

import logging

import lightning as L
import torch

from fusionlab.metrics.fid import FeatureDistances, build_extractor, tensor_digest, warn_skipped

log = logging.getLogger("fusionlab")


class FIDCallback(L.Callback):
    """Feeds ``outputs["output"]`` (generated) and ``outputs["target"]`` (reference) of each
    validation/test step (when the dataset has ``reference_images()`` -- style images, training
    images for generation -- that set is the reference instead, fed once) to :class:`~fusionlab.metrics.fid.FeatureDistances` and logs
    ``{stage}/fid`` and ``{stage}/kid`` (or ``*_proxy``). Reference features are computed once per
    reference set and cached on disk, keyed by the set's content, the extractor and its weights.

    :param min_samples: below this many images FID is not reported (it is meaningless).
    """

    def __init__(self, extractor: str = "inception", weights_path: str | None = None, every_n_epochs: int = 5,
                 kid_subset_size: int = 50, min_samples: int = 10, cache_dir: str | None = None) -> None:
        self.extractor, self.weights_path = extractor, weights_path
        self.every_n_epochs, self.min_samples = max(1, every_n_epochs), min_samples
        self.kid_subset_size, self.cache_dir = kid_subset_size, cache_dir
        self.metrics: FeatureDistances | None = None
        self.real_key: str | None = None
        self.need_real = False
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
        self.active = self.metrics is not None and not trainer.sanity_checking and (
            stage == "test" or trainer.current_epoch % self.every_n_epochs == 0 or last)
        if not self.active:
            return
        self.metrics.to(pl_module.device)
        self.metrics.reset_fake()
        dataset = getattr(trainer.datamodule, f"{stage}_set", None) if trainer.datamodule else None
        references = dataset.reference_images() if hasattr(dataset, "reference_images") else None
        key = tensor_digest(*references) if references else self._reference_key(dataset)
        if key != self.real_key or key is None:
            self.metrics.fid.reset_real_features = self.metrics.kid.reset_real_features = True
            self.metrics.fid.reset(), self.metrics.kid.reset()
            self.metrics.fid.reset_real_features = self.metrics.kid.reset_real_features = False
            self.metrics.real_count = 0
            self.real_key = key
            self.need_real = key is None or not self.metrics.load_real(key)
            if self.need_real and references:
                self._feed_references(references[0], pl_module.device)

    def _feed_references(self, images: list[torch.Tensor], device: torch.device, batch: int = 50) -> None:
        """A fixed reference set (style images, training images) fed once, not taken from batches."""
        for start in range(0, len(images), batch):
            chunk = images[start : start + batch]
            if len({tuple(im.shape) for im in chunk}) == 1:
                self.metrics.update(torch.stack(chunk).to(device), real=True)
            else:
                for im in chunk:
                    self.metrics.update(im[None].to(device), real=True)
        if self.real_key is not None:
            self.metrics.save_real(self.real_key)
        self.need_real = False

    @staticmethod
    def _reference_key(dataset) -> str | None:
        if dataset is None or not hasattr(dataset, "images"):
            return None
        images = [im() if callable(im) else im for im in dataset.images]
        return tensor_digest(images, list(dataset.names))

    def _batch(self, outputs) -> None:
        if not self.active or not isinstance(outputs, dict):
            return
        self.metrics.update(outputs["output"], real=False)
        if self.need_real:
            self.metrics.update(outputs["target"], real=True)

    def _end(self, trainer, pl_module, stage: str) -> None:
        if not self.active:
            return
        if self.need_real and self.real_key is not None:
            self.metrics.save_real(self.real_key)
            self.need_real = False
        n = int(self.metrics.fid.fake_features_num_samples)
        if min(n, self.metrics.real_count) < max(2, self.min_samples):
            log.warning("%s not reported for %s: %d images, fewer than min_samples=%d", self.metrics.name,
                        stage, n, self.min_samples)
            return
        for key, value in self.metrics.compute().items():
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
