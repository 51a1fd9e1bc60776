"""FID and KID with a pluggable feature extractor (``metrics.fid.extractor``).

- ``inception``: the standard FID Inception-v3 (:mod:`fusionlab.metrics.inception`), weights from
  ``metrics.fid.weights_path`` or the torch hub cache; logged as ``fid`` / ``kid``. Without a
  weights file FID/KID are skipped with one warning; nothing is downloaded at run time
  (``python -m fusionlab.metrics.fid prefetch`` fetches the file when online).
- ``random_proxy``: a fixed-seed random CNN for smoke tests, logged as ``fid_proxy`` / ``kid_proxy``,
  never as ``fid``.
"""

import hashlib
import logging
import sys
import warnings
from pathlib import Path

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from fusionlab.metrics.inception import WEIGHTS_FILES, WEIGHTS_URL, FIDInceptionV3, file_digest, find_weights
from fusionlab.utils.errors import ConfigError

log = logging.getLogger("fusionlab")
EXTRACTORS = ("inception", "random_proxy", "none")


class RandomProxyExtractor(nn.Module):
    """A fixed-seed random conv net (64-d features). For smoke tests only: its distances are not
    FID and are logged as ``fid_proxy``."""

    num_features = 64

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.net = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten())
        with torch.no_grad():
            for p in self.net.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().clamp(0, 1)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.net(x * 2 - 1).double()


def build_extractor(extractor: str, weights_path: str | None = None) -> tuple[nn.Module | None, str, str]:
    """The feature extractor, the metric name (``fid`` or ``fid_proxy``) and an identity string
    for caches; ``(None, reason, "")`` when FID cannot be computed."""
    if extractor not in EXTRACTORS:
        raise ConfigError("metrics.fid.extractor", f"must be one of {EXTRACTORS}, got {extractor!r}")
    if extractor == "none":
        return None, "disabled (metrics.fid.extractor=none)", ""
    if extractor == "random_proxy":
        return RandomProxyExtractor(), "fid_proxy", "random_proxy-seed0"
    path = find_weights(weights_path)
    if path is None:
        where = weights_path or f"{Path(torch.hub.get_dir()) / 'checkpoints'}/{WEIGHTS_FILES[0]}"
        return None, (f"FID/KID skipped: no FID Inception weights at {where}. Enable them with "
                      f"`python -m fusionlab.metrics.fid prefetch` (online, once) or "
                      f"metrics.fid.weights_path=FILE"), ""
    return FIDInceptionV3.from_file(path), "fid", f"inception-{file_digest(path)}"


class FeatureDistances(nn.Module):
    """torchmetrics FID and KID sharing one extractor; real features can be cached on disk.

    :param name: ``fid`` or ``fid_proxy``; KID is logged as ``kid``/``kid_proxy`` (mean of subsets).
    """

    def __init__(self, extractor: nn.Module, name: str, identity: str, kid_subset_size: int = 50,
                 cache_dir: str | None = None) -> None:
        super().__init__()
        self.name, self.identity = name, identity
        self.kid_name = name.replace("fid", "kid")
        self.kid_subset_size = kid_subset_size
        self.cache_dir = Path(cache_dir) if cache_dir else None
        # sync_on_compute=False: under DDP :meth:`compute` gathers the features itself (torchmetrics'
        # gather of uneven list states between processes broke with per-process shares of references)
        self.fid = FrechetInceptionDistance(feature=extractor, reset_real_features=False, sync_on_compute=False)
        self.kid = KernelInceptionDistance(feature=extractor, reset_real_features=False,
                                           subset_size=kid_subset_size, sync_on_compute=False)
        self.fid.orig_dtype = torch.float32  # set by torchmetrics' own update(), which we bypass
        self.real_count = 0

    @property
    def extractor(self) -> nn.Module:
        return self.fid.inception

    def cache_path(self, real_key: str) -> Path | None:
        if self.cache_dir is None:
            return None
        key = hashlib.sha256(f"{real_key}|{self.identity}".encode()).hexdigest()[:24]
        return self.cache_dir / f"{self.name}-{key}.pt"

    def load_real(self, real_key: str) -> bool:
        """Restore cached real features; True on a cache hit."""
        path = self.cache_path(real_key)
        if path is None or not path.is_file():
            return False
        feats = torch.load(path, map_location="cpu", weights_only=True).to(self.fid.real_features_sum.device)
        self.set_real_features(feats)
        log.info("%s reference features loaded from cache %s", self.name, path)
        return True

    def _set_features(self, which: str, feats: torch.Tensor) -> None:
        """Replace the ``real`` or ``fake`` states of both metrics by these features."""
        feats = feats.double()
        setattr(self.fid, f"{which}_features_sum", feats.sum(dim=0))
        setattr(self.fid, f"{which}_features_cov_sum", feats.t().mm(feats))
        setattr(self.fid, f"{which}_features_num_samples", torch.tensor(feats.shape[0], device=feats.device))
        setattr(self.kid, f"{which}_features", [feats])

    def set_real_features(self, feats: torch.Tensor) -> None:
        self._set_features("real", feats)
        self.real_count = feats.shape[0]

    def save_real(self, real_key: str) -> None:
        path = self.cache_path(real_key)
        if path is None or not self.kid.real_features:
            return
        feats = torch.cat([f if f.dim() == 2 else f[None] for f in self.kid.real_features]).cpu()
        from fusionlab.utils.io import atomic_write

        atomic_write(path, lambda tmp: torch.save(feats, tmp))  # (a temporary file per writer: concurrent runs)

    def update(self, images: torch.Tensor, real: bool) -> None:
        with torch.no_grad():
            feats = self.extractor(images)
        # one forward feeds both metrics (their update would run the extractor again)
        if real:
            self.fid.real_features_sum += feats.sum(dim=0)
            self.fid.real_features_cov_sum += feats.t().mm(feats)
            self.fid.real_features_num_samples += feats.shape[0]
            self.kid.real_features.append(feats)
            self.real_count += feats.shape[0]
        else:
            self.fid.fake_features_sum += feats.sum(dim=0)
            self.fid.fake_features_cov_sum += feats.t().mm(feats)
            self.fid.fake_features_num_samples += feats.shape[0]
            self.kid.fake_features.append(feats)

    def _features(self, which: str) -> torch.Tensor:
        feats = getattr(self.kid, f"{which}_features")
        return torch.cat([f if f.dim() == 2 else f[None] for f in feats]) if feats else torch.zeros(0, 1)

    def compute(self, min_samples: int = 2, stage: str = "", world_size: int = 1) -> dict[str, torch.Tensor]:
        """``{name: FID, kid_name: KID mean}`` over every process's images. FID only when both sets
        hold ``min_samples`` images (a warning names the counts otherwise); KID (unbiased) from 2 on,
        its subset size shrunk to the sample count."""
        import torch.distributed as dist

        local = {"real": self._features("real"), "fake": self._features("fake")}
        gathered = local
        if world_size > 1 and dist.is_available() and dist.is_initialized():
            parts: list = [None] * dist.get_world_size()
            dist.all_gather_object(parts, {k: v.cpu() for k, v in local.items()})
            device = self.fid.real_features_sum.device
            gathered = {k: torch.cat([p[k] for p in parts if p[k].shape[0]]).to(device) for k in local}
            self.set_real_features(gathered["real"])
            self._set_features("fake", gathered["fake"])
        try:
            n = min(gathered["real"].shape[0], gathered["fake"].shape[0])
            out = {}
            if n >= max(2, min_samples):
                out[self.name] = self.fid.compute().float()
            else:
                log.warning("%s not reported%s: %d images, fewer than min_samples=%d (FID needs many samples; "
                            "KID is reported instead)", self.name, f" for {stage}" if stage else "", n, min_samples)
            if n >= 2:
                self.kid.subset_size = min(self.kid_subset_size, n)
                out[self.kid_name] = self.kid.compute()[0].float()
            return out
        finally:
            if gathered is not local:  # back to this process's own share
                self.set_real_features(local["real"].to(self.fid.real_features_sum.device))
                self._set_features("fake", local["fake"].to(self.fid.real_features_sum.device))

    def reset_real(self) -> None:
        """Forget the reference features (a new reference set follows)."""
        self.fid.reset_real_features = self.kid.reset_real_features = True
        self.fid.reset(), self.kid.reset()
        self.fid.reset_real_features = self.kid.reset_real_features = False
        self.real_count = 0

    def reset_fake(self) -> None:
        self.fid.reset()  # reset_real_features=False keeps the real statistics
        self.kid.reset()


def tensor_digest(images: list[torch.Tensor], names: list[str]) -> str:
    """Content hash of a set of images (the reference set's identity for caches)."""
    h = hashlib.sha256()
    for name, image in zip(names, images):
        h.update(name.encode())
        h.update(str(tuple(image.shape)).encode())
        h.update((image.float().clamp(0, 1) * 255).round().to(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:24]


def prefetch(dest: str | None = None) -> Path:
    """Download the FID Inception weights once (needs a network)."""
    target = Path(dest) if dest else Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILES[0]
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(WEIGHTS_URL, str(target), progress=True)
    FIDInceptionV3.from_file(target)  # refuse a file that does not load strictly
    return target


def warn_skipped(reason: str) -> None:
    warnings.warn(reason, stacklevel=2)
    log.warning(reason)


if __name__ == "__main__":  # python -m fusionlab.metrics.fid prefetch [DEST]
    if len(sys.argv) >= 2 and sys.argv[1] == "prefetch":
        print(prefetch(sys.argv[2] if len(sys.argv) > 2 else None))
    else:
        print("usage: python -m fusionlab.metrics.fid prefetch [DEST]")
