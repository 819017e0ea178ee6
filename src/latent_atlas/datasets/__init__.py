"""Data sets: uint8 N×H×W×C images, int labels, class names, a train and a test split.

Every loader is listed in :data:`LOADERS`; :func:`load_dataset` looks them up by name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from latent_atlas.datasets.base import Dataset
from latent_atlas.datasets.cifar10 import load_cifar10
from latent_atlas.datasets.digits import load_digits_dataset
from latent_atlas.datasets.folder import load_folder
from latent_atlas.datasets.idx import load_fashion_mnist, load_mnist, read_idx
from latent_atlas.datasets.npz import load_npz
from latent_atlas.errors import ConfigError

LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits": lambda data_dir=None, **kw: load_digits_dataset(),
    "cifar10": load_cifar10,
    "mnist": lambda data_dir=None, **kw: load_mnist(data_dir),
    "fashion-mnist": lambda data_dir=None, **kw: load_fashion_mnist(data_dir),
    "folder": load_folder,
    "npz": lambda data_dir=None, **kw: load_npz(data_dir),
}


def available_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    return list(LOADERS)


def load_dataset(
    name: str = "digits", data_dir: str | Path | None = None, **kwargs: Any
) -> Dataset:
    """Load a data set by name (see :func:`available_datasets`)."""
    try:
        loader = LOADERS[name]
    except KeyError:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {', '.join(LOADERS)}") from None
    return loader(data_dir, **kwargs)


__all__ = [
    "Dataset",
    "available_datasets",
    "load_cifar10",
    "load_dataset",
    "load_digits_dataset",
    "load_fashion_mnist",
    "load_folder",
    "load_mnist",
    "load_npz",
    "read_idx",
]
