"""Evaluate a checkpoint: ``python evaluate.py ckpt_path=RUN/checkpoints/best.ckpt [overrides]``."""

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from fusionlab.cli import run, setup_environment
from fusionlab.utils.hydra import eval_overrides

setup_environment(__file__)
sys.argv[1:] = eval_overrides(sys.argv[1:])  # data.KEY=... apply to the checkpoint's config (conf/eval.yaml)

from fusionlab.pipeline import evaluate  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    hc = HydraConfig.get()
    run(evaluate, cfg, list(hc.overrides.task), set(hc.runtime.choices))


if __name__ == "__main__":
    main()
