"""fusionlab uses two private Lightning APIs on purpose; these tests fail loudly when Lightning
changes them, naming what to revisit (instead of a silent change of behaviour).

- ``subprocess_script._hydra_subprocess_cmd`` (utils/ddp_child.py): replaced so that DDP children of a
  Hydra multirun job run that job, not a new sweep.
- ``Trainer._logger_connector.should_update_logs`` (approaches/adversarial.py): GAN step values are
  logged at the loggers' cadence (logging ~10 terms every batch cost 7% of a small GAN step).
"""

import inspect

import lightning as L


def test_hydra_subprocess_cmd_still_exists_with_our_signature():
    from lightning.pytorch.strategies.launchers import subprocess_script

    from fusionlab.utils.ddp_child import install_ddp_child_command, job_subprocess_cmd

    original = getattr(subprocess_script, "_hydra_subprocess_cmd", None)
    assert original is not None, "Lightning removed _hydra_subprocess_cmd: revisit utils/ddp_child.py"
    assert list(inspect.signature(original).parameters) == ["local_rank"], "its signature changed"
    assert "= _hydra_subprocess_cmd(local_rank)" in inspect.getsource(subprocess_script), \
        "the launcher no longer calls it by module attribute: the replacement would be ignored"
    try:
        install_ddp_child_command()
        assert subprocess_script._hydra_subprocess_cmd is job_subprocess_cmd
    finally:
        subprocess_script._hydra_subprocess_cmd = original


def test_logger_connector_should_update_logs_still_exists(tmp_path):
    trainer = L.Trainer(default_root_dir=tmp_path, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    connector = getattr(trainer, "_logger_connector", None)
    assert connector is not None, "Lightning renamed Trainer._logger_connector: revisit approaches/adversarial.py"
    assert isinstance(type(connector).should_update_logs, property), "should_update_logs is no longer a property"
