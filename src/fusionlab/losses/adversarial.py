"""Adversarial objectives and regularisers, shared by every GAN approach (style transfer, generation).

Discriminators end without a sigmoid: they return logits. ``GANLoss(mode)`` keeps the choice of
objective out of training code:

- ``hinge``: D minimises ``relu(1 - D(real)) + relu(1 + D(fake))``; G minimises ``-D(fake)``.
- ``lsgan``: least squares towards 1 (real) and 0 (fake); G pushes ``D(fake)`` towards 1.
- ``bce``: the non-saturating logistic loss, ``softplus(-D(real)) + softplus(D(fake))`` for D and
  ``softplus(-D(fake))`` for G (binary cross-entropy with logits).

Losses are computed in float32 whatever the autocast dtype of the logits.
"""

import torch
import torch.nn.functional as F
from torch import nn

GAN_MODES = ("hinge", "lsgan", "bce")


class GANLoss(nn.Module):
    """``loss(pred, real, for_discriminator)``: the mean adversarial loss of a batch of logits.

    :param mode: ``hinge``, ``lsgan`` or ``bce``.
    """

    def __init__(self, mode: str = "hinge") -> None:
        super().__init__()
        if mode not in GAN_MODES:
            raise ValueError(f"unknown GAN loss mode {mode!r}: expected one of {GAN_MODES}")
        self.mode = mode

    def forward(self, pred: torch.Tensor, real: bool, for_discriminator: bool = True,
                reduce: bool = True) -> torch.Tensor:
        """The mean loss, or per sample ``(B,)`` (mean over any patch dimensions) if not ``reduce``."""
        pred = pred.float()
        if self.mode == "hinge":
            if not for_discriminator:
                loss = -pred
            else:
                loss = F.relu(1.0 - pred) if real else F.relu(1.0 + pred)
        elif self.mode == "lsgan":
            loss = (pred - (1.0 if real else 0.0)) ** 2
        else:
            loss = F.softplus(-pred) if real else F.softplus(pred)
        if reduce:
            return loss.mean()
        return loss.reshape(loss.shape[0], -1).mean(1)

    def discriminator(self, real_pred: torch.Tensor, fake_pred: torch.Tensor) -> torch.Tensor:
        """D's loss: real and fake terms summed."""
        return self(real_pred, True) + self(fake_pred, False)

    def generator(self, fake_pred: torch.Tensor) -> torch.Tensor:
        """G's loss on D's logits for its images (G wants them judged real)."""
        return self(fake_pred, True, for_discriminator=False)


def r1_penalty(real_pred: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1 gradient penalty (Mescheder et al. 2018): ``E ||grad_x D(x)||^2`` over the real images.

    ``real`` must require grad and ``real_pred`` (one logit map per real image) must be computed from
    it. ``real`` may be a larger batch whose first ``len(real_pred)`` rows are the real images (real
    and fake passed through D together): the mean is over the real rows only. Multiply by
    ``gamma / 2``.
    """
    (grad,) = torch.autograd.grad(real_pred.float().sum(), real, create_graph=True)
    return grad[: real_pred.shape[0]].float().pow(2).flatten(1).sum(1).mean()


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels (anisotropic TV)."""
    dh = (image[..., 1:, :] - image[..., :-1, :]).abs().mean()
    dw = (image[..., :, 1:] - image[..., :, :-1]).abs().mean()
    return dh + dw
