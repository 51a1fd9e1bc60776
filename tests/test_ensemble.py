import copy
import json

import pytest
import torch

from fusionlab.approaches.ensemble import OutputEnsemble
from fusionlab.fusion import Gated, Mean, Median, Stacked
from fusionlab.models import DnCNN
from fusionlab.pipeline import train
from fusionlab.utils.errors import ConfigError, DataError
from tests.helpers import compose_cfg, fusion_operators, write_images

# its module fixtures are built once: all of its tests on one pytest-xdist worker
pytestmark = pytest.mark.xdist_group("test_ensemble")

STRATEGIES = list(fusion_operators())  # the registry (conf/fusion)


def make(members, fusion=Mean, **kw):
    opt = lambda params: torch.optim.Adam(params, 1e-3)  # noqa: E731
    return OutputEnsemble(members, fusion, torch.nn.L1Loss(), opt, **kw)


@pytest.mark.parametrize("fusion", [Mean, Median, Gated, Stacked])
def test_identical_members_equal_one_member(fusion):
    torch.manual_seed(0)
    one = DnCNN(1, depth=3, width=8, norm="none")
    ens = make([copy.deepcopy(one) for _ in range(3)], fusion).eval()
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        assert torch.allclose(ens(x), one(x), atol=1e-6)


def test_member_count_and_mode_are_validated():
    with pytest.raises(ConfigError, match="approach.members: an ensemble needs at least 2"):
        make([DnCNN(1, 3, 4)])
    with pytest.raises(ConfigError, match="approach.mode"):
        make([DnCNN(1, 3, 4), DnCNN(1, 3, 4)], mode="stacking")
    with pytest.raises(ConfigError, match="approach.member_checkpoints: two_stage needs one checkpoint per member"):
        make([DnCNN(1, 3, 4), DnCNN(1, 3, 4)], mode="two_stage")
    # the member files are needed where they are loaded (fit), not to rebuild a trained ensemble
    ens = make([DnCNN(1, 3, 4), DnCNN(1, 3, 4)], mode="two_stage", member_checkpoints=[__file__, "nope.ckpt"])
    with pytest.raises(DataError, match=r"nope.ckpt: member checkpoint does not exist \(config key approach.member_checkpoints\[1\]\)"):
        ens.load_members()
    with pytest.raises(ConfigError, match="approach.bagging"):
        make([DnCNN(1, 3, 4), DnCNN(1, 3, 4)], bagging=True, member_loss_weight=0.0)
    with pytest.raises(ConfigError, match="approach.members: members disagree on image channels"):
        make([DnCNN(1, 3, 4), DnCNN(3, 3, 4)])


def test_bagging_member_loss_differs_from_plain_mean():
    torch.manual_seed(0)
    ens = make([DnCNN(1, 3, 4), DnCNN(1, 3, 4)], member_loss_weight=1.0, bagging=True)
    outs, target = torch.rand(2, 8, 1, 6, 6), torch.rand(8, 1, 6, 6)
    plain = (outs - target).abs().mean()
    bagged = torch.stack([ens._member_loss(outs, target) for _ in range(5)])
    assert not torch.allclose(bagged, plain.expand(5))
    assert (bagged - plain).abs().max() < 0.2  # same scale: a reweighting, not another loss


@pytest.mark.parametrize("fusion", STRATEGIES)
def test_each_strategy_smoke_trains(tmp_path, fusion):
    overrides = ["approach=ensemble", f"fusion={fusion}", "logger=csv", "approach.members.m1.width=8",
                 "approach.members.m2.width=8"]
    if fusion == "weighted":
        overrides.append("fusion.weights=[0.5,0.3,0.2]")
    metrics = train(compose_cfg(tmp_path, overrides))
    for i in range(3):
        assert f"val/psnr_member{i}" in metrics and f"test/ssim_member{i}" in metrics
    best_member = max(metrics[f"val/psnr_member{i}"] for i in range(3))
    assert metrics["val/fusion_gain_db"] == pytest.approx(metrics["val/psnr"] - best_member, abs=1e-4)
    records = metrics["per_image"]  # two code paths (the synced epoch means, the per-image records) agree
    assert len(records) == len({r["image"] for r in records}) >= 2
    for key in ("psnr", "ssim", "psnr_member0", "psnr_input"):
        assert metrics[f"test/{key}"] == pytest.approx(sum(r[key] for r in records) / len(records), abs=1e-4), key
    if fusion not in ("mean", "median"):  # every other operator reports its weights per member
        weights = [metrics[f"val/fusion_weight/member{i}"] for i in range(3)]
        assert sum(weights) == pytest.approx(1.0, abs=1e-4)
    if fusion == "weighted":
        assert weights == pytest.approx([0.5, 0.3, 0.2], abs=1e-6)


@pytest.fixture(scope="module")
def member_checkpoints(tmp_path_factory):
    """Two single-model DnCNN runs (different seeds) on a tiny folder."""
    root = tmp_path_factory.mktemp("members")
    write_images(root / "imgs", 4, size=(40, 40))
    data = ["data=folder", f"data.train_dir={root / 'imgs'}", f"data.val_dir={root / 'imgs'}", "logger=csv"]
    paths = []
    for seed in (1, 2):
        train(compose_cfg(root / f"s{seed}", [*data, f"seed={seed}"]))
        paths.append(root / f"s{seed}" / "checkpoints" / "best.ckpt")
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    return root, data, paths


def ensemble_overrides(data, paths, fusion="learned"):
    return [*data, "approach=ensemble", f"fusion={fusion}", "approach.mode=two_stage", "~approach.members.m2",
            "model@approach.members.m1=dncnn",
            f"approach.member_checkpoints=[{paths[0]},{paths[1]}]"]


def test_two_stage_keeps_members_frozen(tmp_path, member_checkpoints):
    root, data, paths = member_checkpoints
    cfg = compose_cfg(tmp_path, ensemble_overrides(data, paths))
    metrics = train(cfg)
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    for i, path in enumerate(paths):
        single = torch.load(path, weights_only=False)["state_dict"]
        for key, value in single.items():
            if key.startswith("net."):
                member_key = f"bank.members.{i}.{key[4:]}"
                assert torch.equal(ckpt[member_key], value), f"{member_key} changed"
    assert not torch.equal(ckpt["fusion.logits"], torch.zeros(2)), "the fuser trained"
    assert metrics["val/psnr_member0"] != metrics["val/psnr_member1"]


def test_two_stage_rejects_mismatched_member(tmp_path, member_checkpoints):
    root, data, paths = member_checkpoints
    cfg = compose_cfg(tmp_path, [*ensemble_overrides(data, paths), "data.channels=3"])
    with pytest.raises(DataError, match=r"member was trained on 1-channel images, the ensemble uses 3 "
                                        r"\(config key approach.member_checkpoints\[0\]\)"):
        train(cfg)
    cfg = compose_cfg(tmp_path, [*ensemble_overrides(data, paths), "task=superres"])
    with pytest.raises(DataError, match=r"member was trained for GaussianNoise, this run's task is superres"):
        train(cfg)
    cfg = compose_cfg(tmp_path, [*ensemble_overrides(data, paths), "approach.members.m1.width=16"])
    with pytest.raises(DataError, match=r"weights do not fit member 1 \(DnCNN\)"):
        train(cfg)


def test_two_stage_with_parameter_free_fusion_evaluates(tmp_path, member_checkpoints):
    root, data, paths = member_checkpoints
    metrics = train(compose_cfg(tmp_path, ensemble_overrides(data, paths, fusion="mean")))
    assert json.loads((tmp_path / "metrics.json").read_text())["test/psnr"] == pytest.approx(metrics["test/psnr"])


def test_evaluate_reports_members_and_fused(tmp_path, member_checkpoints):
    from fusionlab.pipeline import evaluate
    from tests.helpers import groups_of

    root, data, paths = member_checkpoints
    train(compose_cfg(tmp_path / "run", ensemble_overrides(data, paths, fusion="gated")))
    ecfg = compose_cfg(tmp_path / "eval", [f"ckpt_path={tmp_path / 'run/checkpoints/best.ckpt'}", "logger=csv"],
                       config_name="eval", hydra_node=True)
    result = evaluate(ecfg, [], groups_of(ecfg))
    m = result["metrics"]
    assert {"test/psnr", "test/psnr_member0", "test/psnr_member1", "test/ssim_member1", "test/fusion_gain_db"} <= set(m)
    assert m["test/fusion_gain_db"] == pytest.approx(m["test/psnr"] - max(m["test/psnr_member0"], m["test/psnr_member1"]), abs=1e-4)
    row = result["per_image"][0]
    assert {"psnr", "psnr_member0", "psnr_member1", "ssim_member0", "psnr_input"} <= set(row)
    assert result["flops_per_image_256"] > 0
