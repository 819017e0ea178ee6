"""Aligned maps of frames: the same images mapped at several layers, epochs or models.

A map of one frame is aligned to the map of the frame before it (its *reference*) so that a
point moves only as much as its neighbourhood changes:

- methods with a starting layout (t-SNE: openTSNE's ``initialization``, scikit-learn's ``init``;
  UMAP's ``init``; each reducer names it in ``init_param``) start from the reference map
  instead of their own PCA or spectral start, then optimise as usual, so their own
  neighbourhoods decide where points end up; t-SNE skips its early-exaggeration phase there
  (``warm_start``), which would otherwise scatter the start and reassemble it elsewhere;
- every map (PCA, Isomap, a method without a starting layout, and the others too) is then
  turned onto the reference by orthogonal Procrustes (rotation or reflection, and a shift; its
  scale is kept), which changes no distance within the map, so no score.

Why not AlignedUMAP: it fits every frame together (its cost grows with the sweep, and a frame
added later changes the earlier ones), it has no t-SNE or PCA counterpart, and it lacks
``transform``; starting each fit from the previous frame costs nothing over independent fits
(measured in bench/RESULTS.md, "Aligned maps").

:func:`disparity` measures how far points move between two maps *as drawn*: both centred and
scaled to unit size (scipy's standardisation), no rotation; :func:`procrustes_disparity` is
scipy's, after the best rotation (which Procrustes alignment therefore cannot change).
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from latent_atlas.errors import ConfigError

#: what an aligned map's step key records of how it was aligned; changing the recipe refits
RECIPE = "start+warm+procrustes"


def start_from(reducer: Any, reference: np.ndarray) -> bool:
    """Start ``reducer``'s optimisation from ``reference`` (an N×2 map of the same points).

    Only where the method has a starting layout (``init_param``) and the user left it at its
    default; returns whether the start was set. The reducer's ``warm_start`` parameters are set
    too where the user left them at their defaults (t-SNE skips early exaggeration: it would
    pull the start apart and reassemble it elsewhere, measured in bench/RESULTS.md, "Frames").
    openTSNE and scikit-learn's t-SNE get the layout scaled to a standard deviation of 1e-4
    (``init_scale``, what both expect of a start); UMAP rescales any start itself.
    """
    cls = type(reducer)
    name = getattr(cls, "init_param", None)
    if name is None:
        return False
    defaults = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()}
    params = reducer.get_params(deep=False)
    current = params.get(name)
    if not (isinstance(current, str) and current == defaults[name]):
        return False  # the user chose a start: theirs
    warm = getattr(cls, "warm_start", {})
    reducer.set_params(**{k: v for k, v in warm.items() if _same(params.get(k), defaults.get(k))})
    layout = np.asarray(reference, dtype=np.float64)
    layout = layout - layout.mean(axis=0)
    scale = getattr(cls, "init_scale", None)
    if scale is not None:
        std = float(layout[:, 0].std()) or 1.0
        layout = layout * (scale / std)
    reducer.set_params(**{name: np.ascontiguousarray(layout, dtype=np.float32)})
    return True


def _same(value: Any, default: Any) -> bool:
    return type(value) is type(default) and value == default


def procrustes_onto(embedding: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``embedding`` turned (rotation or reflection) and shifted to best match ``reference``.

    Orthogonal Procrustes on the centred maps; the embedding's own scale is kept, so every
    distance within it is unchanged.
    """
    a = np.asarray(embedding, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ConfigError(f"maps of different shapes cannot be aligned: {a.shape} and {b.shape}")
    a_mean, b_mean = a.mean(axis=0), b.mean(axis=0)
    u, _, vt = np.linalg.svd((a - a_mean).T @ (b - b_mean))
    rotation = u @ vt
    return ((a - a_mean) @ rotation + b_mean).astype(np.float32)


def standardise(embedding: np.ndarray) -> np.ndarray:
    """Centred, and scaled to a Frobenius norm of 1 (scipy.spatial.procrustes' standardisation)."""
    a = np.asarray(embedding, dtype=np.float64)
    a = a - a.mean(axis=0)
    norm = np.linalg.norm(a)
    return a / norm if norm > 0 else a


def disparity(a: np.ndarray, b: np.ndarray) -> float:
    """How far points move from map ``a`` to map ``b`` as drawn: the sum of squared
    differences of the standardised maps, without rotating either (0: the same picture; at
    most 4)."""
    if np.shape(a) != np.shape(b):
        raise ConfigError(f"maps of different shapes: {np.shape(a)} and {np.shape(b)}")
    return float(np.sum((standardise(a) - standardise(b)) ** 2))


def procrustes_disparity(a: np.ndarray, b: np.ndarray) -> float:
    """scipy's Procrustes disparity: :func:`disparity` after the best rotation, reflection and
    scale of ``b`` onto ``a``."""
    from scipy.spatial import procrustes

    return float(procrustes(np.asarray(a, np.float64), np.asarray(b, np.float64))[2])
