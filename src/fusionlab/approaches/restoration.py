"""Base of the paired-restoration approaches: padding to the network's stride, and named outputs.

Subclasses own ``forward``, ``training_step`` and ``configure_optimizers``; they may override
:meth:`RestorationModule.named_outputs` to add outputs (ensemble members). Evaluation itself is
:class:`~fusionlab.evaluation.hooks.EvaluatedModule` with a
:class:`~fusionlab.evaluation.restoration.RestorationEvaluator`. Images are float32 in [0, 1]
(``source`` may leave it).
"""

from collections.abc import Sequence

import torch

from fusionlab.evaluation import EvaluatedModule, RestorationEvaluator
from fusionlab.functional import pad_to_multiple
from fusionlab.fusion.self_ensemble import check_tta, self_ensemble


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
        self.tta, self.tta_fusion = "none", "mean"

    # ---- contract for subclasses ----------------------------------------------------------
    @property
    def stride(self) -> int:
        """Factor that H and W must be multiples of; subclasses with a U-Net report theirs."""
        stride = getattr(getattr(self, "net", None), "stride", 1)
        return stride if isinstance(stride, int) else 1  # (an nn.Conv2d's own `stride` is a tuple)

    def named_outputs(self, source: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every output to evaluate for a (padded) source; ``main`` is the approach's image."""
        return {"main": self(source)}

    # ---- inference ------------------------------------------------------------------------
    def set_tta(self, mode: str = "none", fusion: str = "mean") -> None:
        """Test-time self-ensemble for every restoration (``tta=none|flip|x8``, fused by
        ``tta_fusion=mean|median``): a run-time setting, not part of the trained model."""
        check_tta(mode, fusion)
        self.tta, self.tta_fusion = mode, fusion

    @torch.no_grad()
    def restore(self, source: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named outputs for a source of any size (padded to the stride, cropped back), fused over
        the test-time transforms when ``tta`` is set (every output: members too)."""
        padded, (h, w) = pad_to_multiple(source, self.stride)
        outputs = self_ensemble(self.named_outputs, padded, self.tta, self.tta_fusion)
        return {k: v[..., :h, :w] for k, v in outputs.items()}

    def eval_outputs(self, batch: dict) -> dict[str, torch.Tensor]:
        return self.restore(batch["source"])

    def predict_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self.restore(batch["source"])["main"].clamp(0.0, 1.0)
