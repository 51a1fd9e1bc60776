"""Adversarial machinery: losses against hand computations, networks, style fusion invariants,
the manual optimisation step, the NaN guard, and the generation mixture."""

import math

import pytest
import torch
import torch.nn.functional as F

from fusionlab.approaches.adversarial import EMA
from fusionlab.approaches.gan import GanMixture, UnconditionalGan
from fusionlab.data.generation import seeded_latents
from fusionlab.data.style import fixed_pairs
from fusionlab.losses import GANLoss, content_loss, gram, mean_std, r1_penalty, style_distance, total_variation
from fusionlab.metrics.fid import FeatureDistances, RandomProxyExtractor
from fusionlab.metrics.generation import nearest_distance
from fusionlab.models import DCGANDiscriminator, DCGANGenerator, PatchDiscriminator, StyleTransferGenerator
from fusionlab.models.stylizer import adain, region_weights
from fusionlab.utils.errors import ConfigError

P = torch.tensor([[-2.0, 0.5, 3.0]])


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


@pytest.mark.parametrize("mode,real_d,fake_d,gen", [
    ("hinge", (3 + 0.5 + 0) / 3, (0 + 1.5 + 4) / 3, -(-2 + 0.5 + 3) / 3),
    ("lsgan", (9 + 0.25 + 4) / 3, (4 + 0.25 + 9) / 3, (9 + 0.25 + 4) / 3),
    ("bce", (softplus(2) + softplus(-0.5) + softplus(-3)) / 3, (softplus(-2) + softplus(0.5) + softplus(3)) / 3,
     (softplus(2) + softplus(-0.5) + softplus(-3)) / 3),
])
def test_gan_losses_match_hand_computation(mode, real_d, fake_d, gen):
    loss = GANLoss(mode)
    assert loss(P, real=True).item() == pytest.approx(real_d, rel=1e-6)
    assert loss(P, real=False).item() == pytest.approx(fake_d, rel=1e-6)
    assert loss.generator(P).item() == pytest.approx(gen, rel=1e-6)
    assert loss.discriminator(P, P).item() == pytest.approx(real_d + fake_d, rel=1e-6)
    per = loss(torch.cat([P, P * 0]), real=True, reduce=False)
    assert per.shape == (2,) and per[0].item() == pytest.approx(real_d, rel=1e-6)
    if mode == "bce":  # non-saturating BCE = binary cross-entropy with logits
        assert loss(P, real=True).item() == pytest.approx(F.binary_cross_entropy_with_logits(P, torch.ones_like(P)).item())
    assert loss(P.half(), real=True).dtype == torch.float32, "losses in float32 under autocast"


def test_gan_loss_rejects_unknown_mode():
    with pytest.raises(ValueError, match="wgan"):
        GANLoss("wgan")


def test_r1_tv_and_style_terms():
    x = torch.rand(2, 1, 4, 4, requires_grad=True)
    pred = (3 * x).sum(dim=(1, 2, 3))  # grad = 3 everywhere: ||grad||^2 = 9 * 16 per sample
    assert r1_penalty(pred, x).item() == pytest.approx(9 * 16)
    ramp = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 1, 4, 4)
    assert total_variation(ramp).item() == pytest.approx(1.0)  # dw = 1, dh = 0
    f = torch.randn(2, 3, 5, 5)
    m, s = mean_std(f)
    assert torch.allclose(m.flatten(), f.mean((2, 3)).flatten(), atol=1e-6)
    assert torch.allclose(s.flatten(), f.var((2, 3), unbiased=False).add(1e-5).sqrt().flatten(), atol=1e-6)
    g = gram(f)
    assert g.shape == (2, 3, 3) and torch.allclose(g, g.transpose(1, 2))
    assert style_distance([f], [f]).item() == 0 and content_loss([f], [f]).item() == 0
    assert style_distance([f], [f + 1], reduce=False).tolist() == pytest.approx([1.0, 1.0], rel=1e-5)
    assert style_distance([f], [f * 2], kind="gram").item() > 0


# ---- networks -------------------------------------------------------------------------------
@pytest.mark.parametrize("injection", ["adain", "concat", "spade"])
def test_style_generator_shapes_and_range(injection):
    g = StyleTransferGenerator(3, 8, 2, 1, injection, 16)
    out = g(torch.rand(2, 3, 32, 48), torch.rand(2, 3, 40, 24))  # style of another size
    assert out.shape == (2, 3, 32, 48) and 0 <= out.min() and out.max() <= 1
    assert g.stride == 4


def test_discriminators_shapes():
    d = PatchDiscriminator(3, 8, 3, cond_channels=3)
    logits, feats = d.forward_features(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 32, 32))
    assert logits.shape == (2, 1, 6, 6) and len(feats) == 4  # 70x70 PatchGAN grid for 64x64
    with pytest.raises(ValueError, match="conditioned"):
        d(torch.rand(1, 3, 64, 64))
    dd = DCGANDiscriminator(1, 32, 8, num_classes=3)
    logits, cls = dd.forward_features(torch.rand(5, 1, 32, 32))
    assert logits.shape == (5,) and cls.shape == (5, 3)
    assert any("parametrizations" in n for n, _ in dd.named_parameters()), "spectral norm"
    g = DCGANGenerator(16, 1, 64, 8)
    x = g(torch.randn(3, 16))
    assert x.shape == (3, 1, 64, 64) and 0 <= x.min() and x.max() <= 1
    with pytest.raises(ValueError, match="power of two"):
        DCGANGenerator(16, 1, 48, 8)


def test_adain_output_has_the_style_statistics():
    content, style = torch.randn(2, 4, 16, 16) * 3 + 1, torch.randn(2, 4, 8, 8) * 0.5 - 2
    s_mean, s_std = mean_std(style)
    out = adain(content, s_mean, s_std)
    o_mean, o_std = mean_std(out)
    assert torch.allclose(o_mean, s_mean, atol=1e-4) and torch.allclose(o_std, s_std, atol=1e-3)


@pytest.mark.parametrize("injection", ["adain", "concat", "spade"])
def test_style_mixing_and_region_fusion_invariants(injection):
    torch.manual_seed(0)
    g = StyleTransferGenerator(3, 8, 2, 1, injection, 16).eval()
    content = torch.rand(2, 3, 32, 32)
    a, b = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32) * 0.2
    with torch.no_grad():
        single = g(content, a.expand(2, -1, -1, -1))
        same = dict(atol=1e-6, rtol=0)  # batch-size-dependent kernels: not bitwise
        assert torch.allclose(g.fuse_styles(content, [a, b], weights=[1.0, 0.0]), single, **same), "weights 1/0 = style a"
        assert torch.allclose(g.fuse_styles(content, [a], masks=torch.ones(1, 1, 32, 32)), single, **same), "all-ones mask"
        assert not torch.allclose(g.fuse_styles(content, [a, b], weights=[0.5, 0.5]), single, **same)
        half = torch.zeros(1, 2, 32, 32)
        half[:, 0, :, :16], half[:, 1, :, 16:] = 1, 1
        region = g.fuse_styles(content, [a, b], masks=half, blur=1.0)
        only_b = g(content, b.expand(2, -1, -1, -1))
    left, right = (slice(None), slice(None), slice(None), slice(0, 12)), (..., slice(20, 32))
    assert (region[left] - single[left]).abs().mean() < (region[left] - only_b[left]).abs().mean()
    assert (region[right] - only_b[right]).abs().mean() < (region[right] - single[right]).abs().mean()
    with pytest.raises(ValueError, match="weights"):
        g.fuse_styles(content, [a, b], weights=[1.0])


def test_region_weights_are_smooth_and_normalised():
    masks = torch.zeros(1, 2, 64, 64)
    masks[:, 0, :, :32], masks[:, 1, :, 32:] = 1, 1
    w = region_weights(masks, (16, 16), blur=2.0)
    assert torch.allclose(w.sum(1), torch.ones(1, 16, 16))
    row = w[0, 0, 8]
    assert row[0] > 0.99 and row[-1] < 0.01 and 0.2 < row[7] < 0.8, "a soft boundary"
    assert torch.all(row[1:] <= row[:-1] + 1e-6), "monotone across the boundary"


def test_ema_warms_up_then_follows_with_decay():
    src = torch.nn.Linear(2, 2)
    ema = EMA(src, decay=0.9)
    assert not any(p.requires_grad for p in ema.parameters())
    initial = src.weight.detach().clone()
    ema.update(src)  # first update: AveragedModel copies
    assert torch.equal(ema.module.weight, initial)
    with torch.no_grad():
        src.weight.fill_(1.0)
    ema.update(src)  # second: decay min(0.9, 2/11)
    d = 2 / 11
    assert torch.allclose(ema.module.weight, d * initial + (1 - d) * 1.0)
    for _ in range(200):
        ema.update(src)
    with torch.no_grad():
        src.weight.fill_(0.0)
    ema.update(src)  # warmed up: decay 0.9
    assert torch.allclose(ema.module.weight, torch.full((2, 2), 0.9), atol=1e-4)
    bn = torch.nn.BatchNorm1d(2)
    ema_bn = EMA(bn, decay=0.9)
    bn.running_mean.fill_(3.0)
    ema_bn.update(bn)
    assert torch.equal(ema_bn.module.running_mean, bn.running_mean), "buffers are copied, not averaged"
    with pytest.raises(ConfigError, match="ema_decay"):
        EMA(src, 1.5)


# ---- generation -----------------------------------------------------------------------------
def make_gan(ensemble: bool = False, **kw):
    opt = lambda params: torch.optim.Adam(params, lr=1e-3)  # noqa: E731
    d = DCGANDiscriminator(1, 16, 8, num_classes=3 if ensemble else 0)
    if ensemble:
        return GanMixture(lambda: DCGANGenerator(8, 1, 16, 8), d, GANLoss("bce"), opt, opt,
                          **{"share_layers": False, **kw})  # whole networks: members indexable
    return UnconditionalGan(DCGANGenerator(8, 1, 16, 8), d, GANLoss("bce"), opt, opt, **kw)


def test_fixed_latent_gives_the_same_image():
    gan = make_gan().eval()
    idx = torch.arange(6)
    z = gan.latents(idx, seed=3)
    assert torch.equal(z, gan.latents(idx, seed=3)) and not torch.equal(z, gan.latents(idx, seed=4))
    assert torch.equal(gan.latents(torch.tensor([4]), 3)[0], z[4]), "a latent does not depend on its batch"
    assert torch.equal(gan.sample_latents(z), gan.sample_latents(z))
    assert seeded_latents(idx, 3, 8).shape == (6, 8)


def test_mixture_samples_every_generator_in_configured_proportions():
    gan = make_gan(True, mixture_weights=[0.5, 0.3, 0.2], loss_weights={"adv": 1, "cls": 0.5}).eval()
    images, k = gan.sample(6000, generator=torch.Generator().manual_seed(0))
    assert images.shape == (6000, 1, 16, 16)
    freq = torch.bincount(k, minlength=3).float() / 6000
    assert torch.allclose(freq, torch.tensor([0.5, 0.3, 0.2]), atol=0.02)
    # a sample is exactly its own generator's image
    z = torch.randn(3, 8)
    with torch.no_grad():
        mixed = gan.run_members(gan.generator, z, torch.tensor([2, 0, 1]))
        assert torch.equal(mixed[0], gan.generator[2](z[:1])[0]) and torch.equal(mixed[1], gan.generator[0](z[1:2])[0])
    chosen = gan.choose(torch.arange(3000), seed=1)
    freq = torch.bincount(chosen, minlength=3).float() / 3000
    assert torch.allclose(freq, torch.tensor([0.5, 0.3, 0.2]), atol=0.03), "evaluation samples follow pi too"
    # members have their own initialisations
    assert not torch.equal(gan.generator[0].net[0].weight, gan.generator[1].net[0].weight)


def test_mixture_config_errors():
    with pytest.raises(ConfigError, match="mixture_weights"):
        make_gan(True, mixture_weights=[1, 0])
    with pytest.raises(ConfigError, match="loss_weights"):
        make_gan(True, loss_weights={"adv": 1, "style": 1})
    with pytest.raises(ConfigError, match="n_critic"):
        make_gan(n_critic=0)


def test_share_weights_give_the_pi_mixture_mean():
    gan = make_gan(True, mixture_weights=[0.6, 0.3, 0.1])
    k = torch.tensor([0, 1, 2, 0, 1, 2])
    w = gan._share_weights(k)
    per_sample = torch.tensor([1.0, 2.0, 3.0, 1.0, 2.0, 3.0])  # generator j's loss is j + 1
    assert (w * per_sample).sum().item() == pytest.approx(0.6 * 1 + 0.3 * 2 + 0.1 * 3)


def test_fid_of_the_training_set_against_itself_is_zero():
    from skimage import data

    faces = torch.from_numpy(data.lfw_subset()).float()[:, None]
    metric = FeatureDistances(RandomProxyExtractor(), "fid_proxy", "random_proxy-seed0", kid_subset_size=50)
    metric.update(faces, real=True)
    metric.update(faces, real=False)
    same = metric.compute()
    assert abs(same["fid_proxy"].item()) < 1e-3
    metric.reset_fake()
    metric.update(1 - faces, real=False)  # negatives are far
    far = metric.compute()
    assert far["fid_proxy"].item() > 1.0 and far["kid_proxy"] > same["kid_proxy"] + 1.0


def test_nearest_distance_detects_copies():
    ref = torch.rand(20, 1, 8, 8)
    assert nearest_distance(ref[:5], ref).abs().max() < 1e-3, "copies are at distance 0"
    loo = nearest_distance(ref, ref, exclude_self=True)
    brute = torch.stack([min(((ref[i] - ref[j]).pow(2).mean().sqrt() for j in range(20) if j != i)) for i in range(20)])
    assert torch.allclose(loo, brute, atol=1e-4)


def test_fixed_pairs_are_reproducible_and_distinct():
    a, b = fixed_pairs(5, 4, 8, seed=0), fixed_pairs(5, 4, 8, seed=0)
    assert a == b and len(set(a)) == 8 and all(0 <= c < 5 and 0 <= s < 4 for c, s in a)
    assert len(fixed_pairs(5, 4, None, seed=1)) == 20


def test_dcgan_networks_start_from_the_dcgan_initialisation():
    from torch.nn.utils import parametrize

    torch.manual_seed(0)
    g = DCGANGenerator(64, 1, 32, 32)
    d = DCGANDiscriminator(1, 32, 32, spectral_norm=True)
    convs = [m for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    weights = torch.cat([m.weight.flatten() for m in convs])
    assert weights.std().item() == pytest.approx(0.02, rel=0.05) and abs(weights.mean().item()) < 2e-3
    bn = torch.cat([m.weight for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d)])
    assert bn.mean().item() == pytest.approx(1.0, abs=0.01) and bn.std().item() == pytest.approx(0.02, rel=0.2)
    originals = [m.parametrizations.weight.original.flatten() for m in d.modules()
                 if isinstance(m, torch.nn.Conv2d) and parametrize.is_parametrized(m, "weight")]
    assert originals and torch.cat(originals).std().item() == pytest.approx(0.02, rel=0.05)
    default = DCGANGenerator(64, 1, 32, 32, init_std=None)
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) for m in default.modules()
               if isinstance(m, torch.nn.BatchNorm2d)), "null keeps PyTorch's (BatchNorm scales of 1)"


def test_alpha_and_preserve_color_controls():
    from fusionlab.models.stylizer import StyleTransferGenerator, coral

    torch.manual_seed(0)
    g = StyleTransferGenerator(3, width=8, n_down=1, n_res=1).eval()
    content, style = torch.rand(2, 3, 16, 16), torch.rand(1, 3, 20, 20) * 0.5
    with torch.no_grad():
        own = g(content, content)  # the content rendered with its own statistics
        assert torch.allclose(g.fuse_styles(content, [style], alpha=0.0), own, atol=1e-6)
        assert torch.allclose(g.fuse_styles(content, [style], alpha=1.0), g(content, style.expand(2, -1, -1, -1)),
                              atol=1e-6)
    matched = coral(torch.rand(2, 3, 24, 24) * 0.3 + 0.5, content)
    for i in range(2):
        m, c = matched[i].flatten(1), content[i].flatten(1)
        assert torch.allclose(m.mean(1), c.mean(1), atol=2e-3), "colour means of the content"
        assert torch.allclose(torch.cov(m), torch.cov(c), atol=2e-3), "colour covariance of the content"
    with pytest.raises(ValueError, match="alpha must be in"):
        g.fuse_styles(content, [style], alpha=1.5)
