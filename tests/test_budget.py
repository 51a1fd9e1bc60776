"""budget=time: training for a number of training minutes (validation not counted), a cosine
learning rate over the budget, checkpoints at minute marks, resumable time."""

import math

import lightning as L
import pytest
import torch
from torch import nn

from fusionlab.callbacks import budget as budget_mod
from fusionlab.callbacks.budget import TrainingBudget, cosine_factor, mark_name
from fusionlab.utils.errors import ConfigError


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Tiny(L.LightningModule):
    """Each training step takes 6 s of the fake clock, each validation step 100 s."""

    def __init__(self, clock, scheduler=False):
        super().__init__()
        self.net, self.clock, self.scheduler = nn.Linear(2, 1), clock, scheduler
        self.lrs = []

    def training_step(self, batch, idx):
        self.lrs.append(self.trainer.optimizers[0].param_groups[0]["lr"])
        self.clock.now += 6.0
        return self.net(batch[0]).pow(2).mean()

    def validation_step(self, batch, idx):
        self.clock.now += 100.0

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.1)
        if self.scheduler:
            return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, 1)}
        return opt


def loader(n):
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(n, 2)), batch_size=1)


def fit(tmp_path, monkeypatch, callback, module=None, max_epochs=100, ckpt_path=None):
    clock = FakeClock()
    monkeypatch.setattr(budget_mod.time, "perf_counter", clock)
    module = module or Tiny(clock)
    module.clock = clock
    trainer = L.Trainer(max_epochs=max_epochs, callbacks=[callback], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        default_root_dir=tmp_path)
    trainer.fit(module, loader(4), loader(2), ckpt_path=ckpt_path)
    return trainer, module


def test_cosine_factor():
    assert cosine_factor(0.0) == 1.0 and cosine_factor(1.0) == pytest.approx(0.0, abs=1e-12)
    assert cosine_factor(0.5) == pytest.approx(0.5) and cosine_factor(2.0) == pytest.approx(0.0, abs=1e-12)


def test_budget_stops_after_its_training_minutes_and_does_not_count_validation(tmp_path, monkeypatch):
    cb = TrainingBudget(minutes=1.0, eta_min=0.0, marks=[0.5], dirpath=str(tmp_path / "ckpt"))
    trainer, module = fit(tmp_path, monkeypatch, cb)
    # 10 steps of 6 s = 60 s; the 200 s of validation after each 4-step epoch are not training time
    assert trainer.global_step == 10
    assert cb.training_seconds() == pytest.approx(60.0)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [mark_name(0.5), mark_name(1.0)]
    half = torch.load(tmp_path / "ckpt" / mark_name(0.5), weights_only=False)
    assert half["global_step"] == 5  # saved after the step that reached 30 s
    # the learning rate of step k follows the cosine over the budget, at k * 6 s of training
    expected = [0.1 * 0.5 * (1 + math.cos(math.pi * 6 * k / 60)) for k in range(10)]
    assert module.lrs == pytest.approx(expected)


def test_budget_refuses_an_approach_scheduler_and_bad_values(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"^callbacks.budget.cosine: .*approach.scheduler=null"):
        fit(tmp_path, monkeypatch, TrainingBudget(minutes=1.0), module=Tiny(FakeClock(), scheduler=True))
    with pytest.raises(ConfigError, match="^callbacks.budget.minutes"):
        TrainingBudget(minutes=0)
    with pytest.raises(ConfigError, match="^callbacks.budget.marks"):
        TrainingBudget(minutes=1, marks=[2])


def test_resumed_run_keeps_the_time_it_had_spent(tmp_path, monkeypatch):
    cb = TrainingBudget(minutes=1.0, cosine=False)
    trainer, _ = fit(tmp_path, monkeypatch, cb, max_epochs=1)  # 4 steps: 24 s
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    resumed = TrainingBudget(minutes=1.0, cosine=False)
    trainer, _ = fit(tmp_path, monkeypatch, resumed, ckpt_path=str(tmp_path / "last.ckpt"))
    assert trainer.global_step == 10 and resumed.training_seconds() == pytest.approx(60.0)
