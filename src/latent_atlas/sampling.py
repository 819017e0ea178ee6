"""Seeded samples of rows: the one rule every step that subsamples follows.

Large-data maps are fitted on a sample, metrics are scored on one, the viewer draws one and
embeds thumbnails for one. All take the same kind of sample — sorted row numbers drawn
without replacement by ``numpy.random.default_rng(seed)`` — so a seed means the same rows
wherever it is used.
"""

from __future__ import annotations

import numpy as np


def seeded_sample(n: int, size: int | None, seed: int) -> np.ndarray:
    """Sorted indices of ``size`` of ``n`` rows, drawn with ``seed``; all rows when ``size`` is
    None or at least ``n``."""
    if size is None or n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))
