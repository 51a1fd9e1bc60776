"""Train an approach: ``python train.py [experiment=NAME] [group=option] [key=value ...]``."""

import hydra
from omegaconf import DictConfig

from fusionlab.cli import run, setup_environment
from fusionlab.utils.jobs import objective

setup_environment(__file__)

from fusionlab.pipeline import train  # noqa: E402  (registers config resolvers)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics = run(train, cfg)
    return objective(metrics, cfg.get("optimized_metric"))  # None: failed job


if __name__ == "__main__":
    main()
