"""Hydra/OmegaConf glue: instantiation with one-line errors, resolvers, run-level helpers.

Only this module and :mod:`fusionlab.pipeline` import Hydra or OmegaConf.
"""

import logging
from typing import Any

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from fusionlab.utils.errors import ConfigError, FusionlabError

log = logging.getLogger("fusionlab")


def _sweep_group() -> str | None:
    """``<experiment>-<sweep folder>`` in a multirun (shared by its jobs), else None."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
    except Exception:  # not under @hydra.main (compose API in tests)
        return None
    if hc.mode != RunMode.MULTIRUN:
        return None
    from pathlib import Path

    return f"sweep-{Path(hc.sweep.dir).name}"


def _target_name(target: str) -> str:
    """``fusionlab.fusion.Gated`` -> ``gated`` (for tags)."""
    return str(target).rsplit(".", 1)[-1].lower()


def approach_label(target: str | None) -> str:
    """The approach's one name (its class's ``label``: ``approach=ensemble`` -> ``ensemble``); a class
    that cannot be imported, or declares none, is named by its class name in snake case."""
    import re

    from hydra.utils import get_class

    try:
        label = getattr(get_class(str(target)), "label", "")
    except Exception:  # noqa: BLE001 - an old record's class may be gone: name it by its class name
        label = ""
    return label or re.sub(r"(?<!^)(?=[A-Z])", "_", str(target or "?").rsplit(".", 1)[-1]).lower()


def _run_tags(tags, approach_target: str, fusion_target: str | None) -> list[str]:
    """The run's tags plus ``approach:<name>`` and, for fusing approaches, ``fusion:<name>``."""
    extra = [f"approach:{approach_label(approach_target)}"]
    if fusion_target:
        extra.append(f"fusion:{_target_name(fusion_target)}")
    return [*[str(t) for t in (tags or [])], *[t for t in extra if t not in (tags or [])]]


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("run_tags"):
        OmegaConf.register_new_resolver("run_tags", _run_tags)
    if not OmegaConf.has_resolver("sweep_group"):
        OmegaConf.register_new_resolver("sweep_group", _sweep_group)
    if not OmegaConf.has_resolver("target_name"):
        OmegaConf.register_new_resolver("target_name", _target_name)


register_resolvers()


def _unwrap(exc: BaseException) -> FusionlabError | None:
    while exc is not None:
        if isinstance(exc, FusionlabError):
            return exc
        exc = exc.__cause__
    return None


def instantiate(node: Any, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` whose failures become one-line :class:`ConfigError`\\ s naming ``key``."""
    if node is None:
        raise ConfigError(key, "is missing (null); pick one with a config-group override")
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except InstantiationException as exc:
        inner = _unwrap(exc)
        if inner is not None:
            raise inner from None
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        full_key = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("full_key:")), key)
        message = " ".join(line for line in lines if not line.startswith("full_key:"))
        raise ConfigError(full_key or key, message) from exc


def instantiate_dict(node: DictConfig | None, key: str) -> list[Any]:
    """Instantiate every ``_target_`` entry of a mapping (callbacks, loggers); skip null ones."""
    if not node:
        return []
    return [instantiate(v, f"{key}.{k}") for k, v in node.items() if v is not None and "_target_" in v]


def check_complete(cfg: DictConfig) -> None:
    """Fail before any work when a mandatory value (``???``) is unset, with OmegaConf's message."""
    for key in cfg:
        if key == "hydra":
            continue
        node = cfg._get_node(key)
        if OmegaConf.is_config(node):
            OmegaConf.to_container(node, resolve=False, throw_on_missing=True)
        else:
            cfg[key]  # noqa: B018  (raises MissingMandatoryValue when "???")


def to_plain(cfg: DictConfig, resolve: bool) -> dict:
    """The config as plain dicts/lists, without Hydra's own node."""
    data = OmegaConf.to_container(cfg, resolve=resolve, throw_on_missing=False)
    data.pop("hydra", None)
    return data


# Nodes of evaluate.py's config that come from the checkpoint's saved config, not from conf/eval.yaml.
CHECKPOINT_NODES = ("data", "task", "approach", "model", "loss", "metrics", "fusion")


def eval_overrides(overrides) -> list[str]:
    """``evaluate.py``'s key overrides of a node that comes from the checkpoint (``data.test_dir=DIR``,
    ``task.sigma=50``) as Hydra force-adds (``++``): ``conf/eval.yaml`` does not compose those nodes
    (the checkpoint's config is the base), and the evaluation checks each key against the
    checkpoint's config instead (``pipeline.evaluate.merge_eval_config``)."""
    out = []
    for ov in overrides:
        key = ov.split("=", 1)[0]
        if "=" in ov and key[:1] not in "+~-" and "." in key and key.split(".")[0] in CHECKPOINT_NODES:
            ov = "++" + ov
        out.append(ov)
    return out


def compose_config(config_name: str = "train", overrides: list[str] | tuple[str, ...] = (),
                   return_hydra_config: bool = False) -> DictConfig:
    """``conf/<config_name>.yaml`` composed with ``overrides`` as the command line would (Hydra's
    compose API): the one helper tests, benchmarks and notebooks use. The config folder is
    ``$FUSIONLAB_ROOT/conf`` (default: the project folder this package lives in)."""
    import os
    from pathlib import Path

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from fusionlab.utils.version import ROOT

    conf = Path(os.environ.get("FUSIONLAB_ROOT", ROOT)) / "conf"
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf.resolve()), version_base="1.3"):
        overrides = eval_overrides(overrides) if config_name == "eval" else list(overrides)
        return compose(config_name, overrides=overrides, return_hydra_config=return_hydra_config)
