"""MNIST and Fashion-MNIST in the official IDX layout, gzip'd or not."""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path
from typing import BinaryIO

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
    """Read one IDX file (gzip'd or not) into a numpy array, checking its header and size.

    The header's sizes are multiplied as Python integers (``np.prod`` wraps round past 2**63,
    so sizes that overflow could pass as a small array) and the data is read only up to what
    the header announces, so a lying header costs neither a crash nor the memory it claims.
    """
    path = Path(path)
    try:
        with open(path, "rb") as raw_fh:
            gz = raw_fh.read(2) == b"\x1f\x8b"
            raw_fh.seek(0)
            fh = gzip.GzipFile(fileobj=raw_fh, mode="rb") if gz else raw_fh
            head = fh.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _DTYPES:
                raise DatasetError(
                    f"{path}: wrong magic number {head.hex() or '(empty file)'}; "
                    "not an IDX file (expected 0x0000080N)"
                )
            ndim = head[3]
            sizes = fh.read(4 * ndim)
            if ndim == 0 or len(sizes) < 4 * ndim:
                raise DatasetError(f"{path}: IDX header is truncated")
            dims = [int.from_bytes(sizes[4 * i : 4 * i + 4], "big") for i in range(ndim)]
            dtype = np.dtype(_DTYPES[head[2]])
            expected = math.prod(dims) * dtype.itemsize  # Python ints: no overflow
            if gz:
                data = _read_at_most(fh, expected + 1)
                found = f"{len(data)}" if len(data) <= expected else f"more than {expected}"
            else:
                size = path.stat().st_size - 4 - 4 * ndim
                data = fh.read(expected) if size == expected else b""
                found = str(size)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(
            f"{path}: cannot read ({exc}); the file is corrupt or truncated"
        ) from None
    if len(data) != expected:
        raise DatasetError(
            f"{path}: header says {dims} ({expected} bytes of data) but the file has "
            f"{found}; the file is truncated or corrupt"
        )
    return np.frombuffer(data, dtype=dtype).reshape(dims)


def _read_at_most(fh: BinaryIO, limit: int, chunk: int = 1 << 24) -> bytes:
    """Up to ``limit`` bytes of ``fh``, read in chunks (what is there, not what was claimed)."""
    parts: list[bytes] = []
    total = 0
    while total < limit:
        part = fh.read(min(chunk, limit - total))
        if not part:
            break
        parts.append(part)
        total += len(part)
    return b"".join(parts)


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
        images_file = _find(folder, prefix, "images-idx3-ubyte")
        labels_file = _find(folder, prefix, "labels-idx1-ubyte")
        images = read_idx(images_file)
        labels = read_idx(labels_file)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DatasetError(
                f"{images_file}: images must be uint8 N×H×W, got {images.dtype} {images.shape}"
            )
        if min(images.shape[1:]) < 1:
            raise DatasetError(f"{images_file}: images of {images.shape[1:]} have no pixels")
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise DatasetError(
                f"{labels_file}: labels must be whole numbers in one dimension, got "
                f"{labels.dtype} {labels.shape}"
            )
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
