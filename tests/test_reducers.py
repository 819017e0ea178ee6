from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from latent_atlas.errors import ConfigError
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


def test_registry_and_defaults_are_the_articles():
    assert set(available_reducers()) == {"pca", "tsne", "tsne-sklearn", "umap", "pacmap", "isomap"}
    assert get_reducer("tsne").perplexity == 50
    assert get_reducer("umap").n_neighbors == 30
    assert get_reducer("tsne-sklearn").perplexity == 50
    with pytest.raises(ConfigError, match="unknown method 'lle'.*pca"):
        get_reducer("lle")
    with pytest.raises(ConfigError, match="unknown parameter.*perplexty"):
        get_reducer("tsne", perplexty=30)
    inst = PCAReducer(whiten=True)
    assert get_reducer(inst) is inst and method_name(inst) == "pca"


@pytest.mark.parametrize("method", ["pca", "tsne", "tsne-sklearn", "umap", "pacmap", "isomap"])
def test_estimator_contract(method):
    est = get_reducer(method, random_state=3)
    params = est.get_params()
    assert params["random_state"] == 3
    twin = clone(est)
    assert twin.get_params() == params and twin is not est
    assert not any(k.endswith("_") for k in vars(est))  # nothing learned before fit


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "floor"),
    [
        ("pca", 0.55),
        ("tsne", 0.95),
        ("tsne-sklearn", 0.95),
        ("umap", 0.95),
        ("pacmap", 0.95),
        ("isomap", 0.7),
    ],
)
def test_quality_floor_and_reproducibility(digits, method, floor):
    x, y = digits
    est = get_reducer(method, random_state=0)
    assert est.fit(x) is est
    emb = est.embedding_
    assert emb.shape == (len(x), 2) and emb.dtype == np.float32 and np.all(np.isfinite(emb))
    assert knn_accuracy(emb, y, k=5) >= floor
    assert trustworthiness(x, emb, k=10) >= (0.8 if method in ("pca", "isomap") else 0.95)
    if method != "tsne-sklearn":  # sklearn's own determinism is sklearn's business
        again = get_reducer(method, random_state=0).fit_transform(x)
        np.testing.assert_array_equal(emb, again)


@pytest.mark.slow
def test_transform_places_new_points(digits):
    x, y = digits
    for method in ("pca", "tsne", "umap", "pacmap", "isomap"):
        est = get_reducer(method, random_state=0).fit(x[:400])
        placed = est.transform(x[400:])
        assert placed.shape == (200, 2)
        # new points land among their own class: 5-NN vote against the fitted map
        from sklearn.neighbors import KNeighborsClassifier

        clf = KNeighborsClassifier(5).fit(est.embedding_, y[:400])
        floor = {"pca": 0.35, "isomap": 0.55}.get(method, 0.75)  # what each map gets when fitted
        assert clf.score(placed, y[400:]) >= floor, method
    with pytest.raises(AttributeError, match="cannot place new points|no attribute 'transform'"):
        get_reducer("tsne-sklearn", random_state=0).fit(x[:100]).transform(x[100:110])
    assert not hasattr(get_reducer("tsne-sklearn"), "transform")


@pytest.mark.slow
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


@pytest.mark.slow
def test_pca_pre_reduction(digits):
    x, y = digits
    est = get_reducer("tsne", pca_dims=20, random_state=0).fit(x)
    assert est.pre_pca_.n_components_ == 20
    assert knn_accuracy(est.embedding_, y) >= 0.95
    assert est.transform(x[:10]).shape == (10, 2)  # new points go through the same PCA
    narrow = get_reducer("tsne", pca_dims=100, random_state=0).fit(x)  # 64 columns: no PCA
    assert narrow.pre_pca_ is None
    with pytest.raises(ConfigError, match="pca_dims must be at least 2"):
        get_reducer("umap", pca_dims=1).fit(x)


@pytest.mark.slow
def test_umap_exact_neighbours_keep_transform():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    x = np.concatenate([x, x, x]) + rng.normal(0, 0.5, size=(3 * len(x), 64))  # 5,391 points
    y = np.concatenate([y, y, y])
    est = get_reducer("umap", random_state=0, n_epochs=60).fit(x[:4500])
    assert est.knn_ == "exact"  # above umap-learn's own 4,096 small-data limit
    placed = est.transform(x[4500:])
    from sklearn.neighbors import KNeighborsClassifier

    clf = KNeighborsClassifier(5).fit(est.embedding_, y[:4500])
    assert clf.score(placed, y[4500:]) >= 0.9


def test_umap_exact_graph_puts_each_point_first_at_distance_zero():
    """umap-learn reads the first distance above 0 as the distance to the nearest other
    point: a point's distance to itself must be exactly 0, not float32 round-off."""
    from sklearn.neighbors import NearestNeighbors

    from latent_atlas.reducers.umap import _ExactIndex

    rng = np.random.default_rng(0)
    x = np.maximum(rng.normal(1.0, 3.0, size=(2000, 64)), 0).astype(np.float32) * 7
    ind, dist = _ExactIndex(x, "euclidean").graph(x, 15)
    raw, _ = NearestNeighbors().fit(x).kneighbors(x, n_neighbors=15)  # (round-off at 0)
    assert (ind[:, 0] == np.arange(2000)).all() and (dist[:, 0] == 0).all()
    assert (dist[:, 1] > 0).all() and ind.dtype == np.int32 and dist.dtype == np.float32
    np.testing.assert_allclose(dist[:, 1:], raw[:, 1:], rtol=1e-6)


@pytest.mark.slow
def test_umap_on_exact_neighbours_leaves_pynndescent_trees_unloaded():
    """Nothing is compiled that the fit does not use: a UMAP fit on exact neighbours (both
    paths) loads none of pynndescent's trees or NN-descent; a later fit that needs NN-descent
    in the same process loads them and hands umap-learn the real NNDescent."""
    import subprocess
    import sys

    pytest.importorskip("umap")
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from sklearn.datasets import make_blobs\n"
        "from sklearn.neighbors import KNeighborsClassifier\n"
        "from latent_atlas.reducers import get_reducer\n"
        "x, y = make_blobs(5000, 16, centers=6, random_state=0)\n"
        "trees = ('pynndescent.rp_trees', 'pynndescent.pynndescent_')\n"
        "for n in (1000, 4500):\n"
        "    est = get_reducer('umap', random_state=0, n_epochs=50).fit(x[:n])\n"
        "    clf = KNeighborsClassifier(5).fit(est.embedding_, y[:n])\n"
        "    print(n, est.knn_, clf.score(est.transform(x[4500:]), y[4500:]),\n"
        "          [m in sys.modules for m in trees])\n"
        "est = get_reducer('umap', random_state=0, n_epochs=50, knn='approximate').fit(x[:4500])\n"
        "import pynndescent, umap.umap_\n"
        "clf = KNeighborsClassifier(5).fit(est.embedding_, y[:4500])\n"
        "print(est.knn_, clf.score(est.transform(x[4500:]), y[4500:]),\n"
        "      umap.umap_.NNDescent is pynndescent.NNDescent,\n"
        "      type(est.umap_._knn_search_index) is pynndescent.NNDescent)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = [line.split() for line in out.stdout.strip().splitlines()]
    for n, line in zip(("1000", "4500"), lines[:2], strict=True):
        assert line[:2] == [n, "exact"] and float(line[2]) >= 0.95
        assert line[3:] == ["[False,", "False]"]
    assert lines[2][0] == "approximate" and float(lines[2][1]) >= 0.95
    assert lines[2][2:] == ["True", "True"]


@pytest.mark.slow
def test_a_deferred_pynndescent_loads_whole_for_any_other_name():
    """After UMAP deferred pynndescent, a user's own ``from pynndescent import ...`` works."""
    import subprocess
    import sys

    pytest.importorskip("umap")
    code = (
        "import sys\n"
        "from latent_atlas.reducers import UMAPReducer\n"
        "UMAPReducer.import_backend()\n"
        "print('pynndescent.rp_trees' in sys.modules)\n"
        "from pynndescent import PyNNDescentTransformer\n"
        "import pynndescent, umap.umap_\n"
        "print(PyNNDescentTransformer.__module__, umap.umap_.NNDescent is pynndescent.NNDescent)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "pynndescent.pynndescent_", "True"]


# scikit-learn's own estimator checks. The expected failures are properties of the methods,
# not of the wrappers: t-SNE and PaCMAP place a training point somewhere else than where the
# fit put it (fit_transform ≠ transform), and UMAP's transform of a point depends on the
# batch it comes with (its random negative sampling runs over the batch).
_FAST = {
    "pca": {},
    "tsne": {"n_iter": 50, "early_exaggeration_iter": 20},
    "tsne-sklearn": {"max_iter": 250},
    "umap": {"n_epochs": 20},
    "pacmap": {"num_iters": (10, 10, 10)},
    "isomap": {},
}
_NOT_TRANSFORM_CONSISTENT = {
    "check_transformer_general": "transform(train) differs from the fitted map by design",
    "check_transformer_data_not_an_array": "transform(train) differs from the fitted map",
}
_EXPECTED = {
    "tsne": _NOT_TRANSFORM_CONSISTENT,
    "pacmap": _NOT_TRANSFORM_CONSISTENT,
    "umap": {
        "check_methods_sample_order_invariance": "UMAP's transform optimises the batch jointly",
        "check_methods_subset_invariance": "UMAP's transform optimises the batch jointly",
    },
}


def _expected_failures(estimator):
    return _EXPECTED.get(method_name(estimator), {})


@pytest.mark.slow
@parametrize_with_checks(
    [get_reducer(m, random_state=0, **kw) for m, kw in _FAST.items()],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_estimator_checks(estimator, check):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)


def test_tsne_imports_no_numba_library(tmp_path):
    """openTSNE imports pynndescent to see whether it is installed (30 s of numba compilation
    in a fresh environment); with exact or Annoy neighbours the reducer never lets it."""
    pytest.importorskip("openTSNE")
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from latent_atlas.reducers import TSNEReducer\n"
        "x = np.random.default_rng(0).normal(size=(200, 8))\n"
        "TSNEReducer(random_state=0, n_iter=20, early_exaggeration_iter=20).fit(x)\n"
        "print(sorted(m for m in ('numba', 'pynndescent', 'umap') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_run_without_umap_imports_no_numba_library(tmp_path):
    """Nothing is imported or compiled that the requested methods do not use."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from latent_atlas.cli import main\n"
        f"main(['-q', 'run', '--epochs', '1', '--methods', 'pca,tsne', '--out', r'{tmp_path}/r'])\n"
        "print(sorted(m for m in ('numba', 'pynndescent', 'umap') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_a_cold_numba_cache_is_filled_in_the_background(tmp_path, monkeypatch):
    """With an empty cache, a run starts one child that compiles umap-learn's code; with a
    filled one, or once umap is loaded, it starts none; fit waits for the child."""
    from latent_atlas import jitcache

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert not jitcache.cache_is_warm()
    started: list[list[str]] = []

    class Child:
        def __init__(self, cmd, **kw):
            started.append(cmd)
            self.waited = False

        def wait(self):
            self.waited = True

        def poll(self):
            return 0

    monkeypatch.setattr(jitcache.subprocess, "Popen", Child)
    monkeypatch.setattr(jitcache, "_WARMING", [])
    monkeypatch.delitem(__import__("sys").modules, "umap", raising=False)
    assert jitcache.warm_up_in_background() and len(started) == 1
    assert "compile_umap()" in started[0][-1]
    assert not jitcache.warm_up_in_background()  # one child at a time
    child = jitcache._WARMING[0]
    jitcache.wait_for_warm_up()
    assert child.waited and jitcache._WARMING == []
    for package, marker in (("pynndescent", "rp_trees"), ("umap", "layouts")):
        (tmp_path / f"{package}_0123").mkdir()
        (tmp_path / f"{package}_0123" / f"{marker}.f-1.py311.nbi").write_bytes(b"")
    assert jitcache.cache_is_warm() and not jitcache.warm_up_in_background()


@pytest.mark.slow
def test_the_background_child_fills_an_empty_numba_cache(tmp_path):
    import os
    import subprocess
    import sys

    pytest.importorskip("umap")
    code = (
        "import sys\n"
        "from latent_atlas import jitcache\n"
        "assert not jitcache.cache_is_warm()\n"
        "assert jitcache.warm_up_in_background()\n"
        "jitcache.wait_for_warm_up()\n"
        "print(jitcache.cache_is_warm(), 'umap' in sys.modules)\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.split() == ["True", "False"]
