"""Output-level fusion of generators (``approach=generator_fusion``, ``task=generate``).

M member generators of any kind (DCGAN generators, VAE decoders), each with its own latent size,
turn one shared latent ``z`` into M images; a fusion operator of :mod:`fusionlab.fusion` fuses them
(``y = sum_j w_j * G_j(z)`` for ``weighted``/``learned``, per-pixel weights for ``gated``, a
residual on top for ``stacked`` ...), and one discriminator judges the fused image.

Member ``j`` reads the first ``latent_dim_j`` coordinates of the shared ``z ~ N(0, I)`` (so each
member sees exactly the N(0, I) latent it was trained with, and all members see the same
coordinates); the shared size is the largest member's.

- ``mode=joint``: members, fuser and discriminator are trained together from scratch.
- ``mode=two_stage``: each member is loaded from its own checkpoint (a GAN's EMA generator when it
  has one, else its ``generator``; a VAE's decoder) and frozen in eval mode; only the fuser (and the
  discriminator) train. The fuser must then have parameters (not ``mean``/``median``/``weighted``).

Grids show one row per member and the fused row for the same latents; the operator's mean weight
per member is logged as ``val/fusion_weight/<name>``.
"""

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from fusionlab.approaches.gan import UnconditionalGan
from fusionlab.utils.checkpoints import generator_state
from fusionlab.evaluation.base import WeightMeter, fusion_weight_logs
from fusionlab.fusion.operators import build_fusion
from fusionlab.utils.errors import check

MODES = ("joint", "two_stage")


class FusedGenerator(nn.Module):
    """M member generators on one shared latent, fused by ``fusion``; ``latent_dim`` is the shared size."""

    def __init__(self, members: Mapping[str, nn.Module], fusion: nn.Module, frozen: bool = False) -> None:
        super().__init__()
        self.names = list(members)
        self.members = nn.ModuleList(members.values())
        self.fusion, self.frozen = fusion, frozen
        self.latent_dims = [int(m.latent_dim) for m in self.members]
        self.latent_dim = max(self.latent_dims)
        self.image_size = getattr(self.members[0], "image_size", None)
        if frozen:
            self.members.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.members.train(False)  # frozen members keep their BatchNorm statistics
        return self

    def member_images(self, z: torch.Tensor) -> torch.Tensor:
        """``(M, B, C, H, W)``: member ``j`` on the first ``latent_dim_j`` coordinates of ``z``."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            return torch.stack([m(z[:, :d]) for m, d in zip(self.members, self.latent_dims)])

    def fuse(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(fused image, member images, mean weight per member or None)``."""
        images = self.member_images(z)
        fused, weights = self.fusion.fuse(images)
        return fused.clamp(0, 1), images, weights

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.fuse(z)[0]


class GeneratorFusion(UnconditionalGan):
    """:param generators: member name -> generator (any ``generator/`` option, own ``latent_dim``).
    :param fusion: a fusion operator factory (``fusion=NAME``), built for M image inputs, no context.
    :param mode: ``joint`` or ``two_stage`` (members from ``member_checkpoints``, frozen).
    :param member_checkpoints: two_stage: one generation checkpoint per member, in order.
    """

    label = "generator_fusion"
    provenance = ("member_checkpoints",)

    def components(self) -> dict[str, nn.Module]:
        fused = self.generator
        return {**dict(zip(fused.names, fused.members)), "discriminator": self.discriminator}

    def strategy(self) -> str:
        return type(self.generator.fusion).__name__.lower()

    def __init__(self, generators: Mapping[str, nn.Module], discriminator: nn.Module, fusion: Callable, gan_loss,
                 optimizer_g: Callable, optimizer_d: Callable, scheduler_g: Callable | None = None,
                 scheduler_d: Callable | None = None, mode: str = "joint",
                 member_checkpoints: Sequence[str] | None = None, loss_weights: dict[str, float] | None = None,
                 n_critic: int = 1, grad_clip: float | None = None, ema_decay: float | None = None,
                 grid_samples: int = 8) -> None:
        check(mode in MODES, "approach.mode", f"must be one of {MODES}, got {mode!r}")
        members = dict(generators or {})
        check(len(members) >= 2, "approach.generators", f"fusing needs at least 2 generators, got {len(members)}")
        channels = {name: int(g.channels) for name, g in members.items()}
        sizes = {name: getattr(g, "image_size", None) for name, g in members.items()}
        check(len(set(channels.values())) == 1 and len(set(sizes.values())) == 1, "approach.generators",
              f"members must make images of one shape: channels {channels}, sizes {sizes}")
        checkpoints = list(member_checkpoints or [])
        if mode == "two_stage":
            check(len(checkpoints) == len(members), "approach.member_checkpoints",
                  f"two_stage needs one checkpoint per member ({len(members)}), got {len(checkpoints)}")
        fuser = build_fusion(fusion, len(members), next(iter(channels.values())), 0, level="image")
        if mode == "two_stage":
            check(any(p.requires_grad for p in fuser.parameters()), "fusion",
                  f"two_stage trains only the fuser, and {type(fuser).__name__} has no parameters: use a "
                  "trainable operator (learned, gated, stacked, attention) or mode=joint")
        fused = FusedGenerator(members, fuser, frozen=mode == "two_stage")
        # the one-generator GAN, with the fused generator as "the" generator
        super().__init__(fused, discriminator, gan_loss, optimizer_g, optimizer_d, scheduler_g, scheduler_d,
                         loss_weights, n_critic, grad_clip, ema_decay, grid_samples)
        self.mode, self.member_checkpoints = mode, checkpoints
        self.weight_meter = WeightMeter(len(members))

    def generator_parameters(self):
        return [p for p in self.generator.parameters() if p.requires_grad]

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage == "fit" and self.mode == "two_stage":
            for i, (path, member) in enumerate(zip(self.member_checkpoints, self.generator.members)):
                key = f"approach.member_checkpoints[{i}]"
                member.load_state_dict(generator_state(path, key, member, self.generator.names[i]), strict=True)
            if self.ema is not None:  # the EMA copy starts from the loaded members
                self.ema.module.load_state_dict(self.generator.state_dict())

    # ---- evaluation: the fused image, members beside it, fusion weights ------------------------
    def eval_outputs(self, batch: dict) -> dict[str, torch.Tensor]:
        seed = int(batch["seed"][0])
        z = self.latents(batch["index"], seed)
        fused, _, weights = self.inference_generator.fuse(z)
        self.weight_meter.add(weights)
        return {"main": fused.float().clamp(0, 1)}

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        mean = self.weight_meter.mean_and_reset()
        if mean is not None:
            self.log_dict(fusion_weight_logs("val", self.generator.names, mean))

    def grid_rows(self, seed: int) -> list[list[torch.Tensor]]:
        """One row per member and the fused row, for the same ``grid_samples`` latents."""
        z = self.latents(torch.arange(self.grid_samples), seed)
        with torch.no_grad():
            fused, images, _ = self.inference_generator.fuse(z)
        return [list(m.float().clamp(0, 1).cpu()) for m in images] + [list(fused.float().cpu())]
