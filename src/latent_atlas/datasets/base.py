"""The :class:`Dataset` container shared by every loader."""

from __future__ import annotations

import io
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from latent_atlas.errors import DatasetError

SPLITS = ("train", "test")
GREY_MODES = ("L", "1", "I;16", "I", "F")  # PIL modes decoded as one channel


@dataclass(frozen=True)
class Dataset:
    """Images and labels of a train and a test split.

    Images are ``uint8`` arrays of shape N×H×W×C (C is 1 or 3), or array-likes of that shape
    that decode on slicing (:class:`~latent_atlas.datasets.lazy.LazyImages`); labels are
    ``int64`` in ``0 .. len(class_names) - 1``.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    source: str = ""
    info: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        k = len(self.class_names)
        if k == 0:
            raise DatasetError(f"{self.name}: no class names")
        for split in SPLITS:
            x, y = self.split(split)
            where = f"{self.name} ({split} split{', ' + self.source if self.source else ''})"
            if x.dtype != np.uint8 or x.ndim != 4 or x.shape[3] not in (1, 3):
                raise DatasetError(
                    f"{where}: images must be uint8 N×H×W×C with C in (1, 3), "
                    f"got {x.dtype} {x.shape}"
                )
            if y.ndim != 1 or len(y) != len(x):
                raise DatasetError(f"{where}: {len(x)} images but {len(y)} labels; they must match")
            if len(y) and (y.min() < 0 or y.max() >= k):
                raise DatasetError(
                    f"{where}: labels span {int(y.min())}..{int(y.max())} but there are {k} classes"
                )
        if (
            len(self.x_train)
            and len(self.x_test)
            and (self.x_train.shape[1:] != self.x_test.shape[1:])
        ):
            raise DatasetError(
                f"{self.name}: train images are {self.x_train.shape[1:]} "
                f"but test images are {self.x_test.shape[1:]}"
            )

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(images, labels)`` of the ``"train"`` or ``"test"`` split."""
        if name == "train":
            return self.x_train, self.y_train
        if name == "test":
            return self.x_test, self.y_test
        raise DatasetError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """H, W, C of one image."""
        x = self.x_test if len(self.x_test) else self.x_train
        return tuple(int(s) for s in x.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(self, limit: int | None, seed: int = 0) -> Dataset:
        """At most ``limit`` images of each split, a seeded random subset in original order."""
        if limit is None:
            return self
        if limit < 1:
            raise DatasetError(f"limit must be at least 1, got {limit}")
        rng = np.random.default_rng(seed)
        parts = {}
        for split in SPLITS:
            x, y = self.split(split)
            if len(x) > limit:
                keep = np.sort(rng.choice(len(x), size=limit, replace=False))
                x = x.take_lazy(keep) if hasattr(x, "take_lazy") else x[keep]
                y = y[keep]
            parts[f"x_{split}"], parts[f"y_{split}"] = x, y
        return replace(self, **parts, info={**self.info, "limit": limit, "limit_seed": seed})

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={len(self.x_train)}, test={len(self.x_test)}, "
            f"image_shape={self.image_shape}, classes={self.num_classes})"
        )


def decode_image(data: bytes, where: str) -> np.ndarray:
    """Decode PNG/JPEG/... bytes into a uint8 H×W×C array (C = 1 for grey, else 3)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            return to_array(img)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DatasetError(f"{where}: not a readable image ({exc})") from None


def to_array(img: object) -> np.ndarray:
    """A PIL image as uint8 H×W×1 (grey) or H×W×3 (anything else)."""
    mode = img.mode  # type: ignore[attr-defined]
    if mode in GREY_MODES:
        arr = np.asarray(img.convert("L"))[:, :, None]  # type: ignore[attr-defined]
    else:
        arr = np.asarray(img.convert("RGB"))  # type: ignore[attr-defined]
    return np.ascontiguousarray(arr, dtype=np.uint8)


def as_labels(values: object, where: str) -> np.ndarray:
    """Integer class labels as int64, refusing floats that are not whole numbers."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DatasetError(f"{where}: labels must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise DatasetError(f"{where}: labels must be whole numbers")
    elif arr.dtype.kind not in "iu":
        raise DatasetError(f"{where}: labels must be integers, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def read_class_names(path: Path) -> list[str]:
    """One class name per non-empty line."""
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def require_dir(path: str | Path | None, name: str, hint: str) -> Path:
    """The data directory as a Path, or a clear error when it is missing."""
    if path is None:
        raise DatasetError(f"{name}: no data directory given; {hint}")
    p = Path(path).expanduser()
    if not p.is_dir():
        raise DatasetError(f"{name}: data directory {p} does not exist or is not a directory")
    return p
