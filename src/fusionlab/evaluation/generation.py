"""Generation: memorisation check per sample (distance to the nearest training image)."""

import torch

from fusionlab.evaluation.base import Evaluator
from fusionlab.metrics.generation import nearest_distance


class GenerationEvaluator(Evaluator):
    """Per sample: ``nn_distance`` (RMSE to the nearest training image); per epoch also
    ``nn_distance_train`` (training images to their nearest other training image, the scale to read
    it against). The training images come from the data module's ``reference_images("fit")``.
    FID/KID come from the FID callback against the same reference."""

    task = "generate"
    higher_is_better = {"nn_distance": True}  # closer to the training set is copying, not quality

    def __init__(self) -> None:
        super().__init__()
        self.reference: torch.Tensor | None = None
        self.reference_spacing: float | None = None

    def start(self, stage: str, module, datamodule) -> None:
        if self.reference is not None or datamodule is None or not hasattr(datamodule, "reference_images"):
            return
        ref = datamodule.reference_images("fit")
        if ref is None:
            return
        self.reference = torch.stack(ref[0]).flatten(1).float().to(module.device)
        self.reference_spacing = float(nearest_distance(self.reference, self.reference, exclude_self=True).mean())

    def update(self, stage: str, batch: dict, outputs: dict[str, torch.Tensor], module, ms: float | None = None
               ) -> dict:
        images = outputs["main"]
        if self.reference is not None:
            self.reference = self.reference.to(images.device)
            self.add(stage, {"nn_distance": nearest_distance(images, self.reference)}, batch.get("name"), ms)
        return {"output": images, "name": batch.get("name")}

    def compute(self, stage: str) -> dict[str, torch.Tensor]:
        out = super().compute(stage)
        if out and self.reference_spacing is not None:
            out[f"{stage}/nn_distance_train"] = torch.tensor(self.reference_spacing)
        return out
