"""The latent space of one run: features with their labels, images and predictions.

This is the hand-over point between the model side (datasets, training, extraction) and the
map side (reducers, plots, atlases, metrics): both ``latent-atlas run`` and
``latent-atlas project`` produce one, and everything after works from it alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latent_atlas.datasets.base import as_labels
from latent_atlas.errors import ConfigError, LatentAtlasError
from latent_atlas.fileio import as_array_like, load_npy, save_npy

MMAP_ABOVE = 256 * 2**20  # bytes: larger arrays are memory-mapped when a run is loaded
FILES = {
    "features": "activations.npy",
    "labels": "labels.npy",
    "predictions": "predictions.npy",
    "probabilities": "probabilities.npy",
    "images": "images.npy",
    "fit_features": "fit_activations.npy",
}


@dataclass
class LatentSpace:
    """N feature vectors and what is known about each sample."""

    features: np.ndarray  # N×D float32
    labels: np.ndarray  # N int64
    class_names: list[str]
    images: np.ndarray | None = None  # N×H×W×C uint8 (or LazyImages)
    probabilities: np.ndarray | None = None  # N×K float32
    fit_features: np.ndarray | None = None  # M×D float32: other points the maps are fitted on

    def __post_init__(self) -> None:
        self.features = check_features(self.features)
        self.labels = as_labels(self.labels, "labels")
        n = len(self.features)
        if len(self.labels) != n:
            raise ConfigError(f"{n} feature rows but {len(self.labels)} labels; they must match")
        if len(self.labels) and self.labels.min() < 0:
            raise ConfigError("labels must be non-negative class indices")
        if len(self.labels) and self.labels.max() >= len(self.class_names):
            raise ConfigError(
                f"label {int(self.labels.max())} has no class name "
                f"({len(self.class_names)} names given)"
            )
        if self.images is not None:
            imgs = as_array_like(self.images)  # (lazy images keep their files until sliced)
            if imgs.ndim == 3:
                imgs = imgs[:, :, :, None]
            if imgs.ndim != 4 or imgs.dtype != np.uint8 or imgs.shape[3] not in (1, 3):
                raise ConfigError(
                    "images must be uint8 N×H×W[×C] with C in (1, 3), "
                    f"got {imgs.dtype} {imgs.shape}"
                )
            if len(imgs) != n:
                raise ConfigError(f"{n} feature rows but {len(imgs)} images; they must match")
            self.images = imgs
        if self.probabilities is not None and len(self.probabilities) != n:
            raise ConfigError(f"{n} feature rows but {len(self.probabilities)} predictions")
        if self.fit_features is not None:
            self.fit_features = check_features(self.fit_features, "fit features")
            if self.fit_features.shape[1] != self.features.shape[1]:
                raise ConfigError(
                    f"fit features have {self.fit_features.shape[1]} columns but the shown "
                    f"features {self.features.shape[1]}"
                )

    @property
    def predictions(self) -> np.ndarray | None:
        if self.probabilities is None:
            return None
        return self.probabilities.argmax(axis=1).astype(np.int64)

    @property
    def confidence(self) -> np.ndarray | None:
        if self.probabilities is None:
            return None
        return self.probabilities.max(axis=1).astype(np.float32)

    def save(self, folder: Path) -> list[str]:
        """Write the arrays as ``.npy`` files into ``folder``; return the file names.

        Files of arrays this space does not have (left by an earlier run into the same folder)
        are removed, so :meth:`load` reads back exactly this space.
        """
        written = []
        for attr, name in FILES.items():
            value = self.predictions if attr == "predictions" else getattr(self, attr)
            if value is not None:
                if not _is_file_of(value, folder / name):  # (streamed there already)
                    _save_or_link(folder / name, value)
                written.append(name)
            else:
                (folder / name).unlink(missing_ok=True)
        return written

    @classmethod
    def load(cls, folder: Path, class_names: list[str] | None = None) -> LatentSpace:
        """Read what :meth:`save` wrote (class names default to the label numbers)."""
        arrays = {}
        for attr, name in FILES.items():
            path = folder / name
            if attr == "predictions":
                continue
            if path.is_file():  # large arrays stay on disk, memory-mapped
                arrays[attr] = load_npy(path, mmap=path.stat().st_size > MMAP_ABOVE)
            elif attr in ("features", "labels"):  # the rest is optional
                raise LatentAtlasError(f"{folder}: missing {name}; is this a latent-atlas run?")
        if class_names is None:
            labels = arrays["labels"]
            class_names = [str(i) for i in range(int(labels.max()) + 1 if len(labels) else 0)]
        return cls(class_names=class_names, **arrays)


def _save_or_link(path: Path, array: np.ndarray) -> None:
    """Save ``array``; a whole memory-mapped ``.npy`` file (the images another space of the
    run saved, say) is hard-linked instead of copied where the file system allows."""
    source = _mapped_file(array)
    if source is not None and source.suffix == ".npy" and _whole_file(array, source):
        tmp = path.with_name(f".{path.name}.link-{os.getpid()}")
        try:
            tmp.unlink(missing_ok=True)
            os.link(source, tmp)
            os.replace(tmp, path)
            return
        except OSError:
            tmp.unlink(missing_ok=True)
    save_npy(path, array)


def _mapped_file(array: np.ndarray) -> Path | None:
    base = array
    while base is not None and not isinstance(base, np.memmap):
        base = getattr(base, "base", None)
    filename = getattr(base, "filename", None)
    return Path(filename) if filename else None


def _whole_file(array: np.ndarray, source: Path) -> bool:
    """Whether ``array`` is all of the ``.npy`` file ``source`` (not a slice of it)."""
    try:
        whole = load_npy(source, mmap=True)
    except (OSError, ValueError):
        return False
    same = whole.shape == array.shape and whole.dtype == array.dtype
    return same and array.flags.c_contiguous  # (all of it, in its order)


def _is_file_of(array: np.ndarray, path: Path) -> bool:
    """Whether ``array`` is a memory map of the ``.npy`` file at ``path``."""
    base = array
    while base is not None and not isinstance(base, np.memmap):
        base = getattr(base, "base", None)
    filename = getattr(base, "filename", None)
    return bool(filename) and Path(filename).resolve() == path.resolve()


def check_features(features: np.ndarray, where: str = "features") -> np.ndarray:
    """Features as a finite float32 N×D array with at least 2 rows, or one clear error."""
    x = np.asarray(features)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ConfigError(f"{where} must be a 2-D array (samples × features), got shape {x.shape}")
    if x.dtype.kind not in "fiub":
        raise ConfigError(f"{where} must be numeric, got dtype {x.dtype}")
    x = x.astype(np.float32, copy=False)
    if len(x) < 2:
        raise ConfigError(f"{where} has {len(x)} rows; at least 2 samples are needed")
    bad = ~np.isfinite(x)
    if bad.any():
        row = int(np.argwhere(bad)[0, 0])
        raise ConfigError(
            f"{where} holds {int(bad.sum())} NaN or infinite values (first in row {row})"
        )
    if x.shape[1] == 0:
        raise ConfigError(f"{where} have no columns")
    if np.all(x == x[0]):
        raise ConfigError(
            f"{where} are constant: all {len(x)} samples are the same point, there is nothing "
            "to map (is the layer dead, or the wrong layer?)"
        )
    return np.ascontiguousarray(x)
