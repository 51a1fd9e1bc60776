"""A plain-torch VGG-19 feature extractor for content/style losses, loading torchvision's ImageNet
state dict (``vgg19-dcbb9e9d.pth``) from a local file. Nothing is downloaded at training time:
``python -m fusionlab.models.vgg prefetch [DEST]`` fetches the file once, when online.

The layer indices match ``torchvision.models.vgg19().features``, so the file's ``features.N.*``
keys load strictly; ``classifier.*`` keys are ignored. Inputs are images in [0, 1] (gray is
repeated to RGB), normalised with the ImageNet mean/std. The module is frozen and stays in eval.
"""

import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from fusionlab.utils.errors import DataError

VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
             512, 512, 512, 512, "M")
# ReLU outputs used by AdaIN / Gatys style losses, as indices into ``features``.
LAYERS = {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 20, "relu5_1": 29}
WEIGHTS_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
WEIGHTS_FILE = "vgg19-dcbb9e9d.pth"


def vgg19_features() -> nn.Sequential:
    """torchvision's ``vgg19().features`` layer for layer (same indices, same parameter names)."""
    layers: list[nn.Module] = []
    c_in = 3
    for v in VGG19_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c_in, v, 3, padding=1), nn.ReLU(inplace=False)]
            c_in = v
    return nn.Sequential(*layers)


class VGGFeatures(nn.Module):
    """Frozen VGG-19 activations at ``layers`` (names from :data:`LAYERS`), shallow to deep."""

    def __init__(self, weights_path: str | Path, layers: Sequence[str] = ("relu1_1", "relu2_1", "relu3_1",
                                                                              "relu4_1")) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in LAYERS]
        if unknown:
            raise ValueError(f"unknown VGG-19 layers {unknown}: expected some of {list(LAYERS)}")
        self.indices = [LAYERS[name] for name in layers]
        self.features = vgg19_features()[: max(self.indices) + 1]
        self.load(weights_path)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def load(self, weights_path: str | Path) -> None:
        path = Path(weights_path)
        if not path.is_file():
            raise DataError(path, "VGG-19 weights file not found; fetch it once with `python -m "
                            "fusionlab.models.vgg prefetch` (online) or set approach.features=discriminator",
                            "approach.vgg_weights")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise DataError(path, f"cannot read VGG-19 weights ({type(exc).__name__})", "approach.vgg_weights") from None
        own = self.features.state_dict()
        wanted = {k: state.get(f"features.{k}") for k in own}
        missing = [k for k, v in wanted.items() if v is None or tuple(v.shape) != tuple(own[k].shape)]
        if missing:
            raise DataError(path, f"not torchvision's VGG-19 state dict: features.{missing[0]} missing or of "
                            f"the wrong shape", "approach.vgg_weights")
        self.features.load_state_dict(wanted, strict=True)

    def train(self, mode: bool = True):
        return super().train(False)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = image if image.shape[1] == 3 else image.expand(-1, 3, -1, -1)
        x = (x - self.mean) / self.std
        out, wanted = [], set(self.indices)
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in wanted:
                out.append(x)
        return out


def prefetch(dest: str | None = None) -> Path:
    """Download torchvision's VGG-19 ImageNet weights once (needs a network)."""
    target = Path(dest) if dest else Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(WEIGHTS_URL, str(target), progress=True)
    VGGFeatures(target)  # refuse a file that does not load
    return target


if __name__ == "__main__":  # python -m fusionlab.models.vgg prefetch [DEST]
    if len(sys.argv) >= 2 and sys.argv[1] == "prefetch":
        print(prefetch(sys.argv[2] if len(sys.argv) > 2 else None))
    else:
        print("usage: python -m fusionlab.models.vgg prefetch [DEST]")
