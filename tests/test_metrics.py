from __future__ import annotations

import numpy as np
import pytest
from sklearn.manifold import trustworthiness as sk_trustworthiness
from sklearn.model_selection import LeaveOneOut, cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from latent_atlas import metrics
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
    monkeypatch.setattr(metrics, "BLOCK_BYTES", 8 * 300 * 7)  # force many small blocks
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
