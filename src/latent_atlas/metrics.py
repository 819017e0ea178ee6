"""How faithful a 2-D map is to the space it came from (numpy and scikit-learn only).

Per map, :func:`evaluate_maps` reports

* ``trustworthiness`` and ``continuity`` (Venna & Kaski; k = 10): are the map's neighbours true
  neighbours, and are true neighbours kept together? 1 is best;
* ``knn_accuracy_2d`` and ``knn_accuracy_original``: leave-one-out 5-NN classification accuracy
  in the map and in the original space, and ``knn_ratio``, the first over the second;
* ``neighbourhood_preservation``: the mean Jaccard overlap of each point's k-NN sets in both
  spaces (also returned per point, to show *where* a map lies);
* ``triplet_accuracy``: the share of random triplets (i, j, l) whose order d(i, j) < d(i, l) the
  map keeps — a measure of global structure;
* ``silhouette``: the class silhouette of the map (−1..1).

Distances are computed in row blocks, never as an N×N matrix, so memory grows with N × block.
Beyond ``max_samples`` points every metric runs on one seeded sample, shared by all maps, whose
size is reported.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.neighbors import NearestNeighbors

from latent_atlas.errors import ConfigError
from latent_atlas.ranks import rank_penalties
from latent_atlas.sampling import seeded_sample

MAX_SAMPLES = 10_000
SCORES = (
    "trustworthiness",
    "continuity",
    "knn_accuracy_2d",
    "knn_accuracy_original",
    "knn_ratio",
    "neighbourhood_preservation",
    "triplet_accuracy",
    "silhouette",
)


def _check(X: np.ndarray, name: str = "X") -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ConfigError(f"{name} must be 2-D (samples × features), got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ConfigError(f"{name} holds NaN or infinite values")
    return X


def _check_k(k: int, n: int, limit: float | None = None) -> None:
    top = (n - 1) / 2 if limit is None else limit
    if not 1 <= k < max(top, 1.0 + 1e-9) or k >= n:
        raise ConfigError(
            f"k must lie in 1..{max(int(np.ceil(top)) - 1, 1)} for {n} samples, got {k}"
        )


def knn_indices(X: np.ndarray, k: int) -> np.ndarray:
    """Indices of each point's k nearest neighbours (excluding itself), N×k."""
    X = _check(X)
    if not 1 <= k < len(X):
        raise ConfigError(f"k must lie in 1..{len(X) - 1} for {len(X)} samples, got {k}")
    return NearestNeighbors(n_neighbors=k).fit(X).kneighbors(return_distance=False)


def _normaliser(n: int, k: int) -> float:
    return 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0))


def trustworthiness(X: np.ndarray, embedding: np.ndarray, k: int = 10) -> float:
    """Trustworthiness (Venna & Kaski): are the map's neighbours true neighbours? 1 is best.

    Equal to :func:`sklearn.manifold.trustworthiness` but computed in row blocks, so it needs
    O(N × block) memory instead of O(N²).
    """
    X, E = _check(X), _check(embedding, "embedding")
    n = len(X)
    if len(E) != n:
        raise ConfigError(f"X has {n} samples but the embedding has {len(E)}")
    if not 1 <= k < n / 2:
        raise ConfigError(f"k must lie in 1..{(n - 1) // 2} for {n} samples, got {k}")
    (penalty,), _ = rank_penalties(X, [knn_indices(E, k)], k)
    return 1.0 - penalty * _normaliser(n, k)


def continuity(X: np.ndarray, embedding: np.ndarray, k: int = 10) -> float:
    """Continuity: are true neighbours kept together in the map? 1 is best."""
    return trustworthiness(embedding, X, k)


def _vote(nbrs: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    votes = np.zeros((len(y), n_classes), dtype=np.int32)
    k = nbrs.shape[1]
    np.add.at(votes, (np.repeat(np.arange(len(y)), k), y[nbrs].ravel()), 1)
    return votes.argmax(axis=1)  # ties go to the lower label, as in scikit-learn


def knn_accuracy(X: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Leave-one-out k-NN classification accuracy (majority vote, ties to the lower label)."""
    labels = np.asarray(labels)
    if len(labels) != len(X):
        raise ConfigError(f"{len(X)} samples but {len(labels)} labels")
    classes, y = np.unique(labels, return_inverse=True)
    return float(np.mean(_vote(knn_indices(X, k), y, len(classes)) == y))


def neighbourhood_preservation(
    X: np.ndarray, embedding: np.ndarray, k: int = 10
) -> tuple[float, np.ndarray]:
    """Mean and per-point Jaccard overlap of the k-NN sets in the original space and the map."""
    return _jaccard(knn_indices(X, k), knn_indices(embedding, k))


def _jaccard(a: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray]:
    k = a.shape[1]
    both = np.sort(np.concatenate([a, b], axis=1), axis=1)
    shared = np.count_nonzero(both[:, 1:] == both[:, :-1], axis=1)
    per_point = shared / (2 * k - shared)
    return float(per_point.mean()), per_point


def _triplets(n: int, per_point: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    i = np.repeat(np.arange(n), per_point)
    j = (i + rng.integers(1, n, size=len(i))) % n  # j ≠ i
    l = (i + rng.integers(1, n, size=len(i))) % n  # noqa: E741
    keep = j != l
    return np.stack([i[keep], j[keep], l[keep]])


def _triplet_order(X: np.ndarray, t: np.ndarray) -> np.ndarray:
    i, j, l = t  # noqa: E741
    dij = np.einsum("ij,ij->i", X[i] - X[j], X[i] - X[j])
    dil = np.einsum("ij,ij->i", X[i] - X[l], X[i] - X[l])
    return dij < dil


def random_triplet_accuracy(
    X: np.ndarray, embedding: np.ndarray, per_point: int = 5, random_state: int = 0
) -> float:
    """Share of random triplets (i, j, l) whose distance order the map keeps."""
    X, E = _check(X), _check(embedding, "embedding")
    t = _triplets(len(X), per_point, random_state)
    return float(np.mean(_triplet_order(X, t) == _triplet_order(E, t)))


def class_silhouette(embedding: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette of the classes in ``embedding`` (NaN with fewer than 2 classes).

    Equal to :func:`sklearn.metrics.silhouette_score` but computed in row blocks.
    """
    E = _check(embedding, "embedding")
    _, y = np.unique(np.asarray(labels), return_inverse=True)
    if len(y) != len(E):
        raise ConfigError(f"{len(E)} samples but {len(y)} labels")
    return rank_penalties(E, [], 1, y)[1]


@dataclass
class MetricsReport:
    """Scores of several maps of the same points, and where each map keeps neighbourhoods."""

    scores: dict[str, dict[str, float]]  # method → score name → value
    per_point: dict[str, np.ndarray]  # method → neighbourhood preservation of each sample
    sample: np.ndarray  # indices (into the full data) of the points the metrics used
    n_total: int
    k: int
    seconds: float = 0.0
    reference: dict[str, float] = field(default_factory=dict)  # scores of the original space

    @property
    def sampled(self) -> bool:
        return len(self.sample) < self.n_total

    def rows(self) -> list[dict[str, object]]:
        return [{"method": m, **s} for m, s in self.scores.items()]

    def merged(self, *others: MetricsReport, order: list[str] | None = None) -> MetricsReport:
        """This report and ``others`` (more maps of the same sample) as one, maps in ``order``
        (default: as they come)."""
        if any(not np.array_equal(self.sample, o.sample) or self.k != o.k for o in others):
            raise ConfigError("only reports of the same sample and k can be merged")
        reports = (self, *others)
        return MetricsReport(
            by_map([r.scores for r in reports], order),
            by_map([r.per_point for r in reports], order),
            self.sample,
            self.n_total,
            self.k,
            sum(r.seconds for r in reports),
            next((r.reference for r in reports if r.reference), {}),
        )

    def to_markdown(self) -> str:
        head = ["method", *SCORES]
        lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * len(SCORES) + "|"]
        for m, s in self.scores.items():
            lines.append("| " + " | ".join([m, *(f"{s[c]:.4f}" for c in SCORES)]) + " |")
        note = (
            f"{len(self.sample):,} of {self.n_total:,} points (seeded sample)"
            if self.sampled
            else f"all {self.n_total:,} points"
        )
        lines.append("")
        lines.append(
            f"k = {self.k} for trustworthiness, continuity and neighbourhood "
            f"preservation; 5-NN leave-one-out accuracy; {note}."
        )
        return "\n".join(lines) + "\n"


def by_map(parts: list[dict[str, Any]], order: list[str] | None = None) -> dict[str, Any]:
    """Per-map dicts joined into one, maps in ``order`` (default: as they come)."""
    joined = {m: v for part in parts for m, v in part.items()}
    return {m: joined[m] for m in (order or joined)}


def _knn_scores(
    nbr_e: np.ndarray, knn_k: int, y: np.ndarray | None, n_classes: int, acc_x: float
) -> dict[str, float]:
    """One map's k-NN accuracies (and their ratio to the original space's); NaN without labels."""
    if y is None:
        return {c: float("nan") for c in ("knn_accuracy_2d", "knn_accuracy_original", "knn_ratio")}
    acc_e = float(np.mean(_vote(nbr_e[:, :knn_k], y, n_classes) == y))
    return {
        "knn_accuracy_2d": acc_e,
        "knn_accuracy_original": acc_x,
        "knn_ratio": acc_e / acc_x if acc_x > 0 else float("nan"),
    }


@dataclass
class LatentSide:
    """What the scores of every map need of the original space: the seeded sample, its k-NN,
    5-NN accuracy, class silhouette and triplet order. Made once by :func:`latent_side`, it lets
    maps that are ready at different times be scored apart (``evaluate_maps(latent=...)``)."""

    sample: np.ndarray  # indices (into the full data) of the scored points
    n_total: int
    X: np.ndarray  # the sample's rows
    k: int
    nbr: np.ndarray  # each sampled point's k nearest other sampled points
    y: np.ndarray | None  # label codes 0..n_classes-1 of the sample (None without labels)
    n_classes: int
    knn_accuracy: float
    silhouette: float | None  # None: computed in each evaluate_maps call's trustworthiness pass
    triplets: np.ndarray
    order: np.ndarray  # each triplet's distance order in X


def latent_side(
    X: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    k: int = 10,
    max_samples: int | None = MAX_SAMPLES,
    random_state: int = 0,
    silhouette: bool = True,
) -> LatentSide:
    """The original space's part of :func:`evaluate_maps` (see :class:`LatentSide`)."""
    X = _check(X)
    n_total = len(X)
    sample = seeded_sample(n_total, max_samples, random_state)
    Xs = X[sample]
    n = len(Xs)
    if n < 4:
        raise ConfigError(f"map metrics need at least 4 points, got {n}")
    k = min(k, (n - 2) // 2)
    nbr_x = knn_indices(Xs, k)
    y, n_classes, acc_x = None, 0, float("nan")
    if labels is not None:
        labels = np.asarray(labels)
        if len(labels) != n_total:
            raise ConfigError(f"{n_total} samples but {len(labels)} labels")
        classes, y = np.unique(labels[sample], return_inverse=True)
        n_classes = len(classes)
        acc_x = float(np.mean(_vote(nbr_x[:, : min(5, k)], y, n_classes) == y))
    sil = rank_penalties(Xs, [], 1, y)[1] if silhouette and y is not None else None
    triplets = _triplets(n, 5, random_state)
    return LatentSide(
        sample, n_total, Xs, k, nbr_x, y, n_classes, acc_x, sil, triplets,
        _triplet_order(Xs, triplets),
    )  # fmt: skip


def evaluate_maps(
    X: np.ndarray,
    embeddings: Mapping[str, np.ndarray],
    labels: np.ndarray | None = None,
    *,
    k: int = 10,
    max_samples: int | None = MAX_SAMPLES,
    random_state: int = 0,
    latent: LatentSide | None = None,
) -> MetricsReport:
    """Every score of every map, sharing the original-space work between maps (``latent``:
    that work done before, by :func:`latent_side` with the same data, labels and options)."""
    t0 = time.perf_counter()
    if not embeddings:
        raise ConfigError("no maps to evaluate")
    side = latent or latent_side(
        X, labels, k=k, max_samples=max_samples, random_state=random_state, silhouette=False
    )
    n, k, nbr_x, y = len(side.X), side.k, side.nbr, side.y
    for name, emb in embeddings.items():
        if len(emb) != side.n_total:
            raise ConfigError(f"{name}: {len(emb)} points but the data has {side.n_total}")
    maps = {m: _check(np.asarray(e)[side.sample], f"{m} embedding") for m, e in embeddings.items()}
    knn_k = min(5, k)
    nbr_e = {m: knn_indices(e, k) for m, e in maps.items()}
    with_sil = y if side.silhouette is None else None
    trust, sil_x = rank_penalties(side.X, list(nbr_e.values()), k, with_sil)
    scores: dict[str, dict[str, float]] = {}
    per_point: dict[str, np.ndarray] = {}
    for (m, e), penalty in zip(maps.items(), trust, strict=True):
        (cont_penalty,), sil = rank_penalties(e, [nbr_x], k, y)
        mean_j, per_point[m] = _jaccard(nbr_x, nbr_e[m])
        s = {
            "trustworthiness": 1.0 - penalty * _normaliser(n, k),
            "continuity": 1.0 - cont_penalty * _normaliser(n, k),
            "neighbourhood_preservation": mean_j,
            "triplet_accuracy": float(np.mean(side.order == _triplet_order(e, side.triplets))),
            "silhouette": sil,
        }
        s.update(_knn_scores(nbr_e[m], knn_k, y, side.n_classes, side.knn_accuracy))
        scores[m] = {c: float(s[c]) for c in SCORES}
    reference = {}
    if y is not None:
        sil_x = sil_x if side.silhouette is None else side.silhouette
        reference = {"knn_accuracy": side.knn_accuracy, "silhouette": sil_x}
    seconds = time.perf_counter() - t0
    return MetricsReport(scores, per_point, side.sample, side.n_total, k, seconds, reference)
