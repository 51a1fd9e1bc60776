"""Memorisation check for generators: distance from each sample to its nearest training image.

A generator that copies its training set has samples much closer to a training image than
training images are to each other. :class:`~fusionlab.evaluation.generation.GenerationEvaluator`
logs both: the RMSE from each sample to its nearest training image, and the same for every
training image to its nearest *other* training image (leave-one-out) as the scale to read it against.
"""

import torch


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
