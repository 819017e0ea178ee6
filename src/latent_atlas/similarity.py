"""How alike two representations of the same images are, and how linearly their classes part.

- :func:`linear_cka`, :func:`cka_matrix`: linear centred kernel alignment (Kornblith et al.
  2019, "Similarity of Neural Network Representations Revisited", eq. 5 with linear kernels):
  1 for representations equal up to rotation and scale, near 0 for unrelated ones; comparable
  across layers of different widths. Computed from the N×N Gram matrices of a seeded sample
  (``CKA_SAMPLE`` points), so any width costs the same.
- :func:`linear_probe_accuracy`: a logistic regression on the features (standardised;
  above ``PROBE_DIMS`` dimensions on their first ``PROBE_DIMS`` principal components),
  stratified k-fold cross-validated, seeded: how well a linear read-out tells the classes.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from latent_atlas.errors import ConfigError
from latent_atlas.sampling import seeded_sample

CKA_SAMPLE = 2000  # points of the Gram matrices (N×N float64 each)
PROBE_SAMPLE = 5000  # points a linear probe is cross-validated on
PROBE_DIMS = 256  # wider features are probed on this many principal components
PROBE_FOLDS = 5


def _centred_gram(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    x = x - x.mean(axis=0)
    return x @ x.T  # (centring the features centres the linear Gram matrix)


def _cka(k: np.ndarray, m: np.ndarray) -> float:
    denominator = np.linalg.norm(k) * np.linalg.norm(m)
    return float(np.sum(k * m) / denominator) if denominator > 0 else float("nan")


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of two representations of the same N samples (rows), all rows used."""
    if len(x) != len(y):
        raise ConfigError(f"CKA compares the same samples: {len(x)} and {len(y)} rows")
    return _cka(_centred_gram(x), _centred_gram(y))


def cka_matrix(
    features: Sequence[np.ndarray], *, sample: int | None = CKA_SAMPLE, seed: int = 0
) -> np.ndarray:
    """Linear CKA between every pair of representations of the same N samples, on one seeded
    sample of rows (all rows with ``sample=None``): a symmetric matrix with ones on the diagonal."""
    if not features:
        return np.zeros((0, 0))
    n = len(features[0])
    if any(len(f) != n for f in features):
        raise ConfigError("CKA compares representations of the same samples")
    rows = seeded_sample(n, sample if sample is not None else n, seed)
    grams = [_centred_gram(np.asarray(f[rows])) for f in features]
    out = np.eye(len(grams))
    for i in range(len(grams)):
        for j in range(i + 1, len(grams)):
            out[i, j] = out[j, i] = _cka(grams[i], grams[j])
    return out


def linear_probe_accuracy(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    seed: int = 0,
    folds: int = PROBE_FOLDS,
    sample: int | None = PROBE_SAMPLE,
    max_dims: int = PROBE_DIMS,
) -> float:
    """Mean held-out accuracy of a logistic regression over stratified ``folds`` (seeded).

    On a seeded sample of ``sample`` rows; features are standardised, and reduced to their
    first ``max_dims`` principal components (fitted within each fold) when wider. NaN when a
    class has fewer samples than folds.
    """
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y_all = np.asarray(labels)
    rows = seeded_sample(len(y_all), sample if sample is not None else len(y_all), seed)
    x, y = np.asarray(features[rows], dtype=np.float64).reshape(len(rows), -1), y_all[rows]
    _, counts = np.unique(y, return_counts=True)
    if len(counts) < 2 or counts.min() < folds:
        return float("nan")
    steps: list = [StandardScaler()]
    fold_rows = len(x) - int(np.ceil(len(x) / folds))  # the fewest rows a fold is fitted on
    dims = min(max_dims, fold_rows)
    if x.shape[1] > dims:
        steps.append(PCA(dims, random_state=seed))
    steps.append(LogisticRegression(max_iter=300))
    splits = StratifiedKFold(folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(converge|max_iter).*")
        scores = cross_val_score(make_pipeline(*steps), x, y, cv=splits)
    return float(np.mean(scores))
