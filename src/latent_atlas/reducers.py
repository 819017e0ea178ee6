"""Dimensionality reducers behind one scikit-learn-style interface, found by name.

Every reducer follows scikit-learn's estimator contract: ``__init__`` stores its parameters
unchanged, ``fit(X)`` checks them and the data, learns ``embedding_`` and returns ``self``;
learned attributes end in ``_``; ``random_state`` seeds everything random. Optional backends
(openTSNE, umap-learn) are imported inside ``fit``, so a missing one raises one clear
"install latent-atlas[extra]" error only when it is used.

Defaults are the seed article's: t-SNE with perplexity 50, UMAP with 30 neighbours.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from latent_atlas.errors import ConfigError, LatentAtlasError, require


class AdaptedParameterWarning(UserWarning):
    """A parameter was lowered to fit the data (e.g. perplexity for few samples)."""


class Reducer(TransformerMixin, BaseEstimator):
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
        self.embedding_ = np.asarray(self._fit(X), dtype=np.float32)
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        return self.fit(X, y).embedding_

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "embedding_")
        if not self.supports_transform:
            able = [n for n, c in REDUCERS.items() if c.supports_transform]
            raise LatentAtlasError(
                f"{type(self).__name__} cannot place new points into a fitted map; "
                f"methods that can: {', '.join(able)}"
            )
        X = validate_data(self, X, dtype=[np.float32, np.float64], reset=False)
        return np.asarray(self._transform(X), dtype=np.float32)

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
    """t-SNE through openTSNE, on all cores.

    ``negative_gradient_method="auto"`` uses FFT-accelerated interpolation (FIt-SNE) from
    10,000 points up and Barnes-Hut below, where it is several times faster; pass ``"fft"``
    or ``"bh"`` to force one.
    """

    supports_transform = True

    def __init__(
        self,
        n_components: int = 2,
        perplexity: float = 50.0,
        learning_rate: float | str = "auto",
        n_iter: int = 500,
        early_exaggeration_iter: int = 250,
        initialization: str = "pca",
        metric: str = "euclidean",
        neighbors: str = "auto",
        negative_gradient_method: str = "auto",
        dof: float = 1.0,
        n_jobs: int = -1,
        random_state: Any = None,
    ):
        self.n_components = n_components
        self.perplexity = perplexity
        self.learning_rate = learning_rate
        self.n_iter = n_iter
        self.early_exaggeration_iter = early_exaggeration_iter
        self.initialization = initialization
        self.metric = metric
        self.neighbors = neighbors
        self.negative_gradient_method = negative_gradient_method
        self.dof = dof
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _check_params(self, X: np.ndarray) -> None:
        super()._check_params(X)
        if self.perplexity <= 0:
            raise ConfigError(f"t-SNE: perplexity must be positive, got {self.perplexity}")
        if self.n_components > 2 and self.negative_gradient_method != "bh":
            raise ConfigError("t-SNE: more than 2 components need negative_gradient_method='bh'")

    def _fit(self, X: np.ndarray) -> np.ndarray:
        open_tsne = require("openTSNE", "openTSNE", "tsne", "t-SNE")
        self.perplexity_ = self._adapt(
            "perplexity", self.perplexity, (len(X) - 1) / 3, f"{len(X)} samples"
        )
        tsne = open_tsne.TSNE(
            n_components=self.n_components,
            perplexity=self.perplexity_,
            learning_rate=self.learning_rate,
            n_iter=self.n_iter,
            early_exaggeration_iter=self.early_exaggeration_iter,
            initialization=self.initialization,
            metric=self.metric,
            neighbors=self.neighbors,
            negative_gradient_method=self.negative_gradient_method,
            dof=self.dof,
            n_jobs=self.n_jobs,
            random_state=self.random_state,
        )
        self.tsne_embedding_ = tsne.fit(X)
        return np.asarray(self.tsne_embedding_)

    def _transform(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.tsne_embedding_.transform(X))


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
        random_state: Any = None,
    ):
        self.n_components = n_components
        self.perplexity = perplexity
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.init = init
        self.metric = metric
        self.n_jobs = n_jobs
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
        return self.tsne_.fit_transform(X)


class UMAPReducer(Reducer):
    """UMAP through umap-learn (seeded runs are single-threaded and reproducible)."""

    supports_transform = True

    def __init__(
        self,
        n_components: int = 2,
        n_neighbors: int = 30,
        min_dist: float = 0.1,
        metric: str = "euclidean",
        n_epochs: int | None = None,
        init: str = "spectral",
        random_state: Any = None,
    ):
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.metric = metric
        self.n_epochs = n_epochs
        self.init = init
        self.random_state = random_state

    def _check_params(self, X: np.ndarray) -> None:
        super()._check_params(X)
        if self.n_neighbors < 2:
            raise ConfigError(f"UMAP: n_neighbors must be at least 2, got {self.n_neighbors}")

    def _fit(self, X: np.ndarray) -> np.ndarray:
        umap = require("umap", "umap-learn", "umap", "UMAP")
        self.n_neighbors_ = int(
            self._adapt("n_neighbors", self.n_neighbors, len(X) - 1, f"{len(X)} samples")
        )
        init = self.init
        if init == "spectral" and len(X) <= self.n_components + 1:
            init = "random"
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
            warnings.filterwarnings("ignore", message=".*spectral initialisation failed.*")
            self.umap_ = umap.UMAP(
                n_components=self.n_components,
                n_neighbors=self.n_neighbors_,
                min_dist=self.min_dist,
                metric=self.metric,
                n_epochs=self.n_epochs,
                init=init,
                random_state=self.random_state,
            )
            return self.umap_.fit_transform(X)

    def _transform(self, X: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning)
            return self.umap_.transform(X)


#: registry: method name → reducer class (explicit; nothing registers itself on import)
REDUCERS: dict[str, type[Reducer]] = {
    "pca": PCAReducer,
    "tsne": TSNEReducer,
    "tsne-sklearn": SklearnTSNEReducer,
    "umap": UMAPReducer,
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
