import numpy as np
import pytest
import torch
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio as sk_psnr
from skimage.metrics import structural_similarity as sk_ssim

from fusionlab.evaluation import RestorationEvaluator
from fusionlab.metrics import prepare_for_metrics, psnr_per_image, rgb_to_y, ssim_per_image


def pair(seed=0, shape=(2, 1, 64, 48), sigma=0.1):
    g = torch.Generator().manual_seed(seed)
    clean = torch.rand(shape, generator=g)
    clean = torch.nn.functional.avg_pool2d(clean, 3, 1, 1)  # some structure
    noisy = clean + sigma * torch.randn(shape, generator=g)
    return noisy, clean


def sk_ssim_ref(a, b):
    return sk_ssim(a, b, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)


def test_psnr_ssim_agree_with_scikit_image():
    noisy, clean = pair()
    p, t = prepare_for_metrics(noisy), prepare_for_metrics(clean)
    ours_psnr, ours_ssim = psnr_per_image(p, t), ssim_per_image(p, t)
    for i in range(2):
        a, b = p[i, 0].double().numpy(), t[i, 0].double().numpy()
        assert ours_psnr[i].item() == pytest.approx(sk_psnr(b, a, data_range=1.0), abs=1e-3)
        assert ours_ssim[i].item() == pytest.approx(sk_ssim_ref(a, b), abs=2e-4)


def test_image_quality_is_mean_of_per_image_psnr():
    noisy, clean = pair(shape=(3, 1, 32, 32))
    noisy[0] = clean[0] + 0.01  # one much better image: pooled-MSE PSNR would differ
    q = RestorationEvaluator()  # the evaluation path every restoration approach uses
    q.update("val", {"source": noisy[:2], "target": clean[:2]}, {"main": noisy[:2]}, None)
    q.update("val", {"source": noisy[2:], "target": clean[2:]}, {"main": noisy[2:]}, None)
    out = {k: v for k, v in q.compute("val").items() if not k.endswith("_input")}
    per = [sk_psnr(clean[i, 0].numpy(), noisy[i, 0].clamp(0, 1).numpy(), data_range=1.0) for i in range(3)]
    assert out["val/psnr"].item() == pytest.approx(np.mean(per), abs=1e-3)
    assert set(out) == {"val/psnr", "val/ssim"}
    per_ssim = [sk_ssim_ref(noisy[i, 0].clamp(0, 1).double().numpy(), clean[i, 0].double().numpy()) for i in range(3)]
    assert out["val/ssim"].item() == pytest.approx(np.mean(per_ssim), abs=2e-4)


def test_y_channel_and_crop_border_match_reference():
    rng = np.random.default_rng(1)
    rgb = rng.random((40, 40, 3))
    ref_y = rgb2ycbcr(rgb)[..., 0] / 255.0
    y = rgb_to_y(torch.from_numpy(rgb).permute(2, 0, 1)[None].float())[0, 0].numpy()
    assert np.allclose(y, ref_y, atol=1e-5)
    x = torch.rand(1, 3, 40, 40)
    prepared = prepare_for_metrics(x, y_channel=True, crop_border=4)
    assert prepared.shape == (1, 1, 32, 32)
    noisy = (x + 0.05 * torch.randn_like(x))
    q = RestorationEvaluator(y_channel=True, crop_border=2)
    q.update("test", {"source": noisy, "target": x, "name": ["a"]}, {"main": noisy}, None)
    a = rgb_to_y(noisy.clamp(0, 1))[0, 0, 2:-2, 2:-2].numpy()
    b = rgb_to_y(x)[0, 0, 2:-2, 2:-2].numpy()
    assert q.compute("test")["test/psnr"].item() == pytest.approx(sk_psnr(b, a, data_range=1.0), abs=1e-3)
    assert q.records[0]["psnr"] == pytest.approx(sk_psnr(b, a, data_range=1.0), abs=1e-3), "record = metric"


def test_outputs_are_clamped_before_metrics():
    x = torch.full((1, 1, 16, 16), 1.5)
    assert prepare_for_metrics(x).max() == 1.0
    assert psnr_per_image(prepare_for_metrics(x), torch.ones_like(x)).item() > 100
