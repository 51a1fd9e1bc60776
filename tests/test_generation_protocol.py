"""The generation protocol: two readers and their agreement, a fixed-size reference for precision,
the real-data and noise rows, log-spaced validation with its cost, MGAN's shared-trunk mixture,
full-batch members, PacGAN packing, and a VAE whose reconstructions keep every channel's digit."""

import csv
import functools
from types import SimpleNamespace

import pytest
import torch

from fusionlab.approaches.gan import GanMixture
from fusionlab.approaches.vae import VAE
from fusionlab.data.digits import DigitsDataModule, digit_split, stack_digits
from fusionlab.losses import GANLoss
from fusionlab.metrics.digits import SVCReader, mode_statistics, precision_recall, reader_statistics
from fusionlab.models import ConvEncoder, DCGANDiscriminator, DCGANGenerator
from fusionlab.models.dcgan import SharedTrunkGenerators
from fusionlab.pipeline import train
from fusionlab.utils.errors import ConfigError
from tests.helpers import compose_cfg

pytestmark = pytest.mark.xdist_group("generation_protocol")  # the module's classifier is trained once

OPT = functools.partial(torch.optim.Adam, lr=2e-3, betas=(0.5, 0.999))


# ---- readers and reference sets --------------------------------------------------------------
def test_reader_statistics_known_values():
    cnn = torch.tensor([1, 2, 3, 3, 5, 6])
    svc = torch.tensor([1, 2, 4, 3, 7, 6])
    conf = torch.tensor([0.95, 0.5, 0.99, 0.91, 0.2, 0.9])
    out = reader_statistics(cnn, svc, conf, num_modes=10)
    assert out["reader_agreement"] == pytest.approx(4 / 6)
    assert out["modes_covered_agreed"] == 4  # 1, 2, 3, 6
    assert out["mode_kl_agreed"] == pytest.approx(mode_statistics(torch.tensor([1, 2, 3, 6]), 10)["mode_kl"])
    assert out["modes_covered_svc"] == 6 and out["modes_covered_confident"] == 3  # 1, 3 (twice), 6
    none = reader_statistics(torch.tensor([1]), torch.tensor([2]), torch.tensor([1.0]), 10)
    assert none["reader_agreement"] == 0 and none["modes_covered_agreed"] == 0


def test_svc_reader_is_accurate_and_reads_stacked_channels():
    reader = SVCReader(8, 3)
    assert reader.accuracy >= 0.97
    x, y = digit_split(8)["test"]
    images, modes = stack_digits(x, y, 500, seed=4)
    assert (reader.modes(images) == modes).float().mean() > 0.95
    with pytest.raises(ConfigError, match="^data.channels"):
        reader.modes(images[:, :1])


def test_precision_uses_the_whole_fixed_reference_whatever_the_sample_count():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(2000, 6, generator=g)
    fake = torch.randn(4000, 6, generator=g) * 1.3
    few, many = precision_recall(real, fake[:500]), precision_recall(real, fake)
    assert abs(few["precision"] - many["precision"]) < 0.05, "precision means the same at any sample count"
    assert many["recall"] > few["recall"], "recall grows with the samples (documented)"
    from fusionlab.metrics.digits import knn_radii

    cached = precision_recall(real, fake, real_radii=knn_radii(real.float()))
    assert cached == many


@pytest.fixture(scope="module")
def evaluator(tmp_path_factory):
    """The evaluator as a run starts it, on 8-px stacked digits (2,000 reference stacks)."""
    from fusionlab.evaluation.generation import GenerationEvaluator

    cache = tmp_path_factory.mktemp("digits")
    dm = DigitsDataModule(stacked=True, image_size=8, reference_count=2000, cache_dir=str(cache))
    ev = GenerationEvaluator()
    ev.start("val", SimpleNamespace(device=torch.device("cpu")), dm)
    return ev, dm


def test_real_data_and_noise_rows_bound_the_metrics(evaluator):
    ev, dm = evaluator
    x, y = digit_split(8)["train"]
    train_stacks = stack_digits(x, y, 2000, seed=7)[0]
    heldout = stack_digits(*digit_split(8)["test"], 2000, seed=9)[0]
    noise = torch.rand(2000, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    real, held, floor = ev.score_images(train_stacks), ev.score_images(heldout), ev.score_images(noise)
    for row in (real, held):
        assert row["modes_covered"] > 800 and row["reader_agreement"] > 0.9 and row["precision"] > 0.8
        assert row["modes_covered_svc"] > 800 and row["modes_covered_agreed"] > 750
    # training stacks are nearer the training reference than held-out ones are, and vice versa
    assert real["fd_digits"] < held["fd_digits"] and held["fd_digits_heldout"] < real["fd_digits_heldout"]
    assert floor["mode_kl"] > 2 and floor["precision"] < 0.25 * real["precision"]
    assert floor["fd_digits"] > 10 * real["fd_digits"]
    assert floor["reader_agreement"] < 0.5
    assert real["samples"] == 2000 and real["reference_size"] == 2000
    assert ev._modes == [], "scoring leaves no samples behind for the next epoch"


# ---- log-spaced validation and its cost -------------------------------------------------------
GEN = ["task=generate", "data=stacked_digits", "data.image_size=8", "data.val_samples=64", "data.test_samples=64",
       "data.eval_batch_size=32", "data.batch_size=8", "data.samples_per_epoch=16", "data.reference_count=200",
       "approach.generator.width=8", "approach.discriminator.width=8", "metrics.fid.extractor=none",
       "logger=csv", "callbacks.generator_grid=null", "trainer.limit_train_batches=null", "trainer.limit_val_batches=null",
       "trainer.limit_test_batches=null"]


def test_validation_runs_after_the_listed_epochs_and_logs_its_cost(tmp_path):
    out = tmp_path / "run"
    metrics = train(compose_cfg(out, [*GEN, "approach=gan", "trainer.max_epochs=4", "trainer.num_sanity_val_steps=0",
                                      "callbacks.validation_schedule.epochs=[1,3]", f"data.cache_dir={tmp_path / 'c'}"]))
    rows = list(csv.DictReader(next((out / "csv").rglob("metrics.csv")).open()))
    val_epochs = sorted({int(r["epoch"]) for r in rows if r.get("val/modes_covered")})
    assert val_epochs == [0, 2], "validated after epochs 1 and 3 only"
    batches = sorted({float(r["val/batches"]) for r in rows if r.get("val/batches")})
    assert batches == [2.0, 6.0]  # 2 batches of 8 per epoch
    assert 0 < metrics["val/eval_time_s"] < metrics["train_time_s"]
    for key in ("test/modes_covered_svc", "test/reader_agreement", "test/fd_digits_heldout", "test/svc_accuracy"):
        assert key in metrics, key
    with pytest.raises(ConfigError, match="^callbacks.validation_schedule.epochs"):
        from fusionlab.callbacks import ValidationSchedule

        ValidationSchedule([0, 2])


# ---- MGAN's shared trunk, full-batch members, packing ------------------------------------------
def test_shared_trunk_members_are_one_network_with_their_own_first_layer():
    torch.manual_seed(0)
    shared = SharedTrunkGenerators(3, latent_dim=8, channels=3, image_size=16, width=8).eval()
    single = DCGANGenerator(8, 3, 16, 8)
    head = sum(p.numel() for p in single.net[0].parameters())
    total = sum(p.numel() for p in shared.parameters())
    assert total == sum(p.numel() for p in single.parameters()) + 2 * head
    assert not torch.equal(shared.heads[0].weight, shared.heads[1].weight), "each head its own initialisation"
    z, k = torch.randn(6, 8), torch.tensor([2, 0, 1, 1, 0, 2])
    with torch.no_grad():
        mixed = shared(z, k)
        for j in range(3):
            rows = k == j
            assert torch.allclose(mixed[rows], shared.member(j)(z[rows]), atol=1e-6)
    assert list(shared.member(1).parameters()) == [], "a member view owns no parameters"


def mixture(**kw):
    gen = functools.partial(DCGANGenerator, latent_dim=8, channels=3, image_size=16, width=8)
    return GanMixture(gen, DCGANDiscriminator(3, 16, 8, num_classes=3), GANLoss("bce"), OPT, OPT,
                      loss_weights={"adv": 1, "cls": 0.01}, **kw)


def test_shared_mixture_trains_each_head_and_the_trunk(tmp_path):
    gan = mixture(share_layers=True)
    assert isinstance(gan.generator, SharedTrunkGenerators) and set(gan.components()) == {"generators",
                                                                                          "discriminator"}
    batch = {"target": torch.rand(6, 3, 16, 16)}
    fake, ctx = gan.generate(batch)
    assert fake.shape == (6, 3, 16, 16) and ctx["k"].tolist() == [0, 1, 2, 0, 1, 2]
    loss = sum(gan.g_terms(batch, fake, ctx).values())
    loss.backward()
    assert all(h.weight.grad is not None and h.weight.grad.abs().sum() > 0 for h in gan.generator.heads)
    assert len(gan.grid_rows(0)) == 3
    full = mixture(share_layers=True, member_batch="full")
    fake, ctx = full.generate(batch)
    assert fake.shape[0] == 18 and torch.bincount(ctx["k"]).tolist() == [6, 6, 6]
    d_terms, _ = full.d_terms(batch, fake.detach(), ctx)
    assert torch.isfinite(d_terms["adv"])


def test_mixture_settings_that_cannot_work_fail_naming_the_key():
    with pytest.raises(ConfigError, match="^approach.member_batch"):
        mixture(member_batch="half")
    with pytest.raises(ConfigError, match="^approach.share_layers"):
        GanMixture(None, DCGANDiscriminator(3, 16, 8), GANLoss("bce"), OPT, OPT, share_layers=True,
                   generators={"a": DCGANGenerator(8, 3, 16, 8), "b": DCGANGenerator(8, 3, 16, 8)})
    with pytest.raises(ConfigError, match="^approach.discriminator.pack"):
        GanMixture(functools.partial(DCGANGenerator, 8, 3, 16, 8), DCGANDiscriminator(3, 16, 8, pack=2),
                   GANLoss("bce"), OPT, OPT)
    with pytest.raises(ConfigError, match="^approach.share_layers: shared layers are built for generator=dcgan"):
        GanMixture(lambda: DCGANGenerator(8, 3, 16, 8), DCGANDiscriminator(3, 16, 8), GANLoss("bce"), OPT, OPT)
    positional = GanMixture(functools.partial(DCGANGenerator, 8, 3, 16, 8), DCGANDiscriminator(3, 16, 8),
                            GANLoss("bce"), OPT, OPT)
    assert positional.generator.latent_dim == 8 and positional.generator.channels == 3


def test_packing_discriminator_judges_consecutive_samples_together():
    torch.manual_seed(0)
    packed = DCGANDiscriminator(3, 16, 8, spectral_norm=False, pack=2)
    x = torch.rand(6, 3, 16, 16)
    logits = packed(x)
    assert logits.shape == (3,)
    # the same as an unpacked network on the channel-concatenated pairs
    plain = DCGANDiscriminator(6, 16, 8, spectral_norm=False)
    plain.load_state_dict(packed.state_dict())
    pairs = torch.cat([x[0::2, None], x[1::2, None]], 1).reshape(3, 6, 16, 16)
    assert torch.allclose(logits, plain(pairs), atol=1e-5)
    with pytest.raises(ValueError, match="data.batch_size"):
        packed(x[:5])


def test_packed_gan_trains_and_refuses_a_batch_it_cannot_pack(tmp_path):
    base = [*GEN, "approach=gan", "approach.discriminator.pack=2", "trainer.max_epochs=1",
            f"data.cache_dir={tmp_path / 'c'}"]
    metrics = train(compose_cfg(tmp_path / "ok", base))
    assert metrics["test/modes_covered"] >= 1
    with pytest.raises(ConfigError, match="^data.batch_size: must be a multiple of discriminator.pack"):
        train(compose_cfg(tmp_path / "bad", [*base, "data.batch_size=7"]))


# ---- the VAE keeps each channel's digit -------------------------------------------------------
def short_vae(likelihood: str) -> VAE:
    """400 steps of 64 stacked 8-px training digits, KL warmed up over 200."""
    torch.manual_seed(0)
    model = VAE(ConvEncoder(32, 3, 8, 32), DCGANGenerator(32, 3, 8, 32), OPT, kl_warmup_steps=200,
                likelihood=likelihood)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    x, y = digit_split(8)["train"]
    for step in range(400):
        t = model.terms(stack_digits(x, y, 64, seed=step)[0])
        loss = t["recon"].mean() + min(1.0, step / 200) * t["kl"].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_vae_on_stacked_digits_reconstructs_every_channels_digit(evaluator):
    """Gaussian likelihood (the default) with KL warm-up: the classifier reads the same digit in
    each channel of the reconstruction as in the input, for most held-out stacks. The Bernoulli
    likelihood on these grey digits collapses to a grey mean digit (measured: 9% of channels kept)."""
    reader = evaluator[0].reader
    held = stack_digits(*digit_split(8)["test"], 300, seed=3)[0]
    kept = {}
    for likelihood in ("gaussian", "bernoulli"):
        model = short_vae(likelihood)
        with torch.no_grad():
            recon = model.terms(held, sample=False)["x_hat"]
        read_in, read_out = reader.read(held)[0], reader.read(recon)[0]
        kept[likelihood] = float(torch.stack([(read_in // p % 10) == (read_out // p % 10)
                                              for p in (100, 10, 1)]).float().mean())
        if likelihood == "gaussian":  # not grey: the channels of a reconstruction differ as the input's do
            assert (recon[:, 0] - recon[:, 1]).abs().mean() > 0.5 * (held[:, 0] - held[:, 1]).abs().mean()
    assert kept["gaussian"] > 0.85 and kept["bernoulli"] < 0.5, kept
