"""Image atlases: which sample's image to show in each cell of a grid laid over a 2-D map.

``build_atlas`` decides (it never touches pixels); ``render_atlas`` draws. The map is first
normalised, each dimension scaled to [0, 1] on its own (the article's intent; its code overwrote
column 0 with column 1). Three modes, one result type (:class:`Atlas`):

``nearest``
    The article's rule: grid points at ``linspace(0, 1, cols)`` (x, left to right) and
    ``linspace(1, 0, rows)`` (y, top to bottom); each cell shows the sample nearest its grid
    point when it is closer than ``max_distance`` (default 0.05). Exact, ties to the lowest
    sample index, through a k-d tree instead of the article's O(grid × N) loop.
``grid``
    Every cell gets a distinct sample (or, with fewer samples than cells, every sample a distinct
    cell), chosen by an optimal assignment that minimises the total squared distance between the
    samples and the grid points (Jonker–Volgenant: scipy's ``linear_sum_assignment`` or, on the
    candidate set below, ``min_weight_full_bipartite_matching``). With more samples than cells,
    each cell's candidates are its M nearest samples (M = number of cells): an optimal assignment
    never gives a cell a sample farther than M others, since one of its M nearest is always free
    to swap in, so the restriction loses nothing.
``bins``
    The map is cut into rows × cols equal bins; a bin with at least ``min_count`` points shows its
    most representative sample — the one nearest the mean of the bin's activations in the
    original latent space when ``features`` are given, else nearest the bin's 2-D mean.

Every mode reports, per cell, the chosen sample, its distance to the cell's grid point, how many
points fall in the cell and, with ``labels``, the share of the cell's most common class (purity).

Drawing lives in :mod:`latent_atlas.atlas_render`; ``render_atlas``, ``resize_tiles`` and
``ERROR_MARK`` are importable from here as well.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from latent_atlas.atlas_render import ERROR_MARK as ERROR_MARK
from latent_atlas.atlas_render import render_atlas as render_atlas
from latent_atlas.atlas_render import resize_tiles as resize_tiles
from latent_atlas.errors import ConfigError

MODES = ("nearest", "grid", "bins")
ARTICLE_MAX_DISTANCE = 0.05  # the article's nearest-mode limit
EDGE_BUDGET = 20_000_000  # candidate edges for the grid assignment before it turns approximate
DENSE_BUDGET = 4_000_000  # cost-matrix entries up to which the dense solver is used


@dataclass
class Atlas:
    """Which sample each cell shows (row 0 at the top) and what is known about the cell."""

    indices: np.ndarray  # rows×cols int64, −1 for an empty cell
    distances: np.ndarray  # rows×cols float64: chosen sample ↔ grid point (NaN when empty)
    counts: np.ndarray  # rows×cols int64: points that fall in the cell
    purity: np.ndarray  # rows×cols float64: share of the cell's most common class (NaN: unknown)
    grid_x: np.ndarray  # cols: x of each column's grid point
    grid_y: np.ndarray  # rows: y of each row's grid point
    mode: str = "nearest"
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.indices.shape  # type: ignore[return-value]

    @property
    def n_filled(self) -> int:
        return int(np.count_nonzero(self.indices >= 0))

    @property
    def mean_distance(self) -> float:
        """Mean distance between the shown samples and their grid points (normalised map)."""
        filled = self.indices >= 0
        return float(self.distances[filled].mean()) if filled.any() else float("nan")

    def _repr_html_(self) -> str:
        rows, cols = self.shape
        return (
            f"<p>Atlas ({self.mode}): {rows}×{cols} cells, {self.n_filled} filled, mean "
            f"distance {self.mean_distance:.4f}. <code>render_atlas(atlas, images)</code> draws "
            "it (a PIL image of that array shows inline).</p>"
        )

    def cells(
        self, labels: np.ndarray | None = None, predictions: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """One row per cell (row-major), ready for a table."""
        rows, cols = np.indices(self.shape)
        idx = self.indices.ravel()
        out = {
            "row": rows.ravel(),
            "col": cols.ravel(),
            "index": idx,
            "grid_x": np.broadcast_to(self.grid_x[None, :], self.shape).ravel(),
            "grid_y": np.broadcast_to(self.grid_y[:, None], self.shape).ravel(),
            "distance": self.distances.ravel(),
            "count": self.counts.ravel(),
            "purity": self.purity.ravel(),
        }
        for name, values in (("label", labels), ("predicted", predictions)):
            if values is not None:
                values = np.asarray(values)
                out[name] = np.where(idx >= 0, values[np.maximum(idx, 0)], -1)
        return out


def normalize_embedding(embedding: np.ndarray) -> np.ndarray:
    """Scale each column to [0, 1] on its own; a constant column becomes 0.5."""
    emb = np.asarray(embedding, dtype=np.float64)
    if emb.ndim != 2 or emb.shape[1] != 2:
        raise ConfigError(f"an atlas needs an N×2 embedding, got shape {emb.shape}")
    if len(emb) == 0:
        raise ConfigError("an atlas needs at least one embedded point")
    if not np.all(np.isfinite(emb)):
        raise ConfigError("the embedding holds NaN or infinite values")
    lo = emb.min(axis=0)
    span = emb.max(axis=0) - lo
    out = np.full_like(emb, 0.5)
    ok = span > 0
    out[:, ok] = (emb[:, ok] - lo[ok]) / span[ok]
    return out


def grid_points(rows: int, cols: int, mode: str = "nearest") -> tuple[np.ndarray, np.ndarray]:
    """x of each column and y of each row: the article's ``linspace`` grid, or bin centres."""
    if mode == "bins":
        return (np.arange(cols) + 0.5) / cols, 1.0 - (np.arange(rows) + 0.5) / rows
    return np.linspace(0.0, 1.0, cols), np.linspace(1.0, 0.0, rows)


def _grid_shape(grid_size: int | tuple[int, int]) -> tuple[int, int]:
    if np.ndim(grid_size) == 0:
        rows = cols = grid_size
    else:
        try:
            rows, cols = grid_size  # type: ignore[misc]
        except (TypeError, ValueError):
            raise ConfigError(f"grid_size must be G or (rows, cols), got {grid_size!r}") from None
    if int(rows) != rows or int(cols) != cols or rows < 1 or cols < 1:
        raise ConfigError(f"the grid needs at least 1×1 cells, got {rows}×{cols}")
    return int(rows), int(cols)


def build_atlas(
    embedding: np.ndarray,
    grid_size: int | tuple[int, int] = 20,
    *,
    mode: str = "nearest",
    max_distance: float | str | None = "auto",
    min_count: int = 1,
    labels: np.ndarray | None = None,
    features: np.ndarray | None = None,
) -> Atlas:
    """Choose the sample shown in each cell of a grid over the normalised embedding.

    ``grid_size`` is G (G×G) or (rows, cols). ``max_distance`` empties a cell whose sample is
    that far or farther from its grid point; ``"auto"`` is the article's 0.05 for ``nearest`` and
    no limit for ``grid`` and ``bins``. ``min_count`` is the fewest points a bin needs to show a
    sample (``bins``). ``labels`` give each cell's purity; ``features`` (N×D, the original latent
    space) choose the representative of a bin.
    """
    rows, cols = _grid_shape(grid_size)
    max_distance = _check_options(mode, max_distance, min_count)
    points = normalize_embedding(embedding)
    n = len(points)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (n,):
            raise ConfigError(f"{n} points but labels of shape {labels.shape}")
    gx, gy = grid_points(rows, cols, mode)
    targets = np.column_stack([np.tile(gx, rows), np.repeat(gy, cols)])
    cell_of = _cell_of(points, rows, cols, mode)
    params: dict[str, Any] = {"grid": [rows, cols], "max_distance": max_distance}

    if mode == "nearest":
        index, _ = nearest_exact(points, targets)
    elif mode == "grid":  # (called from here: its warning's stacklevel names our caller)
        index, exact = assign_grid(points, targets)
        params["exact"] = exact
    else:
        index = _bins_index(points, cell_of, rows * cols, features, int(min_count), params)

    dist = _cut_far(points, targets, index, max_distance)
    counts = np.bincount(cell_of, minlength=rows * cols)
    purity = _purity(cell_of, labels, rows * cols)
    return Atlas(
        indices=index.reshape(rows, cols),
        distances=dist.reshape(rows, cols),
        counts=counts.reshape(rows, cols),
        purity=purity.reshape(rows, cols),
        grid_x=gx,
        grid_y=gy,
        mode=mode,
        params=params,
    )


def check_options(
    grid_size: int | tuple[int, int],
    mode: str = "nearest",
    max_distance: float | str | None = "auto",
    min_count: int = 1,
) -> None:
    """Refuse atlas options that cannot work, as :func:`build_atlas` would, without data."""
    _grid_shape(grid_size)
    _check_options(mode, max_distance, min_count)


def _check_options(mode: str, max_distance: float | str | None, min_count: int) -> float | None:
    """The checked ``max_distance``, its ``"auto"`` resolved for ``mode``."""
    if mode not in MODES:
        raise ConfigError(f"unknown atlas mode {mode!r}; choose one of {', '.join(MODES)}")
    if max_distance == "auto":
        max_distance = ARTICLE_MAX_DISTANCE if mode == "nearest" else None
    if max_distance is not None and not (
        isinstance(max_distance, int | float) and max_distance > 0
    ):
        raise ConfigError(f"max_distance must be positive (or None), got {max_distance!r}")
    if int(min_count) < 1:
        raise ConfigError(f"min_count must be at least 1, got {min_count}")
    return max_distance  # type: ignore[return-value]


def _bins_index(
    points: np.ndarray,
    cell_of: np.ndarray,
    n_cells: int,
    features: np.ndarray | None,
    min_count: int,
    params: dict[str, Any],
) -> np.ndarray:
    """``bins`` mode: each bin's representative, after checking ``features``; notes ``params``."""
    n = len(points)
    if features is not None:
        features = np.asarray(features)
        if features.ndim != 2 or len(features) != n:
            raise ConfigError(f"{n} points but features of shape {features.shape}")
    index = bin_representatives(points, cell_of, n_cells, features, min_count)
    params.update(
        min_count=min_count,
        representative=("latent mean" if features is not None else "2-D mean"),
    )
    return index


def _cut_far(
    points: np.ndarray, targets: np.ndarray, index: np.ndarray, max_distance: float | None
) -> np.ndarray:
    """Each cell's sample ↔ grid point distance; cells at ``max_distance`` or more are emptied
    (``index`` set to −1 in place, distance NaN)."""
    dist = np.full(len(targets), np.nan)
    filled = index >= 0
    dist[filled] = _dist(points[index[filled]], targets[filled])
    if max_distance is not None:
        far = filled & ~(dist < max_distance)
        index[far], dist[far] = -1, np.nan
    return dist


def _cell_of(points: np.ndarray, rows: int, cols: int, mode: str) -> np.ndarray:
    """The cell each point falls in: its bin, or the Voronoi cell of the nearest grid point."""
    x, y = points[:, 0], 1.0 - points[:, 1]  # y measured from the top
    if mode == "bins":
        c = np.minimum((x * cols).astype(np.int64), cols - 1)
        r = np.minimum((y * rows).astype(np.int64), rows - 1)
    else:
        c = np.rint(x * (cols - 1)).astype(np.int64)
        r = np.rint(y * (rows - 1)).astype(np.int64)
    return r * cols + c


def _purity(cell_of: np.ndarray, labels: np.ndarray | None, n_cells: int) -> np.ndarray:
    if labels is None:
        return np.full(n_cells, np.nan)
    _, y = np.unique(labels, return_inverse=True)
    k = int(y.max()) + 1 if len(y) else 1
    table = np.bincount(cell_of * k + y, minlength=n_cells * k).reshape(n_cells, k)
    total = table.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, table.max(axis=1) / total, np.nan)


def _dist(points: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Euclidean distances, computed one way everywhere so that ties compare exactly."""
    diff = points - target
    return np.sqrt(diff[..., 0] * diff[..., 0] + diff[..., 1] * diff[..., 1])


def nearest_exact(
    points: np.ndarray, targets: np.ndarray, k: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """For each target, the index of the nearest point (lowest index among ties) and distance.

    A k-d tree proposes the k nearest candidates; the winner is chosen by recomputing their
    distances exactly. When the k-th candidate is not clearly farther than the first (many
    points at nearly the same distance), every point within that radius is examined.
    """
    from scipy.spatial import cKDTree

    tree = cKDTree(points)
    k = min(k, len(points))
    cand_d, cand_i = tree.query(targets, k=k)
    cand_d, cand_i = cand_d.reshape(len(targets), k), cand_i.reshape(len(targets), k)
    exact = _dist(points[cand_i], targets[:, None, :])
    best = exact.min(axis=1)
    # lowest index among the candidates at exactly the best distance
    masked = np.where(exact == best[:, None], cand_i, np.iinfo(np.int64).max)
    index = masked.min(axis=1).astype(np.int64)
    # candidates are complete unless the k-th could tie with the best (or all points were taken)
    slack = 1e-9 * np.maximum(best, 1.0)
    unsure = np.flatnonzero(cand_d[:, -1] <= best + slack) if k < len(points) else []
    for t in unsure:
        ball = np.asarray(tree.query_ball_point(targets[t], best[t] + slack[t]), dtype=np.int64)
        d = _dist(points[ball], targets[t])
        tie = ball[d == d.min()]
        index[t], best[t] = tie.min(), d.min()
    return index, best


def _sq_cost(points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    diff = targets[:, None, :] - points[None, :, :]
    return diff[..., 0] ** 2 + diff[..., 1] ** 2


def assign_grid(points: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, bool]:
    """A minimum total squared distance one-to-one assignment of points to targets.

    Returns, per target, the assigned point (−1 where there are fewer points than targets) and
    whether the solution is provably optimal (it is unless the candidate set had to be cut to
    fit :data:`EDGE_BUDGET`).
    """
    from scipy.optimize import linear_sum_assignment

    m, n = len(targets), len(points)
    index = np.full(m, -1, dtype=np.int64)
    if n < m or m * n <= DENSE_BUDGET:
        rows, cols = linear_sum_assignment(_sq_cost(points, targets))
        index[rows] = cols
        return index, True
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching
    from scipy.spatial import cKDTree

    k, exact = m, True  # each target's m nearest points always hold an optimal assignment
    if m * k > EDGE_BUDGET:
        k, exact = max(EDGE_BUDGET // m, 16), False
    tree = cKDTree(points)
    while True:
        d, i = tree.query(targets, k=k)
        # +1 on every edge: zero weights would read as missing edges; every full matching has
        # m edges, so the offset does not change which one is cheapest
        weights = csr_matrix(
            (d.ravel() ** 2 + 1.0, (np.repeat(np.arange(m), k), i.ravel())), shape=(m, n)
        )
        try:
            rows, cols = min_weight_full_bipartite_matching(weights)
            break
        except ValueError:  # the cut candidate set admits no full matching: widen it
            k = min(2 * k, n)
    if not exact:
        warnings.warn(
            f"grid atlas: {m} cells × {n} samples is too large for a provably optimal "
            f"assignment; each cell chose among its {k} nearest samples",
            stacklevel=3,
        )
    index[rows] = cols
    return index, exact


def bin_representatives(
    points: np.ndarray,
    cell_of: np.ndarray,
    n_cells: int,
    features: np.ndarray | None,
    min_count: int,
) -> np.ndarray:
    """Per cell, the sample nearest the mean of the cell's points (−1 below ``min_count``)."""
    from scipy.sparse import csr_matrix

    n = len(points)
    space = points if features is None else np.asarray(features)
    if space.dtype not in (np.float32, np.float64):
        space = space.astype(np.float64)
    counts = np.bincount(cell_of, minlength=n_cells)
    member = csr_matrix(
        (np.ones(n, dtype=space.dtype), (cell_of, np.arange(n))), shape=(n_cells, n)
    )
    means = (np.asarray(member @ space) / np.maximum(counts, 1)[:, None]).astype(space.dtype)
    score = np.empty(n)
    for start in range(0, n, 65536):  # in chunks: no second N×D array
        sl = slice(start, start + 65536)
        dev = space[sl] - means[cell_of[sl]]
        score[sl] = np.einsum("ij,ij->i", dev, dev)
    order = np.lexsort((np.arange(n), score, cell_of))  # by cell, then closeness, then index
    cells, first = np.unique(cell_of[order], return_index=True)
    index = np.full(n_cells, -1, dtype=np.int64)
    index[cells] = order[first]
    index[counts < min_count] = -1
    return index
