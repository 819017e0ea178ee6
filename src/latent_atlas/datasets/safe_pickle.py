"""A restricted unpickler for the official CIFAR python batches.

The official ``cifar-10-batches-py`` files are pickles. A pickle can name any importable
callable and run it, so a crafted "data set" could run code. :func:`safe_load` only lets a
pickle build plain containers (dict, list, tuple, str, bytes, numbers) and numpy arrays of
non-object dtype; anything else is refused before it is called.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from latent_atlas.errors import DatasetError

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    # py2 pickles of ``bytes`` written by py3 with protocol 2 go through _codecs.encode
    ("_codecs", "encode"),
}


class _Forbidden(pickle.UnpicklingError):
    """The pickle names something outside the allowed set."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise _Forbidden(f"refusing to load global {module}.{name}")


def safe_load(data: bytes, where: str) -> Any:
    """Unpickle ``data`` allowing only containers and numpy arrays; never runs other code."""
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except _Forbidden as exc:
        raise DatasetError(f"{where}: refused to unpickle: {exc}") from None
    except Exception as exc:  # a damaged pickle fails in many ways (EOF, overflow, bad opcode)
        raise DatasetError(
            f"{where}: not a readable pickle (truncated or corrupt: {type(exc).__name__})"
        ) from None
    _reject_object_arrays(obj, where)
    return obj


def _reject_object_arrays(obj: Any, where: str) -> None:
    import numpy as np

    if isinstance(obj, np.ndarray) and obj.dtype.hasobject:
        raise DatasetError(f"{where}: refused an object-dtype array in a pickle")
    if isinstance(obj, dict):
        for value in obj.values():
            _reject_object_arrays(value, where)
    elif isinstance(obj, list | tuple):
        for value in obj:
            _reject_object_arrays(value, where)
