"""approach=vae: the ELBO's terms against torch.distributions, KL warm-up, and a digits run with
real loggers and checkpoints, reloaded, evaluated and sampled."""

import json
import math

import pytest
import torch
from torch import distributions as D

from fusionlab.approaches.vae import VAE, kl_standard_normal, reconstruction_nll
from fusionlab.models import ConvEncoder, DCGANGenerator
from fusionlab.pipeline import evaluate, train
from fusionlab.utils.errors import ConfigError
from tests.helpers import compose_cfg, groups_of

DIGITS = ["task=generate", "data=digits", "approach=vae", "data.image_size=16", "data.val_samples=64",
          "data.test_samples=64", "data.eval_batch_size=32", "data.batch_size=16", "logger=csv",
          "metrics.fid.extractor=none", "approach.encoder.width=8", "approach.generator.width=8",
          "approach.grid_samples=16", "trainer.max_epochs=2", "trainer.limit_train_batches=4", "trainer.accelerator=cpu",
          "callbacks.progress_bar=null", "trainer.enable_progress_bar=false"]


def test_kl_and_likelihoods_match_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    q = D.Normal(mu, (0.5 * logvar).exp())
    ref = D.kl_divergence(q, D.Normal(torch.zeros(6), torch.ones(6))).sum(1)
    assert torch.allclose(kl_standard_normal(mu, logvar), ref, atol=1e-5)
    assert float(kl_standard_normal(torch.zeros(1, 3), torch.zeros(1, 3))) == 0.0
    x_hat = torch.rand(4, 1, 5, 5, generator=g).clamp(0.01, 0.99)
    x = torch.rand(4, 1, 5, 5, generator=g)
    gauss = -D.Normal(x_hat.flatten(1), 0.1).log_prob(x.flatten(1)).sum(1)
    assert torch.allclose(reconstruction_nll(x_hat, x, "gaussian", 0.1), gauss, atol=1e-3)
    laplace = -D.Laplace(x_hat.flatten(1), 0.2).log_prob(x.flatten(1)).sum(1)
    assert torch.allclose(reconstruction_nll(x_hat, x, "l1", 0.2), laplace, atol=1e-3)
    cb = -D.ContinuousBernoulli(probs=x_hat.flatten(1)).log_prob(x.flatten(1)).sum(1)
    assert torch.allclose(reconstruction_nll(x_hat, x, "continuous_bernoulli", 1.0), cb, atol=1e-3)
    binary = (x > 0.5).float()
    bern = -D.Bernoulli(probs=x_hat.flatten(1)).log_prob(binary.flatten(1)).sum(1)
    assert torch.allclose(reconstruction_nll(x_hat, binary, "bernoulli", 1.0), bern, atol=1e-3)


def vae(**kw):
    return VAE(ConvEncoder(8, 1, 16, 8), DCGANGenerator(8, 1, 16, 8), torch.optim.Adam, **kw)


def test_bad_vae_settings_fail_naming_the_key():
    with pytest.raises(ConfigError, match="^approach.likelihood"):
        vae(likelihood="poisson")
    with pytest.raises(ConfigError, match="^approach.beta"):
        vae(beta=-1)
    with pytest.raises(ConfigError, match="^approach.encoder.latent_dim"):
        VAE(ConvEncoder(4, 1, 16, 8), DCGANGenerator(8, 1, 16, 8), torch.optim.Adam)


def test_kl_warmup_is_linear_in_training_batches():
    model = vae(beta=2.0, kl_warmup_steps=40)

    class Progress:
        ready = 15

    class Trainer:  # 15 batches into a 40-batch warm-up (whatever the epoch length)
        fit_loop = type("F", (), {"epoch_loop": type("E", (), {"batch_progress": type("B", (), {"total": Progress})})})

    model._trainer = Trainer()
    assert model.beta_now() == pytest.approx(2.0 * 15 / 40)
    Progress.ready = 400
    assert model.beta_now() == 2.0
    assert vae(beta=2.0, kl_warmup_steps=0).beta_now() == 2.0


def test_vae_trains_on_digits_and_its_checkpoint_evaluates_and_samples(tmp_path):
    metrics = train(compose_cfg(tmp_path / "run", [*DIGITS, f"data.cache_dir={tmp_path / 'cache'}"]))
    for key in ("val/elbo", "val/recon", "val/kl", "val/modes_covered", "val/mode_kl", "val/fd_digits",
                "val/precision", "val/recall", "val/classifier_accuracy"):
        assert math.isfinite(metrics[key]), key
    assert metrics["val/elbo"] == pytest.approx(-(metrics["val/recon"] + metrics["val/kl"]), rel=1e-4)
    assert 1 <= metrics["test/modes_covered"] <= 10
    csv = (tmp_path / "run" / "csv").rglob("metrics.csv")
    header = next(csv).read_text().splitlines()[0]
    assert "train/elbo_epoch" in header and "train/kl_epoch" in header
    samples = tmp_path / "run" / "samples"
    assert (samples / "gen_epoch000.png").is_file() and (samples / "interpolation.png").is_file()
    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    ecfg = compose_cfg(tmp_path / "eval", [f"ckpt_path={ckpt}", "logger=csv", "trainer.limit_test_batches=null",
                                           f"data.cache_dir={tmp_path / 'cache'}"], config_name="eval", hydra_node=True)
    result = evaluate(ecfg, [], groups_of(ecfg))
    assert result["metrics"]["test/modes_covered"] == metrics["test/modes_covered"]  # same seeded latents
    assert len(list((tmp_path / "eval" / "images").glob("sample*.png"))) == 64
    saved = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert saved["per_image"][0]["digit_confidence"] > 0
    from fusionlab.inference import load

    images = load(ckpt).sample(5, seed=3)
    assert images.shape == (5, 1, 16, 16) and torch.equal(images, load(ckpt).sample(5, seed=3))
