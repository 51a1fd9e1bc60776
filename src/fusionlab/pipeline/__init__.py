"""The run pipeline behind the thin entry points ``train.py`` and ``evaluate.py``:

* :mod:`~fusionlab.pipeline.builders`: config to data module, approach, Trainer; the model's cost;
* :mod:`~fusionlab.pipeline.train`: fit, test the best checkpoint, ``metrics.json``;
* :mod:`~fusionlab.pipeline.evaluate`: a checkpoint on test data (``eval.json``) or your own images;
* :mod:`~fusionlab.pipeline.compare`: the comparison report of several runs;
* :mod:`~fusionlab.pipeline.wandb_run`: W&B settings, logged config and tables.
"""

from fusionlab.pipeline.builders import build, build_trainer, model_cost
from fusionlab.pipeline.compare import compare
from fusionlab.pipeline.evaluate import (
    RUNTIME_KEYS,
    evaluate,
    load_checkpoint_config,
    merge_eval_config,
    predict,
    saved_metrics,
)
from fusionlab.pipeline.train import train
from fusionlab.pipeline.wandb_run import finish_wandb

__all__ = ["RUNTIME_KEYS", "build", "build_trainer", "compare", "evaluate", "finish_wandb", "load_checkpoint_config",
           "merge_eval_config", "model_cost", "predict", "saved_metrics", "train"]
