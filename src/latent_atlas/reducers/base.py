"""The :class:`Reducer` base class: scikit-learn's estimator contract, shared by every method.

``fit`` validates the data, checks the parameters, applies the optional PCA to ``pca_dims``
dimensions and stores ``embedding_``; ``transform`` exists only on methods that can place new
points into a fitted map. :class:`AdaptedParameterWarning` reports a parameter lowered to fit
the data.

Each class lists in :attr:`Reducer.param_checks` what its parameters may be (``whole(1)``: a
whole number of at least 1, ``real(positive=True)``, ``word("auto", "exact")``...), so that a
parameter of the wrong type or out of range (``--param pca.n_components=abc``) is one clear
:class:`~latent_atlas.errors.ConfigError` naming it: when a map is configured
(:func:`~latent_atlas.reducers.reducer_class`) and again in ``fit``.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, validate_data

from latent_atlas.errors import ConfigError


class AdaptedParameterWarning(UserWarning):
    """A parameter was lowered to fit the data (e.g. perplexity for few samples)."""


#: a parameter check: ``None`` when the value will do, else what it must be ("must be ...")
Check = Callable[[Any], "str | None"]


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def whole(low: int = 0, *, none: bool = False) -> Check:
    """A whole number (not a bool, not 2.0) of at least ``low``; with ``none``, or None."""

    def check(value: Any) -> str | None:
        if value is None and none:
            return None
        if not _is_int(value):
            return "must be a whole number" + (" or null" if none else "")
        return None if value >= low else f"must be at least {low}"

    return check


def real(
    low: float | None = None,
    *,
    positive: bool = False,
    none: bool = False,
    words: tuple[str, ...] = (),
) -> Check:
    """A finite number (at least ``low``, or above 0 with ``positive``), or one of ``words``."""

    def check(value: Any) -> str | None:
        if (value is None and none) or (isinstance(value, str) and value in words):
            return None
        if not _is_real(value):
            alternatives = [repr(w) for w in words] + (["null"] if none else [])
            return "must be a number" + "".join(f" or {a}" for a in alternatives)
        if not math.isfinite(value):
            return "must be a finite number"
        if positive and value <= 0:
            return "must be positive"
        return None if low is None or value >= low else f"must be at least {low:g}"

    return check


def flag() -> Check:
    """true or false."""
    return lambda value: None if isinstance(value, bool | np.bool_) else "must be true or false"


def word(*choices: str, objects: str = "") -> Check:
    """One of ``choices``; with ``objects`` (what they are, e.g. "an array"), also any object
    that is not a string, number or bool (arrays, index instances, callables)."""

    def check(value: Any) -> str | None:
        if isinstance(value, str) and value in choices:
            return None
        if objects and not isinstance(value, str | numbers.Number | bool | list | dict | None):
            return None
        names = ", ".join(repr(c) for c in choices)
        return f"must be one of {names}" + (f" or {objects}" if objects else "")

    return check


def metric_name() -> Check:
    """A metric: its name or a callable."""
    return lambda value: (
        None if isinstance(value, str) or callable(value) else "must be a metric name"
    )


def jobs(*, none: bool = False) -> Check:
    """A number of parallel jobs: a whole number other than 0 (-1: all cores)."""

    def check(value: Any) -> str | None:
        if value is None and none:
            return None
        if not _is_int(value) or value == 0:
            return "must be a whole number other than 0 (-1 uses every core)"
        return None

    return check


def seed() -> Check:
    """A random seed: null, a whole number in 0 .. 2**32 - 1, or a numpy generator."""

    def check(value: Any) -> str | None:
        if value is None or isinstance(value, np.random.RandomState | np.random.Generator):
            return None
        if _is_int(value) and 0 <= value < 2**32:
            return None
        return "must be a whole number in 0..4294967295 or null (the run's --seed sets it)"

    return check


def _can_transform(reducer: Reducer) -> bool:
    if not reducer.supports_transform:
        from latent_atlas.reducers import REDUCERS

        able = [n for n, c in REDUCERS.items() if c.supports_transform]
        raise AttributeError(
            f"{type(reducer).__name__} cannot place new points into a fitted map; "
            f"methods that can: {', '.join(able)}"
        )
    return True


def _label(cls: type) -> str:
    """The registry name of a reducer class, for messages (its class name when unregistered)."""
    from latent_atlas.reducers import REDUCERS

    for name, registered in REDUCERS.items():
        if cls is registered:
            return name
    return cls.__name__


class Reducer(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    # (no set_output wrapping: it would hide that transform is missing where it is)
    """Base class: subclasses implement ``_fit(X) -> embedding`` and optionally ``_transform``."""

    #: whether ``transform`` can place new points into a fitted map
    supports_transform: ClassVar[bool] = False
    #: the parameter that takes a starting layout (an N×2 array), for aligned maps; None: none
    init_param: ClassVar[str | None] = None
    #: the standard deviation a starting layout is scaled to (None: the method rescales it)
    init_scale: ClassVar[float | None] = None
    #: parameters a fit started from a reference map takes, where the user left them at their
    #: default (t-SNE: no early exaggeration, which would tear the start apart)
    warm_start: ClassVar[Mapping[str, Any]] = {}
    #: the fewest samples ``fit`` accepts
    min_samples: ClassVar[int] = 3
    #: a seeded fit runs on one core, so another map can be fitted beside it (latent_atlas.mapfit)
    one_core_when_seeded: ClassVar[bool] = False
    #: linear and fast: nothing to gain by fitting another map beside it (latent_atlas.mapfit)
    quick: ClassVar[bool] = False
    #: what each parameter may be (see :func:`whole`, :func:`real`, :func:`word`...)
    param_checks: ClassVar[Mapping[str, Check]] = {
        "n_components": whole(1),
        "pca_dims": whole(2, none=True),
        "random_state": seed(),
    }

    @classmethod
    def _check_param_values(cls, params: Mapping[str, Any]) -> None:
        """One :class:`ConfigError` for the first parameter whose type or range cannot work."""
        for name, value in params.items():
            check = cls.param_checks.get(name)
            problem = check(value) if check is not None else None
            if problem:
                shown = repr(value)
                shown = shown if len(shown) <= 60 else shown[:57] + "..."
                raise ConfigError(f"{_label(cls)}: {name} {problem}, got {shown}")

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
        self._check_param_values(self.get_params(deep=False))

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
