import pytest
import torch

from fusionlab.approaches.feature_fusion import FeatureFusionRestorer
from fusionlab.fusion import Attention, Gated, Learned, Stacked, Weighted
from fusionlab.metrics.cost import flops_per_image
from fusionlab.models.encoders import DilatedEncoder, MultiScaleEncoder, PlainEncoder, ResidualEncoder
from fusionlab.models import DnCNN
from fusionlab.pipeline import train
from fusionlab.utils.errors import ConfigError
from tests.helpers import compose_cfg

OPERATORS = ["weighted", "learned", "stacked", "attention", "gated"]


def branches(width=8, widths=None, n_stages=2):
    widths = widths or [width] * 4
    return [PlainEncoder(1, widths[0], n_stages), DilatedEncoder(1, widths[1], n_stages),
            MultiScaleEncoder(1, widths[2], n_stages), ResidualEncoder(1, widths[3], n_stages)]


def make(fusion=Attention, width=8, **kw):
    opt = lambda params: torch.optim.Adam(params, 1e-3)  # noqa: E731
    return FeatureFusionRestorer(kw.pop("branches", None) or branches(width), fusion, torch.nn.MSELoss(), opt,
                                   channels=1, width=width, **kw)


@pytest.mark.parametrize("encoder", [PlainEncoder, DilatedEncoder, MultiScaleEncoder, ResidualEncoder])
def test_encoders_keep_size_and_width(encoder):
    enc = encoder(3, 8, 3)
    assert enc(torch.rand(2, 3, 16, 12)).shape == (2, 8, 16, 12) and len(enc.stages) == 3


@pytest.mark.parametrize("fusion", [Weighted, Learned, Stacked, Attention, Gated])
def test_gradients_reach_every_branch(fusion):
    torch.manual_seed(0)
    model = make(fusion)
    with torch.no_grad():  # move the zero-initialised fusion parameters off their start
        for p in model.fusions.parameters():
            p.add_(0.3 * torch.randn_like(p))
    out = model(torch.rand(2, 1, 16, 16))
    assert out.shape == (2, 1, 16, 16)
    (out - 0.5).square().mean().backward()
    for i, b in enumerate(model.branches):
        grads = [p.grad for p in b.parameters()]
        assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0, f"branch {i}"
    assert all(p.grad is not None for p in model.fusions.parameters())


def test_mismatched_widths_are_projected_and_multi_depth_checked():
    model = make(Learned, width=8, branches=branches(widths=[8, 16, 8, 4]))
    assert [type(p).__name__ for p in model.project] == ["Identity", "Conv2d", "Identity", "Conv2d"]
    assert model(torch.rand(1, 1, 8, 8)).shape == (1, 1, 8, 8)
    with pytest.raises(ConfigError, match="approach.fuse_at: fusing before the last stage"):
        make(Learned, width=8, branches=branches(widths=[8, 16, 8, 4]), fuse_at=[0, -1])


def test_fuse_at_several_depths():
    model = make(Learned, fuse_at=[0])
    assert model.fuse_points == [0, 1] and len(model.fusions) == 2  # the last stage is always fused
    assert model(torch.rand(1, 1, 8, 8)).shape == (1, 1, 8, 8)
    with pytest.raises(ConfigError, match=r"approach.fuse_at: stage indices must lie in \[-2, 1\]"):
        make(Learned, fuse_at=[5])


def test_bad_branch_configs():
    with pytest.raises(ConfigError, match="approach.branches: feature fusion needs at least 2"):
        make(branches=[PlainEncoder(1, 8, 2)])
    with pytest.raises(ConfigError, match="same n_stages"):
        make(branches=[PlainEncoder(1, 8, 2), PlainEncoder(1, 8, 3)])
    with pytest.raises(ConfigError, match="fusion.weights: needs 4 weights"):
        make(lambda **kw: Weighted(**kw, weights=[1, 1]))


def test_flops_are_deterministic_and_grow_with_width():
    a, b = flops_per_image(make(width=8), 1, 64), flops_per_image(make(width=8), 1, 64)
    assert a == b and a > 0
    assert flops_per_image(make(width=16), 1, 64) > 2 * a
    net = DnCNN(1, depth=3, width=4, norm="none")  # 3 convs: 1->4, 4->4, 4->1, each 2*9*cin*cout*H*W
    assert flops_per_image(net, 1, 10) == 2 * 9 * (4 + 16 + 4) * 100


@pytest.mark.parametrize("fusion", OPERATORS)
def test_each_operator_smoke_trains(tmp_path, fusion):
    overrides = ["approach=feature_fusion", f"fusion={fusion}", "logger=csv", "approach.width=8",
                 *[f"approach.branches.{b}.width=8" for b in ("plain", "dilated", "multiscale", "residual")]]
    if fusion == "weighted":
        overrides.append("fusion.weights=[1,2,3,4]")
    metrics = train(compose_cfg(tmp_path, overrides))
    assert metrics["flops_per_image_256"] > 0 and metrics["params"] > 0
    weights = [metrics[f"val/fusion_weight/branch{i}"] for i in range(4)]
    assert sum(weights) == pytest.approx(1.0, abs=1e-4)
    if fusion == "weighted":
        assert weights == pytest.approx([0.1, 0.2, 0.3, 0.4], abs=1e-6)
