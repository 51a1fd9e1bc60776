"""Weight-space fusion: model soups (uniform, greedy, weighted) and training-time EMA/SWA."""

import json

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from torch import nn

from fusionlab.approaches.soup import ModelSoup, average_states
from fusionlab.pipeline import evaluate, train
from fusionlab.utils.errors import ConfigError, DataError
from tests.helpers import compose_cfg, groups_of

# its module fixtures are built once: all of its tests on one pytest-xdist worker
pytestmark = pytest.mark.xdist_group("test_weight_fusion")

BASE = ["logger=csv", "metrics.fid.extractor=none", "model.depth=4", "model.width=8"]


def test_uniform_soup_of_identical_members_is_the_member():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
    state = net.state_dict()
    soup = average_states([state, state, state])
    assert all(torch.equal(soup[k], v) for k, v in state.items())


def test_soup_of_two_linear_models_is_the_linear_model_with_averaged_weights():
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    soup = nn.Linear(3, 2)
    soup.load_state_dict(average_states([a.state_dict(), b.state_dict()]))
    x = torch.randn(5, 3)
    expected = x @ ((a.weight + b.weight) / 2).t() + (a.bias + b.bias) / 2
    assert torch.allclose(soup(x), expected, atol=1e-6)
    w = average_states([a.state_dict(), b.state_dict()], [3, 1])["weight"]
    assert torch.allclose(w, 0.75 * a.weight + 0.25 * b.weight, atol=1e-6)


def test_bad_soups_fail_at_start_naming_the_key(tmp_path):
    net = nn.Conv2d(1, 1, 3)
    with pytest.raises(ConfigError, match="^approach.member_checkpoints: a soup needs at least 2"):
        ModelSoup(net, ["a.ckpt"])
    with pytest.raises(ConfigError, match="^approach.recipe"):
        ModelSoup(net, ["a.ckpt", "b.ckpt"], recipe="best")
    with pytest.raises(ConfigError, match="^approach.weights"):
        ModelSoup(net, ["a.ckpt", "b.ckpt"], recipe="weighted", weights=[1.0])
    from omegaconf.errors import MissingMandatoryValue

    with pytest.raises(MissingMandatoryValue, match="member_checkpoints"):  # ???: named before any work
        train(compose_cfg(tmp_path, [*BASE, "approach=soup"]))


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """A base DnCNN, two members fine-tuned from it (other seeds), one trained from scratch."""
    root = tmp_path_factory.mktemp("soup")
    train(compose_cfg(root / "base", [*BASE, "test=false"]))
    base = root / "base" / "checkpoints" / "best.ckpt"
    paths = []
    for seed in (1, 2):
        GlobalHydra.instance().clear()
        train(compose_cfg(root / f"m{seed}", [*BASE, "test=false", f"seed={seed}", f"member_init={base}"]))
        paths.append(root / f"m{seed}" / "checkpoints" / "best.ckpt")
    GlobalHydra.instance().clear()
    train(compose_cfg(root / "scratch", [*BASE, "test=false", "seed=99"]))
    GlobalHydra.instance().clear()
    return root, paths, root / "scratch" / "checkpoints" / "best.ckpt"


def test_member_init_starts_from_the_given_weights(members, tmp_path):
    root, _, _ = members
    state = torch.load(root / "base" / "checkpoints" / "best.ckpt", weights_only=False)["state_dict"]
    cfg = compose_cfg(tmp_path, [*BASE, f"member_init={root / 'base' / 'checkpoints' / 'best.ckpt'}"])
    from fusionlab.pipeline import build

    _, model = build(cfg)
    fresh = {k: v.clone() for k, v in model.net.state_dict().items()}
    model.setup("fit")
    loaded = model.net.state_dict()
    assert all(torch.equal(loaded[k], state[f"net.{k}"]) for k in loaded), "the base model's weights"
    assert not all(torch.equal(loaded[k], fresh[k]) for k in loaded if loaded[k].is_floating_point())


@pytest.mark.parametrize("recipe", ["uniform", "greedy", "weighted"])
def test_soup_trains_saves_a_single_model_checkpoint_and_evaluates(members, tmp_path, recipe):
    _, paths, _ = members
    extra = ["approach.weights=[3,1]"] if recipe == "weighted" else []
    metrics = train(compose_cfg(tmp_path / "soup", [*BASE, "approach=soup", f"approach.recipe={recipe}",
                                                    f"approach.member_checkpoints=[{paths[0]},{paths[1]}]",
                                                    "approach.bn_batches=2", *extra]))
    ckpt = torch.load(tmp_path / "soup" / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    assert any(k.startswith("net.") for k in ckpt["state_dict"]), "a normal single-model checkpoint"
    GlobalHydra.instance().clear()
    ecfg = compose_cfg(tmp_path / "eval", [f"ckpt_path={tmp_path / 'soup' / 'checkpoints' / 'best.ckpt'}",
                                           "logger=csv", "metrics.fid.extractor=none"],
                       config_name="eval", hydra_node=True)
    result = evaluate(ecfg, [], groups_of(ecfg))
    assert result["metrics"]["test/psnr"] == pytest.approx(metrics["test/psnr"], abs=1e-4)
    assert result["flops_per_image_256"] > 0


def test_greedy_soup_never_lowers_validation_psnr(members):
    """On the fixture's validation images: the greedy soup is at least as good as its best member."""
    from fusionlab.pipeline import build

    _, paths, scratch = members
    cfg = compose_cfg(members[0] / "g", [*BASE, "approach=soup", "approach.recipe=greedy",
                                         f"approach.member_checkpoints=[{paths[0]},{scratch},{paths[1]}]"])
    datamodule, soup = build(cfg)
    datamodule.setup("fit")
    report = soup.build_soup(datamodule.val_dataloader())
    assert report["soup_val_psnr"] >= max(report["member_val_psnr"]) - 1e-6
    best = max(range(3), key=lambda i: report["member_val_psnr"][i])
    assert report["weights"][best] > 0, f"greedy starts from the best member: {report}"
    # (Not asserted: that the member trained from scratch is left out. With these few-step members
    # it is not -- it was added, raising val PSNR from 19.20 to 19.86 dB -- the regime issue #28 is about.)


def test_members_of_another_architecture_or_init_are_named(members, tmp_path):
    from fusionlab.pipeline import build

    _, paths, scratch = members
    cfg = compose_cfg(tmp_path, [*BASE, "approach=soup", "model.width=16",
                                 f"approach.member_checkpoints=[{paths[0]},{paths[1]}]"])
    datamodule, soup = build(cfg)
    with pytest.raises(DataError, match=r"not of this architecture \(DnCNN\).*approach.member_checkpoints\[0\]"):
        soup.load_member_states()


def test_members_without_a_shared_init_are_warned_about(tmp_path):
    """Two identity networks whose hidden channels are permuted: each is perfect, their average is
    not (1.5625 x the input): the soup falls far below its members, and says why."""
    def net():
        return nn.Sequential(nn.Conv2d(1, 4, 1, bias=False), nn.ReLU(), nn.Conv2d(4, 1, 1, bias=False))

    a, b = net(), net()
    up, down = torch.tensor([1.0, -1.0, 4.0, -4.0]), torch.tensor([0.5, -0.5, 0.125, -0.125])
    order = [2, 3, 0, 1]
    with torch.no_grad():
        a[0].weight.copy_(up.view(4, 1, 1, 1)), a[2].weight.copy_(down.view(1, 4, 1, 1))
        b[0].weight.copy_(up[order].view(4, 1, 1, 1)), b[2].weight.copy_(down[order].view(1, 4, 1, 1))
    paths = []
    for name, m in (("a", a), ("b", b)):
        paths.append(tmp_path / f"{name}.ckpt")
        torch.save({"state_dict": {f"net.{k}": v for k, v in m.state_dict().items()}}, paths[-1])
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 16, 16, generator=g)
    loader = [{"source": x, "target": (x + 0.01 * torch.randn(x.shape, generator=g)).clamp(0, 1)}]
    soup = ModelSoup(net(), [str(p) for p in paths])
    with pytest.warns(UserWarning, match="do not share an initialisation"):
        report = soup.build_soup(loader)
    assert min(report["member_val_psnr"]) > 35 and report["soup_val_psnr"] < 20


@pytest.mark.parametrize("averaging", ["ema", "swa"])
def test_training_time_weight_averaging_changes_the_saved_weights(tmp_path, averaging):
    train(compose_cfg(tmp_path / "plain", [*BASE, "trainer.max_epochs=2", "trainer.deterministic=true"]))
    GlobalHydra.instance().clear()
    train(compose_cfg(tmp_path / averaging, [*BASE, "trainer.max_epochs=2", "trainer.deterministic=true",
                                             f"weight_averaging={averaging}"]))
    plain = torch.load(tmp_path / "plain" / "checkpoints" / "last.ckpt", weights_only=False)
    averaged = torch.load(tmp_path / averaging / "checkpoints" / "last.ckpt", weights_only=False)
    key = next(k for k in plain["state_dict"] if k.startswith("net.") and k.endswith("weight"))
    assert not torch.equal(plain["state_dict"][key], averaged["state_dict"][key]), "the averaged weights are saved"
    if averaging == "ema":
        assert torch.equal(averaged["current_model_state"][key], plain["state_dict"][key]), \
            "the raw weights are the plain run's, kept beside the average"
    else:  # last.ckpt holds Lightning's SWA average (parameters; BatchNorm statistics recomputed)
        swa = next(v for k, v in averaged["callbacks"].items() if "StochasticWeightAveraging" in k)
        assert torch.equal(swa["average_model_state"][key], averaged["state_dict"][key])
    # the test phase of train.py measured the averaged weights: evaluate.py on the reported best
    # checkpoint (which holds the average) gives the same test PSNR
    metrics = json.loads((tmp_path / averaging / "metrics.json").read_text())
    GlobalHydra.instance().clear()
    ecfg = compose_cfg(tmp_path / "eval", [f"ckpt_path={metrics['best_checkpoint']}", "logger=csv",
                                           "metrics.fid.extractor=none"], config_name="eval", hydra_node=True)
    result = evaluate(ecfg, [], groups_of(ecfg))
    assert result["metrics"]["test/psnr"] == pytest.approx(metrics["test/psnr"], abs=1e-4)


def test_warmed_up_ema_forgets_the_initial_weights_and_buffers():
    """Lightning's fixed-decay EMA keeps decay**n of the initialisation (BatchNorm's running variance
    of 1 included); the warmed-up one does not, and copies integer buffers."""
    from torch.optim.swa_utils import AveragedModel

    from fusionlab.approaches.adversarial import warmup_ema_multi_avg_fn
    from fusionlab.callbacks.averaging import WarmupEMAWeightAveraging

    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
    ema = AveragedModel(net, multi_avg_fn=warmup_ema_multi_avg_fn(0.99), use_buffers=True)
    with torch.no_grad():
        for _ in range(300):
            net[1].running_var.fill_(0.01)
            net[1].num_batches_tracked += 1
            ema.update_parameters(net)
    assert torch.allclose(ema.module[1].running_var, torch.full((4,), 0.01), rtol=0.01)  # fixed decay: ~0.06
    assert int(ema.module[1].num_batches_tracked) == 300
    cb = WarmupEMAWeightAveraging(decay=0.99)
    assert "multi_avg_fn" in cb._kwargs and "avg_fn" not in cb._kwargs
    with pytest.raises(ConfigError, match="^callbacks.weight_averaging.decay"):
        WarmupEMAWeightAveraging(decay=1.0)
