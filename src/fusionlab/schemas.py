"""Typed schemas of the ``data`` and ``task`` config nodes (OmegaConf structured configs).

Each dataclass declares the type of every numeric, boolean and choice argument of one data module or
task, with its bounds (``metadata={"min": ...}``) or allowed values (``metadata={"choices": ...}``).
The constructors pass their arguments through :func:`checked`, which merges them into the schema, so
a string, a fraction, a null or an out-of-range number stops with one line naming the key
(``data.patch_size: must be an integer >= 8, got 'abc'``) before it reaches torch, whether the object
comes from a config or from Python. Arguments a schema does not declare (folders, image lists) are
not touched; cross-key rules (``samples_per_epoch >= batch_size``) stay in the data modules.

Deliberately not Hydra's ConfigStore schema-in-defaults pattern: that validates while composing,
where a wrong value surfaces as Hydra's multi-line composition error before fusionlab can name the
key, a test or notebook composing a config would fail before it could catch a
:class:`~fusionlab.utils.errors.ConfigError`, and objects built in Python would go unchecked. The
same OmegaConf type rules apply here, one step later.
"""

from dataclasses import dataclass, field, fields
from types import SimpleNamespace
from typing import Any, Optional

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fusionlab.utils.errors import ConfigError

GRAY_MODES = ("luma", "y")  # RGB -> gray: BT.601 luma, or Y of YCbCr (the SR convention)


def _int(default: Any, minimum: int | None = None, maximum: int | None = None) -> Any:
    meta = {} if minimum is None else {"min": minimum}
    return field(default=default, metadata=meta if maximum is None else {**meta, "max": maximum})


def _choice(default: Any, *choices: Any) -> Any:
    return field(default=default, metadata={"choices": choices})


@dataclass
class LoaderSchema:
    """Loader keys every data module has."""

    batch_size: int = _int(32, 1)
    eval_batch_size: int = _int(1, 1)
    samples_per_epoch: int = _int(4000, 1)
    num_workers: int = _int(0, 0)
    pin_memory: bool = False
    augment: bool = True
    channels: int = _choice(1, 1, 3)


@dataclass
class ImageDataSchema(LoaderSchema):
    """``fusionlab.data.ImageDataModule`` (``conf/data/base.yaml``, ``skimage``, ``folder``)."""

    patch_size: int = _int(48, 8)
    cache_images: bool = True
    skip_bad_files: bool = False
    gray: str = _choice("luma", *GRAY_MODES)


@dataclass
class StyleDataSchema(LoaderSchema):
    """``fusionlab.data.StyleDataModule`` (``conf/data/style.yaml``)."""

    patch_size: int = _int(128, 16)
    load_size: int = _int(256, 1)
    eval_size: int = _int(256, 16)
    val_pairs: int = _int(8, 1)
    test_pairs: Optional[int] = _int(None, 1)


@dataclass
class GenerationDataSchema(LoaderSchema):
    """``fusionlab.data.GenerationDataModule`` (``conf/data/faces.yaml``)."""

    image_size: int = _int(32, 8)
    val_samples: int = _int(200, 1)
    test_samples: int = _int(1000, 1)


@dataclass
class NoiseSchema:
    """``fusionlab.tasks.GaussianNoise`` (``conf/task/denoise.yaml``); ``sigma`` is a number or
    ``[lo, hi]``, checked by the task itself (OmegaConf has no union of a float and a list)."""

    clip: bool = False
    eval_seed: int = 0


@dataclass
class SuperResolutionSchema:
    """``fusionlab.tasks.BicubicDownscale`` (``conf/task/superres.yaml``)."""

    scale: int = _int(2, 2)
    quantize: bool = True
    method: str = _choice("matlab", "matlab", "torch")
    eval_seed: int = 0


@dataclass
class UnpairedTaskSchema:
    """``fusionlab.tasks.StyleTransfer`` / ``Generation``."""

    eval_seed: int = 0


_KINDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _requirement(f) -> str:
    kind = f.type.__args__[0] if getattr(f.type, "__args__", None) else f.type
    if "choices" in f.metadata:
        return "must be one of " + ", ".join(str(c) for c in f.metadata["choices"])
    bound = f" >= {f.metadata['min']}" if "min" in f.metadata else ""
    if "max" in f.metadata:
        bound = f" in [{f.metadata.get('min', '-inf')}, {f.metadata['max']}]"
    optional = " or null" if getattr(f.type, "__args__", None) else ""
    return f"must be {_KINDS.get(kind, kind)}{bound}{optional}"


def checked(schema: type, key: str, **values: Any) -> SimpleNamespace:
    """``values`` (a data module's or task's constructor arguments) type-checked and converted by
    ``schema`` (``"32"`` -> 32; ``32.0`` -> 32, as users write it), with bounds and choices checked,
    so Hydra-built and Python-built objects are validated alike.

    :raises ConfigError: ``<key>.<name>: must be ...``, one line.
    """
    declared = {f.name: f for f in fields(schema)}
    out = {}
    for name, value in values.items():
        f = declared[name]
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value, resolve=True)
        if f.type is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        try:
            typed = OmegaConf.merge(OmegaConf.structured(schema), {name: value})[name]
        except OmegaConfBaseException:
            raise ConfigError(f"{key}.{name}" if key else name, f"{_requirement(f)}, got {value!r}") from None
        meta = f.metadata
        if typed is not None and (("min" in meta and typed < meta["min"]) or ("max" in meta and typed > meta["max"])
                                  or ("choices" in meta and typed not in meta["choices"])):
            raise ConfigError(f"{key}.{name}" if key else name, f"{_requirement(f)}, got {value!r}")
        out[name] = typed
    return SimpleNamespace(**out)


@dataclass
class TrainerSchema:
    """The numeric keys of ``conf/trainer/*.yaml`` that Lightning would otherwise reject with a bare
    ``AssertionError`` or a traceback (``trainer.max_epochs=abc``). ``limit_*_batches`` (an int or
    a fraction) and ``precision`` (an int or a string) are Lightning's own to check."""

    max_epochs: Optional[int] = _int(None, -1)
    min_epochs: Optional[int] = _int(None, 0)
    max_steps: int = _int(-1, -1)
    num_nodes: int = _int(1, 1)
    check_val_every_n_epoch: Optional[int] = _int(1, 1)
    log_every_n_steps: int = _int(10, 1)
    num_sanity_val_steps: int = _int(0, -1)
    accumulate_grad_batches: int = _int(1, 1)
    benchmark: Optional[bool] = None
    sync_batchnorm: bool = False
    enable_progress_bar: bool = True


@dataclass
class RunOptionsSchema:
    """Top-level options of ``train.py`` and ``evaluate.py`` (those a config file does not check)."""

    seed: int = _int(0, 0, 2**32 - 1)  # what NumPy's seeding accepts (Lightning's seed_everything)
    tta: str = _choice("none", "none", "flip", "x8")
    tta_fusion: str = _choice("mean", "mean", "median")
    overwrite: bool = False
    test: bool = True
    tile: Optional[int] = _int(None, 1)
    overlap: int = _int(64, 0)
    samples: int = _int(16, 1)
    predict_seed: int = _int(0, 0, 2**32 - 1)
    interpolations: int = _int(0, 0)


# optimizer keys that must be numbers in a range (torch would raise ``Invalid learning rate: -1``)
_OPTIMIZER_BOUNDS = {"lr": (0.0, False), "weight_decay": (0.0, True), "eps": (0.0, False), "momentum": (0.0, True)}


def check_run_options(cfg: Any) -> None:
    """Type-check ``trainer.*``, the run's top-level options and every optimizer's ``lr`` /
    ``weight_decay`` / ``eps`` / ``momentum`` / ``betas`` in ``approach`` before anything is built.

    :raises ConfigError: one line naming the key.
    """
    if cfg.get("trainer") is not None:
        declared = {f.name for f in fields(TrainerSchema)}
        checked(TrainerSchema, "trainer", **{k: v for k, v in cfg.trainer.items() if k in declared})
    declared = {f.name for f in fields(RunOptionsSchema)}
    checked(RunOptionsSchema, "", **{k: cfg.get(k) for k in declared if k in cfg})
    if cfg.get("approach") is not None:
        _check_optimizers(OmegaConf.to_container(cfg.approach, resolve=False), "approach")


def _check_optimizers(node: Any, key: str) -> None:
    if isinstance(node, list):
        for i, item in enumerate(node):
            _check_optimizers(item, f"{key}[{i}]")
        return
    if not isinstance(node, dict):
        return
    if str(node.get("_target_", "")).startswith("torch.optim.") and "lr_scheduler" not in str(node["_target_"]):
        for name, (low, inclusive) in _OPTIMIZER_BOUNDS.items():
            if name in node and not (isinstance(node[name], str) and node[name].startswith("${")):
                _check_bounded(node[name], f"{key}.{name}", low, inclusive)
        if "betas" in node and isinstance(node["betas"], (list, tuple)):
            for i, beta in enumerate(node["betas"]):
                if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0.0 <= beta < 1.0:
                    raise ConfigError(f"{key}.betas", f"must be two numbers in [0, 1), got {node['betas']!r}")
    for name, value in node.items():
        _check_optimizers(value, f"{key}.{name}")


def _check_bounded(value: Any, key: str, low: float, inclusive: bool) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and value == value and abs(value) != float("inf")
    if not ok or (value < low if inclusive else value <= low):
        raise ConfigError(key, f"must be a finite number {'>=' if inclusive else '>'} {low:g}, got {value!r}")
