"""Image atlases: which sample's image to show in each cell of a grid laid over a 2-D map.

``build_atlas`` decides (it never touches pixels); ``render_atlas`` draws. The ``nearest`` mode
is the seed article's rule with its normalisation bug fixed: each map dimension is scaled to
[0, 1] on its own, a G×G grid of points spans the unit square (x from 0 at the left to 1 at the
right, y from 1 at the top to 0 at the bottom), and each cell shows the sample nearest its grid
point if that sample is closer than ``max_distance``. Ties go to the lowest sample index.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from latent_atlas.errors import ConfigError

MODES = ("nearest",)


@dataclass
class Atlas:
    """Which sample each cell shows (row 0 at the top), and how far it is from the cell."""

    indices: np.ndarray  # rows×cols int64, −1 for an empty cell
    distances: np.ndarray  # rows×cols float64, distance of the chosen sample to the grid point
    grid_x: np.ndarray  # cols, x of each column's grid point (0 → 1)
    grid_y: np.ndarray  # rows, y of each row's grid point (1 → 0)
    mode: str = "nearest"
    max_distance: float | None = 0.05
    params: dict[str, object] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.indices.shape  # type: ignore[return-value]

    @property
    def n_filled(self) -> int:
        return int(np.count_nonzero(self.indices >= 0))

    def cells(self) -> dict[str, np.ndarray]:
        """One row per cell: row, col, sample index (−1 if empty), grid point and distance."""
        rows, cols = np.indices(self.shape)
        return {
            "row": rows.ravel(),
            "col": cols.ravel(),
            "index": self.indices.ravel(),
            "grid_x": np.broadcast_to(self.grid_x[None, :], self.shape).ravel(),
            "grid_y": np.broadcast_to(self.grid_y[:, None], self.shape).ravel(),
            "distance": self.distances.ravel(),
        }


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


def grid_points(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """x of each column (0 → 1) and y of each row (1 → 0), as ``np.linspace`` in the seed."""
    return np.linspace(0.0, 1.0, cols), np.linspace(1.0, 0.0, rows)


def build_atlas(
    embedding: np.ndarray,
    grid_size: int | tuple[int, int] = 20,
    *,
    mode: str = "nearest",
    max_distance: float | None = 0.05,
) -> Atlas:
    """Choose the sample shown in each cell of a grid over the (normalised) embedding.

    ``grid_size`` is G (a G×G grid) or (rows, cols). ``max_distance`` leaves a cell empty when
    its nearest sample is at least that far from the grid point (None: never).
    """
    rows, cols = (grid_size, grid_size) if np.isscalar(grid_size) else tuple(grid_size)  # type: ignore[misc]
    rows, cols = int(rows), int(cols)
    if rows < 1 or cols < 1:
        raise ConfigError(f"the grid needs at least 1×1 cells, got {rows}×{cols}")
    if mode not in MODES:
        raise ConfigError(f"unknown atlas mode {mode!r}; choose one of {', '.join(MODES)}")
    if max_distance is not None and max_distance <= 0:
        raise ConfigError(f"max_distance must be positive (or None), got {max_distance}")
    points = normalize_embedding(embedding)
    gx, gy = grid_points(rows, cols)
    targets = np.column_stack([np.tile(gx, rows), np.repeat(gy, cols)])
    index, dist = nearest_exact(points, targets)
    if max_distance is not None:
        index = np.where(dist < max_distance, index, -1)
    return Atlas(
        indices=index.reshape(rows, cols),
        distances=dist.reshape(rows, cols),
        grid_x=gx,
        grid_y=gy,
        mode=mode,
        max_distance=max_distance,
    )


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


def render_atlas(
    atlas: Atlas,
    images: np.ndarray,
    *,
    tile: int = 32,
    background: int = 255,
) -> np.ndarray:
    """Draw the atlas as one uint8 image of exactly rows×tile by cols×tile pixels.

    ``images`` are the N×H×W×C (or N×H×W) uint8 images the atlas indices refer to; each is
    scaled to ``tile``×``tile`` pixels (nearest-neighbour when it is an integer upscale,
    else bilinear). Empty cells are filled with ``background``.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[:, :, :, None]
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ConfigError(f"images must be uint8 N×H×W[×C], got {images.dtype} {images.shape}")
    if tile < 1:
        raise ConfigError(f"tile must be at least 1 pixel, got {tile}")
    if atlas.indices.max(initial=-1) >= len(images):
        raise ConfigError(
            f"the atlas refers to sample {int(atlas.indices.max())} but only {len(images)} "
            "images were given"
        )
    rows, cols = atlas.shape
    channels = images.shape[3]
    canvas = np.full((rows, cols, tile, tile, channels), background, dtype=np.uint8)
    filled = atlas.indices >= 0
    chosen = atlas.indices[filled]
    if len(chosen):
        canvas[filled] = resize_tiles(images[chosen], tile)
    out = canvas.transpose(0, 2, 1, 3, 4).reshape(rows * tile, cols * tile, channels)
    return out[:, :, 0] if channels == 1 else out


def resize_tiles(images: np.ndarray, tile: int) -> np.ndarray:
    """Resize M×H×W×C uint8 images to M×tile×tile×C."""
    m, h, w, c = images.shape
    if h == tile and w == tile:
        return images
    if tile % h == 0 and tile % w == 0:
        return images.repeat(tile // h, axis=1).repeat(tile // w, axis=2)
    from PIL import Image

    out = np.empty((m, tile, tile, c), dtype=np.uint8)
    for i, img in enumerate(images):
        pil = Image.fromarray(img[:, :, 0] if c == 1 else img)
        out[i] = np.asarray(pil.resize((tile, tile), Image.Resampling.BILINEAR)).reshape(
            tile, tile, c
        )
    return out
