"""t-SNE: openTSNE's composable steps with early stopping, and scikit-learn's for comparison."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from latent_atlas.errors import ConfigError, require
from latent_atlas.reducers.base import (
    AdaptedParameterWarning,
    Check,
    Reducer,
    jobs,
    metric_name,
    real,
    whole,
    word,
)

# openTSNE's names (and ours: "auto"); a KNNIndex instance or an initial layout array also work
_NEIGHBORS = ("auto", "exact", "approx", "annoy", "pynndescent", "hnsw")
_GRADIENT = ("auto", "fft", "FFT", "interpolation", "bh", "BH", "barnes-hut")


class TSNEReducer(Reducer):
    """t-SNE through openTSNE's composable steps, on all cores.

    The steps are openTSNE's: perplexity-based affinities, a PCA initialisation, then an early
    exaggeration phase (at most ``early_exaggeration_iter`` iterations) and a normal phase (at
    most ``n_iter``). Each phase stops early once it has converged: when the KL divergence,
    checked every 25 iterations, improved by less than ``tol`` (relative) over the last 50
    (``tol=0`` runs every iteration). On the article's 10,000 CIFAR-10 activations the default
    ends the phases after 100 and about 275 iterations, with the trustworthiness, continuity and
    5-NN accuracy of the article's scikit-learn t-SNE of 1,000 iterations and 1.3% fewer
    neighbourhoods kept (neighbourhood preservation 0.194 against 0.197); ``tol=1e-3`` runs the
    whole normal phase and keeps as many (0.1966), at about twice the t-SNE time (see
    bench/RESULTS.md).

    ``neighbors="auto"`` searches neighbours exactly up to 20,000 points (faster than Annoy
    there, and exact) and with Annoy above. ``negative_gradient_method="auto"`` uses
    FFT-accelerated interpolation (FIt-SNE) from 10,000 points up and Barnes-Hut below, where
    it is several times faster; pass ``"fft"`` or ``"bh"`` to force one.
    """

    supports_transform = True
    init_param = "initialization"
    init_scale = 1e-4
    warm_start: ClassVar[Mapping[str, Any]] = {"early_exaggeration_iter": 0}
    EXACT_NEIGHBORS_MAX: ClassVar[int] = 20_000
    param_checks: ClassVar[Mapping[str, Check]] = {
        **Reducer.param_checks,
        "perplexity": real(positive=True),
        "learning_rate": real(positive=True, words=("auto",)),
        "n_iter": whole(0),
        "early_exaggeration_iter": whole(0),
        "tol": real(0),
        "initialization": word("pca", "spectral", "random", objects="an N×2 array"),
        "metric": metric_name(),
        "neighbors": word(*_NEIGHBORS, objects="a KNNIndex"),
        "negative_gradient_method": word(*_GRADIENT),
        "dof": real(positive=True),
        "n_jobs": jobs(),
    }

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
        super()._check_params(X)  # types and ranges: param_checks
        if self.n_components > 2 and self.negative_gradient_method not in _GRADIENT[4:]:
            raise ConfigError("t-SNE: more than 2 components need negative_gradient_method='bh'")

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
        if (
            isinstance(initialization, str)
            and initialization == "pca"
            and X.shape[1] < self.n_components
        ):
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
        embedding = tsne.prepare_initial(X, affinities=self._affinities(X, open_tsne))
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

    def _affinities(self, X: np.ndarray, open_tsne: Any) -> Any:
        """openTSNE's affinities over our own neighbour index, or None (openTSNE's choice).

        The same index and parameters openTSNE would build, but made here: openTSNE first checks
        whether pynndescent is installed by importing it, and that import compiles numba code
        for 30 s or more in a fresh environment, for a library exact and Annoy searches never use.
        """
        from openTSNE import affinity, nearest_neighbors

        index_class = {"exact": nearest_neighbors.Sklearn, "annoy": nearest_neighbors.Annoy}.get(
            self.neighbors_ if isinstance(self.neighbors_, str) else ""
        )
        if index_class is None:
            return None
        index = index_class(
            data=X,
            k=min(len(X) - 1, int(3 * self.perplexity_)),
            metric=self.metric,
            n_jobs=self.n_jobs,
            random_state=self.random_state,
        )
        return affinity.MultiscaleMixture(
            perplexities=self.perplexity_, knn_index=index, n_jobs=self.n_jobs
        )

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
    """scikit-learn's Barnes-Hut t-SNE: the article's own call (slower; for comparison)."""

    init_param = "init"
    init_scale = 1e-4

    param_checks: ClassVar[Mapping[str, Check]] = {
        **Reducer.param_checks,
        "perplexity": real(positive=True),
        "learning_rate": real(positive=True, words=("auto",)),
        "max_iter": whole(250),  # scikit-learn's own lower bound
        "init": word("pca", "random", objects="an N×2 array"),
        "metric": metric_name(),
        "n_jobs": jobs(none=True),
    }

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
