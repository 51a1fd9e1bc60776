"""Style transfer: how much content survives and how close the output's style is to the style image."""

import torch

from fusionlab.evaluation.base import Evaluator
from fusionlab.losses.style import style_distance
from fusionlab.metrics.image import ssim_per_image


def to_gray(image: torch.Tensor) -> torch.Tensor:
    x = image.float().clamp(0, 1)
    return x if x.shape[1] == 1 else (x * x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)


class StyleEvaluator(Evaluator):
    """Per (content, style) pair: ``content_ssim`` (SSIM of the gray output against the gray content)
    and ``style_distance`` (in the approach's feature space, ``module.feature_maps``; the approach's
    ``style_kind``). FID/KID against the style set come from the FID callback, whose reference is
    the data module's ``reference_images``."""

    task = "style"
    best = ("content_ssim", "max")
    higher_is_better = {"style_distance": False}

    def update(self, stage: str, batch: dict, outputs: dict[str, torch.Tensor], module, ms: float | None = None
               ) -> dict:
        content, style, output = batch["content"], batch["style"], outputs["main"]
        cond = style if getattr(module, "conditioned", False) else None
        dist = style_distance(module.feature_maps(output, cond), module.feature_maps(style, cond),
                              module.style_kind, reduce=False)
        self.add(stage, {"content_ssim": ssim_per_image(to_gray(output), to_gray(content)),
                         "style_distance": dist.reshape(-1)}, batch.get("name"), ms)
        return {"source": content, "style": style, "output": output, "target": style, "name": batch.get("name")}
