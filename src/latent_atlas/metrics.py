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
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from sklearn.neighbors import NearestNeighbors

from latent_atlas.errors import ConfigError
from latent_atlas.sampling import seeded_sample
from latent_atlas.threads import available_cores

BLOCK_BYTES = 64 * 2**20  # memory for one block of distance rows
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


def _blocks(n_rows: int, n_cols: int, workers: int = 1) -> Iterator[slice]:
    """Row blocks of about ``BLOCK_BYTES`` each (shared between ``workers`` at once)."""
    step = max(1, BLOCK_BYTES // (8 * max(n_cols, 1) * workers))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def _sq_dists(A: np.ndarray, B: np.ndarray, a_sq: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    d = A @ B.T  # in place from here on: blocks are large
    d *= -2.0
    d += a_sq[:, None]
    d += b_sq[None, :]
    np.maximum(d, 0, out=d)
    return d


def knn_indices(X: np.ndarray, k: int) -> np.ndarray:
    """Indices of each point's k nearest neighbours (excluding itself), N×k."""
    X = _check(X)
    if not 1 <= k < len(X):
        raise ConfigError(f"k must lie in 1..{len(X) - 1} for {len(X)} samples, got {k}")
    return NearestNeighbors(n_neighbors=k).fit(X).kneighbors(return_distance=False)


def _rank_penalties(
    X_ref: np.ndarray, neighbour_sets: list[np.ndarray], k: int, labels: np.ndarray | None = None
) -> tuple[list[float], float]:
    """For each N×k neighbour set: Σ over points and neighbours of (rank in ``X_ref`` − k)⁺.

    The ``X_ref`` distance rows are computed once per block and shared by every set; with
    ``labels`` (0..K−1) the same pass also gives the class silhouette in ``X_ref``. Blocks go
    to one thread per core (numpy releases the GIL in the work on large arrays).
    """
    n = len(X_ref)
    sq = np.einsum("ij,ij->i", X_ref, X_ref)
    sil = _SilhouetteSums(labels) if labels is not None else None

    def block(rows: slice) -> list[float]:
        d = _sq_dists(X_ref[rows], X_ref, sq[rows], sq)
        idx = np.arange(rows.start, rows.stop)
        if sil is not None:
            sil.add(rows, np.sqrt(d))
        if not neighbour_sets:
            return []
        d[idx - rows.start, idx] = np.inf  # a point is not its own neighbour
        # rank of j among i's neighbours in X_ref: 1 + number of points strictly closer
        targets = np.concatenate(
            [np.take_along_axis(d, nbrs[rows], axis=1) for nbrs in neighbour_sets], axis=1
        )  # block × (sets · k)
        excess = 1 + _count_closer(d, targets) - k
        excess[excess < 0] = 0
        return excess.reshape(len(excess), -1, k).sum(axis=(0, 2)).astype(float).tolist()

    workers = _workers(n)
    blocks = list(_blocks(n, n, workers=workers))
    if len(blocks) > 1 and workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(block, blocks))
    else:
        parts = [block(rows) for rows in blocks]
    totals = [float(sum(p[s] for p in parts)) for s in range(len(neighbour_sets))]
    return totals, (sil.value() if sil is not None else float("nan"))


def _workers(n: int) -> int:
    """Threads for a pass over N×N distances: one per core, from 2,000 points up."""
    return min(available_cores(), 4) if n >= 2_000 else 1


def _count_closer(d: np.ndarray, targets: np.ndarray, rows_per: int = 64) -> np.ndarray:
    """``out[i, c]`` = how many entries of row ``d[i]`` are strictly below ``targets[i, c]``.

    Rows go in groups small enough to stay in the CPU cache while every target of the group
    is counted (3x faster than one pass over the whole block per target).
    """
    out = np.empty(targets.shape, dtype=np.int64)
    buf = np.empty((rows_per, d.shape[1]), dtype=bool)
    for start in range(0, len(d), rows_per):
        part = d[start : start + rows_per]
        below = buf[: len(part)]
        for c in range(targets.shape[1]):
            np.less(part, targets[start : start + rows_per, c : c + 1], out=below)
            out[start : start + rows_per, c] = below.view(np.uint8).sum(axis=1, dtype=np.int32)
    return out


class _SilhouetteSums:
    """Accumulates, block by block, each point's summed distance to every class."""

    def __init__(self, labels: np.ndarray):
        self.labels = labels
        k = int(labels.max()) + 1
        self.onehot = np.zeros((len(labels), k))
        self.onehot[np.arange(len(labels)), labels] = 1.0
        self.sizes = self.onehot.sum(axis=0)
        self.sums = np.zeros((len(labels), k))

    def add(self, rows: slice, dist: np.ndarray) -> None:
        idx = np.arange(rows.start, rows.stop)
        dist[idx - rows.start, idx] = 0.0
        self.sums[rows] = dist @ self.onehot

    def value(self) -> float:
        """Mean silhouette (as scikit-learn: 0 for points alone in their class)."""
        if np.count_nonzero(self.sizes) < 2:
            return float("nan")
        own = self.labels
        n = len(own)
        own_size = self.sizes[own]
        a = self.sums[np.arange(n), own] / np.maximum(own_size - 1, 1)
        mean_other = self.sums / np.where(self.sizes > 0, self.sizes, np.inf)
        mean_other[np.arange(n), own] = np.inf
        mean_other[:, self.sizes == 0] = np.inf
        b = mean_other.min(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            s = np.where(own_size > 1, (b - a) / np.maximum(a, b), 0.0)
        return float(np.nan_to_num(s).mean())


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
    (penalty,), _ = _rank_penalties(X, [knn_indices(E, k)], k)
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
    return _rank_penalties(E, [], 1, y)[1]


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


def evaluate_maps(
    X: np.ndarray,
    embeddings: Mapping[str, np.ndarray],
    labels: np.ndarray | None = None,
    *,
    k: int = 10,
    max_samples: int | None = MAX_SAMPLES,
    random_state: int = 0,
) -> MetricsReport:
    """Every score of every map, sharing the original-space work between maps."""
    t0 = time.perf_counter()
    X = _check(X)
    n_total = len(X)
    if not embeddings:
        raise ConfigError("no maps to evaluate")
    for name, emb in embeddings.items():
        if len(emb) != n_total:
            raise ConfigError(f"{name}: {len(emb)} points but the data has {n_total}")
    sample = seeded_sample(n_total, max_samples, random_state)
    Xs = X[sample]
    n = len(Xs)
    if n < 4:
        raise ConfigError(f"map metrics need at least 4 points, got {n}")
    k = min(k, (n - 2) // 2)
    maps = {m: _check(np.asarray(e)[sample], f"{m} embedding") for m, e in embeddings.items()}
    nbr_x = knn_indices(Xs, k)
    knn_k = min(5, k)
    y, n_classes, acc_x = None, 0, float("nan")
    if labels is not None:
        labels = np.asarray(labels)
        if len(labels) != n_total:
            raise ConfigError(f"{n_total} samples but {len(labels)} labels")
        classes, y = np.unique(labels[sample], return_inverse=True)
        n_classes = len(classes)
        acc_x = float(np.mean(_vote(nbr_x[:, :knn_k], y, n_classes) == y))
    nbr_e = {m: knn_indices(e, k) for m, e in maps.items()}
    trust, sil_x = _rank_penalties(Xs, list(nbr_e.values()), k, y)
    triplets = _triplets(n, 5, random_state)
    order_x = _triplet_order(Xs, triplets)
    scores: dict[str, dict[str, float]] = {}
    per_point: dict[str, np.ndarray] = {}
    for (m, e), penalty in zip(maps.items(), trust, strict=True):
        (cont_penalty,), sil = _rank_penalties(e, [nbr_x], k, y)
        mean_j, per_point[m] = _jaccard(nbr_x, nbr_e[m])
        s = {
            "trustworthiness": 1.0 - penalty * _normaliser(n, k),
            "continuity": 1.0 - cont_penalty * _normaliser(n, k),
            "neighbourhood_preservation": mean_j,
            "triplet_accuracy": float(np.mean(order_x == _triplet_order(e, triplets))),
            "silhouette": sil,
        }
        s.update(_knn_scores(nbr_e[m], knn_k, y, n_classes, acc_x))
        scores[m] = {c: float(s[c]) for c in SCORES}
    reference = {}
    if y is not None:
        reference = {"knn_accuracy": acc_x, "silhouette": sil_x}
    return MetricsReport(scores, per_point, sample, n_total, k, time.perf_counter() - t0, reference)
