"""How faithful a 2-D map is to the space it came from (numpy and scikit-learn only).

All neighbourhood metrics are computed without an N×N matrix: distances are computed in row
blocks, so memory grows with N × block, not N².
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from sklearn.neighbors import NearestNeighbors

from latent_atlas.errors import ConfigError

BLOCK_BYTES = 64 * 2**20  # memory for one block of distance rows


def _check(X: np.ndarray, name: str = "X") -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ConfigError(f"{name} must be 2-D (samples × features), got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ConfigError(f"{name} holds NaN or infinite values")
    return X


def _blocks(n_rows: int, n_cols: int) -> Iterator[slice]:
    step = max(1, BLOCK_BYTES // (8 * max(n_cols, 1)))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def _sq_dists(A: np.ndarray, B: np.ndarray, a_sq: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    d = a_sq[:, None] - 2.0 * (A @ B.T) + b_sq[None, :]
    np.maximum(d, 0, out=d)
    return d


def knn_indices(X: np.ndarray, k: int) -> np.ndarray:
    """Indices of each point's k nearest neighbours (excluding itself), N×k."""
    X = _check(X)
    if not 1 <= k < len(X):
        raise ConfigError(f"k must lie in 1..{len(X) - 1} for {len(X)} samples, got {k}")
    return NearestNeighbors(n_neighbors=k).fit(X).kneighbors(return_distance=False)


def _rank_penalty(X_ref: np.ndarray, nbrs_other: np.ndarray, k: int) -> float:
    """Σ over points of Σ over their ``other``-space neighbours of (rank in ``X_ref`` − k)⁺."""
    n = len(X_ref)
    sq = np.einsum("ij,ij->i", X_ref, X_ref)
    total = 0.0
    for rows in _blocks(n, n):
        d = _sq_dists(X_ref[rows], X_ref, sq[rows], sq)
        idx = np.arange(rows.start, rows.stop)
        d[idx - rows.start, idx] = np.inf  # a point is not its own neighbour
        target = np.take_along_axis(d, nbrs_other[rows], axis=1)  # block × k
        # rank of j among i's neighbours in X_ref: 1 + number of points strictly closer
        ranks = np.empty(target.shape, dtype=np.int64)
        for c in range(target.shape[1]):
            ranks[:, c] = 1 + np.count_nonzero(d < target[:, c : c + 1], axis=1)
        excess = ranks - k
        total += float(excess[excess > 0].sum())
    return total


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
    penalty = _rank_penalty(X, knn_indices(E, k), k)
    return 1.0 - penalty * 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0))


def continuity(X: np.ndarray, embedding: np.ndarray, k: int = 10) -> float:
    """Continuity: are true neighbours kept together in the map? 1 is best."""
    return trustworthiness(embedding, X, k)


def knn_accuracy(X: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Leave-one-out k-NN classification accuracy (majority vote, ties to the lower label)."""
    labels = np.asarray(labels)
    if len(labels) != len(X):
        raise ConfigError(f"{len(X)} samples but {len(labels)} labels")
    nbrs = knn_indices(X, k)
    classes, y = np.unique(labels, return_inverse=True)
    votes = np.zeros((len(y), len(classes)), dtype=np.int32)
    np.add.at(votes, (np.repeat(np.arange(len(y)), k), y[nbrs].ravel()), 1)
    return float(np.mean(votes.argmax(axis=1) == y))
