"""Loss functions (pure torch): reconstruction, adversarial, content/style."""

from fusionlab.losses.adversarial import GANLoss, r1_penalty, total_variation
from fusionlab.losses.reconstruction import CharbonnierLoss, per_sample_loss
from fusionlab.losses.style import content_loss, gram, mean_std, style_distance

__all__ = ["CharbonnierLoss", "GANLoss", "content_loss", "gram", "mean_std", "per_sample_loss",
           "r1_penalty", "style_distance", "total_variation"]
