import pytest
import torch

from fusionlab.functional import pad_to_multiple
from fusionlab.models import EDSR, DnCNN, UNet

BACKBONES = [
    lambda c: DnCNN(c, depth=4, width=8),
    lambda c: DnCNN(c, depth=3, width=8, norm="none"),
    lambda c: UNet(c, depth=2, width=8),
    lambda c: EDSR(c, n_blocks=2, width=8),
]


@pytest.mark.parametrize("make", BACKBONES)
@pytest.mark.parametrize("channels", [1, 3])
def test_backbone_shapes_and_gradients(make, channels):
    net = make(channels)
    x = torch.rand(2, channels, 24, 32, requires_grad=True)
    y = net(x)
    assert y.shape == x.shape
    y.square().mean().backward()
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize("make", BACKBONES)
def test_odd_sizes_through_padding(make):
    net = make(1).eval()
    x = torch.rand(1, 1, 37, 29)
    padded, (h, w) = pad_to_multiple(x, net.stride)
    assert padded.shape[-2] % net.stride == 0 and padded.shape[-1] % net.stride == 0
    with torch.no_grad():
        out = net(padded)[..., :h, :w]
    assert out.shape == x.shape


def test_residual_backbones_start_near_identity_when_zeroed():
    net = DnCNN(1, depth=3, width=4, norm="none")
    torch.nn.init.zeros_(net.body[-1].weight), torch.nn.init.zeros_(net.body[-1].bias)
    x = torch.rand(1, 1, 8, 8)
    assert torch.allclose(net(x), x)


def test_unet_stride_and_bad_args():
    assert UNet(1, depth=3).stride == 8
    with pytest.raises(ValueError, match="width"):
        DnCNN(1, width=0)
    with pytest.raises(ValueError, match="depth"):
        DnCNN(1, depth=1)
