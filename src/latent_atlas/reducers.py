"""Dimensionality reducers behind one scikit-learn-style interface, found by name.

Every reducer follows scikit-learn's estimator contract: ``__init__`` stores its parameters
unchanged, ``fit(X)`` checks them and the data, learns ``embedding_`` and returns ``self``;
learned attributes end in ``_``; ``random_state`` seeds everything random. Optional backends
(openTSNE, umap-learn) are imported inside ``fit``, so a missing one raises one clear
"install latent-atlas[extra]" error only when it is used.

Defaults are the seed article's: t-SNE with perplexity 50, UMAP with 30 neighbours.

Nonlinear reducers take ``pca_dims``: when the data has more columns than that, a seeded PCA
first reduces it to ``pca_dims`` dimensions (50 is the usual choice for wide inputs), and
``transform`` applies the same PCA to new points.

``transform`` (placing new points into a fitted map) is supported by ``pca``, ``tsne``,
``umap``, ``pacmap`` and ``isomap``; not by ``tsne-sklearn``.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, validate_data

from latent_atlas.errors import ConfigError, LatentAtlasError, require


class AdaptedParameterWarning(UserWarning):
    """A parameter was lowered to fit the data (e.g. perplexity for few samples)."""


def _can_transform(reducer: Reducer) -> bool:
    if not reducer.supports_transform:
        able = [n for n, c in REDUCERS.items() if c.supports_transform]
        raise AttributeError(
            f"{type(reducer).__name__} cannot place new points into a fitted map; "
            f"methods that can: {', '.join(able)}"
        )
    return True


class Reducer(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    # (no set_output wrapping: it would hide that transform is missing where it is)
    """Base class: subclasses implement ``_fit(X) -> embedding`` and optionally ``_transform``."""

    #: whether ``transform`` can place new points into a fitted map
    supports_transform: ClassVar[bool] = False
    #: the fewest samples ``fit`` accepts
    min_samples: ClassVar[int] = 3

    def fit(self, X: Any, y: Any = None) -> Reducer:
        X = validate_data(
            self, X, dtype=[np.float32, np.float64], ensure_min_samples=self.min_samples
        )
        self._check_params(X)
        X = self._pre_reduce(X, fit=True)
        self.embedding_ = np.asarray(self._fit(X), dtype=np.float32)
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        return self.fit(X, y).embedding_

    @available_if(_can_transform)
    def transform(self, X: Any) -> np.ndarray:
        """Place new points into the fitted map (only methods with ``supports_transform``)."""
        check_is_fitted(self, "embedding_")
        X = validate_data(self, X, dtype=[np.float32, np.float64], reset=False)
        return np.asarray(self._transform(self._pre_reduce(X, fit=False)), dtype=np.float32)

    def _pre_reduce(self, X: np.ndarray, fit: bool) -> np.ndarray:
        """The optional PCA to ``pca_dims`` dimensions ahead of a nonlinear method."""
        dims = getattr(self, "pca_dims", None)
        if fit:
            self.pre_pca_ = None
            if dims is not None:
                if int(dims) < 2:
                    raise ConfigError(f"pca_dims must be at least 2, got {dims}")
                if X.shape[1] > dims and len(X) > dims:
                    from sklearn.decomposition import PCA

                    self.pre_pca_ = PCA(int(dims), random_state=getattr(self, "random_state", 0))
                    return self.pre_pca_.fit_transform(X).astype(X.dtype, copy=False)
            return X
        if getattr(self, "pre_pca_", None) is not None:
            return self.pre_pca_.transform(X).astype(X.dtype, copy=False)
        return X

    # -- for subclasses -------------------------------------------------------------------
    def _check_params(self, X: np.ndarray) -> None:
        if getattr(self, "n_components", 2) < 1:
            raise ConfigError(f"n_components must be at least 1, got {self.n_components}")

    def _fit(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _transform(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _adapt(self, name: str, value: float, limit: float, why: str) -> float:
        if value > limit:
            warnings.warn(
                f"{type(self).__name__}: {name}={value} is too large for {why}; using {limit:g}",
                AdaptedParameterWarning,
                stacklevel=3,
            )
            return limit
        return value

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]  # maps are float32 whatever the input
        tags.non_deterministic = (
            self.random_state is None if hasattr(self, "random_state") else False
        )
        return tags


class PCAReducer(Reducer):
    """Principal component analysis (scikit-learn), the seed's first map."""

    supports_transform = True
    min_samples = 2

    def __init__(self, n_components: int = 2, whiten: bool = False, random_state: Any = None):
        self.n_components = n_components
        self.whiten = whiten
        self.random_state = random_state

    def _fit(self, X: np.ndarray) -> np.ndarray:
        from sklearn.decomposition import PCA

        if self.n_components > min(X.shape):
            raise ConfigError(
                f"PCA: n_components={self.n_components} exceeds the data's "
                f"{min(X.shape)} samples/features"
            )
        self.pca_ = PCA(self.n_components, whiten=self.whiten, random_state=self.random_state)
        emb = self.pca_.fit_transform(X)
        self.explained_variance_ratio_ = self.pca_.explained_variance_ratio_
        return emb

    def _transform(self, X: np.ndarray) -> np.ndarray:
        return self.pca_.transform(X)


class TSNEReducer(Reducer):
    """t-SNE through openTSNE's composable steps, on all cores.

    The steps are openTSNE's: perplexity-based affinities, a PCA initialisation, then an early
    exaggeration phase (at most ``early_exaggeration_iter`` iterations) and a normal phase (at
    most ``n_iter``). Each phase stops early once it has converged: when the KL divergence,
    checked every 25 iterations, improved by less than ``tol`` (relative) over the last 50
    (``tol=0`` runs every iteration). On the seed's 10,000 CIFAR-10 activations that ends the
    phases after about 175 and 300 iterations with the same trustworthiness and 5-NN accuracy
    as the full 250 + 500 (see bench/RESULTS.md).

    ``neighbors="auto"`` searches neighbours exactly up to 20,000 points (faster than Annoy
    there, and exact) and with Annoy above. ``negative_gradient_method="auto"`` uses
    FFT-accelerated interpolation (FIt-SNE) from 10,000 points up and Barnes-Hut below, where
    it is several times faster; pass ``"fft"`` or ``"bh"`` to force one.
    """

    supports_transform = True
    EXACT_NEIGHBORS_MAX: ClassVar[int] = 20_000

    def __init__(
        self,
        n_components: int = 2,
        perplexity: float = 50.0,
        learning_rate: float | str = "auto",
        n_iter: int = 500,
        early_exaggeration_iter: int = 250,
        tol: float = 5e-3,
        initialization: str = "pca",
        metric: str = "euclidean",
        neighbors: str = "auto",
        negative_gradient_method: str = "auto",
        dof: float = 1.0,
        n_jobs: int = -1,
        pca_dims: int | None = None,
        random_state: Any = None,
    ):
        self.n_components = n_components
        self.perplexity = perplexity
        self.learning_rate = learning_rate
        self.n_iter = n_iter
        self.early_exaggeration_iter = early_exaggeration_iter
        self.tol = tol
        self.initialization = initialization
        self.metric = metric
        self.neighbors = neighbors
        self.negative_gradient_method = negative_gradient_method
        self.dof = dof
        self.n_jobs = n_jobs
        self.pca_dims = pca_dims
        self.random_state = random_state

    def _check_params(self, X: np.ndarray) -> None:
        super()._check_params(X)
        if self.perplexity <= 0:
            raise ConfigError(f"t-SNE: perplexity must be positive, got {self.perplexity}")
        if self.n_components > 2 and self.negative_gradient_method != "bh":
            raise ConfigError("t-SNE: more than 2 components need negative_gradient_method='bh'")
        if self.tol < 0:
            raise ConfigError(f"t-SNE: tol must be 0 or more, got {self.tol}")

    def _fit(self, X: np.ndarray) -> np.ndarray:
        open_tsne = require("openTSNE", "openTSNE", "tsne", "t-SNE")
        self.perplexity_ = self._adapt(
            "perplexity", self.perplexity, (len(X) - 1) / 3, f"{len(X)} samples"
        )
        neighbors = self.neighbors
        if neighbors == "auto":
            neighbors = "exact" if len(X) <= self.EXACT_NEIGHBORS_MAX else "annoy"
        self.neighbors_ = neighbors
        initialization = self.initialization
        if initialization == "pca" and X.shape[1] < self.n_components:
            warnings.warn(
                f"TSNEReducer: a PCA start needs at least {self.n_components} features, the "
                f"data has {X.shape[1]}; starting from a spectral layout instead",
                AdaptedParameterWarning,
                stacklevel=3,
            )
            initialization = "spectral"
        self.initialization_ = initialization
        tsne = open_tsne.TSNE(
            n_components=self.n_components,
            perplexity=self.perplexity_,
            learning_rate=self.learning_rate,
            initialization=initialization,
            metric=self.metric,
            neighbors=neighbors,
            negative_gradient_method=self.negative_gradient_method,
            dof=self.dof,
            n_jobs=self.n_jobs,
            random_state=self.random_state,
        )
        embedding = tsne.prepare_initial(X)
        iterations = []
        for n_iter, exaggeration, momentum in (
            (self.early_exaggeration_iter, tsne.early_exaggeration, tsne.initial_momentum),
            (self.n_iter, tsne.exaggeration, tsne.final_momentum),
        ):
            plateau = _KLPlateau(self.tol)
            embedding.optimize(
                n_iter=n_iter,
                exaggeration=exaggeration,
                momentum=momentum,
                inplace=True,
                callbacks=plateau if self.tol > 0 else None,
                callbacks_every_iters=plateau.every,
            )
            iterations.append(plateau.stopped_at or n_iter)
        self.n_iter_ = sum(iterations)
        self.kl_divergence_ = float(embedding.kl_divergence)
        self.tsne_embedding_ = embedding
        return np.asarray(embedding)

    def _transform(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.tsne_embedding_.transform(X))


class _KLPlateau:
    """openTSNE callback: stop a phase once the KL divergence stops improving."""

    every = 25
    window = 50

    def __init__(self, tol: float):
        self.tol = tol
        self.history: list[float] = []
        self.stopped_at: int | None = None

    def __call__(self, iteration: int, error: float, embedding: Any) -> bool:
        self.history.append(float(error))
        back = self.window // self.every
        if len(self.history) > back:
            before = self.history[-1 - back]
            if before - error < self.tol * abs(error):
                self.stopped_at = iteration
                return True
        return False


class SklearnTSNEReducer(Reducer):
    """scikit-learn's Barnes-Hut t-SNE: the seed's own call (slower; for comparison)."""

    def __init__(
        self,
        n_components: int = 2,
        perplexity: float = 50.0,
        learning_rate: float | str = "auto",
        max_iter: int = 1000,
        init: str = "pca",
        metric: str = "euclidean",
        n_jobs: int | None = None,
        pca_dims: int | None = None,
        random_state: Any = None,
    ):
        self.n_components = n_components
        self.perplexity = perplexity
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.init = init
        self.metric = metric
        self.n_jobs = n_jobs
        self.pca_dims = pca_dims
        self.random_state = random_state

    def _fit(self, X: np.ndarray) -> np.ndarray:
        from sklearn.manifold import TSNE

        self.perplexity_ = self._adapt(
            "perplexity", self.perplexity, len(X) - 1, f"{len(X)} samples"
        )
        self.tsne_ = TSNE(
            n_components=self.n_components,
            perplexity=self.perplexity_,
            learning_rate=self.learning_rate,
            max_iter=self.max_iter,
            init=self.init,
            metric=self.metric,
            n_jobs=self.n_jobs,
            random_state=self.random_state,
        )
        emb = self.tsne_.fit_transform(X)
        self.n_iter_ = self.tsne_.n_iter_
        return emb


class UMAPReducer(Reducer):
    """UMAP through umap-learn (seeded runs are single-threaded and reproducible).

    ``knn="auto"`` finds the neighbours exactly (scikit-learn) up to :attr:`EXACT_KNN_MAX`
    samples and hands them to umap-learn with a small exact search index, which keeps
    ``transform`` working and skips pynndescent's approximate search, whose numba code cannot be
    cached and costs 10-30 s to compile in every new process. Above that, or with
    ``knn="approximate"``, umap-learn's own NN-descent is used. Either way numba's disk cache is
    switched on for umap-learn's other compiled functions (see :mod:`latent_atlas.jitcache`).
    """

    supports_transform = True
    EXACT_KNN_MAX: ClassVar[int] = 20_000

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

    def _check_params(self, X: np.ndarray) -> None:
        super()._check_params(X)
        if self.n_neighbors < 2:
            raise ConfigError(f"UMAP: n_neighbors must be at least 2, got {self.n_neighbors}")
        if self.knn not in ("auto", "exact", "approximate"):
            raise ConfigError(
                f"UMAP: knn must be 'auto', 'exact' or 'approximate', got {self.knn!r}"
            )

    def _fit(self, X: np.ndarray) -> np.ndarray:
        umap = require("umap", "umap-learn", "umap", "UMAP")
        from latent_atlas.jitcache import enable_numba_caching

        enable_numba_caching("umap", "pynndescent")
        self.n_neighbors_ = int(
            self._adapt("n_neighbors", self.n_neighbors, len(X) - 1, f"{len(X)} samples")
        )
        init = self.init
        if init == "spectral" and len(X) <= self.n_components + 1:
            init = "random"
        exact = self.knn == "exact" or (self.knn == "auto" and len(X) <= self.EXACT_KNN_MAX)
        precomputed: tuple = (None, None, None)
        if exact and self.metric in _SKLEARN_METRICS and len(X) >= 4096:
            # (below 4096 samples umap-learn computes exact neighbours itself)
            index = _ExactIndex(X, self.metric)
            precomputed = (*index.query(X, self.n_neighbors_), index)
        self.knn_ = "exact" if exact or len(X) < 4096 else "approximate"
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


class PaCMAPReducer(Reducer):
    """PaCMAP (pacmap): local and global structure, with ``transform`` for new points."""

    supports_transform = True

    def __init__(
        self,
        n_components: int = 2,
        n_neighbors: int = 10,
        MN_ratio: float = 0.5,
        FP_ratio: float = 2.0,
        num_iters: tuple[int, int, int] = (100, 100, 250),
        pca_dims: int | None = None,
        random_state: Any = None,
    ):
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.MN_ratio = MN_ratio
        self.FP_ratio = FP_ratio
        self.num_iters = num_iters
        self.pca_dims = pca_dims
        self.random_state = random_state

    def _fit(self, X: np.ndarray) -> np.ndarray:
        pacmap = require("pacmap", "pacmap", "pacmap", "PaCMAP")
        self.n_neighbors_ = int(
            self._adapt("n_neighbors", self.n_neighbors, len(X) - 2, f"{len(X)} samples")
        )
        self.fit_data_ = np.ascontiguousarray(X, dtype=np.float32)
        # pacmap logs a warning whenever its own PCA step is off (ours is ``pca_dims``)
        logger = logging.getLogger("pacmap")
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            self.pacmap_ = pacmap.PaCMAP(
                n_components=self.n_components,
                n_neighbors=self.n_neighbors_,
                MN_ratio=self.MN_ratio,
                FP_ratio=self.FP_ratio,
                num_iters=self.num_iters,
                apply_pca=False,
                random_state=self.random_state,
                save_tree=True,
                verbose=False,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return self.pacmap_.fit_transform(self.fit_data_, init="pca")
        finally:
            logger.setLevel(level)

    def _transform(self, X: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.pacmap_.transform(
                np.ascontiguousarray(X, dtype=np.float32), basis=self.fit_data_
            )


class IsomapReducer(Reducer):
    """scikit-learn's Isomap (geodesic distances on a k-NN graph); for small data only."""

    supports_transform = True
    MAX_SAMPLES: ClassVar[int] = 20_000  # it holds an N×N geodesic distance matrix

    def __init__(
        self,
        n_components: int = 2,
        n_neighbors: int = 10,
        pca_dims: int | None = None,
        random_state: Any = None,
    ):
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.pca_dims = pca_dims
        self.random_state = random_state

    def _check_params(self, X: np.ndarray) -> None:
        super()._check_params(X)
        if len(X) > self.MAX_SAMPLES:
            gib = len(X) ** 2 * 8 / 2**30
            raise ConfigError(
                f"isomap keeps an N×N distance matrix ({gib:.1f} GiB for {len(X):,} samples); "
                f"it is limited to {self.MAX_SAMPLES:,} samples: use --limit or another method"
            )

    def _fit(self, X: np.ndarray) -> np.ndarray:
        from sklearn.manifold import Isomap

        self.n_neighbors_ = int(
            self._adapt("n_neighbors", self.n_neighbors, len(X) - 1, f"{len(X)} samples")
        )
        self.isomap_ = Isomap(n_neighbors=self.n_neighbors_, n_components=self.n_components)
        # Isomap's ARPACK start vector comes from numpy's global generator: seed it for this
        # call only, so a seeded fit is reproducible and nothing else is disturbed
        state = np.random.get_state()
        try:
            if self.random_state is not None:
                np.random.seed(np.random.default_rng(self.random_state).integers(2**31))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # disconnected graphs are reported below
                emb = self.isomap_.fit_transform(X)
        finally:
            np.random.set_state(state)
        if not np.all(np.isfinite(emb)):
            raise LatentAtlasError("isomap: the neighbour graph is disconnected; raise n_neighbors")
        return emb

    def _transform(self, X: np.ndarray) -> np.ndarray:
        return self.isomap_.transform(X)


#: registry: method name → reducer class (explicit; nothing registers itself on import)
REDUCERS: dict[str, type[Reducer]] = {
    "pca": PCAReducer,
    "tsne": TSNEReducer,
    "tsne-sklearn": SklearnTSNEReducer,
    "umap": UMAPReducer,
    "pacmap": PaCMAPReducer,
    "isomap": IsomapReducer,
}


def available_reducers() -> list[str]:
    """Method names accepted by :func:`get_reducer`."""
    return list(REDUCERS)


def get_reducer(method: str | Reducer, **params: Any) -> Reducer:
    """A reducer by registry name (``get_reducer("tsne", perplexity=30)``) or an instance.

    An instance is returned as it is (with ``params`` applied through ``set_params``), so any
    object following the contract can be passed where a method name is expected.
    """
    if isinstance(method, BaseEstimator):
        return method.set_params(**params) if params else method  # type: ignore[return-value]
    try:
        cls = REDUCERS[method]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown method {method!r}; choose from {', '.join(REDUCERS)}") from None
    valid = cls._get_param_names()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError(
            f"{method}: unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(valid)}"
        )
    return cls(**params)


def method_name(reducer: Reducer | str) -> str:
    """The registry name of a reducer (or its class name when it is not registered)."""
    if isinstance(reducer, str):
        return reducer
    for name, cls in REDUCERS.items():
        if type(reducer) is cls:
            return name
    return type(reducer).__name__.lower()
