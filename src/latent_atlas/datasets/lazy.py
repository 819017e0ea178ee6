"""Images read lazily: an array-like over image files that decodes only what is sliced.

A folder of a million images does not fit in memory as one array, and most steps never need
them all at once: extraction reads one batch at a time, atlases and the viewer a few thousand
chosen images. :class:`LazyImages` looks like an N×H×W×C ``uint8`` array (``shape``,
``dtype``, ``len``, slicing with an int, a slice or an index array) and decodes the files a
slice asks for, conformed to one size and channel count, exactly as the eager loader does.
It pickles as its file list, so Dask workers can read their own shards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from latent_atlas.datasets.base import GREY_MODES, to_array
from latent_atlas.errors import DatasetError


class LazyImages:
    """N×H×W×C uint8 images decoded from ``paths`` on demand, resized to ``size`` (H, W)."""

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(
        self, paths: Sequence[str | os.PathLike[str]], size: tuple[int, int], channels: int
    ):
        if channels not in (1, 3):
            raise DatasetError(f"images must have 1 or 3 channels, got {channels}")
        self.paths = [str(p) for p in paths]
        self.size = (int(size[0]), int(size[1]))
        self.channels = int(channels)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.paths), *self.size, self.channels)

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return f"LazyImages({len(self)} files, {self.size[0]}×{self.size[1]}×{self.channels})"

    def __getitem__(self, key: Any) -> np.ndarray:
        rest: tuple = ()
        if isinstance(key, tuple):
            key, rest = key[0], key[1:]
        if isinstance(key, int | np.integer):
            out = self._read(self.paths[int(key)])
        else:
            if isinstance(key, slice):
                chosen = range(*key.indices(len(self)))
            else:
                idx = np.asarray(key)
                if idx.dtype == bool:
                    if idx.shape != (len(self),):
                        raise IndexError(
                            f"boolean index of shape {idx.shape} for {len(self)} images"
                        )
                    idx = np.flatnonzero(idx)
                chosen = idx.astype(np.int64, copy=False).ravel()
            out = np.empty((len(chosen), *self.size, self.channels), dtype=np.uint8)
            for i, j in enumerate(chosen):
                out[i] = self._read(self.paths[int(j)])
        return out[(slice(None), *rest)] if rest else out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def take_lazy(self, indices: np.ndarray) -> LazyImages:
        """A lazy subset (nothing is decoded)."""
        return LazyImages(
            [self.paths[int(i)] for i in np.asarray(indices)], self.size, self.channels
        )

    def _read(self, path: str) -> np.ndarray:
        return conform(read_image(path), self.size, self.channels)


@contextmanager
def _opened(path: str | os.PathLike[str]) -> Iterator[Any]:
    """The PIL image of a file; any failure to read it is one clear ``DatasetError``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            yield img
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"folder: {path} is not a readable image ({exc})") from None


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file as uint8 H×W×1 (grey) or H×W×3 (see ``base.to_array``)."""
    with _opened(path) as img:
        return to_array(img)


def read_header(path: Path) -> tuple[tuple[int, int], int]:
    """``((H, W), channels)`` of an image file, from its header alone (no pixels decoded)."""
    with _opened(path) as img:
        w, h = img.size
        return (h, w), 1 if img.mode in GREY_MODES else 3


def conform(image: np.ndarray, size: tuple[int, int], channels: int) -> np.ndarray:
    """An H×W×C uint8 image as ``size`` (bilinear resize) with ``channels`` channels."""
    from PIL import Image

    if image.shape[2] != channels:
        image = np.repeat(image, 3, axis=2)
    if image.shape[:2] != tuple(size):
        mode = "L" if channels == 1 else "RGB"
        pil = Image.fromarray(image[:, :, 0] if channels == 1 else image, mode=mode)
        pil = pil.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        image = np.asarray(pil).reshape(size[0], size[1], channels)
    return image
