"""Variational autoencoder (``approach=vae``, Kingma & Welling 2014) for ``task=generate``.

An encoder gives ``q(z | x) = N(mu, diag(exp(logvar)))``, a decoder (a generator of ``generator/``,
DCGAN's by default) gives the likelihood ``p(x | z)``. Training minimises the negative ELBO with a
``beta`` weight on the KL term (beta-VAE, Higgins et al. 2017), linearly warmed up from 0 over
``kl_warmup_steps`` training batches (Bowman et al. 2016; on by default: without it the posterior
collapses early and the decoder learns the mean image)::

    loss = recon + beta_t * KL(q(z|x) || N(0, I)),   ELBO = -(recon + KL)   (nats per image)

``likelihood`` (per pixel, summed over the image, so that the ELBO is a bound on log p(x)):
``gaussian`` (N(x; x_hat, scale^2); the default, ``scale`` 0.1), ``continuous_bernoulli``
(Loaiza-Ganem & Cunningham 2019: the normalised Bernoulli density on [0, 1], the right likelihood
for grey values), ``l1`` (Laplace(x; x_hat, scale)) or ``bernoulli`` (binary cross-entropy, a
likelihood of binary pixels only: on grey digits such as the upscaled ones of ``data=digits`` it is
not normalised, and with beta = 1 it drives the posterior to collapse and the samples to the mean
digit, grey in every channel; measured in bench/generation.py's history).

Logged: ``train/elbo``, ``train/recon``, ``train/kl``, ``train/beta``; at validation the same
terms on held-out images when the data module offers them (``val/elbo`` ...), and the samples'
metrics of :class:`~fusionlab.evaluation.GenerationEvaluator` from the fixed seeded latents.
Grids (``callbacks=generate``): samples from fixed latents, then input | reconstruction rows, and
latent interpolations. Samples are the decoder's mean image ``x_hat(z)``, ``z ~ N(0, I)``.
"""

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from fusionlab.approaches.optim import make_optimizers
from fusionlab.approaches.sampling import LatentSampler
from fusionlab.evaluation import GenerationEvaluator
from fusionlab.evaluation.hooks import EvaluatedModule
from fusionlab.utils.errors import check

LIKELIHOODS = ("gaussian", "continuous_bernoulli", "l1", "bernoulli")


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per sample, summed over latent dimensions."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)


def reconstruction_nll(x_hat: torch.Tensor, x: torch.Tensor, likelihood: str, scale: float) -> torch.Tensor:
    """-log p(x | z) per sample (nats), summed over pixels; computed in float32."""
    x_hat, x = x_hat.float().flatten(1), x.float().flatten(1)
    if likelihood == "bernoulli":
        return F.binary_cross_entropy(x_hat.clamp(1e-6, 1 - 1e-6), x, reduction="none").sum(1)
    if likelihood == "continuous_bernoulli":
        cb = torch.distributions.ContinuousBernoulli(probs=x_hat.clamp(1e-4, 1 - 1e-4), validate_args=False)
        return -cb.log_prob(x).sum(1)
    if likelihood == "gaussian":
        return (0.5 * (x - x_hat).pow(2) / scale**2).sum(1) + x.shape[1] * math.log(scale * math.sqrt(2 * math.pi))
    return ((x - x_hat).abs() / scale).sum(1) + x.shape[1] * math.log(2 * scale)


class VAE(LatentSampler, EvaluatedModule):
    """:param encoder: image -> ``(mu, logvar)`` (``fusionlab.models.ConvEncoder``).
    :param generator: the decoder, latent -> image in [0, 1] (``latent_dim`` read from it).
    :param beta: weight of the KL term (1: the ELBO).
    :param kl_warmup_steps: training batches over which beta rises linearly from 0 (0: no warm-up).
    :param likelihood: ``gaussian``, ``continuous_bernoulli``, ``l1`` or ``bernoulli``; ``scale``:
        sigma (gaussian) or b (l1).
    :param grid_samples: fixed-latent samples in each grid; ``recon_rows``: input|reconstruction rows.
    """

    label = "vae"

    def components(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "decoder": self.generator}

    def __init__(self, encoder: nn.Module, generator: nn.Module, optimizer: Callable, scheduler: Callable | None = None,
                 beta: float = 1.0, kl_warmup_steps: int = 2000, likelihood: str = "gaussian", scale: float = 0.1,
                 grid_samples: int = 64, recon_rows: int = 2) -> None:
        super().__init__()
        check(likelihood in LIKELIHOODS, "approach.likelihood", f"must be one of {LIKELIHOODS}, got {likelihood!r}")
        check(float(beta) >= 0 and math.isfinite(float(beta)), "approach.beta", f"must be a number >= 0, got {beta}")
        check(int(kl_warmup_steps) >= 0, "approach.kl_warmup_steps", f"must be >= 0, got {kl_warmup_steps}")
        check(float(scale) > 0, "approach.scale", f"must be > 0, got {scale}")
        check(int(encoder.latent_dim) == int(generator.latent_dim), "approach.encoder.latent_dim",
              f"the encoder's latent size ({encoder.latent_dim}) must be the decoder's ({generator.latent_dim})")
        self.encoder, self.generator = encoder, generator
        self.optimizer, self.scheduler = optimizer, scheduler
        self.beta, self.kl_warmup_steps = float(beta), int(kl_warmup_steps)
        self.likelihood, self.scale = likelihood, float(scale)
        self.latent_dim = int(generator.latent_dim)
        self.grid_samples, self.recon_rows = int(grid_samples), int(recon_rows)
        self.set_evaluator(GenerationEvaluator())

    @property
    def inference_generator(self) -> nn.Module:
        return self.generator

    # ---- the objective ------------------------------------------------------------------------
    def beta_now(self) -> float:
        """beta after the warm-up, at the current training batch (resumes continue the ramp)."""
        if self.kl_warmup_steps == 0 or self._trainer is None:
            return self.beta
        done = self.trainer.fit_loop.epoch_loop.batch_progress.total.ready
        return self.beta * min(1.0, done / self.kl_warmup_steps)

    def terms(self, x: torch.Tensor, sample: bool = True) -> dict[str, torch.Tensor]:
        """Per-sample ``recon`` and ``kl`` (nats) and the reconstruction ``x_hat``."""
        mu, logvar = self.encoder(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if sample else mu
        x_hat = self.generator(z)
        return {"recon": reconstruction_nll(x_hat, x, self.likelihood, self.scale),
                "kl": kl_standard_normal(mu.float(), logvar.float()), "x_hat": x_hat}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        t = self.terms(batch["target"])
        recon, kl = t["recon"].mean(), t["kl"].mean()
        beta = self.beta_now()
        self.log_dict({"train/loss": recon + beta * kl, "train/elbo": -(recon + kl), "train/recon": recon,
                       "train/kl": kl, "train/beta": beta}, on_step=True, on_epoch=True)
        return recon + beta * kl

    def configure_optimizers(self):
        return make_optimizers(self.parameters(), self.optimizer, self.scheduler)

    # ---- evaluation ---------------------------------------------------------------------------
    @torch.no_grad()
    def heldout_elbo(self, images: torch.Tensor, batch: int = 500) -> dict[str, float]:
        """Mean ELBO terms on ``images`` (one posterior sample each, seeded: the same every epoch)."""
        was = self.training
        self.eval()
        state = torch.random.get_rng_state()
        torch.manual_seed(0)
        recon, kl = [], []
        for i in range(0, len(images), batch):
            t = self.terms(images[i:i + batch].to(self.device))
            recon.append(t["recon"].cpu())
            kl.append(t["kl"].cpu())
        torch.random.set_rng_state(state)
        self.train(was)
        r, k = torch.cat(recon).mean(), torch.cat(kl).mean()
        return {"elbo": float(-(r + k)), "recon": float(r), "kl": float(k)}

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "heldout_images") and not self.trainer.sanity_checking:
            values = self.heldout_elbo(datamodule.heldout_images())
            self.log_dict({f"val/{k}": torch.tensor(v) for k, v in values.items()}, sync_dist=False)

    def grid_rows(self, seed: int) -> list[list[torch.Tensor]]:
        """Fixed-latent samples, then ``recon_rows`` pairs of rows: held-out (or reference) images
        and their reconstructions (posterior means)."""
        rows = super().grid_rows(seed)
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is None or self.recon_rows == 0:
            return rows
        images = datamodule.heldout_images() if hasattr(datamodule, "heldout_images") else \
            torch.stack(datamodule.reference_images("fit")[0])
        cols = len(rows[0])
        with torch.no_grad():
            was = self.training
            self.eval()
            for r in range(self.recon_rows):
                x = images[r * cols:(r + 1) * cols].to(self.device)
                if len(x) == 0:
                    break
                rows += [list(x.cpu()), list(self.terms(x, sample=False)["x_hat"].float().clamp(0, 1).cpu())]
            self.train(was)
        return rows
