"""Fingerprints: the one way latent-atlas hashes what a step depends on.

:func:`fingerprint` hashes JSON-like values, with NumPy arrays (memory-mapped or lazily
decoded ones too) and files by their content, read block by block. Step keys, default run
directories and the viewer's staleness key are all made with it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

_BLOCK = 64 * 2**20  # bytes hashed at a time: arrays and files are never read whole


class Fingerprint(str):
    """A hash :func:`fingerprint` made: passed where a key goes, it is not hashed again."""


def fingerprint(obj: Any) -> Fingerprint:
    """A short stable hash of ``obj``: JSON-like values, with arrays and files by content.

    NumPy arrays (also memory-mapped or lazily decoded ones) are hashed by shape, dtype and
    bytes, a :class:`~pathlib.Path` to a file by its bytes; both block by block. A
    :class:`Fingerprint` is returned as it is, so a key whose arrays or files are large can be
    hashed once and checked, then recorded, with the same hash.
    """
    if isinstance(obj, Fingerprint):
        return obj
    text = json.dumps(obj, sort_keys=True, default=_content_of)
    return Fingerprint(hashlib.sha256(text.encode()).hexdigest()[:12])


def _content_of(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return f"bytes:{hashlib.sha256(value).hexdigest()}"
    if isinstance(value, Path):
        return f"file:{file_digest(value)}" if value.is_file() else f"path:{value}"
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"array:{array_digest(value)}"
    if isinstance(value, np.generic):
        return repr(value.item())
    return str(value)


def array_digest(array: Any) -> str:
    """A content hash of an array (shape and dtype included), read in blocks of rows."""
    h = hashlib.sha256(str((np.dtype(array.dtype).str, tuple(array.shape))).encode())
    if not len(array.shape):
        h.update(np.ascontiguousarray(array).data)
        return h.hexdigest()[:16]
    row_bytes = max(1, int(np.prod(array.shape[1:])) * np.dtype(array.dtype).itemsize)
    step = max(1, _BLOCK // row_bytes)
    for start in range(0, len(array), step):
        h.update(np.ascontiguousarray(array[start : start + step]).data)
    return h.hexdigest()[:16]


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def changed(values: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` that differ from ``defaults`` (nested dicts compared inside).

    Keys made of these stay the same when an option is added later with its old behaviour as
    the default, so finished steps and default run directories survive the upgrade.
    """
    out = {}
    for key, value in values.items():
        default = defaults.get(key, _MISSING)
        if isinstance(value, dict) and isinstance(default, dict):
            inner = changed(value, default)
            if inner:
                out[key] = inner
        elif value != default:
            out[key] = value
    return out


_MISSING = object()
