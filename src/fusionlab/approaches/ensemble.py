"""Model ensemble: M generators whose output images are fused by a fusion operator."""

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from fusionlab.approaches.optim import make_optimizers
from fusionlab.approaches.restoration import RestorationModule
from fusionlab.utils.checkpoints import check_fits, part_state, read_checkpoint, saved_config
from fusionlab.fusion.members import MemberBank
from fusionlab.evaluation.base import WeightMeter, fusion_weight_logs
from fusionlab.fusion.operators import build_fusion
from fusionlab.losses.reconstruction import per_sample_loss
from fusionlab.utils.errors import DataError, check

MODES = ("joint", "two_stage")


class OutputEnsemble(RestorationModule):
    """M member generators (any backbones) and a fusion operator over their outputs.

    Modes: ``joint`` trains members and fuser end to end on ``loss(fused, target)`` plus
    ``member_loss_weight`` times the mean of the members' own losses; ``two_stage`` loads each
    member from a single-model checkpoint (``member_checkpoints``), freezes it (eval mode, no
    gradients) and trains only the fuser. ``bagging`` gives each member its own Poisson(1)
    bootstrap weights over the batch's patches for its own loss (online bagging), so members see
    different samples.

    Logs ``val/psnr_member{i}``, ``val/ssim_member{i}``, the fused ``val/psnr``/``val/ssim`` and
    ``val/fusion_gain_db`` (fused PSNR minus the best member's), and the fusion weights per member.
    Batch contract as :class:`~fusionlab.approaches.single.SingleModel`.

    :param members: the member networks (a list, or a mapping whose order is kept).
    :param fusion: a partial fusion-operator factory (``fusion/`` config group).
    """

    label = "ensemble"
    provenance = ("member_checkpoints",)

    def components(self) -> dict[str, nn.Module]:
        return {f"member{i}": m for i, m in enumerate(self.bank.members)}

    def __init__(
        self,
        members: Sequence[nn.Module] | dict[str, nn.Module],
        fusion: Callable[..., nn.Module],
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        mode: str = "joint",
        member_loss_weight: float = 0.5,
        member_checkpoints: Sequence[str] | None = None,
        bagging: bool = False,
        batched: bool | str = "auto",
        y_channel: bool = False,
        crop_border: int = 0,
    ) -> None:
        nets = list(members.values()) if isinstance(members, dict) else list(members)
        check(len(nets) >= 2, "approach.members", f"an ensemble needs at least 2 members, got {len(nets)}")
        check(mode in MODES, "approach.mode", f"must be one of {MODES}, got {mode!r}")
        check(batched in (True, False, "auto"), "approach.batched", f"must be true, false or auto, got {batched!r}")
        check(member_loss_weight >= 0, "approach.member_loss_weight", f"must be >= 0, got {member_loss_weight}")
        check(not bagging or (mode == "joint" and member_loss_weight > 0), "approach.bagging",
              "bagging acts on the members' own losses: it needs mode=joint and member_loss_weight > 0")
        channels = {getattr(n, "channels", None) for n in nets}
        check(len(channels) == 1, "approach.members", f"members disagree on image channels: {channels}")
        super().__init__(y_channel=y_channel, crop_border=crop_border,
                         extra_outputs=[f"member{i}" for i in range(len(nets))])
        self.channels = channels.pop()
        self.bank = MemberBank(nets, batched=batched)
        self.fusion = build_fusion(fusion, len(nets), self.channels, self.channels, level="image")
        self.loss = loss
        self.mode, self.member_loss_weight, self.bagging = mode, float(member_loss_weight), bool(bagging)
        self.member_checkpoints = list(member_checkpoints) if member_checkpoints else []
        if mode == "two_stage":
            check(len(self.member_checkpoints) == len(nets), "approach.member_checkpoints",
                  f"two_stage needs one checkpoint per member ({len(nets)}), got {len(self.member_checkpoints)}")
            # the files are checked where they are loaded (fit): a trained two-stage checkpoint holds
            # every member's weights and evaluates on a machine without the member files
            self.bank.requires_grad_(False)
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.weight_meter = WeightMeter(len(nets))

    # ---- members --------------------------------------------------------------------------
    @property
    def stride(self) -> int:
        return self.bank.stride

    @property
    def num_members(self) -> int:
        return len(self.bank)

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.mode == "two_stage":
            self.load_members()

    def load_members(self) -> None:
        """Load each frozen member from its single-model checkpoint (state dict under ``net.``)."""
        for i, path in enumerate(self.member_checkpoints):  # all named before any is read
            if not Path(path).is_file():
                raise DataError(path, "member checkpoint does not exist", f"approach.member_checkpoints[{i}]")
        task_name = getattr(getattr(self._trainer, "datamodule", None), "task", None)
        task_name = getattr(task_name, "name", None)
        for i, (path, member) in enumerate(zip(self.member_checkpoints, self.bank.members)):
            key = f"approach.member_checkpoints[{i}]"
            ckpt = read_checkpoint(path, key, "member checkpoint")
            saved = saved_config(ckpt)
            saved_channels = saved.get("data", {}).get("channels")
            if saved_channels is not None and saved_channels != self.channels:
                raise DataError(path, f"member was trained on {saved_channels}-channel images, the ensemble "
                                f"uses {self.channels}", key)
            saved_task = str(saved.get("task", {}).get("_target_", ""))
            expected = {"denoise": "GaussianNoise", "superres": "BicubicDownscale"}.get(task_name or "", "")
            if expected and saved_task and not saved_task.endswith(expected):
                raise DataError(path, f"member was trained for {saved_task.rsplit('.', 1)[-1]}, "
                                f"this run's task is {task_name}", key)
            state = part_state(ckpt, ("net.",))
            if not state:
                raise DataError(path, "not a single-model checkpoint (no net.* weights)", key)
            check_fits(state, member, path, key, str(i))
            member.load_state_dict(state, strict=True)
        self.bank.invalidate()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.mode == "two_stage":
            self.bank.train(False)  # frozen members keep their BatchNorm statistics
        return self

    def on_train_epoch_start(self) -> None:
        # Lightning restores each submodule's own mode rather than calling train(): enforce it here
        if self.mode == "two_stage":
            self.bank.train(False)

    # ---- forward --------------------------------------------------------------------------
    def member_outputs(self, source: torch.Tensor) -> torch.Tensor:
        if self.mode == "two_stage":
            with torch.no_grad():
                return self.bank(source)
        return self.bank(source)

    def forward(self, source: torch.Tensor) -> torch.Tensor:
        return self.fusion(self.member_outputs(source), source)

    def named_outputs(self, source: torch.Tensor) -> dict[str, torch.Tensor]:
        outs = self.member_outputs(source)
        fused, weights = self.fusion.fuse(outs, source)
        if self.evaluating:
            self.weight_meter.add(weights)
        return {"main": fused, **{f"member{i}": outs[i] for i in range(self.num_members)}}

    def derived_metrics(self, stage: str, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        best = torch.stack([values[f"{stage}/psnr_member{i}"] for i in range(self.num_members)]).max()
        out = {f"{stage}/fusion_gain_db": values[f"{stage}/psnr"] - best}
        mean = self.weight_meter.mean_and_reset()
        if mean is not None:
            out.update(fusion_weight_logs(stage, self.components(), mean))
        return out

    # ---- training -------------------------------------------------------------------------
    def _member_loss(self, outs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean over members of each member's own loss; with bagging, each member weights each
        patch by its own Poisson(1) count (online bagging, Oza & Russell 2001)."""
        m, b = outs.shape[:2]
        per_sample = per_sample_loss(self.loss, outs.flatten(0, 1), target.repeat(m, 1, 1, 1)).view(m, b)
        if not self.bagging:
            return per_sample.mean()
        counts = torch.poisson(torch.ones(m, b, device=outs.device))
        return ((counts * per_sample).sum(dim=1) / counts.sum(dim=1).clamp_min(1.0)).mean()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor | None:
        if not self.trainable_parameters():
            return None  # two_stage with a parameter-free fusion: nothing to train
        source, target = batch["source"], batch["target"]
        outs = self.member_outputs(source)
        fused, weights = self.fusion.fuse(outs, source)
        loss = self.loss(fused, target)
        self.log("train/loss_fused", loss)
        if self.mode == "joint" and self.member_loss_weight > 0:
            member_loss = self._member_loss(outs, target)
            self.log("train/loss_members", member_loss)
            loss = loss + self.member_loss_weight * member_loss
        self.log("train/loss", loss, prog_bar=True)
        if weights is not None and batch_idx % 50 == 0:
            self.log_dict(fusion_weight_logs("train", self.components(), weights.detach()))
        return loss

    def trainable_parameters(self) -> list[nn.Parameter]:
        modules = [self.fusion] if self.mode == "two_stage" else [self.bank, self.fusion]
        return [p for m in modules for p in m.parameters() if p.requires_grad]

    def configure_optimizers(self):
        params = self.trainable_parameters()
        return make_optimizers(params, self.optimizer_factory, self.scheduler_factory) if params else None

