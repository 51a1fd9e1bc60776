"""Cost of a model: parameters and FLOPs per image, counted with torch's own FlopCounterMode."""

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(module: nn.Module) -> int:
    """Parameters of the model, without copies marked ``exclude_from_cost`` (the EMA generator)."""
    skip = {id(p) for m in module.modules() if getattr(m, "exclude_from_cost", False) for p in m.parameters()}
    return sum(p.numel() for p in module.parameters() if id(p) not in skip)


@torch.no_grad()
def flops_per_image(model: nn.Module, channels: int, size: int = 256) -> int:
    """FLOPs (multiply-adds count 2) of one eval-mode forward on a ``channels x size x size`` image
    (or on what the model's ``example_input(channels, size)`` returns: a style pair, a latent).

    Counts what ``torch.utils.flop_counter`` knows (convolutions, matmuls, ...); elementwise ops
    are not counted, as is usual for conv nets. The model's train/eval mode is restored.
    """
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        if hasattr(model, "example_input"):
            inputs, run = model.example_input(channels, size), model
        else:
            inputs = (torch.zeros(1, channels, size, size, device=device),)
            # restoration: what evaluation runs, test-time self-ensemble (x K) included
            run = model.restore if hasattr(model, "restore") else model
        with FlopCounterMode(display=False) as counter:
            run(*inputs)
        return int(counter.get_total_flops())
    finally:
        model.train(was_training)
