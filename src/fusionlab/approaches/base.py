"""The evaluation hooks shared by every paired-restoration approach, and nothing else.

Subclasses own ``forward``, ``training_step`` and ``configure_optimizers``. Evaluation pads the
source to the network's ``stride`` (reflect), runs :meth:`eval_outputs`, crops back, and feeds
PSNR/SSIM per output: ``main`` is logged as ``val/psnr``, any other output ``NAME`` (ensemble
members, say) as ``val/psnr_NAME``. Images are float32 in [0, 1] (``source`` may leave it).
"""

import time
from collections.abc import Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MaxMetric

from fusionlab.metrics.image import ImageQuality, prepare_for_metrics, psnr_per_image, ssim_per_image


def pad_to_multiple(x: torch.Tensor, stride: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad H and W up to multiples of ``stride`` (reflect where possible); return the original size."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % stride, (-w) % stride
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def make_optimizers(params, optimizer, scheduler=None):
    """``configure_optimizers``' return value from partial optimizer/scheduler factories."""
    opt = optimizer(params=params)
    return opt if scheduler is None else {"optimizer": opt, "lr_scheduler": scheduler(optimizer=opt)}


class RestorationModule(L.LightningModule):
    """Base of the approaches: validation/test/predict hooks and their metrics.

    :param y_channel: PSNR/SSIM on the Y channel of YCbCr (super-resolution protocol).
    :param crop_border: pixels cropped on each side before PSNR/SSIM.
    :param extra_outputs: names of further outputs that :meth:`eval_outputs` returns.
    """

    def __init__(self, y_channel: bool = False, crop_border: int = 0, extra_outputs: Sequence[str] = ()) -> None:
        super().__init__()
        self.y_channel, self.crop_border = bool(y_channel), int(crop_border)
        self.output_names = ["main", *extra_outputs]

        def quality(prefix: str) -> nn.ModuleDict:
            return nn.ModuleDict({
                name: ImageQuality(prefix, "" if name == "main" else f"_{name}", self.y_channel, self.crop_border)
                for name in self.output_names
            })

        self.val_quality, self.test_quality = quality("val/"), quality("test/")
        self.val_input_quality = ImageQuality("val/", "_input", self.y_channel, self.crop_border)
        self.test_input_quality = ImageQuality("test/", "_input", self.y_channel, self.crop_border)
        self.val_psnr_best = MaxMetric()
        self.test_records: list[dict] = []

    # ---- contract for subclasses ----------------------------------------------------------
    @property
    def stride(self) -> int:
        """Factor that H and W must be multiples of; subclasses with a U-Net report theirs."""
        return int(getattr(getattr(self, "net", None), "stride", 1))

    def eval_outputs(self, source: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every output to evaluate; ``main`` is the approach's image."""
        return {"main": self(source)}

    def derived_metrics(self, stage: str, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Metrics computed from the epoch's values (e.g. fusion gain); none by default."""
        return {}

    # ---- shared evaluation ----------------------------------------------------------------
    @torch.no_grad()
    def restore(self, source: torch.Tensor) -> dict[str, torch.Tensor]:
        padded, (h, w) = pad_to_multiple(source, self.stride)
        return {k: v[..., :h, :w] for k, v in self.eval_outputs(padded).items()}

    def _eval_step(self, batch: dict, stage: str) -> dict:
        source, target = batch["source"], batch["target"]
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        outputs = self.restore(source)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        ms_per_image = 1000.0 * (time.perf_counter() - start) / source.shape[0]
        quality = self.val_quality if stage == "val" else self.test_quality
        for name, image in outputs.items():
            quality[name].update(image, target)
        (self.val_input_quality if stage == "val" else self.test_input_quality).update(source, target)
        if stage == "test":
            self._record(batch, outputs, ms_per_image)
        return {"source": source, "output": outputs["main"], "target": target}

    def _record(self, batch: dict, outputs: dict[str, torch.Tensor], ms_per_image: float) -> None:
        t = prepare_for_metrics(batch["target"], self.y_channel, self.crop_border)
        columns = {}
        for name, image in {"input": batch["source"], **outputs}.items():
            p = prepare_for_metrics(image, self.y_channel, self.crop_border)
            suffix = "" if name == "main" else f"_{name}"
            columns[f"psnr{suffix}"] = psnr_per_image(p, t).tolist()
            columns[f"ssim{suffix}"] = ssim_per_image(p, t).tolist()
        for i, name in enumerate(batch["name"]):
            self.test_records.append(
                {"image": name, **{k: v[i] for k, v in columns.items()}, "ms": ms_per_image}
            )

    def _log_epoch(self, stage: str) -> dict[str, torch.Tensor]:
        quality = self.val_quality if stage == "val" else self.test_quality
        inputs = self.val_input_quality if stage == "val" else self.test_input_quality
        values: dict[str, torch.Tensor] = {}
        for q in [*quality.values(), inputs]:
            values.update(q.compute())
            q.reset()
        values.update(self.derived_metrics(stage, values))
        if stage == "val" and not self.trainer.sanity_checking:
            self.val_psnr_best.update(values["val/psnr"])
            values["val/psnr_best"] = self.val_psnr_best.compute()
        self.log_dict(values, prog_bar=False, sync_dist=False)
        return values

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        return self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_start(self) -> None:
        self.test_records = []

    def test_step(self, batch: dict, batch_idx: int) -> dict:
        return self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def predict_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self.restore(batch["source"])["main"].clamp(0.0, 1.0)
