"""Base of the paired-restoration approaches: padding to the network's stride, and named outputs.

Subclasses own ``forward``, ``training_step`` and ``configure_optimizers``; they may override
:meth:`RestorationModule.named_outputs` to add outputs (ensemble members). Evaluation itself is
:class:`~fusionlab.evaluation.hooks.EvaluatedModule` with a
:class:`~fusionlab.evaluation.restoration.RestorationEvaluator`. Images are float32 in [0, 1]
(``source`` may leave it).
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from fusionlab.evaluation import EvaluatedModule, RestorationEvaluator


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


class RestorationModule(EvaluatedModule):
    """Base of the restoration approaches.

    :param y_channel: PSNR/SSIM on the Y channel of YCbCr (super-resolution protocol).
    :param crop_border: pixels cropped on each side before PSNR/SSIM.
    :param extra_outputs: names of further outputs that :meth:`named_outputs` returns.
    """

    def __init__(self, y_channel: bool = False, crop_border: int = 0, extra_outputs: Sequence[str] = ()) -> None:
        super().__init__()
        self.output_names = ["main", *extra_outputs]
        self.set_evaluator(RestorationEvaluator(y_channel, crop_border))

    # ---- contract for subclasses ----------------------------------------------------------
    @property
    def stride(self) -> int:
        """Factor that H and W must be multiples of; subclasses with a U-Net report theirs."""
        return int(getattr(getattr(self, "net", None), "stride", 1))

    def named_outputs(self, source: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every output to evaluate for a (padded) source; ``main`` is the approach's image."""
        return {"main": self(source)}

    # ---- inference ------------------------------------------------------------------------
    @torch.no_grad()
    def restore(self, source: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named outputs for a source of any size (padded to the stride, cropped back)."""
        padded, (h, w) = pad_to_multiple(source, self.stride)
        return {k: v[..., :h, :w] for k, v in self.named_outputs(padded).items()}

    def eval_outputs(self, batch: dict) -> dict[str, torch.Tensor]:
        return self.restore(batch["source"])

    def predict_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self.restore(batch["source"])["main"].clamp(0.0, 1.0)
