"""Weight-space fusion: a model soup (Wortsman et al. 2022) of M single-model checkpoints.

The members share one architecture and, for averaging to work, one initialisation: fine-tune them
from one single-model checkpoint (``member_init=CKPT``) with different seeds, augmentations,
learning rates or losses. Recipes:

- ``uniform``: the plain average of every member;
- ``greedy``: members sorted by validation PSNR, each added to the soup only if the soup's
  validation PSNR does not drop (Wortsman et al., Algorithm 1); the best member is always in;
- ``weighted``: a weighted average with ``weights`` from config (normalised).

BatchNorm buffers are averaged with the parameters, then (``bn_batches`` > 0) the BatchNorm
statistics are recomputed on that many training batches: ``train.py approach=soup`` runs one
"training" epoch of ``bn_batches`` forward passes in train mode that change no weight (cumulative
averages, momentum None, as ``torch.optim.swa_utils.update_bn``; that function is not used because
it takes tensor batches, and running the pass as Lightning's training epoch gives the soup the
usual validation, checkpoints, loggers and test). The result is saved
as a normal single-model checkpoint (``net.*`` weights), so ``evaluate.py``, ``compare``, the
predictors and further fusion (a two-stage ensemble member) all take it. One forward per image:
a soup costs one member's FLOPs.
"""

import logging
import warnings
from collections.abc import Sequence

import torch
from torch import nn

from fusionlab.approaches.restoration import RestorationModule
from fusionlab.metrics.image import prepare_for_metrics, psnr_per_image
from fusionlab.utils.checkpoints import net_state
from fusionlab.utils.errors import check

log = logging.getLogger("fusionlab")
RECIPES = ("uniform", "greedy", "weighted")


def average_states(states: Sequence[dict[str, torch.Tensor]], weights: Sequence[float] | None = None
                   ) -> dict[str, torch.Tensor]:
    """Weighted average (uniform by default) of state dicts with equal keys and shapes; integer
    buffers (BatchNorm's ``num_batches_tracked``) are taken from the first member."""
    w = torch.tensor([1.0] * len(states) if weights is None else [float(v) for v in weights], dtype=torch.float64)
    w = w / w.sum()
    out = {}
    for key, first in states[0].items():
        if not torch.is_floating_point(first):
            out[key] = first.clone()
            continue
        total = sum(wk * s[key].double() for wk, s in zip(w, states))
        out[key] = total.to(first.dtype)
    return out


class ModelSoup(RestorationModule):
    """:param net: the members' architecture (``model/`` group), into which the soup is loaded.
    :param member_checkpoints: M >= 2 single-model checkpoints of that architecture.
    :param recipe: ``uniform``, ``greedy`` or ``weighted``.
    :param weights: one weight per member (``weighted``).
    :param bn_batches: training batches to recompute BatchNorm statistics on (0: keep the average).
    :param warn_drop_db: warn when the soup's validation PSNR is this far below the members' mean
        (the sign that members do not share an initialisation).
    """

    label = "soup"
    provenance = ("member_checkpoints",)

    def components(self) -> dict[str, nn.Module]:
        return {"net": self.net}

    def strategy(self) -> str:
        return self.recipe

    def __init__(self, net: nn.Module, member_checkpoints: Sequence[str] | None = None, recipe: str = "uniform",
                 weights: Sequence[float] | None = None, bn_batches: int = 50, warn_drop_db: float = 1.0,
                 y_channel: bool = False, crop_border: int = 0) -> None:
        super().__init__(y_channel=y_channel, crop_border=crop_border)
        members = list(member_checkpoints or [])
        check(len(members) >= 2, "approach.member_checkpoints",
              f"a soup needs at least 2 member checkpoints, got {len(members)}")
        check(recipe in RECIPES, "approach.recipe", f"must be one of {RECIPES}, got {recipe!r}")
        if recipe == "weighted":
            check(weights is not None and len(weights) == len(members) and all(float(v) >= 0 for v in weights)
                  and sum(float(v) for v in weights) > 0, "approach.weights",
                  f"recipe=weighted needs {len(members)} weights >= 0 with a positive sum, got {weights}")
        check(int(bn_batches) >= 0, "approach.bn_batches", f"must be >= 0, got {bn_batches}")
        self.net = net
        self.member_checkpoints, self.recipe = members, recipe
        self.weights = None if weights is None else [float(v) for v in weights]
        self.bn_batches, self.warn_drop_db = int(bn_batches), float(warn_drop_db)
        self.automatic_optimization = False  # nothing is trained: the "training" epoch only refreshes BatchNorm
        self.report: dict = {}
        self._momenta: list = []

    def forward(self, source: torch.Tensor) -> torch.Tensor:
        return self.net(source)

    # ---- building the soup (fit) ---------------------------------------------------------------
    def load_member_states(self) -> list[dict[str, torch.Tensor]]:
        """Each member's ``net.*`` weights, checked against this architecture (one line per problem)."""
        return [net_state(path, self.net, f"approach.member_checkpoints[{i}]")
                for i, path in enumerate(self.member_checkpoints)]

    @torch.no_grad()
    def validation_psnr(self, state: dict[str, torch.Tensor], loader) -> float:
        """Mean validation PSNR of ``net`` with these weights (eval mode)."""
        self.net.load_state_dict(state)
        was_training = self.training
        self.eval()
        values = []
        for batch in loader:
            out = self.restore(batch["source"].to(self.device))["main"]
            ev = self.evaluator
            values.append(psnr_per_image(prepare_for_metrics(out, ev.y_channel, ev.crop_border),
                                         prepare_for_metrics(batch["target"].to(self.device), ev.y_channel,
                                                             ev.crop_border)))
        self.train(was_training)
        return float(torch.cat(values).mean())

    def build_soup(self, val_loader) -> dict:
        states = self.load_member_states()
        scores = [self.validation_psnr(s, val_loader) for s in states]
        if self.recipe == "greedy":
            order = sorted(range(len(states)), key=lambda i: -scores[i])
            chosen, best = [order[0]], scores[order[0]]
            for i in order[1:]:
                candidate = self.validation_psnr(average_states([states[j] for j in chosen + [i]]), val_loader)
                if candidate >= best:
                    chosen, best = chosen + [i], candidate
            soup, weights = average_states([states[j] for j in chosen]), [1.0 if i in chosen else 0.0
                                                                        for i in range(len(states))]
        else:
            weights = self.weights if self.recipe == "weighted" else [1.0] * len(states)
            soup = average_states(states, weights)
        soup_psnr = self.validation_psnr(soup, val_loader)
        self.net.load_state_dict(soup)
        report = {"recipe": self.recipe, "member_val_psnr": scores, "weights": weights, "soup_val_psnr": soup_psnr}
        mean_member = sum(scores) / len(scores)
        if soup_psnr < mean_member - self.warn_drop_db:
            warnings.warn(f"approach.member_checkpoints: the soup's validation PSNR ({soup_psnr:.2f} dB) is "
                          f"{mean_member - soup_psnr:.2f} dB below the members' mean ({mean_member:.2f} dB): "
                          "the members probably do not share an initialisation (fine-tune them from one "
                          "checkpoint with member_init=CKPT)", stacklevel=2)
        log.info("soup (%s): member val PSNR %s -> soup %.3f dB", self.recipe,
                 ", ".join(f"{s:.3f}" for s in scores), soup_psnr)
        return report

    def _batchnorms(self) -> list[nn.modules.batchnorm._BatchNorm]:
        return [m for m in self.net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def on_fit_start(self) -> None:
        self.report = self.build_soup(self.trainer.datamodule.val_dataloader())
        self._momenta = [m.momentum for m in self._batchnorms()]
        recompute = self.bn_batches if self._momenta else 0
        self.report["bn_batches"] = recompute
        if recompute:
            for m in self._batchnorms():  # cumulative statistics over the recompute batches
                m.reset_running_stats()
                m.momentum = None
        # one pass of that many batches (read by Lightning when it sets up the training data)
        self.trainer.limit_train_batches = max(1, recompute)

    def training_step(self, batch: dict, batch_idx: int) -> None:
        if self.report.get("bn_batches"):
            with torch.no_grad():
                self.net(batch["source"])  # train mode: BatchNorm accumulates statistics
        # a zero-learning-rate step without gradients changes nothing, and counts as a step so that
        # Lightning's checkpointing saves the soup (it skips runs that took no step)
        self.optimizers().step()

    def on_train_epoch_end(self) -> None:
        for m, momentum in zip(self._batchnorms(), self._momenta):
            m.momentum = momentum
        self.trainer.should_stop = True  # one pass builds the soup: no further epochs
        self.log_dict({f"val/soup_member{i}_psnr": torch.tensor(v) for i, v in
                       enumerate(self.report.get("member_val_psnr", []))} | {
            "train/members_in_soup": torch.tensor(float(sum(w > 0 for w in self.report.get("weights", []))))})

    def configure_optimizers(self):
        return torch.optim.SGD(self.net.parameters(), lr=0.0)
