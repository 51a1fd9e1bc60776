"""Test-time fusion: the geometric self-ensemble (``tta=flip|x8``) fused by the operator library.

Each copy of the input is transformed by an element of the dihedral group (flips and 90-degree
rotations), restored, transformed back, and the K copies are fused by ``Mean`` or ``Median``
(:mod:`fusionlab.fusion.operators`), as KAIR's test scripts and mmagic's ``SpatialTemporalEnsemble``
do for x8. The copies run batched: those that keep H x W go through the network as one batch and
those that swap H and W (odd rotations) as another, so x8 costs two calls, not eight.
"""

from collections.abc import Callable

import torch

from fusionlab.fusion.operators import Mean, Median
from fusionlab.utils.errors import ConfigError

# (rotations by 90 degrees, horizontal flip first): the 8 elements of the dihedral group D4
TRANSFORMS = {
    "none": [(0, False)],
    "flip": [(0, False), (0, True)],
    "x8": [(k, f) for f in (False, True) for k in range(4)],
}
OPERATORS = {"mean": Mean, "median": Median}


def forward_transform(x: torch.Tensor, rot: int, flip: bool) -> torch.Tensor:
    """Flip (width) then rotate by ``rot`` x 90 degrees, on the last two dims."""
    if flip:
        x = x.flip(-1)
    return torch.rot90(x, rot, dims=(-2, -1)) if rot else x


def inverse_transform(y: torch.Tensor, rot: int, flip: bool) -> torch.Tensor:
    """Undo :func:`forward_transform` exactly."""
    if rot:
        y = torch.rot90(y, -rot, dims=(-2, -1))
    return y.flip(-1) if flip else y


def check_tta(mode: str, fusion: str) -> None:
    if mode not in TRANSFORMS:
        raise ConfigError("tta", f"must be one of {sorted(TRANSFORMS)}, got {mode!r}")
    if fusion not in OPERATORS:
        raise ConfigError("tta_fusion", f"must be one of {sorted(OPERATORS)}, got {fusion!r}")


def transformed_copies(run: Callable[[torch.Tensor], dict[str, torch.Tensor]], x: torch.Tensor, mode: str = "x8"
                       ) -> dict[str, torch.Tensor]:
    """Every named output of ``run`` on each transformed copy of ``x``, transformed back: ``{name:
    (K, B, C', H', W')}`` over the K copies of ``mode`` (the stack that :func:`self_ensemble` fuses,
    and whose spread is the ``tta_std`` uncertainty heuristic)."""
    check_tta(mode, "mean")
    transforms = TRANSFORMS[mode]
    b = x.shape[0]
    copies: list[dict[str, torch.Tensor] | None] = [None] * len(transforms)
    for swaps in (False, True):  # one batched call per output shape
        group = [i for i, (rot, _) in enumerate(transforms) if (rot % 2 == 1) == swaps]
        if not group:
            continue
        batch = torch.cat([forward_transform(x, *transforms[i]) for i in group])
        outputs = run(batch)
        for j, i in enumerate(group):
            copies[i] = {name: inverse_transform(out[j * b : (j + 1) * b], *transforms[i])
                         for name, out in outputs.items()}
    return {name: torch.stack([c[name] for c in copies]) for name in copies[0]}


def fuse_copies(stack: torch.Tensor, fusion: str = "mean") -> torch.Tensor:
    """The K copies ``(K, B, C, H, W)`` fused by ``mean`` or ``median``."""
    return OPERATORS[fusion](num_inputs=stack.shape[0], channels=stack.shape[2])(stack)


def self_ensemble(run: Callable[[torch.Tensor], dict[str, torch.Tensor]], x: torch.Tensor, mode: str = "x8",
                  fusion: str = "mean") -> dict[str, torch.Tensor]:
    """Every named output of ``run`` fused over the transformed copies of ``x`` (``(B, C, H, W)``).

    :param run: the restoration, ``x -> {name: (B, C', H', W')}`` (outputs aligned with ``x``).
    :param mode: ``none``, ``flip`` (2 copies) or ``x8`` (8 copies).
    :param fusion: ``mean`` or ``median`` over the copies.
    """
    check_tta(mode, fusion)
    if len(TRANSFORMS[mode]) == 1:
        return run(x)
    return {name: fuse_copies(stack, fusion) for name, stack in transformed_copies(run, x, mode).items()}
