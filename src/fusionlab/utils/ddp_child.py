"""DDP inside a Hydra job: the command Lightning starts its child processes with.

Lightning's launcher re-runs ``sys.argv`` under Hydra; inside a multirun that would start a new sweep
in every child. :func:`job_subprocess_cmd` gives the children the job's own overrides and
``hydra.run.dir`` = the job's folder; :func:`install_ddp_child_command` points Lightning at it
(a private Lightning hook, guarded by ``tests/test_lightning_private_api.py``).
"""

from __future__ import annotations

import json
import os
import sys

ENTRY_ENV = "FUSIONLAB_ENTRY"  # JSON list: entry script + --config-* arguments
# Hydra overrides a DDP child must not inherit: it is one plain run in the job's folder.
_CHILD_DROPS = ("hydra.run.", "hydra.sweep.", "hydra.sweeper", "hydra/sweeper", "hydra.launcher",
                "hydra/launcher", "hydra.mode", "hydra.job.name", "hydra.output_subdir", "hydra.callbacks")


def job_subprocess_cmd(local_rank: int) -> tuple[list[str], str]:
    """Command and cwd for DDP process ``local_rank`` of the current Hydra job (run or multirun)."""
    import __main__
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd, to_absolute_path

    hc = HydraConfig.get()
    if ENTRY_ENV in os.environ:  # set by train.py / evaluate.py at start (cli.setup_environment)
        command = [sys.executable, *json.loads(os.environ[ENTRY_ENV])]
    elif __main__.__spec__ is None:
        command = [sys.executable, to_absolute_path(sys.argv[0]), *config_location_args(sys.argv[1:])]
    else:
        command = [sys.executable, "-m", __main__.__spec__.name, *config_location_args(sys.argv[1:])]
    command += [o for o in hc.overrides.hydra if not o.lstrip("~+").startswith(_CHILD_DROPS)]
    command += list(hc.overrides.task)
    command += [f'hydra.run.dir="{hc.runtime.output_dir}"', f"hydra.job.name=train_ddp_process_{local_rank}",
                "hydra.output_subdir=null"]
    return command, get_original_cwd()


def config_location_args(argv: list[str]) -> list[str]:
    """``--config-name/-cn``, ``--config-path/-cp``, ``--config-dir/-cd`` from the command line."""
    flags = {"--config-name", "-cn", "--config-path", "-cp", "--config-dir", "-cd"}
    kept, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg in flags and i + 1 < len(argv):
            kept += argv[i:i + 2]
            i += 2
            continue
        if arg.split("=", 1)[0] in flags:
            kept.append(arg)
        i += 1
    return kept


def install_ddp_child_command() -> None:
    """Point Lightning's script launcher at :func:`job_subprocess_cmd` (idempotent)."""
    from lightning.pytorch.strategies.launchers import subprocess_script

    subprocess_script._hydra_subprocess_cmd = job_subprocess_cmd
