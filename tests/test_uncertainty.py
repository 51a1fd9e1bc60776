"""Calibrated per-pixel error bounds: conformal calibration, heuristics, evaluate.py and predict=."""

import json
import math

import numpy as np
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from fusionlab.data.images import read_array, write_array
from fusionlab.pipeline import evaluate, train
from fusionlab.uncertainty.conformal import bounds, calibrate, image_metrics, min_images, nonconformity, sparsification
from fusionlab.uncertainty.scores import fused_and_score
from fusionlab.utils.errors import ConfigError, DataError
from tests.helpers import compose_cfg, groups_of, run_cli, write_images

# its module fixtures are built once: all of its tests on one pytest-xdist worker
pytestmark = pytest.mark.xdist_group("test_uncertainty")


# ---- conformal calibration on known values -------------------------------------------------------
def test_quantile_lambda_is_the_finite_sample_quantile():
    r = [torch.tensor([[0.5, 0.1], [0.9, 0.3]]), torch.tensor([[0.7, 0.2, 0.4, 0.6, 0.8, 1.0]])]  # n = 10
    # alpha = 0.2: k = ceil(11 * 0.8) = 9 -> the 9th smallest of 0.1 .. 1.0 is 0.9
    assert calibrate(r, 0.2, "quantile") == pytest.approx(0.9)
    # alpha = 0.5: k = ceil(5.5) = 6 -> 0.6
    assert calibrate(r, 0.5, "quantile") == pytest.approx(0.6)
    with pytest.raises(ConfigError, match="alpha: 0.05 is too small for 10 calibration pixels"):
        calibrate(r, 0.05, "quantile")  # k = ceil(11 * 0.95) = 11 > 10


def test_risk_lambda_is_the_smallest_level_passing_the_corrected_risk():
    # 4 images of 2 pixels; alpha = 0.5: allowed empirical risk (0.5 * 5 - 1) / 4 = 0.375
    r = [torch.tensor([1.0, 0.1]), torch.tensor([0.8, 0.2]), torch.tensor([0.6, 0.3]), torch.tensor([0.4, 0.35])]
    lam = calibrate(r, 0.5, "risk")
    risk = lambda t: sum(float((x > t).float().mean()) for x in r) / len(r)  # noqa: E731
    # by hand: lambda = 0.4 leaves {1.0, 0.8, 0.6} outside -> risk 3/8 = 0.375 (allowed); 0.35 -> 4/8
    assert lam == pytest.approx(0.4)
    assert risk(lam) <= 0.375 + 1e-12 and risk(0.39) > 0.375
    assert min_images(0.1, "risk") == 9 and min_images(0.05, "risk") == 19 and min_images(0.05, "quantile") == 1
    with pytest.raises(ConfigError, match="calibrate_dir: 4 calibration images are too few for alpha=0.1 with "
                                          "conformal=risk: it needs at least 9"):
        calibrate(r, 0.1, "risk")


@pytest.mark.parametrize("method", ["quantile", "risk"])
def test_coverage_with_a_known_noise_model_is_one_minus_alpha(method):
    """Heteroscedastic Gaussian errors whose scale the score knows up to a factor: the calibrated
    intervals cover 1 - alpha of fresh test pixels within sampling error, and (unlike one constant
    width) also 1 - alpha of the noisy pixels alone."""
    g = torch.Generator().manual_seed(0)

    def draw(n_images):
        target = torch.rand(n_images, 1, 32, 32, generator=g) * 0.6 + 0.2
        hard = torch.rand(n_images, 1, 32, 32, generator=g) < 0.2  # a fifth of the pixels are 10x noisier
        sigma = torch.where(hard, 0.05, 0.005)
        fused = target + sigma * torch.randn(target.shape, generator=g)
        return fused, 3 * sigma, target, hard  # the score: sigma up to a factor that lambda must find

    cal, test = draw(40), draw(200)
    fused, score, target, hard = test
    for alpha in (0.05, 0.1, 0.2):
        lam = calibrate([nonconformity(f, s, t) for f, s, t, _ in zip(*cal)], alpha, method)
        lam_const = calibrate([nonconformity(f, torch.ones_like(s), t) for f, s, t, _ in zip(*cal)], alpha, method)
        got = [image_metrics(f, s, t, {alpha: lam}) for f, s, t, _ in zip(*test)]
        coverage = sum(m[f"coverage@{alpha:g}"] for m in got) / len(got)
        pixels = 200 * 32 * 32
        tol = 5 * math.sqrt(alpha * (1 - alpha) / pixels) + 0.005
        # conformal risk control is exact up to 2/(n+1) on the conservative side (n = 40 images)
        slack = 2 / 41 if method == "risk" else 0.0
        assert 1 - alpha - tol < coverage < 1 - alpha + slack + tol, (alpha, coverage)
        covered = lambda lo, hi: ((target >= lo) & (target <= hi))[hard].float().mean()  # noqa: E731
        assert 1 - alpha - 0.02 < float(covered(*bounds(fused, score, lam))) < 1 - alpha + slack + 0.02
        assert float(covered(*bounds(fused, torch.ones_like(score), lam_const))) < 1 - alpha - 0.05


def test_bounds_contain_the_fused_image_and_stay_in_range():
    fused = torch.tensor([[-0.2, 0.0, 0.5, 1.3]])
    score = torch.tensor([[0.1, 0.0, 0.2, 0.5]])
    lower, upper = bounds(fused, score, 2.0)
    centre = fused.clamp(0, 1)
    assert bool(((lower <= centre) & (centre <= upper)).all())
    assert bool((lower >= 0).all() and (upper <= 1).all())
    assert torch.allclose(upper[0, 2], torch.tensor(0.9)) and torch.allclose(lower[0, 2], torch.tensor(0.1))


def test_sparsification_of_the_true_error_is_the_oracle():
    g = torch.Generator().manual_seed(1)
    error = torch.rand(1, 20, 20, generator=g)
    curve, oracle = sparsification(error, error)
    assert torch.allclose(curve, oracle)
    assert oracle[0] == pytest.approx(1.0) and bool((oracle[1:] <= oracle[:-1] + 1e-12).all())
    random_curve, _ = sparsification(error, torch.rand(1, 20, 20, generator=g))
    assert float((random_curve - oracle).mean()) > 0.1  # a useless score: a large AUSE


# ---- heuristics on models ------------------------------------------------------------------------
def _ensemble(fusion, identical=False):
    from fusionlab.approaches.ensemble import OutputEnsemble
    from fusionlab.fusion import Gated, Mean
    from fusionlab.models import DnCNN

    torch.manual_seed(0)
    nets = [DnCNN(1, depth=3, width=8) for _ in range(3)]
    if identical:
        for n in nets[1:]:
            n.load_state_dict(nets[0].state_dict())
    op = {"gated": Gated, "mean": Mean}[fusion]
    return OutputEnsemble(nets, op, torch.nn.MSELoss(), lambda params: None).eval()


def test_member_std_of_identical_members_is_zero():
    x = torch.rand(2, 1, 24, 20)
    fused, score = fused_and_score([_ensemble("mean", identical=True)], x, "member_std")
    assert fused.shape == x.shape and float(score.abs().max()) == 0.0
    fused, score = fused_and_score([_ensemble("mean")], x, "member_std")
    assert float(score.min()) >= 0 and float(score.mean()) > 0


def test_gate_entropy_of_an_untrained_gate_is_log_k_and_tta_keeps_shapes():
    model = _ensemble("gated")  # the gating CNN starts with uniform weights
    x = torch.rand(1, 1, 21, 19)
    fused, score = fused_and_score([model], x, "gate_entropy")
    assert torch.allclose(score, torch.full_like(score, math.log(3)), atol=1e-5)
    assert torch.allclose(fused, model.restore(x)["main"], atol=1e-6)
    model.set_tta("x8")
    fused, score = fused_and_score([model], x, "tta_std")
    assert torch.allclose(fused, model.restore(x)["main"], atol=1e-6), "centred on the x8 fusion"
    assert score.shape == x.shape and float(score.mean()) > 0


def test_tta_std_of_an_equivariant_model_is_zero_and_seed_std_of_one_model_twice_is_zero():
    from fusionlab.approaches.single import SingleModel

    class Scale(torch.nn.Module):  # a 1x1 convolution: flips and rotations change nothing
        channels = 1

        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 1, 1)

        def forward(self, x):
            return self.conv(x)

    model = SingleModel(Scale(), torch.nn.MSELoss(), lambda params: None).eval()
    model.set_tta("x8")
    x = torch.rand(1, 1, 9, 13)
    fused, score = fused_and_score([model], x, "tta_std")
    assert float(score.abs().max()) < 1e-6
    fused2, score2 = fused_and_score([model, model], x, "seed_std")
    assert float(score2.abs().max()) == 0.0 and torch.allclose(fused2, fused, atol=1e-6)


def test_tiled_bounds_equal_whole_image_bounds_and_predict_meters_no_fusion_weights():
    from fusionlab.inference import Predictor

    model = _ensemble("gated")
    predictor = Predictor(model, {}, 1)
    x = torch.rand(1, 70, 90)
    whole = predictor.restore_with_score(x, "member_std")
    tiled = predictor.restore_with_score(x, "member_std", tile=48, overlap=16)
    for a, b in zip(whole, tiled):
        assert a.shape == (1, 70, 90) and torch.allclose(a, b, atol=1e-5)
    assert not model.weight_meter.means[0].update_called, "inference is not an evaluation epoch"


def test_load_keeps_tta_fusion(gated_run):
    from fusionlab.inference import load

    model = load(gated_run / "run" / "checkpoints" / "best.ckpt", tta="x8", tta_fusion="median").model
    assert (model.tta, model.tta_fusion) == ("x8", "median")


# ---- evaluate.py and predict= on a trained gated ensemble ----------------------------------------
@pytest.fixture(scope="module")
def gated_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("uq")
    train(compose_cfg(root / "run", ["approach=ensemble", "fusion=gated", "logger=csv", "metrics.fid.extractor=none",
                                     "approach.members.m0.depth=3", "approach.members.m0.width=8",
                                     "approach.members.m1.width=8", "approach.members.m2.n_blocks=1",
                                     "approach.members.m2.width=8"]))
    GlobalHydra.instance().clear()
    write_images(root / "calib", 10, size=(40, 44), seed=3)
    return root


def _eval(tmp_path, overrides, name="ev"):
    cfg = compose_cfg(tmp_path / name, overrides, config_name="eval", hydra_node=True)
    return evaluate(cfg, [o for o in overrides if not o.startswith("paths")], groups_of(cfg))


def test_evaluate_calibrates_reports_and_saves_lambda_then_predict_draws_bounds(gated_run, tmp_path):
    ckpt = gated_run / "run" / "checkpoints" / "best.ckpt"
    result = _eval(tmp_path, [f"ckpt_path={ckpt}", "logger=csv", "uncertainty=member_std",
                              f"calibrate_dir={gated_run / 'calib'}", "alpha=[0.1,0.2]", "metrics.fid.extractor=none"])
    uq = result["uncertainty"]
    assert uq["calibration"]["images"] == 10 and uq["heuristic"] == "member_std"
    lam = uq["calibration"]["lambdas"]["quantile"]["0.1"]
    assert lam > uq["calibration"]["lambdas"]["quantile"]["0.2"] > 0
    assert uq["calibration"]["lambdas"]["risk"]["0.1"] > 0  # 10 images >= the 9 that risk control needs
    record = result["per_image"][0]
    for key in ("uq_coverage@0.1", "uq_width@0.1", "uq_coverage@0.2", "uq_score_error_corr", "uq_ause"):
        assert key in record, key
    assert 0 <= record["uq_coverage@0.1"] <= 1 and record["uq_width@0.1"] > record["uq_width@0.2"]
    assert "test/uq_coverage@0.1" in result["metrics"] and (tmp_path / "ev" / "uncertainty.png").is_file()
    saved = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert saved["uncertainty"]["calibration"]["lambdas"]["quantile"]["0.1"] == lam
    assert (ckpt.parent / "best.ckpt.calibration.json").is_file()
    # the saved lambda alone (no calibration images) gives the same intervals on the test set
    again = _eval(tmp_path, [f"ckpt_path={ckpt}", "logger=csv", "uncertainty=member_std", "alpha=0.1",
                             "metrics.fid.extractor=none"], name="ev2")
    assert again["uncertainty"]["alphas"]["0.1"]["coverage"] == pytest.approx(uq["alphas"]["0.1"]["coverage"])
    # the comparison report shows both evaluations' bounds
    from fusionlab.reporting.compare import build_report

    report, *_ = build_report([tmp_path / "ev", tmp_path / "ev2"], tmp_path / "report")
    assert "Calibrated error bounds" in report.read_text() and "data:image/png;base64" in report.read_text()
    rows = json.loads((tmp_path / "report" / "comparison.json").read_text())["uncertainty"]
    assert sorted(r["alpha"] for r in rows) == [0.1, 0.1, 0.2]
    assert {r["heuristic"] for r in rows} == {"member_std"} and all(0 <= r["coverage"] <= 1 for r in rows)

    src = tmp_path / "mine"
    src.mkdir()
    rng = np.random.default_rng(0)
    write_array((rng.random((37, 41)) * 255).astype(np.uint8), src / "a.png")
    write_array((rng.random((30, 33)) * 65535).astype(np.uint16), src / "b16.png")
    pred = _eval(tmp_path, [f"ckpt_path={ckpt}", f"predict={src}", "uncertainty=member_std", "alpha=0.1",
                            f"output_dir={tmp_path / 'out'}", "logger=csv"], name="pr")
    assert not pred["failed"]
    for stem, like in (("a", src / "a.png"), ("b16", src / "b16.png")):
        original = read_array(like)
        restored, lower, upper = (read_array(tmp_path / "out" / f"{stem}{s}.png") for s in ("", "_lower", "_upper"))
        for image in (restored, lower, upper):
            assert image.shape == original.shape and image.dtype == original.dtype
        assert (lower <= restored).all() and (restored <= upper).all()
        heat = read_array(tmp_path / "out" / f"{stem}_uncertainty.png")
        assert heat.shape == (*original.shape, 3) and heat.dtype == np.uint8


def test_bad_uncertainty_inputs_get_one_line_naming_the_key(gated_run, tmp_path):
    ckpt = gated_run / "run" / "checkpoints" / "best.ckpt"
    base = [f"ckpt_path={ckpt}", "logger=csv", "metrics.fid.extractor=none"]
    calib = f"calibrate_dir={gated_run / 'calib'}"
    with pytest.raises(ConfigError, match="uncertainty: tta_std is the spread of the self-ensemble's copies: add tta=x8"):
        _eval(tmp_path, [*base, "uncertainty=tta_std", calib])
    with pytest.raises(ConfigError, match="uncertainty: must be one of"):
        _eval(tmp_path, [*base, "uncertainty=entropy", calib])
    with pytest.raises(ConfigError, match="alpha: miscoverage levels must be numbers in"):
        _eval(tmp_path, [*base, "uncertainty=member_std", calib, "alpha=1.5"])
    with pytest.raises(ConfigError, match="calibrate_dir: 10 calibration images are too few for alpha=0.05 with "
                                          "conformal=risk: it needs at least 19"):
        _eval(tmp_path, [*base, "uncertainty=member_std", calib, "alpha=0.05", "conformal=risk"])
    with pytest.raises(ConfigError, match="calibrate_dir: is used with uncertainty=HEURISTIC"):
        _eval(tmp_path, [*base, calib])
    with pytest.raises(DataError, match="calibration folder does not exist"):
        _eval(tmp_path, [*base, "uncertainty=constant", f"calibrate_dir={tmp_path / 'nope'}"])
    # the test images themselves as calibration images
    test_dir = tmp_path / "testset"
    write_images(test_dir, 3, size=(40, 44), seed=9)
    with pytest.raises(ConfigError, match="calibrate_dir: 3 of its images are also test images"):
        _eval(tmp_path, [*base, "uncertainty=constant", f"calibrate_dir={test_dir}", "data=folder",
                         f"data.test_dir={test_dir}", f"data.train_dir={test_dir}", f"data.val_dir={test_dir}"])
    # a saved calibration of another heuristic, and the noise level of the calibration that was saved
    with pytest.raises(ConfigError, match="has no calibration for gate_entropy"):
        _eval(tmp_path, [*base, "uncertainty=gate_entropy", "alpha=0.1"])


def test_a_calibration_of_another_checkpoint_or_noise_level_is_refused(gated_run, tmp_path):
    ckpt = gated_run / "run" / "checkpoints" / "best.ckpt"
    _eval(tmp_path, [f"ckpt_path={ckpt}", "logger=csv", "uncertainty=constant", f"calibrate_dir={gated_run / 'calib'}",
                     "metrics.fid.extractor=none"])
    sidecar = json.loads((ckpt.parent / "best.ckpt.calibration.json").read_text())
    entry = next(e for e in sidecar["calibrations"] if e["heuristic"] == "constant")
    other = tmp_path / "other.calibration.json"
    other.write_text(json.dumps({"calibrations": [{**entry, "task": {**entry["task"], "sigma": 50}}]}))
    with pytest.raises(ConfigError, match=r"calibration: .* was calibrated for another task or noise level "
                                          r"\(GaussianNoise sigma=50"):
        _eval(tmp_path, [f"ckpt_path={ckpt}", "logger=csv", "uncertainty=constant", f"calibration={other}",
                         "metrics.fid.extractor=none"])
    other.write_text(json.dumps({"calibrations": [{**entry, "checkpoint_sha256": "0" * 64}]}))
    with pytest.raises(ConfigError, match="calibration: .* was calibrated for another checkpoint"):
        _eval(tmp_path, [f"ckpt_path={ckpt}", "logger=csv", "uncertainty=constant", f"calibration={other}",
                         "metrics.fid.extractor=none"])


def test_member_std_on_a_single_model_is_refused_from_the_command_line(tmp_path):
    train(compose_cfg(tmp_path / "single", ["logger=csv", "metrics.fid.extractor=none", "test=false",
                                            "model.depth=3", "model.width=8"]))
    write_images(tmp_path / "calib", 2, size=(40, 44), seed=3)
    proc = run_cli(["evaluate.py", f"ckpt_path={tmp_path / 'single' / 'checkpoints' / 'best.ckpt'}",
                    "uncertainty=member_std", f"calibrate_dir={tmp_path / 'calib'}", "logger=csv",
                    f"paths.output_dir={tmp_path / 'ev'}"])
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "uncertainty: member_std needs an ensemble checkpoint (approach=ensemble); this one is SingleModel" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "ev" / "eval.json").exists()


def test_seed_std_calibrates_with_its_members_and_predict_needs_the_same_members(gated_run, tmp_path):
    ckpt = gated_run / "run" / "checkpoints" / "best.ckpt"
    other = gated_run / "run" / "checkpoints" / "last.ckpt"
    base = [f"ckpt_path={ckpt}", "logger=csv", "metrics.fid.extractor=none", "uncertainty=seed_std"]
    result = _eval(tmp_path, [*base, f"uncertainty_members=[{other}]", f"calibrate_dir={gated_run / 'calib'}"])
    calibration = result["uncertainty"]["calibration"]
    assert calibration["members"] == [str(other.resolve())] and len(calibration["members_sha256"]) == 1
    src = tmp_path / "mine"
    write_images(src, 1, size=(40, 44), seed=5)
    with pytest.raises(ConfigError, match="uncertainty_members: seed_std needs at least one more checkpoint"):
        _eval(tmp_path, [*base, f"predict={src}", f"output_dir={tmp_path / 'out'}"], name="pr")
    pred = _eval(tmp_path, [*base, f"uncertainty_members=[{other}]", f"predict={src}",
                            f"output_dir={tmp_path / 'out'}"], name="pr2")
    assert len(pred["written"]) == 4 and not pred["failed"]


def test_a_constant_score_removes_pixels_in_random_order():
    error = torch.arange(400.0).view(1, 20, 20) / 400  # errors growing in raster order
    curve, _ = sparsification(error, torch.ones_like(error))
    # raster order would remove the small errors first: the curve would climb towards 2
    assert float((curve - 1).abs().mean()) < 0.05 and float((curve - 1).abs().max()) < 0.3
