"""Generation: memorisation check per sample (distance to the nearest training image) and, on
digits, mode coverage and sample quality read by the project's digit classifier."""

import logging

import torch

from fusionlab.evaluation.base import Evaluator
from fusionlab.evaluation.specs import MetricSpec
from fusionlab.evaluation.style import FEATURE_DISTANCES
from fusionlab.metrics.generation import nearest_distance

log = logging.getLogger("fusionlab")
DIGIT_METRICS = ("modes_covered", "mode_kl", "fd_digits", "fd_digits_heldout", "precision", "recall",
                 "modes_covered_svc", "mode_kl_svc", "reader_agreement", "modes_covered_agreed", "mode_kl_agreed",
                 "modes_covered_confident", "digit_confidence")


class GenerationEvaluator(Evaluator):
    """Per sample: ``nn_distance`` (RMSE to the nearest training image); per epoch also
    ``nn_distance_train`` (training images to their nearest other training image, the scale to read
    it against). The training images come from the data module's ``reference_images("fit")``.
    FID/KID come from the FID callback against the same reference.

    On data that provides a digit classifier (``data=digits|stacked_digits``): per sample
    ``digit_confidence`` (the classifier's probability of its reading); per epoch ``modes_covered``,
    ``mode_kl``, ``fd_digits``, ``precision``, ``recall`` (:mod:`fusionlab.metrics.digits`) over
    every sample of the epoch, against the reference images (``data.reference_count`` stacks of
    training digits), ``fd_digits_heldout`` against as many stacks of held-out digits, the second
    reader's counts and the readers' agreement (:func:`~fusionlab.metrics.digits.reader_statistics`),
    and ``classifier_accuracy`` / ``svc_accuracy`` (held-out digits) to read them by.

    :meth:`score_images` gives the same numbers for any set of images: the real-data and noise
    rows that bound every generation table."""

    task = "generate"
    _DIGITS = "digit classifier features"
    metrics = (
        MetricSpec("fd_digits", higher_is_better=False, per_item=False, space=_DIGITS, primary=True, digits=3),
        MetricSpec("modes_covered", per_item=False, space="digit classifier readings", digits=1),
        MetricSpec("mode_kl", higher_is_better=False, per_item=False, space="digit classifier readings"),
        MetricSpec("precision", per_item=False, space=_DIGITS),
        MetricSpec("recall", per_item=False, space=_DIGITS),
        MetricSpec("fd_digits_heldout", higher_is_better=False, per_item=False, space=_DIGITS + ", held-out digits",
                   digits=3),
        MetricSpec("modes_covered_svc", per_item=False, space="SVC readings", digits=1),
        MetricSpec("mode_kl_svc", higher_is_better=False, per_item=False, space="SVC readings"),
        MetricSpec("reader_agreement", per_item=False, space="classifier and SVC readings", digits=3),
        MetricSpec("modes_covered_agreed", per_item=False, space="classifier and SVC readings", digits=1),
        MetricSpec("mode_kl_agreed", higher_is_better=False, per_item=False, space="classifier and SVC readings"),
        MetricSpec("modes_covered_confident", per_item=False, space="digit classifier readings", digits=1),
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
        self.reference_radii: torch.Tensor | None = None
        self.heldout_features: torch.Tensor | None = None
        self._svc: list = []          # [SVCReader]
        self._reset()

    def _reset(self) -> None:
        self._modes, self._features, self._svc_modes, self._confidence = [], [], [], []

    def start(self, stage: str, module, datamodule) -> None:
        self._reset()
        if self.reference is not None or datamodule is None or not hasattr(datamodule, "reference_images"):
            return
        ref = datamodule.reference_images("fit")
        if ref is None:
            return
        self.reference = torch.stack(ref[0]).flatten(1).float().to(module.device)
        self.reference_spacing = float(nearest_distance(self.reference, self.reference, exclude_self=True).mean())
        if hasattr(datamodule, "classifier_config"):  # data=digits|stacked_digits: the classifier of these digits
            from fusionlab.metrics.digits import DigitReader, SVCReader, knn_radii, train_classifier

            classifier, self.classifier_accuracy = train_classifier(
                datamodule.image_size, cache_dir=datamodule.cache_dir,
                **{k: int(v) for k, v in datamodule.classifier_config.items()})
            self._reader = [DigitReader(classifier, datamodule.channels)]
            self._svc = [SVCReader(datamodule.image_size, datamodule.channels)]
            self.num_modes = datamodule.modes
            self.reference_features = self._features_of(torch.stack(ref[0]))
            self.reference_radii = knn_radii(self.reference_features.float())
            self.heldout_features = self._features_of(datamodule.heldout_reference())
        else:  # the classifier knows the digits' labels only: no number rather than a meaningless one
            log.info("%s: not computed: they read samples with the digit classifier, which knows the labels "
                     "of data=digits|stacked_digits only (this data: %s)", ", ".join(DIGIT_METRICS),
                     type(datamodule).__name__)

    def _features_of(self, images: torch.Tensor, batch: int = 1000) -> torch.Tensor:
        return torch.cat([self.reader.read(images[i:i + batch])[2].cpu() for i in range(0, len(images), batch)])

    @property
    def reader(self):
        return self._reader[0] if self._reader else None

    @property
    def svc_accuracy(self) -> float:
        return self._svc[0].accuracy if self._svc else float("nan")

    def read(self, images: torch.Tensor) -> torch.Tensor:
        """Both readers on a batch of samples (kept for the epoch's metrics); the CNN's confidence."""
        self.reader.to(images.device)
        modes, confidence, feats = self.reader.read(images)
        self._modes.append(modes.cpu())
        self._features.append(feats.cpu())
        self._confidence.append(confidence.cpu())
        self._svc_modes.append(self._svc[0].modes(images))
        return confidence

    def score_images(self, images: torch.Tensor, batch: int = 1000) -> dict[str, float]:
        """Every digit metric of ``images`` as if a generator had drawn them (after :meth:`start`):
        the real-data (training or held-out stacks) and noise rows of a generation table."""
        self._reset()
        for i in range(0, len(images), batch):
            self.read(images[i:i + batch])
        out = {**self.digit_metrics(), "nn_distance": float(nearest_distance(images, self.reference).mean())}
        self._reset()
        return out

    def update(self, stage: str, batch: dict, outputs: dict[str, torch.Tensor], module, ms: float | None = None
               ) -> dict:
        images = outputs["main"]
        if self.reference is not None:
            self.reference = self.reference.to(images.device)
            values = {"nn_distance": nearest_distance(images, self.reference)}
            if self.reader is not None:
                values["digit_confidence"] = self.read(images)
            self.add(stage, values, batch.get("name"), ms)
        return {"output": images, "name": batch.get("name")}

    def compute(self, stage: str) -> dict[str, torch.Tensor]:
        out = super().compute(stage)
        if out and self.reference_spacing is not None:
            out[f"{stage}/nn_distance_train"] = torch.tensor(self.reference_spacing)
        if self._modes:
            out.update({f"{stage}/{k}": torch.tensor(v) for k, v in self.digit_metrics().items()})
        self._reset()
        return out

    def digit_metrics(self) -> dict[str, float]:
        """Mode coverage, FD, precision/recall and the two readers' statistics of the epoch's samples
        (every process's, under DDP)."""
        from fusionlab.metrics.digits import frechet_distance, mode_statistics, precision_recall, reader_statistics

        parts = [torch.cat(x) for x in (self._modes, self._features, self._svc_modes, self._confidence)]
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            gathered: list = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, parts)
            parts = [torch.cat([g[i] for g in gathered]) for i in range(len(parts))]
        modes, feats, svc, confidence = parts
        real = self.reference_features
        return {**mode_statistics(modes, self.num_modes), "fd_digits": frechet_distance(real, feats),
                "fd_digits_heldout": frechet_distance(self.heldout_features, feats),
                **precision_recall(real, feats, real_radii=self.reference_radii),
                **reader_statistics(modes, svc, confidence, self.num_modes),
                "classifier_accuracy": self.classifier_accuracy, "svc_accuracy": self.svc_accuracy,
                "samples": float(len(modes)), "reference_size": float(len(real))}
