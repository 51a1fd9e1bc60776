"""One home for reading fusionlab checkpoints: the file itself (one-line errors naming it and the
config key that pointed to it), the run config saved inside, the weights of one part (a single
model's ``net.*``, a generator's) checked against the network they go into, and the check that a
checkpoint can resume a model. Writing is :mod:`fusionlab.utils.checkpoint_io` (atomic)."""

from pathlib import Path

import torch
from torch import nn

from fusionlab.utils.errors import DataError

#: where the run's composed config lives inside a checkpoint (``callbacks.checkpoint_config``)
CONFIG_KEY = "fusionlab_config"


def read_checkpoint(path: str | Path, key: str = "ckpt_path", what: str = "checkpoint file") -> dict:
    """A Lightning checkpoint as a dict (memory-mapped, on the CPU).

    :raises DataError: naming the file and ``key`` when it is missing, unreadable or not a checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, f"{what} does not exist", key)
    problem, ckpt = _load(path)
    if problem:
        raise DataError(path, f"cannot read {what}: {problem}", key)
    return ckpt


def _load(path: Path) -> tuple[str | None, dict | None]:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as exc:  # noqa: BLE001 - truncated zips raise RuntimeError, pickles EOFError, ...
        return f"truncated or corrupt ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})", None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        return "not a Lightning checkpoint (no state_dict)", None
    return None, ckpt


def checkpoint_problem(path: Path) -> str | None:
    """None when ``path`` is a readable Lightning checkpoint, else what is wrong with it."""
    return _load(Path(path))[0]


def saved_config(ckpt: dict) -> dict:
    """The run config a fusionlab checkpoint carries (empty for a foreign checkpoint)."""
    return ckpt.get(CONFIG_KEY) or {}


def load_checkpoint_config(ckpt_path: str | Path):
    """The run config saved inside a fusionlab checkpoint, as an OmegaConf node.

    :raises DataError: naming the file when it is missing, unreadable or not fusionlab's.
    """
    from omegaconf import OmegaConf

    ckpt = read_checkpoint(ckpt_path)
    if CONFIG_KEY not in ckpt:
        raise DataError(ckpt_path, "not a fusionlab checkpoint (it holds no saved run config)", "ckpt_path")
    return OmegaConf.create(ckpt[CONFIG_KEY])


def part_state(ckpt: dict, prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The weights under the first of ``prefixes`` that the checkpoint has, prefix removed."""
    state = ckpt.get("state_dict", {})
    for prefix in prefixes:
        found = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if found:
            return found
    return {}


def check_fits(state: dict[str, torch.Tensor], net: nn.Module, path: str | Path, key: str, name: str = "") -> None:
    """Refuse weights that do not fit ``net`` (missing, unexpected or differently shaped tensors)."""
    reference = net.state_dict()
    missing, extra = sorted(set(reference) - set(state)), sorted(set(state) - set(reference))
    shapes = [k for k in reference if k in state and state[k].shape != reference[k].shape]
    if missing or extra or shapes:
        what = (f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}" if extra
                else f"shape of {shapes[0]} is {tuple(state[shapes[0]].shape)}, not {tuple(reference[shapes[0]].shape)}")
        if name:
            raise DataError(path, f"weights do not fit member {name} ({type(net).__name__}): {what}", key)
        raise DataError(path, f"not of this architecture ({type(net).__name__}): {what}", key)


def net_state(path: str | Path, net: nn.Module, key: str, name: str = "") -> dict[str, torch.Tensor]:
    """The ``net.*`` weights of a single-model checkpoint, checked against ``net``'s architecture.

    :raises DataError: naming the file and ``key`` (missing, not a single model, other architecture).
    """
    state = part_state(read_checkpoint(path, key), ("net.",))
    if not state:
        raise DataError(path, "not a single-model checkpoint (no net.* weights)", key)
    check_fits(state, net, path, key, name)
    return state


def generator_state(path: str | Path, key: str, net: nn.Module | None = None, name: str = "") -> dict[str, torch.Tensor]:
    """The inference generator's weights of a generation checkpoint: a GAN's EMA copy when present,
    else its ``generator`` (a VAE's decoder); checked against ``net`` when given."""
    state = part_state(read_checkpoint(path, key, "member checkpoint"), ("ema.module.", "generator."))
    if not state:
        raise DataError(path, "not a generation checkpoint (no generator.* or ema.module.* weights)", key)
    if net is not None:
        check_fits(state, net, path, key, name)
    return state


def check_resumable(ckpt_path: str, model: nn.Module, task_target: str | None) -> None:
    """Refuse to resume ``model`` from a checkpoint of another architecture or task (one line naming
    the file and the first mismatch), before Lightning's state_dict traceback."""
    ckpt = read_checkpoint(ckpt_path)
    saved_task = str((saved_config(ckpt).get("task") or {}).get("_target_", "") or "")
    if task_target and saved_task and saved_task != task_target:
        raise DataError(ckpt_path, f"was trained for task {saved_task.rsplit('.', 1)[-1]}, this run is "
                        f"{task_target.rsplit('.', 1)[-1]}: resume a checkpoint of this run", "ckpt_path")
    problem = architecture_mismatch(ckpt["state_dict"], model)
    if problem:
        raise DataError(ckpt_path, f"is a checkpoint of another architecture ({problem}): resume a "
                        "checkpoint of this run, or start from weights with member_init=CKPT", "ckpt_path")


def architecture_mismatch(state: dict[str, torch.Tensor], model: nn.Module) -> str | None:
    """How a checkpoint's ``state_dict`` does not fit ``model`` (counts and the first mismatch), or None."""
    mine = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in state.items()}
    missing, unexpected = sorted(set(mine) - set(theirs)), sorted(set(theirs) - set(mine))
    wrong = sorted(k for k in set(mine) & set(theirs) if mine[k] != theirs[k])
    if not (missing or unexpected or wrong):
        return None
    first = (f"{wrong[0]} is {theirs[wrong[0]]} there, {mine[wrong[0]]} here" if wrong else
             f"{(missing or unexpected)[0]} is {'missing' if missing else 'not in this model'}")
    return f"{len(missing)} weights missing, {len(unexpected)} unexpected, {len(wrong)} of another shape; {first}"
