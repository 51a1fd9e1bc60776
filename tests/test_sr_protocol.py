"""Super-resolution protocol: MATLAB-compatible bicubic, checked against the published baseline."""

import os
from pathlib import Path

import pytest
import torch

from fusionlab.data.images import load_image
from fusionlab.metrics.image import prepare_for_metrics, psnr_per_image
from fusionlab.tasks import BicubicDownscale
from fusionlab.tasks.imresize import cubic, imresize, resize_matrix

SET5 = Path(os.environ.get("FUSIONLAB_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "sr" / "Set5"
# Bicubic on Set5, Y channel, border = scale (SRCNN paper, Dong et al. TPAMI 2016, Table)
PUBLISHED = {2: 33.66, 3: 30.39, 4: 28.42}


def test_kernel_and_matrices():
    assert cubic(torch.tensor([0.0, 1.0, 2.0, 0.5])).tolist() == [1.0, 0.0, 0.0, 0.5625]
    for scale, n in ((0.5, 10), (2.0, 5), (1 / 3, 9)):
        m = resize_matrix(n, int(n * scale), scale)
        assert torch.allclose(m.sum(1), torch.ones(m.shape[0], dtype=m.dtype)), "rows sum to 1"
    x = torch.rand(1, 12, 18, dtype=torch.float64)
    assert torch.allclose(imresize(torch.ones(1, 12, 18), 0.5), torch.ones(1, 6, 9)), "constant stays constant"
    assert imresize(x, 1 / 3).shape == (1, 4, 6) and imresize(x, 2).shape == (1, 24, 36)


def test_matlab_boundary_is_symmetric():
    """Upscaling x2, first output pixel: centre u = 0.75 (1-based), taps at 1-based -2..3 with
    distances 2.75, 1.75, 0.75, -0.25, -1.25, -2.25; MATLAB mirrors index -1 -> 2 and 0 -> 1."""
    row = torch.tensor([[0.0, 1.0, 2.0, 3.0]], dtype=torch.float64)
    out = imresize(row[None], size=(1, 8))[0, 0]
    c = lambda v: cubic(torch.tensor(v, dtype=torch.float64)).item()  # noqa: E731
    weights = {1: c(1.75) + c(-1.25), 0: c(0.75) + c(-0.25)}  # 0-based pixel -> summed weight
    expected = sum(row[0, i].item() * w for i, w in weights.items()) / sum(weights.values())
    assert out[0].item() == pytest.approx(expected) == pytest.approx(-0.09375)


@pytest.mark.skipif(not SET5.is_dir(), reason=f"Set5 not found at {SET5}")
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_baseline_reproduces_the_published_set5_psnr(scale):
    task = BicubicDownscale(scale=scale)
    values = []
    for path in sorted(SET5.glob("*.bmp")):
        up, hr = task(load_image(path, 3))
        values.append(psnr_per_image(prepare_for_metrics(up[None], True, scale),
                                     prepare_for_metrics(hr[None], True, scale)).item())
    assert len(values) == 5
    assert sum(values) / 5 == pytest.approx(PUBLISHED[scale], abs=0.03)
