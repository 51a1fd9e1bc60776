"""Memorisation check for generators: distance from each sample to its nearest training image.

A generator that copies its training set has samples much closer to a training image than
training images are to each other. :class:`NearestTrainingDistance` logs both: the mean RMSE
from each sample to its nearest training image, and the same for every training image to its
nearest *other* training image (leave-one-out) as the scale to read it against.
"""

import torch
from torchmetrics import Metric


def nearest_distance(samples: torch.Tensor, reference: torch.Tensor, exclude_self: bool = False,
                     chunk: int = 512) -> torch.Tensor:
    """Per-sample RMSE to the nearest reference image, ``(N,)``; batched matrix distances."""
    x = samples.flatten(1).float()
    r = reference.flatten(1).float().to(x.device)
    d = x.shape[1]
    out = []
    r_sq = (r * r).sum(1)
    for start in range(0, x.shape[0], chunk):
        xs = x[start : start + chunk]
        sq = (xs * xs).sum(1, keepdim=True) + r_sq[None] - 2 * xs @ r.t()
        if exclude_self:
            idx = torch.arange(start, start + xs.shape[0], device=x.device)
            sq[torch.arange(xs.shape[0], device=x.device), idx] = float("inf")
        out.append((sq.clamp_min(0).min(dim=1).values / d).sqrt())
    return torch.cat(out)


class NearestTrainingDistance(Metric):
    """Mean nearest-training-image RMSE of generated samples (``set_reference`` first)."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.reference: torch.Tensor | None = None
        self.reference_spacing: float | None = None

    def set_reference(self, images: torch.Tensor) -> None:
        self.reference = images.flatten(1).float()
        self.reference_spacing = float(nearest_distance(self.reference, self.reference, exclude_self=True).mean())

    def update(self, samples: torch.Tensor) -> None:
        if self.reference is None:
            raise RuntimeError("NearestTrainingDistance: call set_reference(training_images) first")
        self.reference = self.reference.to(samples.device)
        d = nearest_distance(samples, self.reference)
        self.total += d.double().sum()
        self.count += d.numel()

    def compute(self) -> torch.Tensor:
        return (self.total / self.count.clamp_min(1)).float()
