"""MNIST and Fashion-MNIST in the official IDX layout, gzip'd or not."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from latent_atlas.datasets.base import Dataset, require_dir
from latent_atlas.datasets.download import cache_dir
from latent_atlas.errors import DatasetError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

MNIST_CLASSES = [str(d) for d in range(10)]
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (gzip'd or not) into a numpy array, checking its header and size."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(
            f"{path}: cannot read ({exc}); the file is corrupt or truncated"
        ) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DatasetError(
            f"{path}: wrong magic number {raw[:4].hex() or '(empty file)'}; "
            "not an IDX file (expected 0x0000080N)"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DatasetError(f"{path}: IDX header is truncated")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DatasetError(
            f"{path}: header says {dims} ({expected} bytes of data) but the file has "
            f"{len(raw) - header}; the file is truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def _find(folder: Path, prefix: str, kind: str) -> Path:
    # official names (train-images-idx3-ubyte) and the common dotted variant
    for stem in (f"{prefix}-{kind}", f"{prefix}-{kind.replace('-idx', '.idx')}"):
        for suffix in ("", ".gz"):
            path = folder / f"{stem}{suffix}"
            if path.is_file():
                return path
    raise DatasetError(f"missing file {folder / (prefix + '-' + kind)}[.gz]")


def load_idx_dataset(name: str, data_dir: str | Path | None, class_names: list[str]) -> Dataset:
    """A data set of four IDX files: train/t10k images and labels."""
    if data_dir is None:
        cached = cache_dir() / name
        data_dir = cached if cached.is_dir() else None
    folder = require_dir(
        data_dir, name, "pass --data-dir with the four IDX files (train-images-idx3-ubyte.gz, ...)"
    )
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(_find(folder, prefix, "images-idx3-ubyte"))
        labels = read_idx(_find(folder, prefix, "labels-idx1-ubyte"))
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DatasetError(f"{folder}: {prefix} images must be uint8 N×H×W, got {images.shape}")
        if labels.ndim != 1:
            raise DatasetError(f"{folder}: {prefix} labels must be one-dimensional")
        if len(images) != len(labels):
            raise DatasetError(f"{folder}: {len(images)} {prefix} images but {len(labels)} labels")
        parts[f"x_{split}"] = np.ascontiguousarray(images[:, :, :, None])
        parts[f"y_{split}"] = labels.astype(np.int64)
    return Dataset(name=name, class_names=class_names, source=str(folder), **parts)


def load_mnist(data_dir: str | Path | None = None) -> Dataset:
    """MNIST handwritten digits (60,000 train / 10,000 test, 28×28 grey)."""
    return load_idx_dataset("mnist", data_dir, MNIST_CLASSES)


def load_fashion_mnist(data_dir: str | Path | None = None) -> Dataset:
    """Fashion-MNIST (60,000 train / 10,000 test, 28×28 grey)."""
    return load_idx_dataset("fashion-mnist", data_dir, FASHION_CLASSES)
