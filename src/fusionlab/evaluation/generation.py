"""Generation: memorisation check per sample (distance to the nearest training image) and, on
digits, mode coverage and sample quality read by the project's digit classifier."""

import logging

import torch

from fusionlab.evaluation.base import Evaluator
from fusionlab.evaluation.specs import MetricSpec
from fusionlab.evaluation.style import FEATURE_DISTANCES
from fusionlab.metrics.generation import nearest_distance

log = logging.getLogger("fusionlab")
DIGIT_METRICS = ("modes_covered", "mode_kl", "fd_digits", "precision", "recall", "digit_confidence")


class GenerationEvaluator(Evaluator):
    """Per sample: ``nn_distance`` (RMSE to the nearest training image); per epoch also
    ``nn_distance_train`` (training images to their nearest other training image, the scale to read
    it against). The training images come from the data module's ``reference_images("fit")``.
    FID/KID come from the FID callback against the same reference.

    On data that provides a digit classifier (``data=digits|stacked_digits``): per sample
    ``digit_confidence`` (the classifier's probability of its reading); per epoch ``modes_covered``,
    ``mode_kl``, ``fd_digits``, ``precision``, ``recall`` (:mod:`fusionlab.metrics.digits`) over
    every sample of the epoch, against the reference images, and ``classifier_accuracy`` (held-out
    digits) to read them by."""

    task = "generate"
    _DIGITS = "digit classifier features"
    metrics = (
        MetricSpec("fd_digits", higher_is_better=False, per_item=False, space=_DIGITS, primary=True, digits=3),
        MetricSpec("modes_covered", per_item=False, space="digit classifier readings", digits=1),
        MetricSpec("mode_kl", higher_is_better=False, per_item=False, space="digit classifier readings"),
        MetricSpec("precision", per_item=False, space=_DIGITS),
        MetricSpec("recall", per_item=False, space=_DIGITS),
        *FEATURE_DISTANCES,
        # per sample, but samples of two generators are not the same item: compared over seeds only.
        # Closer to the training set is copying, not quality: a larger distance is not worse.
        MetricSpec("nn_distance", paired=False, space="pixels, to the nearest training image"),
        MetricSpec("digit_confidence", paired=False, space="digit classifier probability"),
    )

    def __init__(self) -> None:
        super().__init__()
        self.reference: torch.Tensor | None = None
        self.reference_spacing: float | None = None
        self._reader: list = []       # [DigitReader] on digit data; a list keeps it out of checkpoints
        self.num_modes = 0
        self.classifier_accuracy = 0.0
        self.reference_features: torch.Tensor | None = None
        self._modes: list[torch.Tensor] = []
        self._features: list[torch.Tensor] = []

    def start(self, stage: str, module, datamodule) -> None:
        self._modes, self._features = [], []
        if self.reference is not None or datamodule is None or not hasattr(datamodule, "reference_images"):
            return
        ref = datamodule.reference_images("fit")
        if ref is None:
            return
        self.reference = torch.stack(ref[0]).flatten(1).float().to(module.device)
        self.reference_spacing = float(nearest_distance(self.reference, self.reference, exclude_self=True).mean())
        if hasattr(datamodule, "classifier_config"):  # data=digits|stacked_digits: the classifier of these digits
            from fusionlab.metrics.digits import DigitReader, train_classifier

            classifier, self.classifier_accuracy = train_classifier(
                datamodule.image_size, cache_dir=datamodule.cache_dir,
                **{k: int(v) for k, v in datamodule.classifier_config.items()})
            self._reader = [DigitReader(classifier, datamodule.channels)]
            self.num_modes = datamodule.modes
            images = torch.stack(ref[0])
            self.reference_features = torch.cat([self.reader.read(images[i:i + 1000])[2]
                                                 for i in range(0, len(images), 1000)])
        else:  # the classifier knows the digits' labels only: no number rather than a meaningless one
            log.info("%s: not computed: they read samples with the digit classifier, which knows the labels "
                     "of data=digits|stacked_digits only (this data: %s)", ", ".join(DIGIT_METRICS),
                     type(datamodule).__name__)

    @property
    def reader(self):
        return self._reader[0] if self._reader else None

    def update(self, stage: str, batch: dict, outputs: dict[str, torch.Tensor], module, ms: float | None = None
               ) -> dict:
        images = outputs["main"]
        if self.reference is not None:
            self.reference = self.reference.to(images.device)
            values = {"nn_distance": nearest_distance(images, self.reference)}
            if self.reader is not None:
                self.reader.to(images.device)
                modes, confidence, feats = self.reader.read(images)
                self._modes.append(modes.cpu())
                self._features.append(feats.cpu())
                values["digit_confidence"] = confidence
            self.add(stage, values, batch.get("name"), ms)
        return {"output": images, "name": batch.get("name")}

    def compute(self, stage: str) -> dict[str, torch.Tensor]:
        out = super().compute(stage)
        if out and self.reference_spacing is not None:
            out[f"{stage}/nn_distance_train"] = torch.tensor(self.reference_spacing)
        if self._modes:
            out.update({f"{stage}/{k}": torch.tensor(v) for k, v in self.digit_metrics().items()})
        self._modes, self._features = [], []
        return out

    def digit_metrics(self) -> dict[str, float]:
        """Mode coverage, FD and precision/recall of the epoch's samples (every process's, under DDP)."""
        from fusionlab.metrics.digits import frechet_distance, mode_statistics, precision_recall

        modes, feats = torch.cat(self._modes), torch.cat(self._features)
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            parts: list = [None] * dist.get_world_size()
            dist.all_gather_object(parts, (modes, feats))
            modes, feats = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        real = self.reference_features.cpu()
        return {**mode_statistics(modes, self.num_modes), "fd_digits": frechet_distance(real, feats),
                **precision_recall(real, feats), "classifier_accuracy": self.classifier_accuracy}
