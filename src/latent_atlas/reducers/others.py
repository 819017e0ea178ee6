"""PaCMAP (pacmap) and Isomap (scikit-learn): the methods beyond PCA, t-SNE and UMAP."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from latent_atlas.errors import ConfigError, LatentAtlasError, require
from latent_atlas.reducers.base import Check, Reducer, real, whole


class PaCMAPReducer(Reducer):
    """PaCMAP (pacmap): local and global structure, with ``transform`` for new points."""

    supports_transform = True
    param_checks: ClassVar[Mapping[str, Check]] = {
        **Reducer.param_checks,
        "n_neighbors": whole(1),
        "MN_ratio": real(0),
        "FP_ratio": real(positive=True),
        "num_iters": lambda value: _iterations(value),
    }

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


def _iterations(value: Any) -> str | None:
    """PaCMAP's ``num_iters``: one whole number, or three (its three phases)."""
    parts = list(value) if isinstance(value, tuple | list) else None
    if parts is None and whole(1)(value) is None:
        return None  # pacmap runs it as (100, 100, num_iters)
    if parts is not None and len(parts) == 3 and all(whole(0)(p) is None for p in parts):
        return None
    return "must be a whole number or three of them, e.g. [100, 100, 250]"


class IsomapReducer(Reducer):
    """scikit-learn's Isomap (geodesic distances on a k-NN graph); for small data only."""

    supports_transform = True
    MAX_SAMPLES: ClassVar[int] = 20_000  # it holds an N×N geodesic distance matrix
    param_checks: ClassVar[Mapping[str, Check]] = {**Reducer.param_checks, "n_neighbors": whole(1)}

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
