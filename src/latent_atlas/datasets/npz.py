"""A ``.npz`` file with ``x_train, y_train, x_test, y_test`` and optionally ``class_names``."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from latent_atlas.datasets.base import Dataset, as_labels
from latent_atlas.errors import DatasetError

REQUIRED = ("x_train", "y_train", "x_test", "y_test")


def load_npz(path: str | Path | None) -> Dataset:
    """Load images (uint8 N×H×W[×C], or floats in [0, 1]) and labels from one ``.npz``.

    ``path`` is the file, or a directory holding exactly one ``.npz``. Loaded without pickle.
    """
    if path is None:
        raise DatasetError("npz: pass --data-dir with the .npz file")
    p = Path(path).expanduser()
    if p.is_dir():
        found = sorted(p.glob("*.npz"))
        if len(found) != 1:
            raise DatasetError(f"npz: {p} must hold exactly one .npz file, found {len(found)}")
        p = found[0]
    if not p.is_file():
        raise DatasetError(f"npz: {p} does not exist")
    try:
        with np.load(p, allow_pickle=False) as z:
            missing = [k for k in REQUIRED if k not in z.files]
            if missing:
                raise DatasetError(f"{p}: missing arrays {', '.join(missing)} (has {z.files})")
            arrays = {k: z[k] for k in REQUIRED}
            names = [str(n) for n in z["class_names"]] if "class_names" in z.files else None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DatasetError(f"{p}: not a readable .npz ({exc})") from None
    except ValueError as exc:  # object arrays need pickle, which is refused
        raise DatasetError(f"{p}: {exc}") from None
    parts = {}
    for split in ("train", "test"):
        parts[f"x_{split}"] = _as_images(arrays[f"x_{split}"], f"{p} x_{split}")
        parts[f"y_{split}"] = as_labels(arrays[f"y_{split}"], f"{p} y_{split}")
    if names is None:
        k = int(max(parts["y_train"].max(initial=0), parts["y_test"].max(initial=0))) + 1
        names = [str(i) for i in range(k)]
    return Dataset(name="npz", class_names=names, source=str(p), **parts)


def _as_images(x: np.ndarray, where: str) -> np.ndarray:
    if x.ndim == 3:
        x = x[:, :, :, None]
    if x.ndim != 4:
        raise DatasetError(f"{where}: images must be N×H×W or N×H×W×C, got shape {x.shape}")
    if x.shape[3] not in (1, 3) and x.shape[1] in (1, 3):
        x = x.transpose(0, 2, 3, 1)  # channels-first
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if x.dtype.kind == "f":
        if not np.all(np.isfinite(x)):
            raise DatasetError(f"{where}: images hold NaN or infinite values")
        if x.min(initial=0) < 0 or x.max(initial=0) > 1:
            raise DatasetError(f"{where}: float images must lie in [0, 1]")
        return np.rint(x * 255).astype(np.uint8)
    raise DatasetError(f"{where}: images must be uint8 or float in [0, 1], got {x.dtype}")
