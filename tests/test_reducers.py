from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from latent_atlas.errors import ConfigError, LatentAtlasError
from latent_atlas.metrics import knn_accuracy, trustworthiness
from latent_atlas.reducers import (
    AdaptedParameterWarning,
    PCAReducer,
    TSNEReducer,
    available_reducers,
    get_reducer,
    method_name,
)

SMALL = 600  # digits points used for the quality floors


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return x[:SMALL].astype(np.float32), y[:SMALL]


def test_registry_and_defaults_are_the_seeds():
    assert {"pca", "tsne", "tsne-sklearn", "umap"} <= set(available_reducers())
    assert get_reducer("tsne").perplexity == 50
    assert get_reducer("umap").n_neighbors == 30
    assert get_reducer("tsne-sklearn").perplexity == 50
    with pytest.raises(ConfigError, match="unknown method 'lle'.*pca"):
        get_reducer("lle")
    with pytest.raises(ConfigError, match="unknown parameter.*perplexty"):
        get_reducer("tsne", perplexty=30)
    inst = PCAReducer(whiten=True)
    assert get_reducer(inst) is inst and method_name(inst) == "pca"


@pytest.mark.parametrize("method", ["pca", "tsne", "tsne-sklearn", "umap"])
def test_estimator_contract(method):
    est = get_reducer(method, random_state=3)
    params = est.get_params()
    assert params["random_state"] == 3
    twin = clone(est)
    assert twin.get_params() == params and twin is not est
    assert not any(k.endswith("_") for k in vars(est))  # nothing learned before fit


@pytest.mark.parametrize(
    ("method", "floor"), [("pca", 0.55), ("tsne", 0.95), ("tsne-sklearn", 0.95), ("umap", 0.95)]
)
def test_quality_floor_and_reproducibility(digits, method, floor):
    x, y = digits
    est = get_reducer(method, random_state=0)
    assert est.fit(x) is est
    emb = est.embedding_
    assert emb.shape == (len(x), 2) and emb.dtype == np.float32 and np.all(np.isfinite(emb))
    assert knn_accuracy(emb, y, k=5) >= floor
    assert trustworthiness(x, emb, k=10) >= (0.8 if method == "pca" else 0.95)
    if method != "tsne-sklearn":  # sklearn's own determinism is sklearn's business
        again = get_reducer(method, random_state=0).fit_transform(x)
        np.testing.assert_array_equal(emb, again)


def test_transform_places_new_points(digits):
    x, y = digits
    for method in ("pca", "tsne"):
        est = get_reducer(method, random_state=0).fit(x[:400])
        placed = est.transform(x[400:])
        assert placed.shape == (200, 2)
        # new points land among their own class: 5-NN vote against the fitted map
        from sklearn.neighbors import KNeighborsClassifier

        clf = KNeighborsClassifier(5).fit(est.embedding_, y[:400])
        assert clf.score(placed, y[400:]) >= (0.35 if method == "pca" else 0.8)
    with pytest.raises(LatentAtlasError, match="cannot place new points"):
        get_reducer("tsne-sklearn", random_state=0).fit(x[:100]).transform(x[100:110])


def test_parameters_adapt_to_few_samples_and_say_so(digits):
    x, _ = digits
    with pytest.warns(AdaptedParameterWarning, match="perplexity=50"):
        est = TSNEReducer(random_state=0).fit(x[:40])
    assert est.perplexity_ == pytest.approx(13)
    assert est.perplexity == 50  # the parameter itself is kept unchanged
    with pytest.warns(AdaptedParameterWarning, match="n_neighbors=30"):
        assert get_reducer("umap", random_state=0).fit_transform(x[:20]).shape == (20, 2)


def test_bad_input_is_refused(digits):
    x, _ = digits
    bad = x[:50].copy()
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        get_reducer("pca").fit(bad)
    with pytest.raises(ConfigError, match="perplexity must be positive"):
        get_reducer("tsne", perplexity=0).fit(x[:50])
