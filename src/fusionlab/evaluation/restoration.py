"""Restoration (denoising, super-resolution): PSNR/SSIM of every named output and of the input."""

from collections.abc import Sequence

import torch

from fusionlab.evaluation.base import Evaluator
from fusionlab.evaluation.specs import MetricSpec
from fusionlab.metrics.image import prepare_for_metrics, psnr_per_image, ssim_per_image


class RestorationEvaluator(Evaluator):
    """PSNR and SSIM (protocol of :mod:`fusionlab.metrics.image`) of the output ``main`` (logged as
    ``psnr``/``ssim``), of every other named output ``NAME`` (``psnr_NAME``: ensemble members, say)
    and of the degraded input (``psnr_input``), per image, against ``batch["target"]``.

    :param y_channel: on the Y channel of YCbCr (super-resolution protocol).
    :param crop_border: pixels cropped on each side first.
    """

    task = "restoration"
    metrics = (MetricSpec("psnr", unit=" dB", primary=True, digits=2),
               MetricSpec("ssim"))
    track_best = True

    def __init__(self, y_channel: bool = False, crop_border: int = 0) -> None:
        super().__init__()
        self.y_channel, self.crop_border = bool(y_channel), int(crop_border)

    def prepare(self, image: torch.Tensor) -> torch.Tensor:
        return prepare_for_metrics(image, self.y_channel, self.crop_border)

    def quality(self, images: dict[str, torch.Tensor], target: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{psnr[_NAME], ssim[_NAME]: (B,)}`` for each named image."""
        t = self.prepare(target)
        out = {}
        for name, image in images.items():
            p = self.prepare(image)
            suffix = "" if name == "main" else f"_{name}"
            out[f"psnr{suffix}"] = psnr_per_image(p, t)
            out[f"ssim{suffix}"] = ssim_per_image(p, t)
        return out

    def update(self, stage: str, batch: dict, outputs: dict[str, torch.Tensor], module, ms: float | None = None
               ) -> dict:
        source, target = batch["source"], batch["target"]
        values = self.quality({"input": source, **outputs}, target)
        self.add(stage, values, batch.get("name"), ms)
        return {"source": source, "output": outputs["main"], "target": target, "name": batch.get("name")}

    @staticmethod
    def member_names(names: Sequence[str]) -> list[str]:
        return [n for n in names if n not in ("main", "input")]
