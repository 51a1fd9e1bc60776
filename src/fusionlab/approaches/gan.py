"""Unconditional generation (``task=generate``): ``approach=gan`` trains one generator against a
discriminator; ``approach=gan_mixture`` trains a mixture of K generators sharing one discriminator.

Both reuse :class:`~fusionlab.approaches.adversarial.AdversarialModule` (manual optimisation, AMP and
DDP rules, EMA, NaN guard). Evaluation draws samples from fixed, seeded latent vectors (the same
samples in every epoch and run), logs FID/KID against the training set through the FID callback,
and ``nn_distance`` (mean RMSE from each sample to its nearest training image) beside
``nn_distance_train`` (training images to their nearest other training image): a generator that
copies its training set has ``nn_distance`` far below ``nn_distance_train``.

The mixture (MGAN, Hoang et al. 2018): sample ``i`` comes from generator ``k ~ pi``, one member per
draw. ``share_layers`` (the default) gives the K generators one shared trunk and K input layers, as
MGAN does (:class:`~fusionlab.models.dcgan.SharedTrunkGenerators`); otherwise each member is a
whole network of its own (heterogeneous members, e.g. GANs and a VAE decoder, are always separate).
``member_batch``: ``share`` gives each generator an equal share of the batch, ``full`` gives each
a full batch of its own (K times the fakes per step, so that small members are not starved of
samples); either way the share's adversarial terms are weighted by ``pi_k`` (the same objective as
sampling ``k ~ pi``, with every generator trained at every step). ``pi`` is fixed
(``mixture_weights``, uniform by default) or learned (``learn_weights``: softmax logits trained by
the generators' loss, with an entropy bonus ``loss_weights.entropy`` against collapse onto one
generator; measured to drift from uniform even with it). With ``loss_weights.cls > 0`` the
discriminator has a classifier head that learns which generator made a sample and the generators
are trained to be identifiable (MGAN's diversity term; MGAN's code uses beta = 0.01, the default
here).

Packing (PacGAN, Lin et al. 2018; ``discriminator.pack=k``) is the discriminator's business
(:class:`~fusionlab.models.DCGANDiscriminator`): it judges k samples at once, so it returns one
logit per k images. The single GAN and the output fusion take it; the mixture, whose loss weights
each sample by its member, refuses it.
"""

import functools

import zlib
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fusionlab.approaches.adversarial import EMA, AdversarialModule
from fusionlab.approaches.sampling import LatentSampler
from fusionlab.losses.adversarial import GANLoss, r1_penalty
from fusionlab.models.dcgan import DCGANGenerator, SharedTrunkGenerators
from fusionlab.evaluation import GenerationEvaluator
from fusionlab.evaluation.base import fusion_weight_logs
from fusionlab.utils.errors import ConfigError, check


class UnconditionalGan(LatentSampler, AdversarialModule):
    """One generator ``G(z)`` (``latent_dim`` read from it) against ``D(x)`` (per-image logits)."""

    LOSS_TERMS = ("adv", "r1")

    label = "gan"

    def components(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def __init__(self, generator: nn.Module, discriminator: nn.Module, gan_loss: GANLoss, optimizer_g: Callable,
                 optimizer_d: Callable, scheduler_g: Callable | None = None, scheduler_d: Callable | None = None,
                 loss_weights: dict[str, float] | None = None, n_critic: int = 1, grad_clip: float | None = None,
                 ema_decay: float | None = None, grid_samples: int = 64) -> None:
        super().__init__(generator, discriminator, gan_loss, optimizer_g, optimizer_d, scheduler_g, scheduler_d,
                         loss_weights, n_critic, grad_clip, ema_decay)
        self.latent_dim = int(generator.latent_dim)
        self.grid_samples = int(grid_samples)
        self.set_evaluator(GenerationEvaluator())

    # ---- training terms -----------------------------------------------------------------------
    def generate(self, batch: dict) -> tuple[torch.Tensor, dict]:
        real = batch["target"]
        z = torch.randn(real.shape[0], self.latent_dim, device=real.device, dtype=real.dtype)
        return self.generator(z), {}

    def setup(self, stage: str) -> None:
        pack = int(getattr(self.discriminator, "pack", 1))
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        batch = getattr(datamodule, "batch_size", None)
        if stage == "fit" and pack > 1 and batch is not None:
            check(int(batch) % pack == 0, "data.batch_size",
                  f"must be a multiple of discriminator.pack ({pack}): the discriminator judges {pack} samples "
                  f"at a time, got {batch}")

    def _d_forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if hasattr(self.discriminator, "forward_features"):
            return self.discriminator.forward_features(images)
        return self.discriminator(images), None

    def fake_d_loss(self, fake_pred: torch.Tensor, ctx: dict) -> torch.Tensor:
        return self.gan_loss(fake_pred, real=False)

    def d_terms(self, batch: dict, fake: torch.Tensor, ctx: dict) -> tuple[dict, dict]:
        real = batch["target"]
        n = real.shape[0]
        images = torch.cat([real, fake.to(real.dtype)])
        use_r1 = self.weight("r1") > 0
        if use_r1:
            images = images.detach().requires_grad_(True)
        logits, cls = self._d_forward(images)
        n_pred = n // int(getattr(self.discriminator, "pack", 1))  # a packing D: one logit per pack of samples
        real_pred, fake_pred = logits[:n_pred], logits[n_pred:]
        terms = {"adv": self.gan_loss(real_pred, real=True) + self.fake_d_loss(fake_pred, ctx)}
        if use_r1:
            terms["r1"] = 0.5 * r1_penalty(real_pred, images)
        terms.update(self.extra_d_terms(cls[n:] if cls is not None else None, ctx))
        return terms, {"d_real": real_pred.detach().float().mean(), "d_fake": fake_pred.detach().float().mean()}

    def extra_d_terms(self, fake_cls: torch.Tensor | None, ctx: dict) -> dict:
        return {}

    def g_terms(self, batch: dict, fake: torch.Tensor, ctx: dict) -> dict[str, torch.Tensor]:
        logits, _ = self._d_forward(fake)
        return {"adv": self.gan_loss.generator(logits)}

class GanMixture(UnconditionalGan):
    """A mixture of ``num_generators`` generators (each built by the ``generator`` factory, so each has
    its own random initialisation) sharing one discriminator, or of the heterogeneous ``generators``
    (name -> network, each with its own latent size; member ``j`` reads the first ``latent_dim_j``
    coordinates of the shared latent, whose size is the largest).

    :param mixture_weights: sampling probability per generator (normalised); null = uniform.
    :param learn_weights: learn the mixture weights (softmax logits) with the generators' loss.
    :param share_layers: the ``num_generators`` DCGAN members share all layers but the first (MGAN).
    :param member_batch: ``share`` (each member an equal share of the batch) or ``full`` (each a
        full batch).
    :param member_checkpoints: per member, a generation checkpoint to start from (a GAN's EMA
        generator, a VAE's decoder) or null.
    :param frozen_members: names of members kept fixed (eval mode, not trained), e.g. a trained
        VAE decoder beside GANs trained in the mixture.
    """

    LOSS_TERMS = ("adv", "r1", "cls", "entropy")

    label = "gan_mixture"
    provenance = ("member_checkpoints",)

    def components(self) -> dict[str, nn.Module]:
        if isinstance(self.generator, SharedTrunkGenerators):
            return {"generators": self.generator, "discriminator": self.discriminator}
        return {**dict(zip(self.member_names, self.generator)), "discriminator": self.discriminator}

    def __init__(self, generator: Callable[[], nn.Module], discriminator: nn.Module, gan_loss: GANLoss,
                 optimizer_g: Callable, optimizer_d: Callable, num_generators: int = 3,
                 mixture_weights: Sequence[float] | None = None, learn_weights: bool = False,
                 scheduler_g: Callable | None = None, scheduler_d: Callable | None = None,
                 loss_weights: dict[str, float] | None = None, n_critic: int = 1, grad_clip: float | None = None,
                 ema_decay: float | None = None, grid_samples: int = 8,
                 generators: Mapping[str, nn.Module] | None = None, member_checkpoints: Sequence[str | None] | None = None,
                 frozen_members: Sequence[str] = (), share_layers: bool = True, member_batch: str = "share") -> None:
        check(member_batch in ("share", "full"), "approach.member_batch",
              f"must be share or full, got {member_batch!r}")
        check(int(getattr(discriminator, "pack", 1)) == 1, "approach.discriminator.pack",
              "a mixture weights each sample's loss by its member, and a packing discriminator judges several "
              "samples at once: use pack=1 with approach=gan_mixture")
        shared = None
        if generators:
            check(not share_layers, "approach.share_layers", "heterogeneous generators cannot share layers: "
                  "set approach.share_layers=false with approach.generators")
            names, members = list(generators), nn.ModuleList(generators.values())
        else:
            if int(num_generators) < 1:
                raise ConfigError("approach.num_generators", f"must be >= 1, got {num_generators}")
            names = [f"g{i}" for i in range(int(num_generators))]
            if share_layers:
                check(isinstance(generator, functools.partial) and generator.func is DCGANGenerator,
                      "approach.share_layers", "shared layers are built for generator=dcgan (MGAN's sharing)")
                shared = SharedTrunkGenerators(len(names), *generator.args, **generator.keywords)
                members = nn.ModuleList([shared.member(j) for j in range(len(names))])
            else:
                members = nn.ModuleList([generator() for _ in names])
        check(not (share_layers and (frozen_members or member_checkpoints)), "approach.share_layers",
              "members that share layers cannot be frozen or loaded one by one: set approach.share_layers=false")
        shapes = {n: (int(m.channels), getattr(m, "image_size", None)) for n, m in zip(names, members)}
        check(len(set(shapes.values())) == 1, "approach.generators",
              f"members must make images of one shape (channels, size): {shapes}")
        unknown = sorted(set(frozen_members or ()) - set(names))
        check(not unknown, "approach.frozen_members", f"unknown member(s) {unknown}: members are {names}")
        checkpoints = list(member_checkpoints or [])
        check(not checkpoints or len(checkpoints) == len(members), "approach.member_checkpoints",
              f"one entry (a checkpoint or null) per member ({len(members)}), got {len(checkpoints)}")
        super().__init__(shared if shared is not None else members[0], discriminator, gan_loss, optimizer_g,
                         optimizer_d, scheduler_g, scheduler_d, loss_weights, n_critic, grad_clip, None, grid_samples)
        # all K are trained by optimizer_g (except the frozen ones); shared: one network, K heads
        self.generator = shared if shared is not None else members
        self.share_layers, self.member_batch = shared is not None, member_batch
        self.member_names, self.member_checkpoints = names, checkpoints
        self.frozen = [names.index(n) for n in frozen_members or ()]
        for i in self.frozen:
            members[i].requires_grad_(False)
        self.latent_dims = [int(m.latent_dim) for m in members]
        self.latent_dim = max(self.latent_dims)
        self.num_generators = len(members)
        if self.weight("cls") > 0 and getattr(getattr(discriminator, "classifier", None), "out_channels", 0) != len(
                members):
            raise ConfigError("approach.discriminator.num_classes", f"must equal num_generators ({len(members)}) "
                              f"when loss_weights.cls > 0")
        if mixture_weights is None:
            mixture_weights = [1.0] * len(members)
        w = torch.tensor([float(v) for v in mixture_weights])
        if len(w) != len(members) or (w < 0).any() or w.sum() <= 0:
            raise ConfigError("approach.mixture_weights", f"need {len(members)} weights >= 0 with a positive sum, "
                              f"got {list(mixture_weights)}")
        logits = (w / w.sum()).clamp_min(1e-8).log()
        self.learn_weights = bool(learn_weights)
        if self.learn_weights:
            self.mixture_logits = nn.Parameter(logits)
        else:
            self.register_buffer("mixture_logits", logits)
        self.ema = EMA(self.generator, ema_decay) if ema_decay is not None else None

    @property
    def mixture_probs(self) -> torch.Tensor:
        return torch.softmax(self.mixture_logits.float(), dim=0)

    def generator_parameters(self):
        params = [p for p in self.generator.parameters() if p.requires_grad]
        return params + [self.mixture_logits] if self.learn_weights else params

    def setup(self, stage: str) -> None:
        """Members with a checkpoint start from its inference generator (before the EMA copy syncs)."""
        super().setup(stage)
        if stage != "fit" or not any(self.member_checkpoints):
            return
        from fusionlab.utils.checkpoints import generator_state

        for i, path in enumerate(self.member_checkpoints):
            if path is None:
                continue
            key = f"approach.member_checkpoints[{i}]"
            state = generator_state(str(path), key, self.generator[i], self.member_names[i])
            self.generator[i].load_state_dict(state, strict=True)
        if self.ema is not None:
            self.ema.module.load_state_dict(self.generator.state_dict())

    def train(self, mode: bool = True):
        super().train(mode)
        for i in getattr(self, "frozen", ()):
            self.generator[i].train(False)  # frozen members keep their BatchNorm statistics
        return self

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        for i in self.frozen:  # Lightning restores each submodule's own mode rather than calling train()
            self.generator[i].train(False)

    # ---- sampling ---------------------------------------------------------------------------
    def member_list(self, members: nn.Module) -> list[nn.Module]:
        """The members as ``latent -> image`` networks (views of a shared-trunk network)."""
        if isinstance(members, SharedTrunkGenerators):
            return [members.member(j) for j in range(members.num)]
        return list(members)

    def run_members(self, members: nn.Module, z: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Sample ``i`` from member ``k[i]``: each member runs once, on its own rows (a shared trunk
        runs once on all of them)."""
        if isinstance(members, SharedTrunkGenerators):
            return members(z[:, :members.latent_dim], k)
        out = None
        for j, member in enumerate(members):
            rows = (k == j).nonzero().flatten()
            if rows.numel() == 0:
                continue
            images = member(z[rows][:, :self.latent_dims[j]])
            if out is None:
                out = images.new_empty((z.shape[0], *images.shape[1:]))
            out[rows] = images
        return out

    def choose(self, indices: torch.Tensor, seed: int) -> torch.Tensor:
        """The generator of evaluation sample ``i`` of stream ``seed``: ``k ~ pi``, seeded per index."""
        u = torch.tensor([zlib.crc32(f"{seed}:{i}:k".encode()) / 2**32 for i in indices.tolist()])
        cdf = torch.cumsum(self.mixture_probs.detach().cpu(), 0)
        return torch.searchsorted(cdf, u.clamp(max=float(cdf[-1]) - 1e-7)).to(self.device)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` samples of the mixture and the generator each came from."""
        k = torch.multinomial(self.mixture_probs.detach().cpu(), n, replacement=True, generator=generator)
        z = torch.randn(n, self.latent_dim, generator=generator)
        return self.run_members(self._members(), z.to(self.device), k.to(self.device)), k

    def _members(self) -> nn.ModuleList:
        return self.ema.module if self.ema is not None else self.generator

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        k = torch.arange(z.shape[0], device=z.device) % self.num_generators
        return self.run_members(self.generator, z, k)

    def example_input(self, channels: int, size: int) -> tuple[torch.Tensor, ...]:
        return (torch.zeros(1, self.latent_dim, device=self.device),)  # one sample: one member runs

    @torch.no_grad()
    def sample_latents(self, z: torch.Tensor, indices: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
        k = self.choose(indices if indices is not None else torch.arange(z.shape[0]), seed)
        return self.run_members(self._members(), z, k)

    def grid_rows(self, seed: int) -> list[list[torch.Tensor]]:
        """One row per generator, all on the same fixed latents: what each member draws."""
        z = self.latents(torch.arange(self.grid_samples), seed)
        with torch.no_grad():
            return [list(m(z[:, :d]).cpu()) for m, d in zip(self.member_list(self._members()), self.latent_dims)]

    def interpolate_images(self, z: torch.Tensor) -> torch.Tensor:
        return self.member_list(self._members())[0](z[:, :self.latent_dims[0]])

    # ---- training ---------------------------------------------------------------------------
    def generate(self, batch: dict) -> tuple[torch.Tensor, dict]:
        real = batch["target"]
        n = real.shape[0] * (self.num_generators if self.member_batch == "full" else 1)
        k = torch.arange(n, device=real.device) % self.num_generators  # equal shares (see module doc)
        z = torch.randn(n, self.latent_dim, device=real.device, dtype=real.dtype)
        return self.run_members(self.generator, z, k), {"k": k}

    def _share_weights(self, k: torch.Tensor) -> torch.Tensor:
        """Per-sample weights ``pi_k / share_k``: summing them over a batch gives the pi-mixture mean."""
        counts = torch.bincount(k, minlength=self.num_generators).clamp_min(1).float()
        return (self.mixture_probs / counts)[k]

    def fake_d_loss(self, fake_pred: torch.Tensor, ctx: dict) -> torch.Tensor:
        w = self._share_weights(ctx["k"]).detach()
        return (w * self.gan_loss(fake_pred, real=False, reduce=False)).sum()

    def extra_d_terms(self, fake_cls: torch.Tensor | None, ctx: dict) -> dict:
        if fake_cls is None or self.weight("cls") == 0:
            return {}
        return {"cls": F.cross_entropy(fake_cls.float(), ctx["k"])}

    def g_terms(self, batch: dict, fake: torch.Tensor, ctx: dict) -> dict[str, torch.Tensor]:
        logits, cls = self._d_forward(fake)
        w = self._share_weights(ctx["k"])
        if not self.learn_weights:
            w = w.detach()
        terms = {"adv": (w * self.gan_loss(logits, real=True, for_discriminator=False, reduce=False)).sum()}
        if cls is not None and self.weight("cls") > 0:
            terms["cls"] = F.cross_entropy(cls.float(), ctx["k"])
        if self.learn_weights and self.weight("entropy") > 0:
            p = self.mixture_probs
            terms["entropy"] = (p * p.clamp_min(1e-8).log()).sum()  # negative entropy: minimised
        return terms

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        self.log_dict(fusion_weight_logs("train", self.member_names, self.mixture_probs.detach()))
