"""Tasks without a degradation: unpaired style transfer and unconditional generation.

They carry the task's name (for run tags) and the seed that fixes evaluation pairs and latents.
"""

from fusionlab.schemas import UnpairedTaskSchema, checked


class UnpairedTask:
    """A task named for run tags, with the seed of its fixed evaluation draws (no degradation)."""

    name = "unpaired"

    def __init__(self, eval_seed: int = 0) -> None:
        self.eval_seed = checked(UnpairedTaskSchema, "task", eval_seed=eval_seed).eval_seed


class StyleTransfer(UnpairedTask):
    """Unpaired style transfer: content images rendered in the look of style images. ``eval_seed``
    fixes the validation/test (content, style) pairs."""

    name = "style"


class Generation(UnpairedTask):
    """Unconditional generation: noise to images like the training set. ``eval_seed`` fixes the
    latent vectors of validation/test samples."""

    name = "generate"
