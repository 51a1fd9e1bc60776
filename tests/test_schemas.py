"""Typed data/task keys (fusionlab/schemas.py): converted like users write them, refused in one line
naming the key otherwise (the fuzz tests cover random values; these pin the rules)."""

import pytest

from fusionlab.utils.errors import ConfigError
from fusionlab.utils.hydra import instantiate
from tests.helpers import compose_cfg


@pytest.mark.parametrize("override,message", [
    ("data.patch_size=abc", "data.patch_size: must be an integer >= 8, got 'abc'"),
    ("data.patch_size=4", "data.patch_size: must be an integer >= 8, got 4"),
    ("data.batch_size=null", "data.batch_size: must be an integer >= 1, got None"),
    ("data.channels=2", "data.channels: must be one of 1, 3, got 2"),
    ("data.gray=lab", "data.gray: must be one of luma, y, got 'lab'"),
    ("data.augment=maybe", "data.augment: must be true or false, got 'maybe'"),
    ("data.num_workers=1.5", "data.num_workers: must be an integer >= 0, got 1.5"),
])
def test_bad_data_values_name_the_key(tmp_path, override, message):
    cfg = compose_cfg(tmp_path, [override])
    with pytest.raises(ConfigError) as err:
        instantiate(cfg.data, "data", task=None)
    assert str(err.value) == message


def test_values_are_converted_as_users_write_them(tmp_path):
    cfg = compose_cfg(tmp_path, ["data.patch_size=40.0", "data.batch_size='3'", "data.augment=false"])
    dm = instantiate(cfg.data, "data", task=instantiate(cfg.task, "task"))
    assert (dm.patch_size, dm.batch_size, dm.augment) == (40, 3, False)
    assert type(dm.patch_size) is int


@pytest.mark.parametrize("overrides,message", [
    (["task=superres", "task.scale=1"], "task.scale: must be an integer >= 2, got 1"),
    (["task=superres", "task.method=lanczos"], "task.method: must be one of matlab, torch, got 'lanczos'"),
    (["task=style", "data.test_pairs=0"], "data.test_pairs: must be an integer >= 1 or null, got 0"),
    (["task=generate", "data.image_size=x"], "data.image_size: must be an integer >= 8, got 'x'"),
])
def test_bad_task_and_unpaired_values_name_the_key(tmp_path, overrides, message):
    cfg = compose_cfg(tmp_path, overrides)
    with pytest.raises(ConfigError) as err:
        instantiate(cfg.data, "data", task=instantiate(cfg.task, "task"))
    assert str(err.value) == message


def test_style_test_pairs_may_be_null(tmp_path):
    cfg = compose_cfg(tmp_path, ["task=style", "data.test_pairs=null"])
    assert instantiate(cfg.data, "data", task=None).test_pairs is None
