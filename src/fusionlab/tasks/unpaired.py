"""Tasks without a degradation: unpaired style transfer and unconditional generation.

They carry the task's name (for run tags) and the seed that fixes evaluation pairs and latents.
"""


class StyleTransfer:
    """Unpaired style transfer: content images rendered in the look of style images."""

    name = "style"

    def __init__(self, eval_seed: int = 0) -> None:
        self.eval_seed = int(eval_seed)



class Generation(StyleTransfer):
    """Unconditional generation: noise to images like the training set."""

    name = "generate"
