from __future__ import annotations

import numpy as np
import pytest
from sklearn.manifold import trustworthiness as sk_trustworthiness
from sklearn.model_selection import LeaveOneOut, cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from latent_atlas import metrics, ranks
from latent_atlas.errors import ConfigError


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 12))
    E = X[:, :2] + 0.3 * rng.normal(size=(300, 2))
    y = (X[:, 0] > 0).astype(int) + 2 * (X[:, 1] > 0)
    return X, E, y


@pytest.mark.parametrize("k", [1, 5, 10, 40])
def test_trustworthiness_equals_sklearn(data, k, monkeypatch):
    X, E, _ = data
    monkeypatch.setattr(ranks, "BLOCK_BYTES", 8 * 300 * 7)  # force many small blocks
    ours = metrics.trustworthiness(X, E, k=k)
    assert ours == pytest.approx(sk_trustworthiness(X, E, n_neighbors=k), abs=1e-6)


def test_continuity_is_trustworthiness_with_roles_swapped(data):
    X, E, _ = data
    assert metrics.continuity(X, E, k=7) == pytest.approx(
        sk_trustworthiness(E, X, n_neighbors=7), abs=1e-6
    )


def test_perfect_and_hand_computed_cases():
    X = np.arange(10, dtype=float)[:, None] ** 1.5
    assert metrics.trustworthiness(X, np.c_[X, np.zeros(10)], k=2) == pytest.approx(1.0)
    # four points on a line; the map swaps the two middle ones
    X = np.array([[0.0], [1.0], [2.5], [4.5]])
    E = np.array([[0.0], [2.0], [0.9], [4.5]])
    # k=1: map neighbours 0→2, 1→2, 2→0, 3→1; their ranks in X are 2, 2, 3, 2, so the
    # penalties (rank − k) are 1 + 1 + 2 + 1 = 5
    expected = 1 - 5 * 2 / (4 * 1 * (2 * 4 - 3 * 1 - 1))
    assert metrics.trustworthiness(X, E, k=1) == pytest.approx(expected)
    assert sk_trustworthiness(X, E, n_neighbors=1) == pytest.approx(expected)


@pytest.mark.slow
def test_knn_accuracy_is_leave_one_out(data):
    X, _, y = data
    ref = cross_val_score(KNeighborsClassifier(5), X, y, cv=LeaveOneOut()).mean()
    assert metrics.knn_accuracy(X, y, k=5) == pytest.approx(ref)


def test_metric_errors(data):
    X, E, y = data
    with pytest.raises(ConfigError, match="k must lie"):
        metrics.trustworthiness(X, E, k=200)
    with pytest.raises(ConfigError, match="300 samples but 5 labels"):
        metrics.knn_accuracy(X, y[:5])
    bad = X.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ConfigError, match="NaN or infinite"):
        metrics.trustworthiness(bad, E)


def test_neighbourhood_preservation_hand_case():
    # 6 points on a line; the map swaps points 0 and 5
    X = np.arange(6, dtype=float)[:, None]
    E = X.copy()
    E[[0, 5]] = E[[5, 0]]
    mean, per_point = metrics.neighbourhood_preservation(X, E, k=1)
    # 1-NN in X: 0→1, 1→0|2, ...; point 2's and 3's neighbours are unchanged
    assert per_point.shape == (6,)
    assert per_point[2] == 1.0 and per_point[3] == 1.0
    assert per_point[0] == 0.0  # its map neighbour is 4, its true one is 1
    assert mean == pytest.approx(per_point.mean())
    same, _ = metrics.neighbourhood_preservation(X, X * 3 + 1, k=2)
    assert same == 1.0


def test_triplet_accuracy_bounds(data):
    X, E, _ = data
    assert metrics.random_triplet_accuracy(X, X * 2.0) == 1.0
    noise = np.random.default_rng(5).normal(size=(len(X), 2))
    assert metrics.random_triplet_accuracy(X, noise) == pytest.approx(0.5, abs=0.05)
    assert 0.5 < metrics.random_triplet_accuracy(X, E) < 1.0


def test_silhouette_equals_sklearn(data, monkeypatch):
    from sklearn.metrics import silhouette_score

    X, E, y = data
    monkeypatch.setattr(ranks, "BLOCK_BYTES", 8 * 300 * 11)
    for Z in (X, E):
        assert metrics.class_silhouette(Z, y) == pytest.approx(silhouette_score(Z, y), abs=1e-6)
    one = np.zeros(len(y), dtype=int)
    assert np.isnan(metrics.class_silhouette(E, one))


def test_evaluate_maps_agrees_with_each_metric(data):
    X, E, y = data
    report = metrics.evaluate_maps(X, {"a": E, "b": X[:, :2]}, y, k=10)
    a = report.scores["a"]
    assert a["trustworthiness"] == pytest.approx(sk_trustworthiness(X, E, n_neighbors=10))
    assert a["continuity"] == pytest.approx(sk_trustworthiness(E, X, n_neighbors=10))
    assert a["knn_accuracy_2d"] == pytest.approx(metrics.knn_accuracy(E, y, k=5))
    assert a["knn_accuracy_original"] == pytest.approx(metrics.knn_accuracy(X, y, k=5))
    assert a["knn_ratio"] == pytest.approx(a["knn_accuracy_2d"] / a["knn_accuracy_original"])
    assert a["neighbourhood_preservation"] == pytest.approx(
        metrics.neighbourhood_preservation(X, E, k=10)[0]
    )
    assert a["triplet_accuracy"] == pytest.approx(metrics.random_triplet_accuracy(X, E))
    assert a["silhouette"] == pytest.approx(metrics.class_silhouette(E, y))
    assert report.per_point["b"].shape == (300,) and not report.sampled
    assert "| a |" in report.to_markdown() and "all 300 points" in report.to_markdown()


def test_evaluate_maps_samples_large_inputs(data):
    X, E, y = data
    report = metrics.evaluate_maps(X, {"a": E}, y, max_samples=120, random_state=3)
    assert report.sampled and len(report.sample) == 120 and report.n_total == 300
    again = metrics.evaluate_maps(X, {"a": E}, y, max_samples=120, random_state=3)
    np.testing.assert_array_equal(report.sample, again.sample)
    assert report.scores == again.scores
    assert "120 of 300 points (seeded sample)" in report.to_markdown()


@pytest.mark.slow
def test_trustworthiness_memory_grows_with_blocks_not_n_squared():
    import tracemalloc

    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 8)).astype(np.float32)
    E = X[:, :2] + 0.1 * rng.normal(size=(20_000, 2))
    tracemalloc.start()
    metrics.trustworthiness(X, E, k=5)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 400 * 2**20  # an N×N float64 matrix would be 3.2 GB


def test_maps_scored_apart_on_one_latent_side_equal_maps_scored_together(data):
    """Maps ready at different times score exactly as maps scored together."""
    X, E, y = data
    maps = {"a": E, "b": X[:, :2], "c": X[:, 3:5]}
    whole = metrics.evaluate_maps(X, maps, y, k=7, max_samples=250, random_state=2)
    side = metrics.latent_side(X, y, k=7, max_samples=250, random_state=2)
    first = metrics.evaluate_maps(X, {"c": maps["c"]}, y, latent=side)
    rest = metrics.evaluate_maps(X, {m: maps[m] for m in "ab"}, y, latent=side)
    merged = first.merged(rest, order=["a", "b", "c"])
    assert list(merged.scores) == ["a", "b", "c"] and merged.scores == whole.scores
    assert merged.reference == whole.reference and merged.k == whole.k == 7
    for m in maps:
        np.testing.assert_array_equal(merged.per_point[m], whole.per_point[m])
    np.testing.assert_array_equal(merged.sample, whole.sample)
    other = metrics.evaluate_maps(X, {"d": E}, y, max_samples=120)
    with pytest.raises(ConfigError, match="same sample"):
        first.merged(other)
