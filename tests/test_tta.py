"""Test-time self-ensemble (tta=flip|x8): exact inverses, batched copies, fused by the operators."""

import pytest
import torch
from torch import nn

from fusionlab.approaches.single import SingleModel
from fusionlab.fusion.self_ensemble import TRANSFORMS, forward_transform, inverse_transform, self_ensemble
from fusionlab.metrics.cost import flops_per_image
from fusionlab.pipeline import evaluate, train
from fusionlab.utils.errors import ConfigError
from tests.helpers import compose_cfg, groups_of


def test_every_transform_inverts_exactly():
    x = torch.rand(2, 3, 5, 7)  # non-square: rotations swap H and W
    for rot, flip in TRANSFORMS["x8"]:
        y = forward_transform(x, rot, flip)
        assert y.shape[-2:] == ((7, 5) if rot % 2 else (5, 7))
        assert torch.equal(inverse_transform(y, rot, flip), x)
    assert len({forward_transform(x[:, :, :5, :5], r, f).flatten().tolist().__repr__()
                for r, f in TRANSFORMS["x8"]}) == 8, "8 distinct transforms"


def test_identity_model_returns_the_input_exactly():
    x = torch.rand(3, 1, 9, 12)
    for mode in ("flip", "x8"):
        for fusion in ("mean", "median"):
            out = self_ensemble(lambda t: {"main": t.clone()}, x, mode, fusion)["main"]
            assert torch.equal(out, x) if fusion == "median" else torch.allclose(out, x, atol=1e-7)


class Isotropic(nn.Module):
    """Equivariant to flips and 90-degree rotations by construction: a D4-symmetric 3x3 kernel."""

    def __init__(self) -> None:
        super().__init__()
        a, b, c = torch.randn(3)
        self.register_buffer("kernel", torch.tensor([[c, b, c], [b, a, b], [c, b, c]]).view(1, 1, 3, 3))

    def forward(self, x):
        return torch.tanh(nn.functional.conv2d(x, self.kernel, padding=1)) + x


def test_equivariant_model_matches_plain_evaluation_and_copies_run_batched():
    net, calls = Isotropic(), []

    def run(t):
        calls.append(t.shape)
        return {"main": net(t)}

    x = torch.rand(2, 1, 10, 13)
    fused = self_ensemble(run, x, "x8")["main"]
    assert torch.allclose(fused, net(x), atol=1e-6)
    assert calls == [(8, 1, 10, 13), (8, 1, 13, 10)], "x8 = two batched calls (H x W and W x H), not 8"


def test_tta_on_a_restoration_approach_and_its_cost():
    model = SingleModel(nn.Conv2d(1, 1, 3, padding=1), nn.L1Loss(), lambda params: None).eval()
    plain = flops_per_image(model, 1, 32)
    x = torch.rand(1, 1, 21, 17)
    base = model.restore(x)["main"]
    model.set_tta("x8", "median")
    assert flops_per_image(model, 1, 32) == 8 * plain, "FLOPs per image count the 8 copies"
    out = model.restore(x)["main"]
    assert out.shape == base.shape and not torch.equal(out, base)
    with pytest.raises(ConfigError, match="^tta: must be one of"):
        model.set_tta("x16")
    with pytest.raises(ConfigError, match="^tta_fusion: must be one of"):
        model.set_tta("x8", "gated")


@pytest.mark.parametrize("task", ["style", "generate"])
def test_tasks_where_a_flip_changes_the_meaning_refuse_tta(tmp_path, task):
    with pytest.raises(ConfigError, match="^tta: test-time flips and rotations change what"):
        train(compose_cfg(tmp_path, [f"task={task}", "logger=csv", "tta=x8"]))


def test_evaluate_with_x8_on_an_ensemble_checkpoint(tmp_path):
    """M members x 8 copies; eval.json records the setting, and the cost is 8x."""
    trained = train(compose_cfg(tmp_path / "run", ["logger=csv", "metrics.fid.extractor=none", "approach=ensemble",
                                                   "fusion=learned", "approach.members.m1.width=8",
                                                   "~approach.members.m2"]))
    from hydra.core.global_hydra import GlobalHydra

    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    results = {}
    for mode in ("none", "x8"):
        GlobalHydra.instance().clear()
        ecfg = compose_cfg(tmp_path / mode, [f"ckpt_path={ckpt}", "logger=csv", "metrics.fid.extractor=none",
                                             f"tta={mode}"], config_name="eval", hydra_node=True)
        results[mode] = evaluate(ecfg, [f"tta={mode}"], groups_of(ecfg))
    assert results["none"]["metrics"]["test/psnr"] == pytest.approx(trained["test/psnr"], abs=1e-4)
    assert results["x8"]["config"]["tta"] == "x8"
    assert results["x8"]["flops_per_image_256"] == pytest.approx(8 * results["none"]["flops_per_image_256"], rel=0.01)
    assert {"psnr_member0", "psnr_member1"} <= set(results["x8"]["per_image"][0]), "members under x8 too"
    assert results["x8"]["metrics"]["test/psnr"] != results["none"]["metrics"]["test/psnr"]
