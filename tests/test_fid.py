"""FID/KID: the Inception port, the input contract, the cache, the skip path, the proxy."""


import pytest
import torch

from fusionlab.metrics.fid import FeatureDistances, RandomProxyExtractor, build_extractor, tensor_digest
from fusionlab.metrics.inception import FIDInceptionV3, resize_bilinear_tf1, to_inception_input
from fusionlab.pipeline import train
import sys

from tests.helpers import ROOT, compose_cfg

# its module fixtures are built once: all of its tests on one pytest-xdist worker
pytestmark = pytest.mark.xdist_group("test_fid")


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A weights file in the standard format: the FID Inception state dict (no BatchNorm
    ``num_batches_tracked`` entries, as in the published file), random values."""
    torch.manual_seed(0)
    state = {k: v for k, v in FIDInceptionV3().state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path_factory.mktemp("weights") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(state, path)
    return path


def images(n, seed=0, size=40, noise=0.0):
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.avg_pool2d(torch.rand(n, 3, size, size, generator=g), 5, 1, 2)
    return (base + noise * torch.randn(base.shape, generator=g)).clamp(0, 1)


def test_port_loads_standard_file_strictly(weights_file, tmp_path):
    model = FIDInceptionV3.from_file(weights_file)
    state = torch.load(weights_file, weights_only=True)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    extra = dict(state, **{"AuxLogits.fc.weight": torch.zeros(1)})
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(RuntimeError, match="Unexpected key"):
        FIDInceptionV3.from_file(tmp_path / "extra.pth")
    missing = {k: v for k, v in state.items() if not k.startswith("Mixed_7c")}
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(RuntimeError, match="Missing key"):
        FIDInceptionV3.from_file(tmp_path / "missing.pth")
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    model.train()
    assert not model.training, "train() keeps it in eval mode"


def test_input_contract():
    x = torch.zeros(2, 1, 10, 12)
    x[:, :, :, 6:] = 1.0
    y = to_inception_input(x)
    assert y.shape == (2, 3, 299, 299)
    assert y.min() == pytest.approx(-1.0) and y.max() == pytest.approx(127 / 128)
    assert torch.equal(y[:, 0], y[:, 1])  # gray repeated to RGB
    # 8-bit quantisation: values that round to the same byte give the same input
    a, b = torch.full((1, 3, 4, 4), 0.5), torch.full((1, 3, 4, 4), 0.5 + 0.4 / 255)
    assert torch.equal(to_inception_input(a), to_inception_input(b))
    # TensorFlow 1 bilinear: source = dest * in / out, no half-pixel offset, edge clamped
    ramp = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 1, 4, 4)
    assert resize_bilinear_tf1(ramp, 8)[0, 0, 0].tolist() == [0, 0.5, 1, 1.5, 2, 2.5, 3, 3]


FIDELITY = ROOT / ".cache" / "torch-fidelity" / "torch_fidelity"  # `make install` puts it there


def import_fidelity_extractor():
    """torch-fidelity's Inception module without running its package ``__init__`` (which imports
    torchvision). It is installed outside site-packages (``pip install --no-deps --target``): found
    by torchmetrics, it would import that ``__init__`` and break ``torchmetrics.image``."""
    import importlib
    import importlib.machinery
    import importlib.util

    spec = importlib.machinery.ModuleSpec("torch_fidelity", None, is_package=True)
    spec.submodule_search_locations = [str(FIDELITY)]
    package = importlib.util.module_from_spec(spec)
    saved = {k: v for k, v in sys.modules.items() if k == "torch_fidelity" or k.startswith("torch_fidelity.")}
    sys.modules["torch_fidelity"] = package
    try:
        return importlib.import_module("torch_fidelity.feature_extractor_inceptionv3")
    finally:
        for key in [k for k in sys.modules if k == "torch_fidelity" or k.startswith("torch_fidelity.")]:
            del sys.modules[key]
        sys.modules.update(saved)


@pytest.mark.skipif(not FIDELITY.is_dir(), reason="torch-fidelity source not installed (`make install` puts "
                    "torch-fidelity==0.4.0 under .cache/torch-fidelity)")
def test_port_matches_torch_fidelity(tmp_path, monkeypatch):
    """The port against the reference implementation: weights drawn at random in torch-fidelity's own
    parameter layout, loaded strictly by both, the same uint8-quantised images of odd sizes."""
    fidelity = import_fidelity_extractor()
    cls = fidelity.FeatureExtractorInceptionV3
    with monkeypatch.context() as m:  # build its network without any weights file to read its layout
        m.setattr(cls, "load_state_dict", lambda self, state, strict=True: None)
        m.setattr(torch, "load", lambda *args, **kwargs: {})
        layout = cls("inception-v3-compat", ["2048"], feature_extractor_weights_path="unused").state_dict()
    g = torch.Generator().manual_seed(0)
    state = {}
    for key, value in layout.items():
        if key.endswith("num_batches_tracked"):
            continue
        if key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(value.shape, generator=g)
        elif key.endswith(("running_mean", "bias")):
            state[key] = 0.1 * torch.randn(value.shape, generator=g)
        elif key.endswith("bn.weight"):
            state[key] = 1.0 + 0.1 * torch.randn(value.shape, generator=g)
        else:  # conv / fc weights, scaled to keep activations in range through 90+ layers
            fan_in = value[0].numel()
            state[key] = torch.randn(value.shape, generator=g) * (2.0 / fan_in) ** 0.5
    path = tmp_path / "fidelity_layout.pth"
    torch.save(state, path)
    reference = cls("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))
    ours = FIDInceptionV3.from_file(path)  # strict: the same keys and shapes
    for size in ((37, 53), (64, 64), (301, 299)):
        x = (torch.rand(2, 3, *size, generator=g) * 255).round().to(torch.uint8)
        theirs = reference(x)[0].double()
        mine = ours(x.float() / 255.0).double()
        scale = theirs.abs().max().item()
        assert scale > 0 and (mine - theirs).abs().max().item() <= 1e-6 * max(1.0, scale), size


def test_fid_self_zero_and_growing_with_noise(weights_file):
    for extractor in (RandomProxyExtractor(), FIDInceptionV3.from_file(weights_file)):
        d = FeatureDistances(extractor, "fid", "x", kid_subset_size=6)
        real = images(12, seed=1, size=48)
        d.update(real, real=True)
        d.update(real, real=False)
        assert abs(d.compute()["fid"].item()) < 1e-3
        values = []
        for noise in (0.05, 0.2, 0.5):
            d.reset_fake()
            d.update(images(12, seed=1, size=48, noise=noise), real=False)
            values.append(d.compute()["fid"].item())
        assert values[0] < values[1] < values[2], values


def test_reference_cache_is_hit(tmp_path):
    real = images(6, seed=2)
    key = tensor_digest(list(real), [f"{i}.png" for i in range(6)])
    first = FeatureDistances(RandomProxyExtractor(), "fid_proxy", "proxy", 4, cache_dir=str(tmp_path))
    assert not first.load_real(key)
    first.update(real, real=True)
    first.save_real(key)
    first.update(images(6, seed=3), real=False)
    second = FeatureDistances(RandomProxyExtractor(), "fid_proxy", "proxy", 4, cache_dir=str(tmp_path))
    assert second.load_real(key), "cache hit"
    second.update(images(6, seed=3), real=False)
    assert second.compute()["fid_proxy"].item() == pytest.approx(first.compute()["fid_proxy"].item(), rel=1e-6)
    other = FeatureDistances(RandomProxyExtractor(), "fid_proxy", "other-weights", 4, cache_dir=str(tmp_path))
    assert not other.load_real(key), "another extractor identity misses the cache"


def test_skip_without_weights_warns_and_logs_no_fid(tmp_path):
    missing = tmp_path / "nowhere.pth"
    extractor, reason, _ = build_extractor("inception", str(missing))
    assert extractor is None and "FID/KID skipped" in reason and "prefetch" in reason
    with pytest.warns(UserWarning, match="FID/KID skipped"):
        metrics = train(compose_cfg(tmp_path / "run", ["logger=csv", "metrics.fid.extractor=inception",
                                                        f"metrics.fid.weights_path={missing}"]))
    assert not any("fid" in k or "kid" in k for k in metrics)


def test_random_proxy_is_logged_as_proxy_never_fid(tmp_path):
    metrics = train(compose_cfg(tmp_path, ["logger=csv", "metrics.fid.extractor=random_proxy",
                                           "metrics.fid.min_samples=2", "metrics.fid.kid_subset_size=2",
                                           f"paths.cache_dir={tmp_path / 'cache'}"]))
    assert "val/fid_proxy" in metrics and "test/fid_proxy" in metrics and "test/kid_proxy" in metrics
    assert not any(k.endswith("/fid") or k.endswith("/kid") for k in metrics)
    assert list((tmp_path / "cache" / "fid").glob("fid_proxy-*.pt")), "reference features cached"
