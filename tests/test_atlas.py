from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from latent_atlas.atlas import build_atlas, normalize_embedding, render_atlas
from latent_atlas.errors import ConfigError


def seed_reference(embedding: np.ndarray, grid: int, max_distance: float) -> np.ndarray:
    """The seed article's loop, with its normalisation fixed (each column on its own)."""
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


def test_matches_the_seed_loop_on_a_map():
    rng = np.random.default_rng(0)
    emb = np.concatenate([rng.normal(c, 0.3, size=(300, 2)) for c in ((0, 0), (3, 1), (1, 4))])
    atlas = build_atlas(emb, 20, max_distance=0.05)
    np.testing.assert_array_equal(atlas.indices, seed_reference(emb, 20, 0.05))
    assert 0 < atlas.n_filled < 400


def test_orientation_row_zero_is_the_top():
    emb = np.array([[0.0, 1.0], [1.0, 1.0], [0.0, 0.0], [1.0, 0.0]])  # TL, TR, BL, BR
    atlas = build_atlas(emb, 2, max_distance=0.5)
    assert atlas.indices.tolist() == [[0, 1], [2, 3]]
    assert atlas.grid_y.tolist() == [1.0, 0.0] and atlas.grid_x.tolist() == [0.0, 1.0]


def test_normalisation_is_per_column_not_the_seeds_bug():
    emb = np.array([[0.0, 100.0], [10.0, 300.0], [5.0, 200.0]])
    norm = normalize_embedding(emb)
    np.testing.assert_allclose(norm[:, 0], [0, 1, 0.5])  # the seed overwrote this with column 1
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
    np.testing.assert_array_equal(atlas.indices, seed_reference(emb, grid, max_distance))


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
