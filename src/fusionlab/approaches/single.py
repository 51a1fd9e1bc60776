"""The single-model baseline: one backbone trained with a reconstruction loss."""

from collections.abc import Callable

import torch
from torch import nn

from fusionlab.approaches.optim import make_optimizers
from fusionlab.approaches.restoration import RestorationModule


class SingleModel(RestorationModule):
    """One generator ``net`` (any backbone of ``model/``) trained on ``loss(net(source), target)``.

    The reference that every fusion approach must beat. Batch contract: ``{"source", "target"}``
    float32 ``(B, C, H, W)``, target in [0, 1].

    :param net: the backbone.
    :param loss: reconstruction loss module (L1, L2 or Charbonnier).
    :param optimizer: a partial optimizer factory taking ``params``.
    :param scheduler: an optional partial LR-scheduler factory taking ``optimizer``.
    :param init_checkpoint: a single-model checkpoint whose weights training starts from.
    """

    label = "single"
    provenance = ("init_checkpoint",)

    def components(self) -> dict[str, nn.Module]:
        return {"net": self.net}

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        y_channel: bool = False,
        crop_border: int = 0,
        init_checkpoint: str | None = None,
    ) -> None:
        super().__init__(y_channel=y_channel, crop_border=crop_border)
        self.net, self.loss = net, loss
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.init_checkpoint = init_checkpoint

    def setup(self, stage: str) -> None:
        """``init_checkpoint`` (``member_init=CKPT``): start from another single model's weights, the
        recipe for soup members that share an initialisation (a resumed run then loads its own)."""
        if stage != "fit" or not self.init_checkpoint:
            return
        from fusionlab.utils.checkpoints import net_state

        self.net.load_state_dict(net_state(self.init_checkpoint, self.net, "member_init"))

    def forward(self, source: torch.Tensor) -> torch.Tensor:
        return self.net(source)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.loss(self(batch["source"]), batch["target"])
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return make_optimizers(self.net.parameters(), self.optimizer_factory, self.scheduler_factory)
