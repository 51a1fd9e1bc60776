import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("FUSIONLAB_ROOT", str(ROOT))
os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_DIR", "/tmp")

import fusionlab.utils.hydra  # noqa: E402,F401  (registers config resolvers)


@pytest.fixture(autouse=True)
def _clear_hydra():
    from hydra.core.global_hydra import GlobalHydra

    yield
    GlobalHydra.instance().clear()
