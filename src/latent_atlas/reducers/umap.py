"""UMAP through umap-learn, with exact neighbours handed over for data sets that fit them."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from latent_atlas.errors import require
from latent_atlas.reducers.base import Check, Reducer, metric_name, real, whole, word


class UMAPReducer(Reducer):
    """UMAP through umap-learn (seeded runs are single-threaded and reproducible).

    ``knn="auto"`` finds the neighbours exactly (scikit-learn) up to :attr:`EXACT_KNN_MAX`
    samples and hands them to umap-learn with a small exact search index, which keeps
    ``transform`` working and skips pynndescent's approximate search, whose numba code cannot be
    cached and costs 10-30 s to compile in every new process; pynndescent's trees, which compile
    for 20-30 s on a new machine, are then not even loaded (:func:`latent_atlas.jitcache.
    defer_pynndescent`). Above that, or with ``knn="approximate"``, umap-learn's own NN-descent
    is used. Either way numba's disk cache is switched on for umap-learn's other compiled
    functions (see :mod:`latent_atlas.jitcache`).
    """

    supports_transform = True
    init_param = "init"
    one_core_when_seeded = True  # (umap-learn's seeded layout is single-threaded)
    EXACT_KNN_MAX: ClassVar[int] = 20_000
    param_checks: ClassVar[Mapping[str, Check]] = {
        **Reducer.param_checks,
        "n_neighbors": whole(2),
        "min_dist": real(0),
        "metric": metric_name(),
        "n_epochs": whole(0, none=True),
        "init": word("spectral", "random", "pca", "tswspectral", objects="an N×2 array"),
        "knn": word("auto", "exact", "approximate"),
    }

    def __init__(
        self,
        n_components: int = 2,
        n_neighbors: int = 30,
        min_dist: float = 0.1,
        metric: str = "euclidean",
        n_epochs: int | None = None,
        init: str = "spectral",
        knn: str = "auto",
        pca_dims: int | None = None,
        random_state: Any = None,
    ):
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.metric = metric
        self.n_epochs = n_epochs
        self.init = init
        self.knn = knn
        self.pca_dims = pca_dims
        self.random_state = random_state

    @staticmethod
    def warm_up() -> bool:
        """Start compiling umap-learn's code in the background when numba's cache is cold
        (runs call this before training; ``fit`` waits for it)."""
        from latent_atlas.jitcache import warm_up_in_background

        return warm_up_in_background()

    @staticmethod
    def import_backend(nn_descent: bool = False) -> Any:
        """umap-learn, its uncached compiled functions set to cache; pynndescent's trees and
        NN-descent are loaded only with ``nn_descent`` (or later, when a fit needs them)."""
        from latent_atlas import jitcache

        if not nn_descent:
            jitcache.defer_pynndescent()
        umap = require("umap", "umap-learn", "umap", "UMAP")
        if nn_descent:
            jitcache.load_pynndescent()
        jitcache.enable_numba_caching("umap", "pynndescent")
        return umap

    def _fit(self, X: np.ndarray) -> np.ndarray:
        from latent_atlas import jitcache

        jitcache.wait_for_warm_up()
        exact = self.knn == "exact" or (self.knn == "auto" and len(X) <= self.EXACT_KNN_MAX)
        # below 4096 samples umap-learn computes exact neighbours itself; above, they are found
        # here (scikit-learn's metrics) or by pynndescent's NN-descent, whose trees compile
        ours = exact and self.metric in _SKLEARN_METRICS and len(X) >= _UMAP_SMALL_DATA
        nn_descent = len(X) >= _UMAP_SMALL_DATA and not ours
        umap = self.import_backend(nn_descent)
        self.n_neighbors_ = int(
            self._adapt("n_neighbors", self.n_neighbors, len(X) - 1, f"{len(X)} samples")
        )
        init = self.init
        if isinstance(init, str) and init == "spectral" and len(X) <= self.n_components + 1:
            init = "random"
        precomputed: tuple = (None, None, None)
        if ours:
            index = _ExactIndex(X, self.metric)
            precomputed = (*index.graph(X, self.n_neighbors_), index)
        self.knn_ = "approximate" if nn_descent and not exact else "exact"
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
            warnings.filterwarnings("ignore", message=".*spectral initialisation failed.*")
            warnings.filterwarnings("ignore", message=".*knn_search_index.*")
            self.umap_ = umap.UMAP(
                n_components=self.n_components,
                n_neighbors=self.n_neighbors_,
                min_dist=self.min_dist,
                metric=self.metric,
                n_epochs=self.n_epochs,
                init=init,
                random_state=self.random_state,
                precomputed_knn=precomputed,
            )
            return self.umap_.fit_transform(X)

    def _transform(self, X: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning)
            return self.umap_.transform(X)


_UMAP_SMALL_DATA = 4096  # umap-learn's own exact search below this many samples
_SKLEARN_METRICS = ("euclidean", "manhattan", "cosine", "chebyshev", "minkowski")


class _ExactIndex:
    """An exact neighbour index with the ``query`` method umap-learn's ``transform`` calls."""

    _angular_trees = False

    def __init__(self, X: np.ndarray, metric: str):
        from sklearn.neighbors import NearestNeighbors

        self.nn = NearestNeighbors(metric=metric).fit(X)

    def query(self, X: np.ndarray, k: int, epsilon: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
        dist, ind = self.nn.kneighbors(X, n_neighbors=k)
        return ind.astype(np.int32), dist.astype(np.float32)

    def graph(self, X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k-NN graph of the indexed points ``X`` themselves, as umap-learn's own search
        gives it: each point its own first neighbour at distance exactly 0. (scikit-learn's
        float32 arithmetic leaves about 1e-6 there for a fifth of the article's CIFAR-10
        activations; umap-learn takes the first distance above 0 for the distance to the
        nearest other point, so those points lost their local connectivity and the map 5% of
        its neighbourhood preservation: bench/RESULTS.md.)"""
        ind, dist = self.query(X, k)
        dist[ind == np.arange(len(ind))[:, None]] = 0.0
        return ind, dist


def compile_umap() -> None:
    """The warm-up child's work (:func:`latent_atlas.jitcache.warm_up_in_background`): fit two
    small maps, one through each exact neighbour path of :class:`UMAPReducer` (umap-learn's own
    below 4096 samples, ours above), so umap-learn's compiled functions land in numba's cache
    with the types a real fit uses. pynndescent's trees are not compiled: only NN-descent uses
    them, and a fit that needs it compiles them itself."""
    rng = np.random.default_rng(0)
    for n in (300, 4096):
        x = rng.normal(size=(n, 8)).astype(np.float32)
        UMAPReducer(n_neighbors=15, n_epochs=5, random_state=0).fit(x)
