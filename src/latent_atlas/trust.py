"""Where a map can be trusted, point by point (numpy and scipy only).

For every point (every point up to ``MAX_POINTS``; above that a seeded sample of that many,
stated in :meth:`PointTrust.describe`) and every map of a latent space, :func:`point_trust`
gives

* ``kept``: how much of the point's neighbourhood the map keeps — the Jaccard overlap of its
  k nearest neighbours in the latent space and on the map (0..1; with k = 10 a point that
  keeps s of its 10 neighbours scores s / (20 − s));
* ``reading``: why a neighbourhood may look wrong, one of :data:`READINGS` (a code 0..3),
  from the point's label L, the majority label Ml of its k latent neighbours, the majority Mm
  of its k map neighbours and the model's prediction P (where there are predictions), in this
  order of precedence:

  - ``misplaced`` (3): the map neighbourhood is pure — at least ``PURE`` (80%) of the map
    neighbours share one class c — but fewer than ``SUPPORTED`` (half) of the latent
    neighbours have class c: the map invents a crisp neighbourhood;
  - ``latent confusion`` (1): Ml ≠ L, or P ≠ L — the network itself mixes these images;
  - ``projection artefact`` (2): the latent neighbourhood agrees (Ml = L and P = L) but
    Mm ≠ L — the points are mixed only on the map;
  - ``agreed`` (0): otherwise.

Neighbours are found within the scored points in both spaces: with a sample, a point's
neighbours are its nearest sampled points. Majorities break ties towards the lower label, as
:func:`latent_atlas.metrics.knn_accuracy` does. The latent side is exact (blocked brute force,
:func:`latent_atlas.metrics.knn_indices`), computed once and shared by every map; 2-D maps use
a k-d tree. A space's ``trust.parquet`` holds :meth:`PointTrust.to_table`; :func:`read_trust`
reads it back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latent_atlas.errors import ConfigError, LatentAtlasError
from latent_atlas.fileio import load_table, save_table, table_metadata
from latent_atlas.metrics import _jaccard, by_map, knn_indices
from latent_atlas.sampling import seeded_sample

READINGS = ("agreed", "latent confusion", "projection artefact", "misplaced")
READING_HELP = {
    "agreed": "the label, the latent neighbours and the map neighbours agree",
    "latent confusion": "the network itself mixes it with another class: most of its latent "
    "neighbours (or the model's prediction) disagree with its label",
    "projection artefact": "the latent space puts it among its own class; only the map mixes "
    "it with others",
    "misplaced": "the map puts it in a crisp neighbourhood of one class that its latent "
    "neighbours do not support",
}
# the columns the shares join in metrics.csv and the manifest's scores ("agreed" is the rest)
SHARE_COLUMNS = {r: r.replace(" ", "_") for r in READINGS[1:]}
AGREED, LATENT_CONFUSION, PROJECTION_ARTEFACT, MISPLACED = range(len(READINGS))
PURE = 0.8  # a map neighbourhood is pure when this share of it has one class ...
SUPPORTED = 0.5  # ... and that class is supported when this share of the latent one has it
MAX_POINTS = 100_000
FILE = "trust.parquet"


@dataclass
class PointTrust:
    """Per point and per map: the neighbourhood kept and the reading (codes into READINGS)."""

    sample: np.ndarray  # int64 indices into the full data, sorted
    n_total: int
    k: int
    kept: dict[str, np.ndarray]  # map → float32 Jaccard overlap per sampled point, 0..1
    reading: dict[str, np.ndarray]  # map → uint8 code into READINGS per sampled point
    latent_majority: np.ndarray | None = None  # majority label of the latent neighbours
    seed: int = 0  # the seed of the sample (when there is one)

    @property
    def sampled(self) -> bool:
        return len(self.sample) < self.n_total

    def describe(self) -> str:
        """Which points were scored, in words."""
        if self.sampled:
            return (
                f"a seeded sample (seed {self.seed}) of {len(self.sample):,} of "
                f"{self.n_total:,} points"
            )
        return f"all {self.n_total:,} points"

    def counts(self) -> dict[str, dict[str, int]]:
        """Per map, how many scored points have each reading."""
        out = {}
        for name, codes in self.reading.items():
            found = np.bincount(np.asarray(codes, dtype=np.int64), minlength=len(READINGS))
            out[name] = {r: int(c) for r, c in zip(READINGS, found, strict=False)}
        return out

    def shares(self) -> dict[str, dict[str, float]]:
        """Per map, the share (0..1) of the scored points with each reading; they sum to 1."""
        n = max(len(self.sample), 1)
        return {m: {r: c / n for r, c in cs.items()} for m, cs in self.counts().items()}

    def share_scores(self) -> dict[str, dict[str, float]]:
        """Per map, the shares as the metrics table's columns (``latent_confusion``, ...)."""
        return {
            m: {col: s[r] for r, col in SHARE_COLUMNS.items()} for m, s in self.shares().items()
        }

    def merged(self, *others: PointTrust, order: list[str] | None = None) -> PointTrust:
        """This and ``others`` (more maps of the same scored points) as one, maps in
        ``order`` (default: as they come)."""
        if any(not np.array_equal(self.sample, o.sample) or self.k != o.k for o in others):
            raise ConfigError("only trust of the same scored points and k can be merged")
        parts = (self, *others)
        return PointTrust(
            self.sample,
            self.n_total,
            self.k,
            by_map([t.kept for t in parts], order),
            by_map([t.reading for t in parts], order),
            self.latent_majority,
            self.seed,
        )

    def to_table(self) -> dict[str, np.ndarray]:
        """Columns ``index``, then ``{map}_kept`` and ``{map}_reading`` for every map."""
        table: dict[str, np.ndarray] = {"index": np.asarray(self.sample, dtype=np.int64)}
        for name in self.kept:
            table[f"{name}_kept"] = np.asarray(self.kept[name], dtype=np.float32)
            table[f"{name}_reading"] = np.asarray(self.reading[name], dtype=np.uint8)
        return table


def _rows(X: np.ndarray, labels: np.ndarray, predictions: np.ndarray | None) -> int:
    """The number of points, after checking that the labels and predictions have one each."""
    if np.ndim(X) != 2:
        raise ConfigError(f"X must be 2-D (samples × features), got shape {np.shape(X)}")
    n = len(X)
    for what, values in (("labels", labels), ("predictions", predictions)):
        if values is not None and np.shape(values) != (n,):
            raise ConfigError(f"{what} have shape {np.shape(values)}; the data has {n} points")
    return n


def _check_maps(embeddings: Mapping[str, np.ndarray], n: int) -> None:
    if not embeddings:
        raise ConfigError("no maps to score")
    for name, emb in embeddings.items():
        if np.ndim(emb) != 2 or len(emb) != n:
            raise ConfigError(f"map {name!r} has shape {np.shape(emb)}; the data has {n} points")


def _neighbours_2d(E: np.ndarray, k: int) -> np.ndarray:
    """Each point's k nearest other points on a 2-D map (k-d tree; N×k, nearest first)."""
    from scipy.spatial import cKDTree

    E = np.asarray(E, dtype=np.float64)
    if not np.all(np.isfinite(E)):
        raise ConfigError("a map holds NaN or infinite values")
    idx = cKDTree(E).query(E, k=k + 1)[1]
    own = idx == np.arange(len(E))[:, None]
    own[~own.any(axis=1), -1] = True  # (a duplicate took its own place: drop the farthest)
    return idx[~own].reshape(len(E), k)


def _majority(nbr_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of neighbour labels (N×k codes): the majority code (ties to the lower code)
    and how many of the row have it."""
    counts = (nbr_labels[:, :, None] == nbr_labels[:, None, :]).sum(axis=2, dtype=np.int32)
    most = counts.max(axis=1)
    tied = np.where(counts == most[:, None], nbr_labels, np.iinfo(nbr_labels.dtype).max)
    return tied.min(axis=1), most


def _readings(
    y: np.ndarray,
    nbr_x: np.ndarray,
    nbr_m: np.ndarray,
    latent_major: np.ndarray,
    wrong: np.ndarray,
) -> np.ndarray:
    """The reading codes of one map (see the module's docstring for the rule)."""
    k = nbr_m.shape[1]
    map_major, map_count = _majority(y[nbr_m])
    support = np.count_nonzero(y[nbr_x] == map_major[:, None], axis=1) / nbr_x.shape[1]
    misplaced = (map_count >= PURE * k) & (support < SUPPORTED)
    confused = (latent_major != y) | wrong
    reading = np.full(len(y), AGREED, dtype=np.uint8)
    reading[~confused & (map_major != y)] = PROJECTION_ARTEFACT
    reading[confused] = LATENT_CONFUSION
    reading[misplaced] = MISPLACED
    return reading


@dataclass
class TrustSide:
    """The latent side of :func:`point_trust`, shared by every map: the scored sample, its
    label codes, where the model is wrong, each point's k latent neighbours and their majority.
    Made once by :func:`trust_side`, it lets maps ready at different times be scored apart."""

    sample: np.ndarray
    n_total: int
    k: int
    classes: np.ndarray  # the labels the codes stand for
    y: np.ndarray  # label codes of the sample
    wrong: np.ndarray  # the model's prediction differs from the label
    nbr: np.ndarray  # each sampled point's k nearest sampled points in the latent space
    majority: np.ndarray  # the majority code of those neighbours
    seed: int


def trust_side(
    X: np.ndarray,
    labels: np.ndarray,
    predictions: np.ndarray | None = None,
    *,
    k: int = 10,
    max_points: int | None = MAX_POINTS,
    random_state: int = 0,
) -> TrustSide:
    """The latent-space part of :func:`point_trust` (see :class:`TrustSide`)."""
    n_total = _rows(X, labels, predictions)
    sample = seeded_sample(n_total, max_points, random_state).astype(np.int64)
    n = len(sample)
    if not 1 <= k < n:
        raise ConfigError(f"per-point trust needs 1 ≤ k < points; got k = {k} for {n} points")
    labels_s = np.asarray(labels)[sample]
    classes, y = np.unique(labels_s, return_inverse=True)
    y = y.astype(np.int64)
    wrong = np.zeros(n, dtype=bool)
    if predictions is not None:
        wrong = np.asarray(predictions)[sample] != labels_s
    nbr_x = knn_indices(np.asarray(X[sample]), k)
    majority = _majority(y[nbr_x])[0]
    return TrustSide(sample, n_total, k, classes, y, wrong, nbr_x, majority, int(random_state))


def point_trust(
    X: np.ndarray,
    embeddings: Mapping[str, np.ndarray],
    labels: np.ndarray,
    predictions: np.ndarray | None = None,
    *,
    k: int = 10,
    max_points: int | None = MAX_POINTS,
    random_state: int = 0,
    latent: TrustSide | None = None,
) -> PointTrust:
    """Per point and per map: the share of its k-NN the map keeps, and its reading.

    ``X`` is the latent space (N×D), ``embeddings`` its maps by name (N×2 each), ``labels``
    the N true classes, ``predictions`` the model's N predicted classes (optional). Above
    ``max_points`` points a seeded sample of ``max_points`` (``random_state``) is scored;
    neighbours are found among the scored points in both spaces. ``latent``: the latent side
    made before by :func:`trust_side` with the same data and options.
    """
    _check_maps(embeddings, _rows(X, labels, predictions))
    side = latent or trust_side(
        X, labels, predictions, k=k, max_points=max_points, random_state=random_state
    )
    kept, reading = {}, {}
    for name, emb in embeddings.items():
        E = np.asarray(emb)[side.sample]
        nbr_m = _neighbours_2d(E, side.k) if E.shape[1] == 2 else knn_indices(E, side.k)
        kept[name] = _jaccard(side.nbr, nbr_m)[1].astype(np.float32)
        reading[name] = _readings(side.y, side.nbr, nbr_m, side.majority, side.wrong)
    return PointTrust(
        side.sample,
        side.n_total,
        side.k,
        kept,
        reading,
        side.classes[side.majority],
        seed=side.seed,
    )


def save_trust(path: str | Path, trust: PointTrust) -> Path:
    """Write ``trust`` as a Parquet table of :meth:`PointTrust.to_table`'s columns (``k``,
    ``n_total`` and the sample's seed in the file's metadata)."""
    meta = {"k": str(trust.k), "n_total": str(trust.n_total), "seed": str(trust.seed)}
    return save_table(path, trust.to_table(), metadata=meta)


def read_trust(path: str | Path) -> PointTrust | None:
    """The :class:`PointTrust` in ``path`` (a space's ``trust.parquet``), or None when there
    is no such file or it is not a trust table. ``latent_majority`` is not kept in the file."""
    try:
        table = load_table(path)
        meta = table_metadata(path)
    except (FileNotFoundError, LatentAtlasError):
        return None
    sample = table.pop("index", None)
    maps = [c.removesuffix("_kept") for c in table if c.endswith("_kept")]
    if sample is None or not maps or any(f"{m}_reading" not in table for m in maps):
        return None
    try:
        k = int(meta.get("k", 10))
        n_total = int(meta.get("n_total", int(sample.max()) + 1 if len(sample) else 0))
        seed = int(meta.get("seed", 0))
    except ValueError:
        return None
    return PointTrust(
        np.asarray(sample, dtype=np.int64),
        n_total,
        k,
        {m: np.asarray(table[f"{m}_kept"], dtype=np.float32) for m in maps},
        {m: np.asarray(table[f"{m}_reading"], dtype=np.uint8) for m in maps},
        seed=seed,
    )
