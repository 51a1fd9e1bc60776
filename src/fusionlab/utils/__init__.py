"""Helpers shared by the pipeline: errors, atomic files, Hydra instantiation."""

from fusionlab.utils.errors import ConfigError, DataError
from fusionlab.utils.io import atomic_write_json, atomic_write_text

__all__ = ["ConfigError", "DataError", "atomic_write_json", "atomic_write_text"]
