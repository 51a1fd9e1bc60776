"""Per-pixel uncertainty scores from what a fusion already computes (``uncertainty=HEURISTIC``).

Each heuristic turns one or more trained restoration models into ``(fused, score)``: the image the
interval is centred on and a non-negative per-pixel score map of the same shape, whose scale
conformal calibration then fixes (:mod:`fusionlab.uncertainty.conformal`):

- ``constant``: one score for every pixel (plain split conformal: one width everywhere);
- ``member_std``: the standard deviation of an ensemble's members around its fused output;
- ``gate_entropy``: the entropy of a ``gated`` ensemble's per-pixel fusion weights (broadcast over
  channels); high where no member is trusted more than the others;
- ``tta_std``: the standard deviation of the transformed copies of the test-time self-ensemble
  (``tta=flip|x8``) around their fusion;
- ``seed_std``: a deep ensemble of several checkpoints (``uncertainty_members``, e.g. the seeds of a
  sweep): their mean, and their standard deviation.

Standard deviations are population ones (divided by K) of the raw (unclamped) outputs.
"""

from collections.abc import Sequence

import torch

from fusionlab.functional import pad_to_multiple
from fusionlab.fusion.self_ensemble import fuse_copies, self_ensemble, transformed_copies
from fusionlab.utils.errors import ConfigError

HEURISTICS = ("constant", "member_std", "gate_entropy", "tta_std", "seed_std")


def _members(model) -> int:
    return int(getattr(model, "num_members", 0) or 0)


def check_heuristic(heuristic: str, models: Sequence) -> None:
    """One line naming the key when ``heuristic`` cannot be computed from these models."""
    if heuristic not in HEURISTICS:
        raise ConfigError("uncertainty", f"must be one of {list(HEURISTICS)}, got {heuristic!r}")
    model = models[0]
    if getattr(getattr(model, "evaluator", None), "task", None) != "restoration":
        raise ConfigError("uncertainty", "per-pixel error bounds need a restoration checkpoint (denoise, superres)")
    name = type(model).__name__
    if heuristic == "member_std" and _members(model) < 2:
        raise ConfigError("uncertainty", f"member_std needs an ensemble checkpoint (approach=ensemble); this one is "
                                         f"{name}: use tta_std, seed_std or constant")
    if heuristic == "gate_entropy" and not hasattr(getattr(model, "fusion", None), "gate"):
        fusion = type(getattr(model, "fusion", None)).__name__
        raise ConfigError("uncertainty", f"gate_entropy needs an ensemble with fusion=gated; this checkpoint is "
                                         f"{name}" + (f" with {fusion} fusion" if _members(model) else ""))
    if heuristic == "tta_std" and getattr(model, "tta", "none") == "none":
        raise ConfigError("uncertainty", "tta_std is the spread of the self-ensemble's copies: add tta=x8 (or flip)")
    if heuristic == "seed_std":
        if len(models) < 2:
            raise ConfigError("uncertainty_members", "seed_std needs at least one more checkpoint of the same task "
                                                     "(uncertainty_members=[RUN2/checkpoints/best.ckpt, ...])")
        for i, other in enumerate(models[1:]):
            if getattr(other, "channels", None) != getattr(model, "channels", None) or \
                    getattr(getattr(other, "evaluator", None), "task", None) != "restoration":
                raise ConfigError(f"uncertainty_members[{i}]", "is not a restoration checkpoint for the same images "
                                                               "(task or channels differ)")
    elif len(models) > 1:
        raise ConfigError("uncertainty_members", f"only seed_std uses further checkpoints, not {heuristic}")


def _std(stack: torch.Tensor) -> torch.Tensor:
    return stack.float().std(dim=0, unbiased=False)


def _entropy(weights: torch.Tensor) -> torch.Tensor:
    """``-sum_k w log w`` over dim 0 (``(K, B, 1, H, W)`` -> ``(B, 1, H, W)``)."""
    w = weights.float().clamp_min(1e-12)
    return -(w * w.log()).sum(dim=0)


def _ensemble_run(model, heuristics: Sequence[str]):
    """``x -> {"main", <heuristic>...}`` of an ensemble for its member- and gate-derived heuristics."""
    def run(x: torch.Tensor) -> dict[str, torch.Tensor]:
        outs = model.member_outputs(x)
        fused, _ = model.fusion.fuse(outs, x)
        out = {"main": fused}
        if "member_std" in heuristics:
            out["member_std"] = _std(outs)
        if "gate_entropy" in heuristics:
            out["gate_entropy"] = _entropy(model.fusion.gate(outs, x)).expand_as(fused)
        return out
    return run


def centre_of(heuristic: str) -> str:
    """Which fused image a heuristic's intervals are centred on (heuristics of one centre are
    computed together by :func:`fused_and_scores`; ``constant`` joins any)."""
    return {"member_std": "model", "gate_entropy": "model", "constant": "model"}.get(heuristic, heuristic)


@torch.no_grad()
def fused_and_scores(models: Sequence, source: torch.Tensor, heuristics: Sequence[str]
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``(fused, {heuristic: score})`` for a degraded batch ``source`` (``(B, C, H, W)``, any size),
    each ``(B, C', H, W)``, from one forward pass; the models' own test-time setting (``tta``,
    ``tta_fusion``) applies. The heuristics must share one centre (:func:`centre_of`)."""
    centres = {centre_of(h) for h in heuristics if h != "constant"}
    if len(centres) > 1:
        raise ValueError(f"heuristics {list(heuristics)} are centred on different images; compute them apart")
    centre = centres.pop() if centres else "model"
    model = models[0]
    if centre == "seed_std":
        outs = torch.stack([m.restore(source)["main"] for m in models])
        fused, scores = outs.mean(dim=0), {"seed_std": _std(outs)}
    elif centre == "model" and not set(heuristics) - {"constant"}:
        fused, scores = model.restore(source)["main"], {}
    else:
        padded, (h, w) = pad_to_multiple(source, model.stride)
        if centre == "tta_std":
            stack = transformed_copies(lambda x: {"main": model.named_outputs(x)["main"]}, padded, model.tta)["main"]
            out = {"main": fuse_copies(stack, model.tta_fusion), "tta_std": _std(stack)}
        else:  # member_std, gate_entropy: per copy, then fused over the copies when tta is set
            out = self_ensemble(_ensemble_run(model, heuristics), padded, model.tta, model.tta_fusion)
        out = {k: v[..., :h, :w] for k, v in out.items()}
        fused, scores = out.pop("main"), out
    if "constant" in heuristics:
        scores["constant"] = torch.ones_like(fused)
    return fused, {h: scores[h] for h in heuristics}


def fused_and_score(models: Sequence, source: torch.Tensor, heuristic: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(fused, score)`` of one heuristic (see :func:`fused_and_scores`)."""
    fused, scores = fused_and_scores(models, source, [heuristic])
    return fused, scores[heuristic]
