"""Train an approach: ``python train.py [experiment=NAME] [group=option] [key=value ...]``."""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from fusionlab.cli import run, setup_environment

setup_environment(Path(__file__).parent)

from fusionlab.pipeline import train  # noqa: E402  (registers config resolvers)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics = run(train, cfg)
    return metrics.get(cfg.get("optimized_metric")) if metrics else None


if __name__ == "__main__":
    main()
