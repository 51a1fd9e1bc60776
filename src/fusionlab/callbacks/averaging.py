"""``weight_averaging=ema``: Lightning's ``EMAWeightAveraging`` with a warmed-up decay.

Lightning's callback averages with a fixed decay from the first step, starting from the initial
weights *and buffers*: after ``n`` updates a fraction ``decay ** n`` of the random initialisation
(and of BatchNorm's initial running variance of 1) is still in the average. With decay 0.99 and the
300 steps of a short CPU run that is 5%, enough to wreck a BatchNorm network (measured in
bench/weight_fusion.py --part averaging: the averaged running variances were ten times the trained
ones). The warm-up ``decay_n = min(decay, (1 + n) / (10 + n))`` (TensorFlow's
``ExponentialMovingAverage(num_updates)``, the same function as the GANs' generator EMA) forgets the
start; everything else (swapping the average in for validation, saving it as the checkpoint's
``state_dict``, the raw weights under ``current_model_state``) is Lightning's.
"""

from lightning.pytorch.callbacks import EMAWeightAveraging

from fusionlab.approaches.adversarial import warmup_ema_multi_avg_fn
from fusionlab.utils.errors import check


class WarmupEMAWeightAveraging(EMAWeightAveraging):
    """:param decay: the EMA decay after the warm-up. :param warmup: warm the decay up (false:
    Lightning's fixed decay)."""

    def __init__(self, decay: float = 0.999, warmup: bool = True, **kwargs) -> None:
        check(0.0 < float(decay) < 1.0, "callbacks.weight_averaging.decay", f"must be in (0, 1), got {decay}")
        super().__init__(decay=float(decay), **kwargs)
        self.warmup = bool(warmup)
        if self.warmup:  # AveragedModel prefers multi_avg_fn; the fixed-decay avg_fn is dropped
            self._kwargs.pop("avg_fn", None)
            self._kwargs["multi_avg_fn"] = warmup_ema_multi_avg_fn(float(decay))
