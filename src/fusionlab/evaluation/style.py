"""Style transfer: how much content survives and how close the output's style is to the style image."""

import torch

from fusionlab.evaluation.base import Evaluator
from fusionlab.evaluation.specs import MetricSpec
from fusionlab.losses.style import style_distance
from fusionlab.metrics.image import ssim_per_image


def to_gray(image: torch.Tensor) -> torch.Tensor:
    x = image.float().clamp(0, 1)
    return x if x.shape[1] == 1 else (x * x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)


# FID/KID of the FID callback (fusionlab.callbacks.fid) against the task's reference set: one number
# per run; *_proxy when computed in random conv features instead of Inception (another space, another name)
FEATURE_DISTANCES = (
    MetricSpec("fid", higher_is_better=False, per_item=False, space="Inception-v3 pool3", digits=2),
    MetricSpec("kid", higher_is_better=False, per_item=False, space="Inception-v3 pool3"),
    MetricSpec("fid_proxy", higher_is_better=False, per_item=False, space="random conv features", digits=2),
    MetricSpec("kid_proxy", higher_is_better=False, per_item=False, space="random conv features"),
)
# The yardstick of style_distance_fixed: random filter banks with another seed and other sizes than
# the random_multiscale training space's defaults (seed 0; 3, 5, 9, 15), identical in every run.
YARDSTICK = {"kernel_sizes": (3, 7, 13, 21), "width": 64, "seed": 2017}


class StyleEvaluator(Evaluator):
    """Per (content, style) pair: ``content_ssim`` (SSIM of the gray output against the gray content),
    ``style_distance`` (in the approach's feature space, ``module.feature_maps``; the approach's
    ``style_kind``) and ``style_distance_fixed`` (mean/std distance in one fixed random multi-scale
    space, :data:`YARDSTICK`, the same for every run and every training feature space, so runs can
    be compared; ``style_distance_content`` is the same for the unstylised content, the level a
    stylised output should go below). FID/KID against the style set come from the FID callback,
    whose reference is the data module's ``reference_images``."""

    task = "style"
    metrics = (MetricSpec("content_ssim", primary=True, space="gray pixels, output vs content"),
               MetricSpec("style_distance", higher_is_better=False, space="the approach's style features"),
               MetricSpec("style_distance_fixed", higher_is_better=False,
                          space="fixed random multi-scale features (YARDSTICK)"),
               MetricSpec("style_distance_content", higher_is_better=False,
                          space="fixed random multi-scale features, unstylised content (the level to go below)"),
               *FEATURE_DISTANCES)
    track_best = True

    def __init__(self) -> None:
        super().__init__()
        self._yardstick: list = []  # kept out of checkpoints

    def yardstick(self, channels: int):
        if not self._yardstick or self._yardstick[0].channels != channels:
            from fusionlab.models.random_features import RandomMultiscaleFeatures

            self._yardstick = [RandomMultiscaleFeatures(channels, **YARDSTICK)]
        return self._yardstick[0]

    def update(self, stage: str, batch: dict, outputs: dict[str, torch.Tensor], module, ms: float | None = None
               ) -> dict:
        content, style, output = batch["content"], batch["style"], outputs["main"]
        cond = style if getattr(module, "conditioned", False) else None
        dist = style_distance(module.feature_maps(output, cond), module.feature_maps(style, cond),
                              module.style_kind, reduce=False)
        space = self.yardstick(style.shape[1])
        style_feats = space(style)
        fixed = style_distance(space(output), style_feats, "mean_std", reduce=False)
        unstylised = style_distance(space(content), style_feats, "mean_std", reduce=False)
        self.add(stage, {"content_ssim": ssim_per_image(to_gray(output), to_gray(content)),
                         "style_distance": dist.reshape(-1), "style_distance_fixed": fixed.reshape(-1),
                         "style_distance_content": unstylised.reshape(-1)}, batch.get("name"), ms)
        return {"source": content, "style": style, "output": output, "target": style, "name": batch.get("name")}
