"""The :class:`Reducer` base class: scikit-learn's estimator contract, shared by every method.

``fit`` validates the data, checks the parameters, applies the optional PCA to ``pca_dims``
dimensions and stores ``embedding_``; ``transform`` exists only on methods that can place new
points into a fitted map. :class:`AdaptedParameterWarning` reports a parameter lowered to fit
the data.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, validate_data

from latent_atlas.errors import ConfigError


class AdaptedParameterWarning(UserWarning):
    """A parameter was lowered to fit the data (e.g. perplexity for few samples)."""


def _can_transform(reducer: Reducer) -> bool:
    if not reducer.supports_transform:
        from latent_atlas.reducers import REDUCERS

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
