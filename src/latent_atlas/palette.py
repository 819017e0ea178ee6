"""Class colours shared by every view (scatter plots, atlas borders, the viewer)."""

from __future__ import annotations

import numpy as np


def class_colors(n_classes: int) -> np.ndarray:
    """n RGB colours in [0, 1]: tab10 up to 10 classes, tab20 up to 20, else spaced on turbo."""
    import matplotlib as mpl

    if n_classes <= 10:
        return np.asarray(mpl.colormaps["tab10"].colors)[:n_classes]
    if n_classes <= 20:
        return np.asarray(mpl.colormaps["tab20"].colors)[:n_classes]
    return mpl.colormaps["turbo"](np.linspace(0.05, 0.95, n_classes))[:, :3]


def class_colors_uint8(n_classes: int) -> np.ndarray:
    """The same colours as n×3 uint8."""
    return np.rint(class_colors(n_classes) * 255).astype(np.uint8)
