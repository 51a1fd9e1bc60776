"""Cost of a model: parameters and FLOPs per image, counted with torch's own FlopCounterMode."""

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def flops_per_image(model: nn.Module, channels: int, size: int = 256) -> int:
    """FLOPs (multiply-adds count 2) of one eval-mode forward on a ``channels x size x size`` image.

    Counts what ``torch.utils.flop_counter`` knows (convolutions, matmuls, ...); elementwise ops
    are not counted, as is usual for conv nets. The model's train/eval mode is restored.
    """
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        x = torch.zeros(1, channels, size, size, device=device)
        with FlopCounterMode(display=False) as counter:
            model(x)
        return int(counter.get_total_flops())
    finally:
        model.train(was_training)
