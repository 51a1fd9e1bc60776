import pytest
import torch

from fusionlab.fusion import Attention, Gated, Learned, Mean, Median, Stacked, Weighted
from fusionlab.fusion.members import MemberBank
from fusionlab.fusion.operators import build_fusion
from fusionlab.models import EDSR, DnCNN, UNet
from fusionlab.utils.errors import ConfigError
from tests.helpers import fusion_operators

K, B, C, H, W = 3, 2, 4, 8, 6
ALL = list(fusion_operators().values())  # every operator of the registry (conf/fusion)


def stack(seed=0, k=K, c=C):
    return torch.randn(k, B, c, H, W, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("op", ALL)
@pytest.mark.parametrize("level,ctx", [("image", 1), ("feature", 0)])
def test_shapes_and_start_as_mean(op, level, ctx):
    fuse = op(num_inputs=K, channels=C, context_channels=ctx, level=level)
    x = stack()
    context = torch.randn(B, ctx, H, W) if ctx else None
    out = fuse(x, context)
    assert out.shape == (B, C, H, W)
    if op is not Median:  # every weighting/residual operator is initialised to the plain mean
        assert torch.allclose(out, x.mean(0), atol=1e-6)


def test_mean_median_weighted_known_values():
    x = torch.tensor([1.0, 5.0, 2.0, 10.0]).view(4, 1, 1, 1, 1)
    assert Mean(4, 1)(x).item() == pytest.approx(4.5)
    assert Median(4, 1)(x).item() == pytest.approx(3.5)  # even K: mean of the middle two
    assert Median(3, 1)(x[:3]).item() == pytest.approx(2.0)
    w = Weighted(4, 1, weights=[1, 0, 3, 0])  # normalised to [0.25, 0, 0.75, 0]
    assert w(x).item() == pytest.approx(0.25 * 1 + 0.75 * 2)
    fused, weights = w.fuse(x)  # the weights come back with the fused tensor, not on an attribute
    assert fused.item() == pytest.approx(0.25 * 1 + 0.75 * 2)
    assert torch.allclose(weights, torch.tensor([0.25, 0.0, 0.75, 0.0]))
    assert not hasattr(w, "last_weights") and Mean(4, 1).fuse(x)[1] is None


@pytest.mark.parametrize("weights,msg", [([1, 2], "needs 3 weights"), ([1, -1, 1], "non-negative"),
                                         ([0, 0, 0], "must not all be zero")])
def test_weighted_validation(weights, msg):
    with pytest.raises(ConfigError, match=f"fusion.weights: .*{msg}"):
        Weighted(3, 1, weights=weights)


def test_fewer_than_two_inputs_rejected():
    with pytest.raises(ConfigError, match="at least 2"):
        Mean(1, 3)


def perturb(module):
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.5)


def test_learned_gated_attention_weights_sum_to_one():
    x = stack(1)
    ctx = torch.randn(B, 1, H, W)
    learned = Learned(K, C)
    perturb(learned)
    assert learned.weights().sum().item() == pytest.approx(1.0)
    gated = Gated(K, C, context_channels=1)
    perturb(gated)
    g = gated.gate(x, ctx)
    assert g.shape == (K, B, 1, H, W) and (g >= 0).all()
    assert torch.allclose(g.sum(0), torch.ones(B, 1, H, W), atol=1e-6)
    assert g.std(dim=(1, 3, 4)).max() > 1e-3, "weights vary per pixel"
    att = Attention(K, C)
    perturb(att)
    a = att.attention(x)
    assert a.shape == (K, B, C, 1, 1)
    assert torch.allclose(a.sum(0), torch.ones(B, C, 1, 1), atol=1e-6)
    assert torch.allclose(gated(x, ctx), (g * x).sum(0), atol=1e-6)


@pytest.mark.parametrize("op", ALL)
def test_gradients_reach_every_input(op):
    fuse = op(K, C, level="feature")
    perturb(fuse)
    x = stack(2).requires_grad_(True)
    fuse(x).square().sum().backward()
    per_input = x.grad.abs().flatten(1).sum(1)
    assert (per_input > 0).all(), per_input


def test_stacked_feature_level_is_concat_plus_1x1_conv():
    s = Stacked(K, C, level="feature")
    convs = [m for m in s.net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 1 and convs[0].kernel_size == (1, 1) and convs[0].in_channels == K * C
    assert len([m for m in Stacked(K, C, level="image", depth=2).net.modules() if isinstance(m, torch.nn.Conv2d)]) == 3


def test_build_fusion_rejects_missing_operator_and_unknown_level():
    with pytest.raises(ConfigError, match="no fusion operator"):
        build_fusion(None, 3, 1, 1, "image")
    with pytest.raises(ConfigError, match="level must be image or feature"):
        build_fusion(Mean, 3, 8, 0, "pixel")


# ---- members ------------------------------------------------------------------------------
def test_batched_members_equal_loop():
    torch.manual_seed(0)
    members = [DnCNN(1, depth=4, width=8) for _ in range(4)]
    bank = MemberBank(members, batched=True)
    assert bank.homogeneous and not MemberBank(members).use_batched(torch.device("cpu"))
    x = torch.rand(2, 1, 20, 24)
    bank.train()  # collect BatchNorm running statistics, so eval mode uses non-trivial buffers
    for _ in range(3):
        bank(torch.rand(4, 1, 20, 24))
    bank.eval()
    with torch.no_grad():
        assert bank.use_batched()
        batched = bank(x)
        loop = bank.forward_loop(x)
    assert batched.shape == (4, 2, 1, 20, 24)
    assert torch.allclose(batched, loop, atol=1e-5)
    # after more training the stacked weights are refreshed
    bank.train()
    with torch.no_grad():
        for p in bank.parameters():
            p.add_(0.1)
    bank.eval()
    with torch.no_grad():
        assert torch.allclose(bank(x), bank.forward_loop(x), atol=1e-5)


def test_heterogeneous_members_use_loop_and_stride_lcm():
    bank = MemberBank([DnCNN(1, 3, 4), UNet(1, depth=2, width=4), EDSR(1, 1, 4)])
    assert not bank.homogeneous and bank.stride == 4
    bank.eval()
    with torch.no_grad():
        assert not bank.use_batched()
        assert bank(torch.rand(1, 1, 8, 8)).shape == (3, 1, 1, 8, 8)


def test_unknown_operator_fails_at_compose(tmp_path):
    from hydra.errors import ConfigCompositionException

    from tests.helpers import compose_cfg

    with pytest.raises(ConfigCompositionException, match="fusion"):
        compose_cfg(tmp_path, ["approach=feature_fusion", "fusion=no_such_operator"])


def test_the_registry_holds_every_operator_of_the_library():
    import fusionlab.fusion as fusion

    exported = {getattr(fusion, n) for n in fusion.__all__ if isinstance(getattr(fusion, n), type)
                and issubclass(getattr(fusion, n), fusion.FusionOperator) and getattr(fusion, n) is not fusion.FusionOperator}
    assert exported == set(ALL) and {Mean, Median, Weighted, Learned, Gated, Stacked, Attention} <= exported
