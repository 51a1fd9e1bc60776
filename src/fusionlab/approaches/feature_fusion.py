"""Feature fusion: N encoder branches whose feature maps are fused before one shared decoder."""

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from fusionlab.approaches.optim import make_optimizers
from fusionlab.approaches.restoration import RestorationModule
from fusionlab.evaluation.base import WeightMeter, fusion_weight_logs
from fusionlab.fusion.operators import build_fusion
from fusionlab.models.blocks import conv3x3
from fusionlab.utils.errors import check


class FeatureFusionRestorer(RestorationModule):
    """Branches (``fusionlab.models.encoders``) -> fusion operator(s) -> decoder -> residual on input.

    Branch features whose width differs from ``width`` are projected by a 1x1 conv. Fusion happens
    after the stages listed in ``fuse_at`` (negative indices count from the end; the last stage is
    always fused, since the decoder needs one map). At an intermediate fusion point the fused map is
    added back into every branch (cross-branch exchange); each point has its own operator.

    Logs ``val/psnr``/``val/ssim`` and the mean weight per branch of the last fusion point
    (``val/fusion_weight_branch{i}``). Batch contract as :class:`~fusionlab.approaches.single.SingleModel`.

    :param branches: encoder modules (a list, or a mapping whose order is kept).
    :param fusion: a partial fusion-operator factory (``fusion/`` config group).
    :param decoder_depth: conv-ReLU layers of the decoder before its output conv.
    """

    label = "feature_fusion"

    def components(self) -> dict[str, nn.Module]:
        return {f"branch{i}": b for i, b in enumerate(self.branches)}

    def __init__(
        self,
        branches: Sequence[nn.Module] | dict[str, nn.Module],
        fusion: Callable[..., nn.Module],
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        channels: int,
        width: int = 32,
        fuse_at: Sequence[int] = (-1,),
        decoder_depth: int = 2,
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        y_channel: bool = False,
        crop_border: int = 0,
    ) -> None:
        nets = list(branches.values()) if isinstance(branches, dict) else list(branches)
        check(len(nets) >= 2, "approach.branches", f"feature fusion needs at least 2 branches, got {len(nets)}")
        stages = {getattr(n, "n_stages", None) for n in nets}
        check(None not in stages, "approach.branches", "every branch must be an encoder with stem/stages")
        check(len(stages) == 1, "approach.branches", f"branches must have the same n_stages, got {sorted(stages)}")
        n_stages = stages.pop()
        points = sorted({i % n_stages for i in fuse_at if -n_stages <= i < n_stages})
        check(len(points) == len(set(fuse_at)), "approach.fuse_at",
              f"stage indices must lie in [-{n_stages}, {n_stages - 1}], got {list(fuse_at)}")
        if n_stages - 1 not in points:
            points.append(n_stages - 1)
        check(len(points) == 1 or all(n.width == width for n in nets), "approach.fuse_at",
              f"fusing before the last stage adds the fused map back into every branch: all branch "
              f"widths must equal approach.width={width}, got {[n.width for n in nets]}")
        check(decoder_depth >= 0, "approach.decoder_depth", f"must be >= 0, got {decoder_depth}")
        super().__init__(y_channel=y_channel, crop_border=crop_border)
        self.branches = nn.ModuleList(nets)
        self.project = nn.ModuleList(
            nn.Identity() if n.width == width else nn.Conv2d(n.width, width, 1) for n in nets
        )
        self.fuse_points = points
        self.fusions = nn.ModuleDict({
            str(p): build_fusion(fusion, len(nets), width, channels, level="feature") for p in points
        })
        layers: list[nn.Module] = []
        for _ in range(decoder_depth):
            layers += [conv3x3(width, width), nn.ReLU(inplace=True)]
        self.decoder = nn.Sequential(*layers, conv3x3(width, channels))
        self.loss = loss
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.weight_meter = WeightMeter(len(nets))

    @property
    def stride(self) -> int:
        return math.lcm(*(int(getattr(b, "stride", 1)) for b in self.branches))

    def fused_features(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The fused feature map after the last fusion point, and that point's weights per branch."""
        feats = [b.stem(source) for b in self.branches]
        fused, weights = None, None
        for s in range(self.fuse_points[-1] + 1):
            feats = [b.stages[s](f) for b, f in zip(self.branches, feats)]
            if s in self.fuse_points:
                stacked = torch.stack([p(f) for p, f in zip(self.project, feats)])
                fused, weights = self.fusions[str(s)].fuse(stacked, source)
                if s != self.fuse_points[-1]:
                    feats = [f + fused for f in feats]  # cross-branch exchange
        return fused, weights

    def restore_with_weights(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        fused, weights = self.fused_features(source)
        return source + self.decoder(fused), weights

    def forward(self, source: torch.Tensor) -> torch.Tensor:
        return self.restore_with_weights(source)[0]

    def named_outputs(self, source: torch.Tensor) -> dict[str, torch.Tensor]:
        out, weights = self.restore_with_weights(source)
        if self.evaluating:
            self.weight_meter.add(weights)
        return {"main": out}

    def derived_metrics(self, stage: str, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        mean = self.weight_meter.mean_and_reset()
        return {} if mean is None else fusion_weight_logs(stage, self.components(), mean)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out, w = self.restore_with_weights(batch["source"])
        loss = self.loss(out, batch["target"])
        self.log("train/loss", loss, prog_bar=True)
        if w is not None and batch_idx % 50 == 0:
            self.log_dict(fusion_weight_logs("train", self.components(), w.detach()))
        return loss

    def configure_optimizers(self):
        modules = [self.branches, self.project, self.fusions, self.decoder]
        return make_optimizers([p for m in modules for p in m.parameters()], self.optimizer_factory,
                               self.scheduler_factory)
