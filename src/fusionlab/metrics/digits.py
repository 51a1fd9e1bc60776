"""Sample-quality and mode-coverage metrics for digits, with no downloaded weights.

A small CNN classifier is trained by the project on the training digits of
:func:`fusionlab.data.digits.digit_split` and tested on the held-out ones (its accuracy is
reported beside every number it produces). It is cached on disk, keyed by its configuration and
this file's source. Generated samples are read with it at the digits' native resolution, 8 px
(:func:`to_read_size`: area averaging of 16- or 32-px samples; the data's larger sizes are bilinear
upscalings of 8-px digits and hold nothing more about which digit it is): a quarter of the cost of
reading at 16 px (10,000 stacked samples, 30,000 digits, in about 5 s on one CPU thread instead of
19 s), so that a validation of 10,000 samples stays a small part of a run. Metrics:

- ``modes_covered``: distinct classes among the samples (of 10 digits, or of 1,000 stacked triples;
  each channel of a stacked sample is classified on its own);
- ``mode_kl``: KL(class histogram of the samples || uniform), in nats;
- ``fd_digits``: the Fréchet distance between the classifier's penultimate features of samples and
  of the reference images (torchmetrics' FID computation with this extractor; per channel features
  concatenated for stacked digits). It is not FID, whose feature space is Inception-v3's;
- ``precision`` / ``recall``: Kynkäänniemi et al. 2019, "Improved precision and recall metric for
  assessing generative models": a sample is precise when it falls inside the k-NN ball of some
  reference feature, a reference is recalled when it falls inside the k-NN ball of some sample
  (k = 3, Euclidean). The reference set has a fixed size (``data.reference_count``, 10,000 by
  default) whatever the sample count, so precision means the same at validation and test; recall
  grows with the sample count (the samples' k-NN balls shrink as they densify) and matches the
  paper's equal-size protocol when the sample count equals the reference size. No maintained package
  offers it without pulling TensorFlow or downloading weights, so it is written here (batched
  pairwise distances).

A second, independent reader (:class:`SVCReader`: scikit-learn's RBF support-vector classifier on
the pixels of the same training digits) reads every sample too: a mode count that one reader finds
and the other does not is a property of the reader, not of the generator (``reader_agreement``,
``modes_covered_agreed``: :func:`reader_statistics`).
"""

import hashlib
import logging
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fusionlab.utils.errors import check

log = logging.getLogger("fusionlab")


class DigitClassifier(nn.Module):
    """conv-conv-pool-conv-pool, a 128-d penultimate layer (the feature space), 10 logits."""

    num_features = 128

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2), nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
            nn.Flatten(), nn.Linear(8 * width, self.num_features), nn.ReLU())
        self.head = nn.Linear(self.num_features, 10)

    def features(self, digits: torch.Tensor) -> torch.Tensor:
        return self.body(digits.float())

    def forward(self, digits: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(digits))


def shift(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Each image translated by a random integer offset in [-max_shift, max_shift] (zero fill)."""
    if max_shift == 0:
        return images
    n, _, h, w = images.shape
    padded = F.pad(images, [max_shift] * 4)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, n), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, :, None].expand(n, h, w)
    cols = (dx[:, None] + torch.arange(w))[:, None, :].expand(n, h, w)
    return padded[torch.arange(n)[:, None, None], 0, rows, cols][:, None]


READ_SIZE = 8


def to_read_size(images: torch.Tensor) -> torch.Tensor:
    """Digits as the readers see them: area-averaged down to :data:`READ_SIZE` pixels."""
    if images.shape[-1] == READ_SIZE:
        return images
    return F.adaptive_avg_pool2d(images.float(), READ_SIZE)


def classifier_key(image_size: int, width: int, epochs: int, seed: int) -> str:
    source = Path(__file__).read_bytes() + (Path(__file__).parents[1] / "data" / "digits.py").read_bytes()
    text = f"{image_size}|{width}|{epochs}|{seed}|{hashlib.sha256(source).hexdigest()}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fit_classifier(image_size: int, width: int, epochs: int, seed: int) -> tuple[DigitClassifier, float]:
    """Train the classifier on the training digits (random shifts); accuracy on the held-out ones."""
    from fusionlab.data.digits import digit_split

    split = digit_split(image_size)
    (x, y), (xt, yt) = [(to_read_size(a).clone(), b.clone()) for a, b in (split["train"], split["test"])]  # not inference tensors
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = DigitClassifier(width)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=epochs * ((len(x) + 127) // 128))
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=g)
        for start in range(0, len(x), 128):
            idx = order[start:start + 128]
            loss = F.cross_entropy(model(shift(x[idx], 1, g)), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval().requires_grad_(False)
    with torch.no_grad():
        accuracy = float((model(xt).argmax(1) == yt).float().mean())
    return model, accuracy


def train_classifier(image_size: int = 16, width: int = 32, epochs: int = 60, seed: int = 0,
                     cache_dir: str | Path | None = None) -> tuple[DigitClassifier, float]:
    """The digit classifier for ``image_size`` digits and its accuracy on the held-out digits;
    loaded from ``cache_dir`` when a classifier of this configuration was trained before. Training
    leaves the global random state as it found it (it may run in the middle of a training run)."""
    path = Path(cache_dir) / f"digit-classifier-{classifier_key(image_size, width, epochs, seed)}.pt" \
        if cache_dir else None
    model = DigitClassifier(width)
    if path is not None and path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(saved["state_dict"])
        return model.eval().requires_grad_(False), float(saved["test_accuracy"])
    # also when first needed inside validation (inference mode)
    with torch.random.fork_rng(devices=[]), torch.inference_mode(False), torch.enable_grad():
        model, accuracy = fit_classifier(image_size, width, epochs, seed)
    log.info("digit classifier (%d px): held-out accuracy %.4f", image_size, accuracy)
    if path is not None:
        from fusionlab.utils.io import atomic_write

        atomic_write(path, lambda tmp: torch.save({"state_dict": model.state_dict(), "test_accuracy": accuracy}, tmp))
    return model, accuracy


class DigitReader(nn.Module):
    """Reads samples with the classifier: ``(modes, confidence, features)`` per sample. A stacked
    sample's channels are classified as three digits (mode ``100 r + 10 g + b``, confidence the
    product of the three, features concatenated)."""

    def __init__(self, classifier: DigitClassifier, channels: int) -> None:
        super().__init__()
        self.classifier, self.channels = classifier.eval().requires_grad_(False), channels
        self.num_features = classifier.num_features * channels  # read by torchmetrics' FID

    def train(self, mode: bool = True):
        return super().train(False)

    @torch.no_grad()
    def read(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n, c = images.shape[:2]
        check(c == self.channels, "data.channels", f"the digit classifier reads {self.channels}-channel samples "
              f"({'stacked ' if self.channels == 3 else ''}digits), got {c} channels")
        digits = to_read_size(images.float().clamp(0, 1).reshape(n * c, 1, *images.shape[-2:]))
        feats = self.classifier.features(digits)
        probs = self.classifier.head(feats).softmax(1)
        conf, labels = probs.max(1)
        place = 10 ** torch.arange(c - 1, -1, -1, device=images.device)
        modes = (labels.reshape(n, c) * place).sum(1)
        return modes, conf.reshape(n, c).prod(1), feats.reshape(n, -1)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Features only (the extractor torchmetrics' FID calls), in float64."""
        return self.read(images)[2].double()


class SVCReader:
    """The second reader: scikit-learn's ``SVC`` (RBF kernel, ``gamma="scale"``) fitted on the raw
    pixels of the training digits of :func:`~fusionlab.data.digits.digit_split` (no shifts, no
    features shared with the CNN), ``accuracy`` on the held-out digits. Fitting takes about a
    second, so it is not cached. ``modes(images)`` reads each channel as a digit, like
    :class:`DigitReader`."""

    def __init__(self, image_size: int, channels: int, C: float = 10.0) -> None:
        from sklearn.svm import SVC

        from fusionlab.data.digits import digit_split

        split = digit_split(image_size)
        (x, y), (xt, yt) = split["train"], split["test"]
        self.channels = channels
        self.svc = SVC(C=C, gamma="scale").fit(to_read_size(x).flatten(1).numpy(), y.numpy())
        self.accuracy = float((self.svc.predict(to_read_size(xt).flatten(1).numpy()) == yt.numpy()).mean())

    def modes(self, images: torch.Tensor) -> torch.Tensor:
        n, c = images.shape[:2]
        check(c == self.channels, "data.channels", f"the SVC reader reads {self.channels}-channel samples, got {c}")
        digits = to_read_size(images.detach().float().clamp(0, 1).reshape(n * c, 1, *images.shape[-2:]))
        digits = digits.flatten(1).cpu().numpy()
        labels = torch.from_numpy(self.svc.predict(digits)).long().reshape(n, c)
        return (labels * 10 ** torch.arange(c - 1, -1, -1)).sum(1)


def reader_statistics(cnn: torch.Tensor, svc: torch.Tensor, confidence: torch.Tensor, num_modes: int,
                      threshold: float = 0.9) -> dict[str, float]:
    """What the two readers say together: the SVC's own ``modes_covered_svc`` / ``mode_kl_svc``;
    ``reader_agreement`` (fraction of samples both read as the same mode); ``modes_covered_agreed`` /
    ``mode_kl_agreed`` over the samples they agree on; ``modes_covered_confident`` over the samples
    the CNN reads with probability >= ``threshold`` (the product over channels)."""
    svc_stats = mode_statistics(svc, num_modes)
    agree = cnn == svc
    out = {"modes_covered_svc": svc_stats["modes_covered"], "mode_kl_svc": svc_stats["mode_kl"],
           "reader_agreement": float(agree.float().mean())}
    agreed = mode_statistics(cnn[agree], num_modes) if agree.any() else {"modes_covered": 0.0,
                                                                           "mode_kl": math.log(num_modes)}
    out.update({"modes_covered_agreed": agreed["modes_covered"], "mode_kl_agreed": agreed["mode_kl"]})
    sure = confidence >= threshold
    out["modes_covered_confident"] = float(torch.unique(cnn[sure]).numel())
    return out


def mode_statistics(modes: torch.Tensor, num_modes: int) -> dict[str, float]:
    """``modes_covered`` and ``mode_kl`` = KL(histogram || uniform over ``num_modes``), nats."""
    counts = torch.bincount(modes.long().flatten(), minlength=num_modes).double()
    p = counts / counts.sum()
    nz = p > 0
    kl = float((p[nz] * (p[nz] * num_modes).log()).sum())
    return {"modes_covered": float(nz.sum()), "mode_kl": kl}


def knn_radii(feats: torch.Tensor, k: int = 3, chunk: int = 2048) -> torch.Tensor:
    """Distance of each feature to its k-th nearest other feature."""
    out = []
    for start in range(0, len(feats), chunk):
        d = torch.cdist(feats[start:start + chunk], feats)
        out.append(d.kthvalue(k + 1, dim=1).values)  # the 1st is the point itself (distance 0)
    return torch.cat(out)


def coverage(query: torch.Tensor, support: torch.Tensor, radii: torch.Tensor, chunk: int = 2048) -> float:
    """Fraction of ``query`` inside at least one ball ``(support[j], radii[j])``."""
    inside = []
    for start in range(0, len(query), chunk):
        d = torch.cdist(query[start:start + chunk], support)
        inside.append((d <= radii[None]).any(1))
    return float(torch.cat(inside).float().mean())


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3,
                     real_radii: torch.Tensor | None = None) -> dict[str, float]:
    """Kynkäänniemi et al. 2019 precision and recall of ``fake`` against all of ``real`` (a reference
    set of fixed size; see the module docstring); ``real_radii`` (its k-NN radii) when cached."""
    real, fake = real.float(), fake.float()  # float32 distances: 2x faster than float64, same coverage
    radii = knn_radii(real, k) if real_radii is None else real_radii.float()
    return {"precision": coverage(fake, real, radii), "recall": coverage(real, fake, knn_radii(fake, k))}


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets, by torchmetrics' FID code."""
    from torchmetrics.image.fid import _compute_fid

    def stats(f):
        f = f.double()
        mu = f.mean(0)
        centred = f - mu
        return mu, centred.t() @ centred / (len(f) - 1)

    (mu1, s1), (mu2, s2) = stats(real), stats(fake)
    return float(_compute_fid(mu1, s1, mu2, s2))


__all__ = ["DigitClassifier", "DigitReader", "SVCReader", "frechet_distance", "mode_statistics", "precision_recall",
           "reader_statistics", "train_classifier"]
