"""``callbacks.performance.channels_last`` and ``callbacks.performance.compile``: switches applied to
the approach's networks when the Trainer sets up (``trainer/`` holds only Trainer arguments)."""

import logging

import lightning as L
import torch
from torch import nn

from fusionlab.utils.errors import ConfigError

log = logging.getLogger("fusionlab")
COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def networks(pl_module: L.LightningModule) -> list[tuple[str, nn.Module]]:
    """The approach's trainable networks: direct children with parameters, not metrics."""
    from torchmetrics import Metric

    return [(name, child) for name, child in pl_module.named_children()
            if not isinstance(child, Metric) and any(True for _ in child.parameters())]


class PerformanceSwitches(L.Callback):
    """Model weights in channels-last (NHWC) memory format, and ``torch.compile`` of each network.

    Compilation is in place (``nn.Module.compile``): state-dict keys, checkpoints and EMA copies are
    unchanged. The first steps are slower (graph capture and code generation); on CPU it needs a
    C++ compiler.

    :param channels_last: convert the weights (convolutions then run and return NHWC).
    :param compile: compile every network's forward.
    :param compile_mode: ``torch.compile`` mode (null = default).
    :param compile_backend: ``inductor`` (default) or ``eager``/``aot_eager`` for debugging.
    """

    def __init__(self, channels_last: bool = False, compile: bool = False, compile_mode: str | None = None,
                 compile_backend: str = "inductor") -> None:
        if compile_mode not in COMPILE_MODES:
            raise ConfigError("callbacks.performance.compile_mode", f"one of {COMPILE_MODES}, got {compile_mode!r}")
        self.channels_last = channels_last
        self.compile = compile
        self.compile_mode = compile_mode
        self.compile_backend = compile_backend
        self.compiled: list[str] = []

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.channels_last:
            pl_module.to(memory_format=torch.channels_last)
        if self.compile and not self.compiled:
            for name, net in networks(pl_module):
                net.compile(mode=self.compile_mode, backend=self.compile_backend)
                self.compiled.append(name)
            log.info("torch.compile (%s): %s", self.compile_backend, ", ".join(self.compiled))
