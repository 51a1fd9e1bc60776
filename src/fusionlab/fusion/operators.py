"""Fusion operators over a stack ``x`` of shape ``(K, B, C, H, W)`` -> ``(B, C, H, W)``.

Every operator is built as ``Op(num_inputs=K, channels=C, context_channels=D, level=L, **options)``
(``level`` is ``"image"`` or ``"feature"``), so an approach can build whichever one the config names; ``context`` (``(B, D, H, W)``, e.g. the
degraded input image) is seen by the operators that predict weights or residuals. ``fuse(x, context)``
returns the fused tensor together with the mean weight given to each input (``(K,)``, detached, for
logging; None for operators without weights); calling the operator returns the fused tensor alone.
"""

from collections.abc import Sequence

import torch
from torch import nn

from fusionlab.utils.errors import ConfigError, check


class FusionOperator(nn.Module):
    """Base: validates K; subclasses implement :meth:`fuse`. Every operator works at both levels."""

    def __init__(self, num_inputs: int, channels: int, context_channels: int = 0, level: str = "image") -> None:
        super().__init__()
        check(num_inputs >= 2, "fusion", f"fusing needs at least 2 inputs, got {num_inputs}")
        check(level in ("image", "feature"), "fusion", f"level must be image or feature, got {level!r}")
        self.num_inputs, self.channels, self.context_channels = num_inputs, channels, context_channels
        self.level = level

    def fuse(self, x: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(fused (B, C, H, W), mean weight per input (K,) or None)``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return self.fuse(x, context)[0]

    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 5 or x.shape[0] != self.num_inputs or x.shape[2] != self.channels:
            raise ValueError(f"{type(self).__name__}: expected ({self.num_inputs}, B, {self.channels}, H, W), "
                             f"got {tuple(x.shape)}")

    @staticmethod
    def weighted_sum(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``sum_k w[k] * x[k]`` with ``w`` broadcastable to ``x``."""
        return (w * x).sum(dim=0)


class Mean(FusionOperator):
    """Plain average."""

    def fuse(self, x, context=None):
        self.check_input(x)
        return x.mean(dim=0), None


class Median(FusionOperator):
    """Per-element median; for even K the mean of the two middle values."""

    def fuse(self, x, context=None):
        self.check_input(x)
        s = x.sort(dim=0).values
        k = self.num_inputs
        return 0.5 * (s[(k - 1) // 2] + s[k // 2]), None


class Weighted(FusionOperator):
    """Fixed weights from the config, normalised to sum 1 (``None``: uniform).

    :param weights: K non-negative numbers, not all zero.
    """

    def __init__(self, num_inputs: int, channels: int, context_channels: int = 0, level: str = "image",
                 weights: Sequence[float] | None = None) -> None:
        super().__init__(num_inputs, channels, context_channels, level)
        w = torch.ones(num_inputs) if weights is None else torch.tensor(list(weights), dtype=torch.float32)
        check(w.numel() == num_inputs, "fusion.weights", f"needs {num_inputs} weights (one per input), got {w.numel()}")
        check(bool((w >= 0).all()), "fusion.weights", f"must be non-negative, got {w.tolist()}")
        check(float(w.sum()) > 0, "fusion.weights", "must not all be zero")
        self.register_buffer("weights", w / w.sum())

    def fuse(self, x, context=None):
        self.check_input(x)
        return self.weighted_sum(x, self.weights.to(x.dtype).view(-1, 1, 1, 1, 1)), self.weights.detach()


class Learned(FusionOperator):
    """One trained scalar per input, softmax-normalised (starts uniform)."""

    def __init__(self, num_inputs: int, channels: int, context_channels: int = 0, level: str = "image") -> None:
        super().__init__(num_inputs, channels, context_channels, level)
        self.logits = nn.Parameter(torch.zeros(num_inputs))

    def weights(self) -> torch.Tensor:
        return torch.softmax(self.logits.float(), dim=0)

    def fuse(self, x, context=None):
        self.check_input(x)
        w = self.weights()
        return self.weighted_sum(x, w.to(x.dtype).view(-1, 1, 1, 1, 1)), w.detach()


def conv_stack(c_in: int, hidden: int, c_out: int, depth: int, kernel_size: int) -> nn.Sequential:
    """``depth`` conv-ReLU layers then a conv to ``c_out``; ``depth=0`` is one conv."""
    pad = kernel_size // 2
    layers: list[nn.Module] = []
    c = c_in
    for _ in range(depth):
        layers += [nn.Conv2d(c, hidden, kernel_size, padding=pad), nn.ReLU(inplace=True)]
        c = hidden
    last = nn.Conv2d(c, c_out, kernel_size if depth else 1, padding=pad if depth else 0)
    nn.init.zeros_(last.weight), nn.init.zeros_(last.bias)  # start as the plain (weighted) mean
    return nn.Sequential(*layers, last)


def _flatten_inputs(x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
    k, b, c, h, w = x.shape
    flat = x.permute(1, 0, 2, 3, 4).reshape(b, k * c, h, w)
    return flat if context is None else torch.cat([flat, context.to(flat.dtype)], dim=1)


class Gated(FusionOperator):
    """Per-pixel softmax weights over the K inputs, predicted by a small CNN that sees the inputs
    (and the context); starts uniform.

    :param hidden: width of the gating CNN.
    :param depth: its hidden layers when fusing images; ``feature_depth`` when fusing features.
    """

    def __init__(self, num_inputs: int, channels: int, context_channels: int = 0, level: str = "image",
                 hidden: int = 32, depth: int = 2, feature_depth: int = 1, kernel_size: int = 3) -> None:
        super().__init__(num_inputs, channels, context_channels, level)
        layers = depth if level == "image" else feature_depth
        self.net = conv_stack(num_inputs * channels + context_channels, hidden, num_inputs, layers, kernel_size)

    def gate(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Weights ``(K, B, 1, H, W)`` summing to 1 over K at every pixel."""
        logits = self.net(_flatten_inputs(x, context if self.context_channels else None))
        return torch.softmax(logits.float(), dim=1).permute(1, 0, 2, 3).unsqueeze(2)

    def fuse(self, x, context=None):
        self.check_input(x)
        w = self.gate(x, context)
        return self.weighted_sum(x, w.to(x.dtype)), w.detach().mean(dim=(1, 2, 3, 4))


class Stacked(FusionOperator):
    """Stacking: a learned softmax-weighted mean plus a residual predicted by a small CNN on the
    concatenated inputs (and context); the residual starts at zero.

    :param depth: hidden layers of the CNN when fusing images; ``feature_depth`` when fusing
        features, where the default 0 is "concatenate + 1x1 conv".
    """

    def __init__(self, num_inputs: int, channels: int, context_channels: int = 0, level: str = "image",
                 hidden: int = 32, depth: int = 2, feature_depth: int = 0, kernel_size: int = 3) -> None:
        super().__init__(num_inputs, channels, context_channels, level)
        self.logits = nn.Parameter(torch.zeros(num_inputs))
        layers = depth if level == "image" else feature_depth
        self.net = conv_stack(num_inputs * channels + context_channels, hidden, channels, layers, kernel_size)

    def fuse(self, x, context=None):
        self.check_input(x)
        w = torch.softmax(self.logits.float(), dim=0)
        base = self.weighted_sum(x, w.to(x.dtype).view(-1, 1, 1, 1, 1))
        return base + self.net(_flatten_inputs(x, context if self.context_channels else None)), w.detach()


class Attention(FusionOperator):
    """Selective-kernel attention (Li et al., CVPR 2019): global-average-pool the sum of the inputs,
    a bottleneck MLP, then per-input channel logits with a softmax across the K inputs.

    :param reduction: bottleneck ratio; the bottleneck has ``max(channels // reduction, min_hidden)``.
    """

    def __init__(self, num_inputs: int, channels: int, context_channels: int = 0, level: str = "image",
                 reduction: int = 4, min_hidden: int = 8) -> None:
        super().__init__(num_inputs, channels, context_channels, level)
        hidden = max(channels // reduction, min_hidden)
        self.squeeze = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True))
        self.excite = nn.Linear(hidden, num_inputs * channels)
        nn.init.zeros_(self.excite.weight), nn.init.zeros_(self.excite.bias)  # starts uniform

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Weights ``(K, B, C, 1, 1)`` summing to 1 over K for every channel."""
        k, b, c = x.shape[:3]
        s = x.sum(dim=0).float().mean(dim=(2, 3))  # (B, C)
        logits = self.excite(self.squeeze(s)).view(b, k, c)
        return torch.softmax(logits, dim=1).permute(1, 0, 2)[..., None, None]

    def fuse(self, x, context=None):
        self.check_input(x)
        w = self.attention(x)
        return self.weighted_sum(x, w.to(x.dtype)), w.detach().mean(dim=(1, 2, 3, 4))


def build_fusion(factory, num_inputs: int, channels: int, context_channels: int, level: str) -> FusionOperator:
    """Build an operator from a partial factory (``fusion=NAME``) for ``num_inputs`` inputs at ``level``."""
    if not callable(factory):
        raise ConfigError("fusion", "no fusion operator configured: pick one with fusion=NAME")
    return factory(num_inputs=num_inputs, channels=channels, context_channels=context_channels, level=level)
