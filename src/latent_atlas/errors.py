"""Errors that reach the user as one clear line.

Every problem with a user's input (a file, an option, a data set) raises a subclass of
:class:`LatentAtlasError`; the CLI prints its message on one line and exits non-zero.
"""

from __future__ import annotations


class LatentAtlasError(Exception):
    """A problem with the user's input or environment, explained in the message."""


class DatasetError(LatentAtlasError):
    """A data set is missing, truncated, corrupt or inconsistent."""


class ConfigError(LatentAtlasError, ValueError):
    """An option or parameter has a value that cannot work."""


class MissingDependencyError(LatentAtlasError, ImportError):
    """An optional backend is not installed."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the '{package}' package, which is not installed: "
            f'pip install "latent-atlas[{extra}]"'
        )
        self.package = package
        self.extra = extra


class RenamedWarning(DeprecationWarning):
    """An old spelling (an option, a model name) that still works under its new name."""


def describe_os_error(exc: OSError) -> str:
    """One line for an operating-system error: the file, what went wrong, what to do."""
    import errno

    where = exc.filename or "a file"
    if exc.errno == errno.ENOSPC:
        return f"cannot write {where}: the disk is full; free some space and run again"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {where}: permission denied; choose another --out directory"
    return f"{where}: {exc.strerror or exc}"


def require(module: str, package: str, extra: str, purpose: str):
    """Import an optional backend lazily, or raise one clear install hint."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(package, extra, purpose) from exc
