"""Embedded digits (data=digits|stacked_digits) and the classifier-based generation metrics."""

import numpy as np
import pytest
import torch
from scipy import linalg

from fusionlab.data.digits import DigitsDataModule, digit_split, stack_digits
from fusionlab.metrics.digits import (DigitReader, frechet_distance, mode_statistics, precision_recall, shift,
                                      train_classifier)
from fusionlab.utils.errors import ConfigError

# its module fixtures are built once: all of its tests on one pytest-xdist worker
pytestmark = pytest.mark.xdist_group("test_digits")


def test_split_is_stratified_disjoint_and_scaled():
    split = digit_split(16)
    (x, y), (xt, yt) = split["train"], split["test"]
    assert x.shape[1:] == (1, 16, 16) and len(x) + len(xt) == 1797
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    share = torch.bincount(y) / (torch.bincount(y) + torch.bincount(yt))
    assert torch.allclose(share, torch.full((10,), 0.8), atol=0.01)  # stratified: 80% of every class
    assert digit_split(8)["train"][0].shape[1:] == (1, 8, 8)


def test_stacked_digits_have_the_modes_of_their_channels():
    x, y = digit_split(8)["train"]
    images, modes = stack_digits(x, y, 500, seed=3)
    assert images.shape == (500, 3, 8, 8)
    # each channel is some training digit, and the mode spells the three labels
    for i in range(5):
        labels = [int(y[(x[:, 0] == images[i, c]).flatten(1).all(1)][0]) for c in range(3)]
        assert int(modes[i]) == 100 * labels[0] + 10 * labels[1] + labels[2]
    assert len(modes.unique()) > 350  # 500 draws of 1000 equally likely modes
    assert torch.equal(stack_digits(x, y, 500, seed=3)[0], images)


def test_mode_statistics_known_values():
    assert mode_statistics(torch.arange(10).repeat(5), 10) == {"modes_covered": 10.0, "mode_kl": pytest.approx(0.0)}
    collapsed = mode_statistics(torch.zeros(100, dtype=torch.long), 10)
    assert collapsed["modes_covered"] == 1 and collapsed["mode_kl"] == pytest.approx(np.log(10))
    half = mode_statistics(torch.tensor([0, 1] * 50), 4)
    assert half["mode_kl"] == pytest.approx(np.log(2))


def test_precision_recall_invariants():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(400, 8, generator=g)
    same = precision_recall(real, real.clone())
    assert same == {"precision": 1.0, "recall": 1.0}
    far = precision_recall(real, real + 100)
    assert far == {"precision": 0.0, "recall": 0.0}
    # samples from one half of the real distribution: precise, but recall about one half
    two = torch.cat([torch.randn(400, 8, generator=g) - 10, torch.randn(400, 8, generator=g) + 10])
    half = precision_recall(two[torch.randperm(800, generator=g)], two[:400].repeat(2, 1) +
                            0.01 * torch.randn(800, 8, generator=g))
    assert half["precision"] > 0.95 and 0.4 < half["recall"] < 0.6


def test_frechet_distance_matches_scipy_reference():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(300, 6, generator=g, dtype=torch.float64)
    b = torch.randn(300, 6, generator=g, dtype=torch.float64) @ torch.rand(6, 6, generator=g, dtype=torch.float64) + 1
    mu1, mu2 = a.mean(0).numpy(), b.mean(0).numpy()
    s1, s2 = np.cov(a.numpy(), rowvar=False), np.cov(b.numpy(), rowvar=False)
    ref = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-5)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_shift_moves_content_and_zero_fills():
    img = torch.zeros(1, 1, 5, 5)
    img[0, 0, 2, 2] = 1
    out = shift(img.repeat(50, 1, 1, 1), 1, torch.Generator().manual_seed(0))
    assert out.shape == (50, 1, 5, 5) and torch.all(out.sum((1, 2, 3)) == 1)
    assert len({tuple(torch.nonzero(o[0])[0].tolist()) for o in out}) == 9  # all 3x3 offsets occur


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    return train_classifier(8, epochs=60, cache_dir=tmp_path_factory.mktemp("digits"))


def test_classifier_is_accurate_cached_and_reads_stacked_samples(classifier, tmp_path):
    model, accuracy = classifier
    assert accuracy >= 0.97  # held-out digits
    x, y = digit_split(8)["train"]
    images, modes = stack_digits(x, y, 300, seed=5)
    read, confidence, feats = DigitReader(model, 3).read(images)
    assert (read == modes).float().mean() > 0.95 and feats.shape == (300, 3 * 128)
    assert torch.all((confidence > 0) & (confidence <= 1))
    import time

    cache = next(p for p in tmp_path.parent.iterdir() if p.name.startswith("digits"))
    start = time.perf_counter()
    again, acc2 = train_classifier(8, epochs=60, cache_dir=cache)  # from the cache: no retraining
    assert time.perf_counter() - start < 2 and acc2 == accuracy
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))


def test_digit_metrics_of_real_digits_and_of_a_collapsed_generator(classifier):
    from fusionlab.evaluation.generation import GenerationEvaluator

    model, _ = classifier
    dm = DigitsDataModule(image_size=8, val_samples=10, test_samples=10)
    dm.classifier = lambda: classifier
    ev = GenerationEvaluator()
    from types import SimpleNamespace

    ev.start("val", SimpleNamespace(device=torch.device("cpu")), dm)
    real = dm.load()
    for i in range(0, len(real), 500):  # "samples" that are the training digits themselves
        ev.update("val", {"name": None}, {"main": real[i:i + 500]}, None)
    good = ev.compute("val")
    assert good["val/modes_covered"] == 10 and float(good["val/mode_kl"]) < 0.01
    assert float(good["val/fd_digits"]) == pytest.approx(0.0, abs=1e-3)
    assert float(good["val/precision"]) == 1.0 and float(good["val/recall"]) == 1.0
    ev.start("val", None, dm)
    ones = real[dm.reference_modes == 1]
    ev.update("val", {"name": None}, {"main": ones.repeat(10, 1, 1, 1)[:1000]}, None)
    bad = ev.compute("val")
    assert bad["val/modes_covered"] <= 2 and float(bad["val/mode_kl"]) > 2.0
    assert float(bad["val/recall"]) < 0.2 and float(bad["val/fd_digits"]) > 10


def test_bad_digit_settings_fail_naming_the_key():
    with pytest.raises(ConfigError, match="^data.image_size"):
        DigitsDataModule(image_size=64)
    with pytest.raises(ConfigError, match="^data.channels"):
        DigitsDataModule(stacked=True, channels=1)
    with pytest.raises(ConfigError, match="^data.augment"):
        DigitsDataModule(augment=True)
    with pytest.raises(ConfigError, match="^data.classifier"):
        DigitsDataModule(classifier={"depth": 3})


def test_digit_metrics_refuse_what_the_classifier_cannot_read(classifier, caplog):
    """Samples of another channel count stop with one line; data without digit labels gets no
    digit numbers at all, and says so once."""
    import logging
    from types import SimpleNamespace

    from fusionlab.evaluation.generation import GenerationEvaluator

    reader = DigitReader(classifier[0], channels=3)
    with pytest.raises(ConfigError, match="^data.channels: the digit classifier reads 3-channel samples"):
        reader.read(torch.rand(4, 1, 8, 8))
    faces = SimpleNamespace(reference_images=lambda stage: ([torch.rand(1, 8, 8) for _ in range(6)],))
    ev = GenerationEvaluator()
    with caplog.at_level(logging.INFO, logger="fusionlab"):
        ev.start("val", SimpleNamespace(device=torch.device("cpu")), faces)
    from fusionlab.evaluation.generation import DIGIT_METRICS

    assert f"{', '.join(DIGIT_METRICS)}: not computed" in caplog.text and "modes_covered_svc" in caplog.text
    ev.update("val", {"name": None}, {"main": torch.rand(6, 1, 8, 8)}, None)
    values = ev.compute("val")
    assert "val/nn_distance" in values and not any(k.split("/")[1] in ("modes_covered", "mode_kl", "fd_digits",
                                                                        "precision", "recall") for k in values)
