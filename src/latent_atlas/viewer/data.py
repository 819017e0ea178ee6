"""What the viewer page shows, in memory: :class:`ViewerData`.

A page is made from a ``ViewerData`` alone. Build one from arrays a user already has
(``ViewerData(...)`` or :meth:`ViewerData.from_arrays`) or from one latent space of a run
directory (:meth:`ViewerData.from_space`, which reads the run only through
:class:`~latent_atlas.runs.SpaceDir`). Everything is checked on construction, with one
:class:`~latent_atlas.errors.ConfigError` naming what is wrong. Images and features stay as
given (memory maps and lazily decoded images are only sliced, for the points that get a
thumbnail and neighbours).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from latent_atlas.errors import ConfigError
from latent_atlas.fileio import as_array_like
from latent_atlas.viewer.scores import number

if TYPE_CHECKING:
    from latent_atlas.runs import SpaceDir

INFO_KEYS = ("dataset", "n_features", "knn_accuracy", "test_accuracy", "version")


@dataclass(frozen=True)
class Atlas:
    """One atlas picture: a PNG file or its bytes, and what to say about it (text only)."""

    name: str
    png: Path | bytes
    details: dict[str, str] = field(default_factory=dict)
    file: str = ""  # the file name shown under the picture (default: ``<name>.png``)

    def __post_init__(self) -> None:
        if not isinstance(self.png, bytes):
            object.__setattr__(self, "png", Path(self.png))
        object.__setattr__(self, "name", str(self.name))
        object.__setattr__(self, "details", {str(k): str(v) for k, v in self.details.items()})
        object.__setattr__(self, "file", str(self.file or f"{self.name}.png"))

    @property
    def size(self) -> int:
        """Bytes of the PNG."""
        return len(self.png) if isinstance(self.png, bytes) else self.png.stat().st_size

    def read(self) -> bytes:
        return self.png if isinstance(self.png, bytes) else self.png.read_bytes()


@dataclass
class ViewerData:
    """Everything the viewer page needs: N points, their maps and what is known about each.

    Args:
        embeddings: map name → N×2 coordinates (one N×2 array: a map called ``"map"``).
        labels: N non-negative class indices.
        class_names: a name per class (default: the class numbers).
        images: N×H×W[×C] uint8 (C in 1, 3, 4), any array-like that slices: thumbnails.
        probabilities: N×K class probabilities (the predicted class and the confidence follow),
            or ``predictions`` (N class indices) with an optional ``confidence`` (N in 0..1).
        features: N×D features in which each point's neighbours are found.
        scores: map name → score name → value (None: no value), for the scores table;
            ``score_sources`` says where they came from.
        atlases: :class:`Atlas` objects, or ``(name, png path or bytes[, details])`` tuples.
        info: any of ``dataset``, ``n_features``, ``knn_accuracy`` (in the latent space),
            ``test_accuracy``, ``version``; shown in the header.
        index: each point's row in its run (shown on hover; default 0..N-1).
        title: the name in the header (a run's name, with its space's when it has several).
        seed: the default seed of the page's samples (a run's seed; None: 0).
        notes: sentences the page shows about the data (say, a file that was left out).
        trust: where each map can be trusted, per point (a
            :class:`~latent_atlas.trust.PointTrust` of these points: ``sample``, ``k``, and
            per map ``kept`` and ``reading``); the page colours points by it.
    """

    embeddings: dict[str, np.ndarray]
    labels: np.ndarray
    class_names: list[str] | None = None
    images: Any = None
    probabilities: np.ndarray | None = None
    predictions: np.ndarray | None = None
    confidence: np.ndarray | None = None
    features: Any = None
    scores: dict[str, dict[str, float | None]] | None = None
    score_sources: list[str] | None = None
    atlases: list[Any] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    index: np.ndarray | None = None
    title: str = "latent-atlas"
    seed: int | None = None
    notes: list[str] = field(default_factory=list)
    trust: Any = None

    def __post_init__(self) -> None:
        self.embeddings = _check_embeddings(self.embeddings)
        n = len(next(iter(self.embeddings.values())))
        self.labels = class_indices(self.labels, "labels", n)
        self._check_predictions(n)
        self.class_names = _check_class_names(self.class_names, self.labels)
        for what in ("images", "features"):
            value = getattr(self, what)
            if value is not None:
                problem = (image_problem if what == "images" else feature_problem)(value, n)
                if problem:
                    raise ConfigError(problem)
                setattr(self, what, as_array_like(value))
        if self.index is not None:
            self.index = class_indices(self.index, "index", n, negative_ok=True)
        self.scores = _check_scores(self.scores)
        self.score_sources = [str(s) for s in self.score_sources or []]
        self.atlases = [_as_atlas(a) for a in self.atlases]
        self.info = _check_info(self.info)
        self.title, self.notes = str(self.title), [str(s) for s in self.notes]
        _check_trust(self.trust, n)
        if self.seed is not None and (not isinstance(self.seed, int | np.integer) or self.seed < 0):
            raise ConfigError(f"seed must be a non-negative integer or None, got {self.seed!r}")

    def _check_predictions(self, n: int) -> None:
        if self.probabilities is not None:
            if self.predictions is not None or self.confidence is not None:
                raise ConfigError("give probabilities, or predictions (and confidence), not both")
            probs = np.asarray(self.probabilities, dtype=np.float64)
            if probs.ndim != 2 or len(probs) != n or probs.shape[1] < 1:
                raise ConfigError(
                    f"probabilities must be {n}×K (a row per point), not {probs.shape}"
                )
            probs = np.nan_to_num(probs, nan=-np.inf)
            self.predictions = probs.argmax(axis=1).astype(np.int64)
            self.confidence = np.nan_to_num(probs.max(axis=1), neginf=0.0).astype(np.float32)
        if self.predictions is not None:
            self.predictions = class_indices(self.predictions, "predictions", n)
        if self.confidence is not None:
            conf = np.asarray(self.confidence, dtype=np.float64)
            if conf.shape != (n,):
                raise ConfigError(f"confidence must hold {n} values, got shape {conf.shape}")
            if (conf[np.isfinite(conf)] < 0).any() or (conf[np.isfinite(conf)] > 1).any():
                raise ConfigError("confidence values must lie in 0..1")
            self.confidence = conf.astype(np.float32)

    @property
    def n(self) -> int:
        """Number of points."""
        return len(self.labels)

    @property
    def map_names(self) -> list[str]:
        return list(self.embeddings)

    @classmethod
    def from_arrays(cls, embeddings: Any, labels: Any, **fields: Any) -> ViewerData:
        """A page's data from arrays alone (no run directory); see the class for the fields."""
        return cls(embeddings, labels, **fields)

    @classmethod
    def from_space(cls, space: SpaceDir) -> ViewerData:
        """The data of one latent space of a run directory (its maps, classes, predictions,
        images, features, scores and atlases), read through ``space`` alone."""
        from latent_atlas.viewer.spacedata import read_space

        return read_space(space)


# -- checks -----------------------------------------------------------------------------------


def _check_trust(trust: Any, n: int) -> None:
    if trust is None:
        return
    sample = np.asarray(getattr(trust, "sample", None))
    if sample.ndim != 1 or not np.issubdtype(sample.dtype, np.integer):
        raise ConfigError("trust.sample must be a 1-d array of point indices")
    if sample.size and (sample.min() < 0 or sample.max() >= n or (np.diff(sample) <= 0).any()):
        raise ConfigError(f"trust.sample must hold increasing indices below {n}")
    for what in ("kept", "reading"):
        for name, values in getattr(trust, what).items():
            if np.shape(values) != sample.shape:
                raise ConfigError(
                    f"trust.{what}[{name!r}] holds {np.shape(values)} values for "
                    f"{len(sample)} points"
                )


def _check_embeddings(embeddings: Any) -> dict[str, np.ndarray]:
    if not isinstance(embeddings, dict):
        embeddings = {"map": embeddings}
    if not embeddings:
        raise ConfigError("embeddings: give at least one map (name → N×2 coordinates)")
    out: dict[str, np.ndarray] = {}
    n = None
    for name, coords in embeddings.items():
        arr = np.asarray(coords)
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise ConfigError(f"map {name!r}: coordinates must be N×2, got shape {arr.shape}")
        if arr.dtype.kind not in "fiu":
            raise ConfigError(f"map {name!r}: coordinates must be numbers, got dtype {arr.dtype}")
        if n is not None and len(arr) != n:
            raise ConfigError(f"map {name!r} has {len(arr)} points but the first map has {n}")
        n = len(arr)
        out[str(name)] = arr
    if not n:
        raise ConfigError("the maps hold no points")
    return out


def class_indices(values: Any, what: str, n: int, *, negative_ok: bool = False) -> np.ndarray:
    """``values`` as N int64 (whole numbers, non-negative unless ``negative_ok``)."""
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise ConfigError(f"{what} must hold one value per point ({n}), got shape {arr.shape}")
    if arr.dtype.kind == "f" and np.isfinite(arr).all() and (arr == np.round(arr)).all():
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise ConfigError(f"{what} must be whole numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if not negative_ok and arr.size and arr.min() < 0:
        raise ConfigError(f"{what} must be non-negative class indices (found {int(arr.min())})")
    return arr


def _check_class_names(names: Any, labels: np.ndarray) -> list[str]:
    n_classes = int(labels.max()) + 1 if labels.size else 0
    if names is None:
        return [str(i) for i in range(n_classes)]
    if isinstance(names, str) or not hasattr(names, "__len__"):
        raise ConfigError(f"class_names must be a list of names, got {type(names).__name__}")
    names = [str(x) for x in names]
    if len(names) < n_classes:
        raise ConfigError(f"label {n_classes - 1} has no class name ({len(names)} names given)")
    return names


def image_problem(images: Any, n: int) -> str | None:
    """Why ``images`` cannot give the thumbnails of ``n`` points, or None."""
    if not all(hasattr(images, a) for a in ("shape", "dtype", "__getitem__")):
        images = np.asarray(images)
    shape, dtype = tuple(images.shape), np.dtype(images.dtype)
    if (
        len(shape) not in (3, 4)
        or dtype != np.uint8
        or (len(shape) == 4 and shape[3] not in (1, 3, 4))
    ):
        return f"images must be uint8 N×H×W[×C] with C in (1, 3, 4), got {dtype} {shape}"
    if shape[0] != n:
        return f"{shape[0]} images for {n} points; give one per point"
    return None


def feature_problem(features: Any, n: int) -> str | None:
    """Why ``features`` cannot give the neighbours of ``n`` points, or None."""
    if not all(hasattr(features, a) for a in ("shape", "dtype", "__getitem__")):
        features = np.asarray(features)
    shape = tuple(features.shape)
    if len(shape) != 2 or shape[0] != n or np.dtype(features.dtype).kind not in "fiub":
        return f"features must be numeric {n}×D (one row per point), got {features.dtype} {shape}"
    return None


def _check_scores(scores: Any) -> dict[str, dict[str, float | None]]:
    if scores is None:
        return {}
    if not isinstance(scores, dict):
        raise ConfigError("scores must map each map's name to {score name: value}")
    out: dict[str, dict[str, float | None]] = {}
    for method, row in scores.items():
        if not isinstance(row, dict):
            raise ConfigError(f"scores[{method!r}] must be a dict of score name → value")
        clean: dict[str, float | None] = {}
        for column, value in row.items():
            numeric = isinstance(value, int | float | np.integer | np.floating)
            if value is not None and (isinstance(value, bool) or not numeric):
                raise ConfigError(f"scores[{method!r}][{column!r}] must be a number, got {value!r}")
            whole = isinstance(value, int | np.integer)
            clean[str(column)] = int(value) if whole else number(value)  # NaN: no value
        out[str(method)] = clean
    return out


def _as_atlas(value: Any) -> Atlas:
    if isinstance(value, Atlas):
        return value
    if isinstance(value, dict):
        return Atlas(**value)
    if isinstance(value, tuple | list) and len(value) in (2, 3):
        return Atlas(*value)
    raise ConfigError(
        f"an atlas is an Atlas or (name, png path or bytes[, details]), got {value!r}"
    )


def _check_info(info: Any) -> dict[str, Any]:
    info = dict(info or {})
    unknown = sorted(set(info) - set(INFO_KEYS))
    if unknown:
        raise ConfigError(f"info: unknown keys {unknown}; known: {', '.join(INFO_KEYS)}")
    n_features = number(info.get("n_features"))
    return {
        "dataset": str(info.get("dataset") or ""),
        "n_features": None if n_features is None else int(n_features),
        "knn_accuracy": number(info.get("knn_accuracy")),
        "test_accuracy": number(info.get("test_accuracy")),
        "version": str(info.get("version") or ""),
    }
