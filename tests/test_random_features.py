"""The random multi-scale feature space (approach.features=random_multiscale) and the fixed
yardstick of style_distance_fixed."""

import pytest
import torch

from fusionlab.approaches.gan_style import GanStyleTransfer
from fusionlab.evaluation.style import StyleEvaluator
from fusionlab.losses import GANLoss
from fusionlab.models import PatchDiscriminator, StyleTransferGenerator
from fusionlab.models.random_features import RandomMultiscaleFeatures
from fusionlab.utils.errors import ConfigError


def test_banks_are_fixed_by_the_seed_zero_mean_and_ordered_coarse_to_fine():
    a, b, c = RandomMultiscaleFeatures(3, seed=1), RandomMultiscaleFeatures(3, seed=1), RandomMultiscaleFeatures(3, seed=2)
    x = torch.rand(2, 3, 32, 32)
    fa, fb, fc = a(x), b(x), c(x)
    assert all(torch.equal(p, q) for p, q in zip(fa, fb)) and not torch.equal(fa[0], fc[0])
    assert a.kernel_sizes == [15, 9, 5, 3] and [f.shape for f in fa] == [(2, 64, 32, 32)] * 4
    for k in a.kernel_sizes:
        w = getattr(a, f"bank{k}")
        assert torch.allclose(w.mean(dim=(1, 2, 3)), torch.zeros(64), atol=1e-6)
        assert torch.allclose(w.flatten(1).norm(dim=1), torch.ones(64), atol=1e-5)
    flat = a(torch.full((1, 3, 40, 40), 0.8))  # no response to flat colour (away from the zero padding)
    assert all(float(f[..., 8:-8, 8:-8].abs().max()) < 1e-5 for f in flat)
    assert not list(a.parameters()) and not a.state_dict(), "nothing trained, nothing saved"
    gray = RandomMultiscaleFeatures(3)(torch.rand(1, 1, 16, 16))
    assert gray[0].shape == (1, 64, 16, 16)
    with pytest.raises(ValueError, match="odd"):
        RandomMultiscaleFeatures(3, kernel_sizes=(4,))


def gan_style(**kw):
    return GanStyleTransfer(StyleTransferGenerator(3, width=8), PatchDiscriminator(3, width=8), GANLoss("hinge"),
                            torch.optim.Adam, torch.optim.Adam, **kw)


def test_style_gan_uses_the_random_space_and_refuses_bad_settings():
    model = gan_style(features="random_multiscale", random_features={"kernel_sizes": [3, 7], "width": 16, "seed": 5})
    feats = model.feature_maps(torch.rand(1, 3, 32, 32))
    assert [f.shape[1] for f in feats] == [16, 16]
    assert not any("random" in k or "bank" in k for k in model.state_dict())
    with pytest.raises(ConfigError, match="^approach.random_features: unknown keys"):
        gan_style(features="random_multiscale", random_features={"depth": 3})
    with pytest.raises(ConfigError, match="^approach.random_features: kernel_sizes must be odd"):
        gan_style(features="random_multiscale", random_features={"kernel_sizes": [2]})


def test_fixed_style_distance_is_zero_for_the_style_itself_and_the_content_level_is_reported():
    ev = StyleEvaluator()
    model = gan_style(features="random_multiscale")
    g = torch.Generator().manual_seed(0)
    content, style = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g) * 0.5
    ev.update("test", {"content": content, "style": style, "name": ["a", "b"]}, {"main": style.clone()}, model)
    rec = ev.records
    assert all(r["style_distance_fixed"] == pytest.approx(0.0, abs=1e-9) for r in rec)
    assert all(r["style_distance_content"] > 0.01 for r in rec)
