"""The validation/test hooks of every approach, written once.

An approach subclasses :class:`EvaluatedModule`, builds its task's evaluator in ``__init__``
(``self.evaluator = RestorationEvaluator(...)``) and implements ``eval_outputs(batch)``: its named
output images (``main`` is the approach's image; ensembles add ``member0`` ...). Optionally
``derived_metrics(stage, values)`` adds epoch metrics computed from the others (fusion gain).
Nothing else about evaluation lives in an approach.
"""

import time
from typing import ClassVar

import lightning as L
import torch
from torch import nn
from torchmetrics import MaxMetric, MinMetric

from fusionlab.evaluation.base import Evaluator


class EvaluatedModule(L.LightningModule):
    """Base LightningModule of every approach: evaluation hooks, per-image records, best value.

    ``val/<metric>_best`` (the evaluator's ``best``) is a persistent metric state: it is saved in
    checkpoints, so a resumed run (``ckpt_path=last|auto``) reports the same best value as an
    uninterrupted one.
    """

    evaluator: Evaluator
    evaluating: bool = False  # True while an evaluation step computes its outputs
    #: the approach's one name: its config group (``approach=NAME``), its W&B tag, its report label
    label: ClassVar[str] = ""
    #: approach config keys that say where its weights came from (member checkpoints), not what it
    #: computes: the report does not count them as settings
    provenance: ClassVar[tuple[str, ...]] = ()

    # ---- what it is (written into the run records, read by the report) -----------------------
    def components(self) -> dict[str, nn.Module]:
        """Its named networks (members, branches, generators, discriminator)."""
        return {}

    def strategy(self) -> str:
        """How it fuses (the fusion operator, a soup recipe); ``-`` when it does not."""
        fusion = getattr(self, "fusion", None)
        return type(fusion).__name__.lower() if isinstance(fusion, nn.Module) else "-"

    def description(self) -> dict:
        """``{"label", "class", "strategy", "components": {name: class}, "provenance": [...]}``."""
        return {"label": self.label or type(self).__name__, "class": type(self).__name__, "strategy": self.strategy(),
                "components": {name: type(m).__name__ for name, m in self.components().items()},
                "provenance": [f"approach.{key}" for key in self.provenance]}

    def set_evaluator(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator
        if evaluator.best is not None:
            metric, mode = evaluator.best
            self.val_best = MaxMetric() if mode == "max" else MinMetric()
            self.val_best.persistent(True)
            self.best_key = f"val/{metric}"

    def set_tta(self, mode: str = "none", fusion: str = "mean") -> None:
        """Test-time flips and rotations: restoration approaches only (they override this)."""
        from fusionlab.fusion.self_ensemble import check_tta
        from fusionlab.utils.errors import ConfigError

        check_tta(mode, fusion)
        if mode != "none":
            raise ConfigError("tta", f"test-time flips and rotations change what a {self.evaluator.task} output "
                                     "means; only restoration approaches accept tta (use tta=none)")

    # ---- contract for subclasses ----------------------------------------------------------
    def eval_outputs(self, batch: dict) -> dict[str, torch.Tensor]:
        """The approach's named output images for an evaluation batch; ``main`` is its image."""
        raise NotImplementedError

    def derived_metrics(self, stage: str, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Metrics computed from the epoch's values (e.g. fusion gain); none by default."""
        return {}

    @property
    def test_records(self) -> list[dict]:
        """Per-image records of the last test epoch (``{"image": name, metric: value, ...}``)."""
        return self.evaluator.records

    # ---- hooks ----------------------------------------------------------------------------
    def _eval_step(self, batch: dict, stage: str) -> dict:
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        self.evaluating = True  # fusion weights are metered for evaluation batches only (not predict)
        try:
            with torch.no_grad():
                outputs = self.eval_outputs(batch)
        finally:
            self.evaluating = False
        if cuda:
            torch.cuda.synchronize(self.device)
        first = next(iter(outputs.values()))
        ms = 1000.0 * (time.perf_counter() - start) / max(1, first.shape[0])
        with torch.no_grad():
            return self.evaluator.update(stage, batch, outputs, self, ms=ms)

    def _epoch_end(self, stage: str) -> dict[str, torch.Tensor]:
        values = self.evaluator.compute(stage)
        values.update(self.derived_metrics(stage, values))
        if stage == "val" and hasattr(self, "val_best") and self.best_key in values \
                and not self.trainer.sanity_checking:
            self.val_best.update(values[self.best_key])
            values[f"{self.best_key}_best"] = self.val_best.compute()
        if values:
            self.log_dict(values, prog_bar=False, sync_dist=False)  # torchmetrics states are synced
        return values

    def on_validation_epoch_start(self) -> None:
        self.evaluator.start("val", self, getattr(self.trainer, "datamodule", None))

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        return self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._epoch_end("val")

    def on_test_epoch_start(self) -> None:
        self.evaluator.reset_records()
        self.evaluator.start("test", self, getattr(self.trainer, "datamodule", None))

    def test_step(self, batch: dict, batch_idx: int) -> dict:
        return self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._epoch_end("test")
        self.evaluator.gather_records()
