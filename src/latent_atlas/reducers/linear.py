"""PCA, the article's first map: linear, deterministic, and able to place new points."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from latent_atlas.errors import ConfigError
from latent_atlas.reducers.base import Check, Reducer, flag


class PCAReducer(Reducer):
    """Principal component analysis (scikit-learn), the article's first map."""

    supports_transform = True
    quick = True
    min_samples = 2
    param_checks: ClassVar[Mapping[str, Check]] = {**Reducer.param_checks, "whiten": flag()}

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
