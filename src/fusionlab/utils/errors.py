"""Errors that reach the user as one clear line naming the config key or file."""


class FusionlabError(Exception):
    """Base class: the pipeline prints these as one line, without a traceback."""


class ConfigError(FusionlabError, ValueError):
    """A config value is invalid.

    :param key: the dotted config key, e.g. ``data.patch_size``.
    :param message: what is wrong and what is expected.
    """

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(f"{key}: {message}")


class DataError(FusionlabError, ValueError):
    """An input file or folder cannot be used.

    :param path: the offending file or folder.
    :param message: what is wrong.
    :param key: the config key through which the path was given, if any.
    """

    def __init__(self, path: object, message: str, key: str | None = None) -> None:
        self.path, self.message, self.key = str(path), message, key
        where = f" (config key {key})" if key else ""
        super().__init__(f"{path}: {message}{where}")


def check(condition: bool, key: str, message: str) -> None:
    """Raise :class:`ConfigError` for ``key`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(key, message)


def as_float(value: object, key: str, minimum: float | None = None) -> float:
    """``value`` as a finite float, else :class:`ConfigError` naming ``key``."""
    bound = f" >= {minimum}" if minimum is not None else ""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or abs(value) == float("inf"):
        raise ConfigError(key, f"must be a finite number{bound}, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(key, f"must be a number{bound}, got {value!r}")
    return float(value)


class FilesFailed(FusionlabError, RuntimeError):
    """Some input files of ``predict=`` could not be processed (each was named on its own line): the
    process exits with status 1 (2 is a bad config or input that stopped everything)."""

    exit_code = 1

    def __init__(self, message: str, result: dict | None = None) -> None:
        self.result = result or {}  # what was written and what failed, for callers in Python
        super().__init__(message)


class TrainingDiverged(FusionlabError, RuntimeError):
    """A loss became NaN/Inf; training stopped before the bad step could touch the weights."""
