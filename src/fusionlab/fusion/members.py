"""Running several member networks on one input: a Python loop, or one batched call.

When every member has the same architecture (same class, same parameter and buffer shapes), eval-
mode inference can stack their weights once (``torch.func.stack_module_state``) and run all members
as one ``vmap``-ed ``functional_call``: one batched (grouped) kernel per layer instead of M.
Training uses the loop (each member's BatchNorm statistics update in place, which vmap does not
allow). Measured on a 2-core CPU (bench/ensemble.py), the grouped kernels are slower than the loop
at every image size, so ``batched="auto"`` uses the vmap path on CUDA only.
"""

import copy

import torch
from torch import nn
from torch.func import functional_call, stack_module_state


def same_architecture(modules: list[nn.Module]) -> bool:
    first = modules[0]
    shapes = lambda m: [(k, tuple(v.shape)) for k, v in [*m.named_parameters(), *m.named_buffers()]]  # noqa: E731
    return all(type(m) is type(first) and shapes(m) == shapes(first) for m in modules[1:])


class MemberBank(nn.Module):
    """An ``nn.ModuleList`` of members with ``forward(x) -> (M, B, C, H, W)``.

    :param batched: ``"auto"`` (vmap path on CUDA, loop elsewhere), ``True`` or ``False``; the vmap
        path runs only in eval mode without gradients and when the members share an architecture.
    """

    def __init__(self, members: list[nn.Module], batched: bool | str = "auto") -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.homogeneous = same_architecture(list(self.members))
        if batched not in (True, False, "auto"):
            raise ValueError(f"batched must be true, false or auto, got {batched!r}")
        self.batched = batched
        self._stacked: tuple[dict, dict] | None = None
        self._template: list[nn.Module] = []  # a weightless copy for functional_call (not a submodule)
        self.register_load_state_dict_post_hook(lambda module, keys: module.invalidate())

    def __len__(self) -> int:
        return len(self.members)

    @property
    def stride(self) -> int:
        """Least common multiple of the members' strides."""
        import math

        return math.lcm(*(int(getattr(m, "stride", 1)) for m in self.members))

    def invalidate(self) -> None:
        self._stacked = None

    def train(self, mode: bool = True):
        self.invalidate()
        return super().train(mode)

    def use_batched(self, device: torch.device | None = None) -> bool:
        if not self.homogeneous or self.training or torch.is_grad_enabled() or self.batched is False:
            return False
        if self.batched == "auto":
            device = device or next(self.members[0].parameters()).device
            return device.type == "cuda"
        return True

    def forward_loop(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members])

    def forward_batched(self, x: torch.Tensor) -> torch.Tensor:
        if self._stacked is None:
            params, buffers = stack_module_state(list(self.members))
            self._stacked = (params, buffers)
            if not self._template:
                self._template.append(copy.deepcopy(self.members[0]).to("meta"))
        params, buffers = self._stacked
        template = self._template[0]

        def run(p, b, inp):
            return functional_call(template, (p, b), (inp,))

        return torch.vmap(run, in_dims=(0, 0, None))(params, buffers, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_batched(x) if self.use_batched(x.device) else self.forward_loop(x)
