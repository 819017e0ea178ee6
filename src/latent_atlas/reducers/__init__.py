"""Dimensionality reducers behind one scikit-learn-style interface, found by name.

Every reducer follows scikit-learn's estimator contract: ``__init__`` stores its parameters
unchanged, ``fit(X)`` checks them and the data, learns ``embedding_`` and returns ``self``;
learned attributes end in ``_``; ``random_state`` seeds everything random. Optional backends
(openTSNE, umap-learn) are imported inside ``fit``, so a missing one raises one clear
"install latent-atlas[extra]" error only when it is used.

Defaults are the article's: t-SNE with perplexity 50, UMAP with 30 neighbours.

Nonlinear reducers take ``pca_dims``: when the data has more columns than that, a seeded PCA
first reduces it to ``pca_dims`` dimensions (50 is the usual choice for wide inputs), and
``transform`` applies the same PCA to new points.

``transform`` (placing new points into a fitted map) is supported by ``pca``, ``tsne``,
``umap``, ``pacmap`` and ``isomap``; not by ``tsne-sklearn``.

The package: :mod:`~latent_atlas.reducers.base` (the :class:`Reducer` base class),
:mod:`~latent_atlas.reducers.linear` (PCA), :mod:`~latent_atlas.reducers.tsne`,
:mod:`~latent_atlas.reducers.umap` and :mod:`~latent_atlas.reducers.others` (PaCMAP, Isomap);
this module holds the explicit registry :data:`REDUCERS` and the look-ups by name.
"""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator

from latent_atlas.errors import ConfigError
from latent_atlas.reducers.base import AdaptedParameterWarning, Reducer
from latent_atlas.reducers.base import _can_transform as _can_transform
from latent_atlas.reducers.linear import PCAReducer
from latent_atlas.reducers.others import IsomapReducer, PaCMAPReducer
from latent_atlas.reducers.tsne import SklearnTSNEReducer, TSNEReducer
from latent_atlas.reducers.tsne import _KLPlateau as _KLPlateau
from latent_atlas.reducers.umap import _SKLEARN_METRICS as _SKLEARN_METRICS
from latent_atlas.reducers.umap import UMAPReducer
from latent_atlas.reducers.umap import _ExactIndex as _ExactIndex

# the classes keep the module name they had before this package was split, so that the
# ``module.Class`` recorded for an instance (MapSpec.method_name) and pickles stay the same
for _cls in (
    AdaptedParameterWarning,
    Reducer,
    PCAReducer,
    TSNEReducer,
    _KLPlateau,
    SklearnTSNEReducer,
    UMAPReducer,
    _ExactIndex,
    PaCMAPReducer,
    IsomapReducer,
):
    _cls.__module__ = __name__
del _cls

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
    return reducer_class(method, params)(**params)


def reducer_class(method: str, params: dict[str, Any] | None = None) -> type[Reducer]:
    """The registered class of ``method``, after checking that it takes ``params``: by name,
    and by type and range (``pca.n_components=abc`` fails here, before any work is done)."""
    try:
        cls = REDUCERS[method]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown method {method!r}; choose from {', '.join(REDUCERS)}") from None
    valid = cls._get_param_names()
    unknown = sorted(set(params or {}) - set(valid))
    if unknown:
        raise ConfigError(
            f"{method}: unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(valid)}"
        )
    cls._check_param_values(params or {})
    return cls


def method_name(reducer: Reducer | str) -> str:
    """The registry name of a reducer (or its class name when it is not registered)."""
    if isinstance(reducer, str):
        return reducer
    for name, cls in REDUCERS.items():
        if type(reducer) is cls:
            return name
    return type(reducer).__name__.lower()


__all__ = [
    "REDUCERS",
    "AdaptedParameterWarning",
    "IsomapReducer",
    "PCAReducer",
    "PaCMAPReducer",
    "Reducer",
    "SklearnTSNEReducer",
    "TSNEReducer",
    "UMAPReducer",
    "available_reducers",
    "get_reducer",
    "method_name",
]
