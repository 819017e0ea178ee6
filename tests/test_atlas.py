from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from latent_atlas.atlas import build_atlas, normalize_embedding, render_atlas
from latent_atlas.errors import ConfigError


def article_reference(embedding: np.ndarray, grid: int, max_distance: float) -> np.ndarray:
    """The article's loop, with its normalisation fixed (each column on its own)."""
    emb = np.asarray(embedding, dtype=np.float64).copy()
    for c in range(2):
        span = np.ptp(emb[:, c])
        emb[:, c] = (emb[:, c] - emb[:, c].min()) / span if span > 0 else 0.5
    out = np.full((grid, grid), -1)
    for i, y in enumerate(np.linspace(1, 0, grid)):
        for j, x in enumerate(np.linspace(0, 1, grid)):
            diff = emb - (x, y)
            d = np.sqrt(diff[:, 0] * diff[:, 0] + diff[:, 1] * diff[:, 1])
            closest = int(np.argmin(d))  # first minimum: ties go to the lowest index
            if d[closest] < max_distance:
                out[i, j] = closest
    return out


def test_matches_the_article_loop_on_a_map():
    rng = np.random.default_rng(0)
    emb = np.concatenate([rng.normal(c, 0.3, size=(300, 2)) for c in ((0, 0), (3, 1), (1, 4))])
    atlas = build_atlas(emb, 20, max_distance=0.05)
    np.testing.assert_array_equal(atlas.indices, article_reference(emb, 20, 0.05))
    assert 0 < atlas.n_filled < 400


def test_orientation_row_zero_is_the_top():
    emb = np.array([[0.0, 1.0], [1.0, 1.0], [0.0, 0.0], [1.0, 0.0]])  # TL, TR, BL, BR
    atlas = build_atlas(emb, 2, max_distance=0.5)
    assert atlas.indices.tolist() == [[0, 1], [2, 3]]
    assert atlas.grid_y.tolist() == [1.0, 0.0] and atlas.grid_x.tolist() == [0.0, 1.0]


def test_normalisation_is_per_column_not_the_articles_bug():
    emb = np.array([[0.0, 100.0], [10.0, 300.0], [5.0, 200.0]])
    norm = normalize_embedding(emb)
    np.testing.assert_allclose(norm[:, 0], [0, 1, 0.5])  # the article overwrote this with column 1
    np.testing.assert_allclose(norm[:, 1], [0, 1, 0.5])
    np.testing.assert_allclose(normalize_embedding(np.ones((3, 2))), 0.5)


coords = st.one_of(
    st.floats(-1e3, 1e3, allow_nan=False, width=32),
    st.sampled_from([0.0, 1.0, 0.5]),  # repeated values make exact ties likely
)


@settings(max_examples=150, deadline=None)
@given(
    emb=arrays(np.float64, st.tuples(st.integers(1, 60), st.just(2)), elements=coords),
    grid=st.integers(1, 12),
    max_distance=st.sampled_from([0.05, 0.2, 2.0]),
    duplicate=st.booleans(),
    flat_x=st.booleans(),
)
def test_nearest_equals_brute_force(emb, grid, max_distance, duplicate, flat_x):
    if duplicate:
        emb = np.concatenate([emb, emb[::-1]])
    if flat_x:
        emb[:, 0] = 3.0
    atlas = build_atlas(emb, grid, max_distance=max_distance)
    np.testing.assert_array_equal(atlas.indices, article_reference(emb, grid, max_distance))


def test_render_is_exactly_grid_times_tile():
    rng = np.random.default_rng(1)
    emb = rng.random((500, 2))
    atlas = build_atlas(emb, 7, max_distance=None)
    assert atlas.n_filled == 49
    rgb = rng.integers(0, 255, size=(500, 10, 10, 3), dtype=np.uint8)
    out = render_atlas(atlas, rgb, tile=16)
    assert out.shape == (7 * 16, 7 * 16, 3) and out.dtype == np.uint8
    grey = rng.integers(0, 255, size=(500, 8, 8, 1), dtype=np.uint8)
    out = render_atlas(atlas, grey, tile=24)  # integer upscale: pixels repeated exactly
    assert out.shape == (7 * 24, 7 * 24)
    first = atlas.indices[0, 0]
    np.testing.assert_array_equal(out[:24:3, :24:3], grey[first, :, :, 0])


def test_empty_cells_are_background():
    emb = np.array([[0.0, 0.0], [1.0, 1.0]])
    atlas = build_atlas(emb, 3, max_distance=0.1)
    assert atlas.indices.tolist() == [[-1, -1, 1], [-1, -1, -1], [0, -1, -1]]
    img = render_atlas(atlas, np.zeros((2, 4, 4, 3), np.uint8), tile=4, background=255)
    assert img[4:8, 4:8].min() == 255 and img[:4, 8:].max() == 0


def test_atlas_errors():
    with pytest.raises(ConfigError, match="N×2"):
        build_atlas(np.zeros((5, 3)))
    with pytest.raises(ConfigError, match="NaN"):
        build_atlas(np.array([[0.0, np.nan], [1.0, 1.0]]))
    with pytest.raises(ConfigError, match="unknown atlas mode"):
        build_atlas(np.zeros((5, 2)), mode="magic")
    atlas = build_atlas(np.random.default_rng(0).random((10, 2)), 3, max_distance=None)
    with pytest.raises(ConfigError, match="only 5 images"):
        render_atlas(atlas, np.zeros((5, 4, 4, 3), np.uint8))


# -- grid mode ------------------------------------------------------------------------------------


def total_cost(points, targets, index):
    filled = index >= 0
    diff = points[index[filled]] - targets[filled]
    return float((diff**2).sum())


def targets_of(atlas):
    rows, cols = atlas.shape
    return np.column_stack([np.tile(atlas.grid_x, rows), np.repeat(atlas.grid_y, cols)])


@settings(max_examples=80, deadline=None)
@given(
    emb=arrays(np.float64, st.tuples(st.integers(1, 80), st.just(2)), elements=coords),
    rows=st.integers(1, 6),
    cols=st.integers(1, 6),
)
def test_grid_gives_distinct_samples_to_every_cell(emb, rows, cols):
    atlas = build_atlas(emb, (rows, cols), mode="grid")
    idx = atlas.indices[atlas.indices >= 0]
    assert len(np.unique(idx)) == len(idx)  # distinct
    assert atlas.n_filled == min(len(emb), rows * cols)  # every cell, or every sample
    assert atlas.shape == (rows, cols)


@settings(max_examples=60, deadline=None)
@given(
    emb=arrays(np.float64, st.tuples(st.integers(1, 7), st.just(2)), elements=coords),
    shape=st.sampled_from([(1, 2), (2, 2), (1, 3), (2, 1), (3, 1)]),
)
def test_grid_is_optimal_by_brute_force(emb, shape):
    from itertools import permutations

    atlas = build_atlas(emb, shape, mode="grid")
    pts = normalize_embedding(emb)
    tg = targets_of(atlas)
    m, n = len(tg), len(pts)
    best = np.inf
    if n >= m:
        for perm in permutations(range(n), m):
            best = min(best, float(((pts[list(perm)] - tg) ** 2).sum()))
    else:
        for perm in permutations(range(m), n):
            best = min(best, float(((pts - tg[list(perm)]) ** 2).sum()))
    assert total_cost(pts, tg, atlas.indices.ravel()) == pytest.approx(best, abs=1e-9)


def test_grid_candidate_set_is_as_good_as_the_full_problem(monkeypatch):
    from scipy.optimize import linear_sum_assignment

    from latent_atlas import atlas as atlas_mod

    rng = np.random.default_rng(3)
    emb = np.concatenate([rng.normal(0, 1, (700, 2)), rng.normal(4, 0.5, (300, 2))])
    monkeypatch.setattr(atlas_mod, "DENSE_BUDGET", 0)  # force the sparse candidate path
    atlas = build_atlas(emb, (12, 15), mode="grid")
    assert atlas.params["exact"] is True
    pts, tg = normalize_embedding(emb), targets_of(atlas)
    cost = ((tg[:, None, :] - pts[None]) ** 2).sum(-1)
    r, c = linear_sum_assignment(cost)
    assert total_cost(pts, tg, atlas.indices.ravel()) == pytest.approx(cost[r, c].sum(), rel=1e-9)


# -- bins mode ------------------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(
    emb=arrays(np.float64, st.tuples(st.integers(1, 120), st.just(2)), elements=coords),
    grid=st.integers(1, 8),
    min_count=st.integers(1, 4),
)
def test_bins_counts_add_up_and_representatives_belong(emb, grid, min_count):
    atlas = build_atlas(emb, grid, mode="bins", min_count=min_count)
    assert atlas.counts.sum() == len(emb)
    filled = atlas.indices >= 0
    assert np.all(atlas.counts[filled] >= min_count)
    assert np.all(atlas.indices[(atlas.counts >= min_count)] >= 0)
    # each shown sample lies in its own bin
    pts = normalize_embedding(emb)
    for (r, c), i in np.ndenumerate(atlas.indices):
        if i >= 0:
            col = min(int(pts[i, 0] * grid), grid - 1)
            row = min(int((1 - pts[i, 1]) * grid), grid - 1)
            assert (row, col) == (r, c)


def test_bins_representative_is_nearest_the_mean():
    rng = np.random.default_rng(0)
    emb = rng.random((400, 2))
    feats = rng.normal(size=(400, 5))
    labels = rng.integers(0, 3, 400)
    for features in (None, feats):
        atlas = build_atlas(emb, 3, mode="bins", features=features, labels=labels)
        pts = normalize_embedding(emb)
        space = pts if features is None else feats
        cell = np.minimum(((1 - pts[:, 1]) * 3).astype(int), 2) * 3 + np.minimum(
            (pts[:, 0] * 3).astype(int), 2
        )
        for k in range(9):
            members = np.flatnonzero(cell == k)
            d = ((space[members] - space[members].mean(0)) ** 2).sum(1)
            assert atlas.indices.ravel()[k] == members[np.argmin(d)]
            share = np.bincount(labels[members]).max() / len(members)
            assert atlas.purity.ravel()[k] == pytest.approx(share)


def test_cells_table_and_voronoi_counts():
    emb = np.array([[0.0, 0.0], [0.1, 0.05], [1.0, 1.0], [0.9, 0.95], [1.0, 0.0]])
    labels = np.array([0, 1, 2, 2, 1])
    atlas = build_atlas(emb, 2, max_distance=None, labels=labels)
    assert atlas.counts.tolist() == [[0, 2], [2, 1]]
    assert atlas.purity[0, 1] == 1.0 and atlas.purity[1, 0] == 0.5 and np.isnan(atlas.purity[0, 0])
    cells = atlas.cells(labels=labels, predictions=np.array([0, 0, 2, 1, 1]))
    assert set(cells) >= {
        "row",
        "col",
        "index",
        "label",
        "predicted",
        "distance",
        "count",
        "purity",
        "grid_x",
        "grid_y",
    }
    assert cells["index"].tolist() == [3, 2, 0, 4]  # nearest to TL, TR, BL, BR
    assert len(cells["row"]) == 4


# -- rendering options ---------------------------------------------------------------------------


def test_borders_and_error_marks():
    from latent_atlas.palette import class_colors_uint8

    emb = np.array([[0.0, 1.0], [1.0, 1.0], [0.0, 0.0], [1.0, 0.0]])
    atlas = build_atlas(emb, 2, max_distance=0.5)
    grey = np.full((4, 8, 8), 128, np.uint8)
    labels = np.array([0, 1, 2, 3])
    preds = np.array([0, 1, 2, 0])  # sample 3 (bottom right) is wrong
    out = render_atlas(atlas, grey, tile=16, labels=labels, border=2, predictions=preds)
    assert out.shape == (32, 32, 3)
    palette = class_colors_uint8(4)
    assert out[0, 8].tolist() == palette[0].tolist()  # top edge of the top-left tile
    assert out[8, 8].tolist() == [128, 128, 128]  # inside stays the image
    assert out[16, 31].tolist() == [0, 0, 0]  # black mark, top-right of the wrong tile
    assert out[16 + 1, 16 + 14].tolist() == [0, 0, 0]
    assert out[16 + 2, 16 + 14].tolist() == [255, 255, 255]  # its white edge
    assert out[0, 15].tolist() == palette[0].tolist()  # no mark on a right answer
    with pytest.raises(ConfigError, match="need the labels"):
        render_atlas(atlas, grey, tile=16, border=2)


def test_large_grid_renders_exactly():
    rng = np.random.default_rng(0)
    emb = rng.random((20_000, 2))
    atlas = build_atlas(emb, 100, mode="bins")
    out = render_atlas(atlas, rng.integers(0, 255, (20_000, 32, 32, 3), dtype=np.uint8), tile=32)
    assert out.shape == (3200, 3200, 3)
