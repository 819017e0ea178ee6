"""Class-coloured scatter plots of 2-D maps, as scikit-learn-style Display objects.

Maps of more than ``AGGREGATE_ABOVE`` points are drawn by aggregation (each pixel coloured by
the classes of its points, Datashader-style) instead of one marker per point.

``ScatterDisplay.from_embedding(...)`` draws one map the way the article does (points
coloured by class, the legend of class names above the axes in five columns);
``ComparisonDisplay.from_embeddings(...)`` draws several maps side by side with one legend.
Both return the display; its ``figure_`` and ``ax_`` are there for further work. Nothing here
calls ``plt.show()``: save the figure or let the notebook display it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from latent_atlas.errors import ConfigError
from latent_atlas.palette import class_colors
from latent_atlas.richdisplay import FigureRepr


def point_size(n_points: int) -> float:
    """Marker area: the article's 3 at 10,000 points, larger for fewer points, 0.5 at least."""
    return float(np.clip(3.0 * np.sqrt(10_000 / max(n_points, 1)), 0.5, 30.0))


def _new_axes(figsize: tuple[float, float], dpi: int = 120) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi)
    return fig.add_subplot(1, 1, 1)


def _check_points(embedding: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    emb = np.asarray(embedding)
    lab = np.asarray(labels)
    if emb.ndim != 2 or emb.shape[1] != 2:
        raise ConfigError(f"a scatter plot needs an N×2 embedding, got shape {emb.shape}")
    if lab.shape != (len(emb),):
        raise ConfigError(f"{len(emb)} points but labels of shape {lab.shape}")
    return emb, lab.astype(np.int64)


def _class_names(labels: np.ndarray, class_names: Sequence[str] | None) -> list[str]:
    if class_names is not None:
        names = [str(n) for n in class_names]
        if len(labels) and labels.max() >= len(names):
            raise ConfigError(
                f"label {int(labels.max())} has no name: only {len(names)} class names given"
            )
        return names
    k = int(labels.max()) + 1 if len(labels) else 0
    return [str(i) for i in range(k)]


AGGREGATE_ABOVE = 200_000  # maps with more points are drawn by aggregation (density_image)


def _draw(ax: Any, emb: np.ndarray, labels: np.ndarray, colors: np.ndarray, s: float) -> Any:
    if len(emb) > AGGREGATE_ABOVE:
        extent = _extent(np.asarray(emb, dtype=np.float64))
        image = density_image(emb, labels, colors, width=600, height=500, extent=extent)
        return ax.imshow(
            image, extent=extent, origin="upper", aspect="auto", interpolation="nearest"
        )
    # draw in a fixed shuffled order so no class is painted entirely on top of the others
    order = np.random.default_rng(0).permutation(len(emb))
    return ax.scatter(
        emb[order, 0], emb[order, 1], s=s, c=colors[labels[order]], linewidths=0, rasterized=True
    )


def _legend(target: Any, names: list[str], colors: np.ndarray, **kwargs: Any) -> Any:
    from matplotlib.lines import Line2D

    handles = [
        Line2D(
            [],
            [],
            marker="o",
            linestyle="",
            markersize=6,
            markerfacecolor=c,
            markeredgewidth=0,
            label=n,
        )
        for n, c in zip(names, colors, strict=True)
    ]
    return target.legend(
        handles=handles,
        labels=names,
        ncol=min(5, len(names)),
        columnspacing=1,
        frameon=True,
        fontsize="small",
        **kwargs,
    )


class ScatterDisplay(FigureRepr):
    """One map, coloured by class, with the article's legend of class names above the axes."""

    def __init__(
        self,
        embedding: np.ndarray,
        labels: np.ndarray,
        class_names: Sequence[str] | None = None,
        title: str | None = None,
    ):
        self.embedding = embedding
        self.labels = labels
        self.class_names = class_names
        self.title = title

    def plot(
        self, ax: Any = None, *, s: float | None = None, legend: bool = True
    ) -> ScatterDisplay:
        """Draw on ``ax`` (a new 6×5-inch, 120-dpi figure when None, as in the article)."""
        emb, labels = _check_points(self.embedding, self.labels)
        names = _class_names(labels, self.class_names)
        colors = class_colors(len(names))
        ax = ax if ax is not None else _new_axes((6, 5))
        self.scatter_ = _draw(ax, emb, labels, colors, s if s is not None else point_size(len(emb)))
        if legend:
            self.legend_ = _legend(ax, names, colors, loc="lower center", bbox_to_anchor=(0.5, 1))
        if self.title:
            ax.set_xlabel(self.title)
        self.ax_, self.figure_ = ax, ax.figure
        return self

    @classmethod
    def from_embedding(
        cls,
        embedding: np.ndarray,
        labels: np.ndarray,
        class_names: Sequence[str] | None = None,
        *,
        title: str | None = None,
        ax: Any = None,
        **plot_kwargs: Any,
    ) -> ScatterDisplay:
        """Draw a map that has already been computed."""
        return cls(embedding, labels, class_names, title).plot(ax=ax, **plot_kwargs)

    @classmethod
    def from_reducer(
        cls,
        reducer: Any,
        X: np.ndarray,
        labels: np.ndarray,
        class_names: Sequence[str] | None = None,
        *,
        ax: Any = None,
        **plot_kwargs: Any,
    ) -> ScatterDisplay:
        """Fit ``reducer`` (a name or an estimator) on ``X`` and draw its map."""
        from latent_atlas.reducers import get_reducer, method_name

        est = get_reducer(reducer)
        emb = est.fit_transform(X)
        return cls.from_embedding(
            emb, labels, class_names, title=method_name(reducer), ax=ax, **plot_kwargs
        )


def density_image(
    embedding: np.ndarray,
    labels: np.ndarray,
    colors: np.ndarray,
    *,
    width: int = 600,
    height: int = 500,
    extent: tuple[float, float, float, float] | None = None,
) -> np.ndarray:
    """Aggregate any number of points into an RGBA image (Datashader-style categorical shading).

    Each pixel's colour is the mean of its points' class colours; its opacity grows with the
    logarithm of its count. One pass of ``np.bincount``: millions of points take a fraction of a
    second and the figure's size does not depend on N.
    """
    emb = np.asarray(embedding, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    x0, x1, y0, y1 = extent if extent is not None else _extent(emb)
    col = np.clip(((emb[:, 0] - x0) / (x1 - x0) * width).astype(np.int64), 0, width - 1)
    row = np.clip(((y1 - emb[:, 1]) / (y1 - y0) * height).astype(np.int64), 0, height - 1)
    k = len(colors)
    counts = np.bincount((row * width + col) * k + labels, minlength=height * width * k)
    counts = counts.reshape(height, width, k).astype(np.float64)
    total = counts.sum(axis=2)
    rgb = counts @ np.asarray(colors)[:, :3] / np.maximum(total, 1)[:, :, None]
    alpha = np.where(total > 0, 0.25 + 0.75 * np.log1p(total) / np.log1p(total.max()), 0.0)
    return np.dstack([rgb, alpha])


def _extent(emb: np.ndarray) -> tuple[float, float, float, float]:
    lo, hi = emb.min(axis=0), emb.max(axis=0)
    pad = (hi - lo) * 0.02 + 1e-12
    return lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1]


class DensityDisplay(FigureRepr):
    """A map of any size drawn by aggregation instead of one marker per point.

    The same layout as :class:`ScatterDisplay` (legend of class names above the axes), for maps
    whose points are too many to draw one by one.
    """

    def __init__(
        self,
        embedding: np.ndarray,
        labels: np.ndarray,
        class_names: Sequence[str] | None = None,
        title: str | None = None,
    ):
        self.embedding = embedding
        self.labels = labels
        self.class_names = class_names
        self.title = title

    def plot(self, ax: Any = None, *, legend: bool = True, pixels: int = 600) -> DensityDisplay:
        emb, labels = _check_points(self.embedding, self.labels)
        names = _class_names(labels, self.class_names)
        colors = class_colors(len(names))
        ax = ax if ax is not None else _new_axes((6, 5))
        extent = _extent(np.asarray(emb, dtype=np.float64))
        height = max(1, int(pixels * 5 / 6))
        self.image_ = density_image(emb, labels, colors, width=pixels, height=height, extent=extent)
        ax.imshow(
            self.image_, extent=extent, origin="upper", aspect="auto", interpolation="nearest"
        )
        if legend:
            self.legend_ = _legend(ax, names, colors, loc="lower center", bbox_to_anchor=(0.5, 1))
        if self.title:
            ax.set_xlabel(f"{self.title} ({len(emb):,} points, aggregated)")
        self.ax_, self.figure_ = ax, ax.figure
        return self

    @classmethod
    def from_embedding(
        cls,
        embedding: np.ndarray,
        labels: np.ndarray,
        class_names: Sequence[str] | None = None,
        *,
        title: str | None = None,
        ax: Any = None,
        **plot_kwargs: Any,
    ) -> DensityDisplay:
        return cls(embedding, labels, class_names, title).plot(ax=ax, **plot_kwargs)


class ComparisonDisplay(FigureRepr):
    """Several maps of the same points side by side, sharing one class legend."""

    def __init__(
        self,
        embeddings: Mapping[str, np.ndarray],
        labels: np.ndarray,
        class_names: Sequence[str] | None = None,
        subtitles: Mapping[str, str] | None = None,
    ):
        self.embeddings = embeddings
        self.labels = labels
        self.class_names = class_names
        self.subtitles = subtitles

    def plot(self, *, s: float | None = None, panel_size: float = 4.5) -> ComparisonDisplay:
        from matplotlib.figure import Figure

        if not self.embeddings:
            raise ConfigError("nothing to compare: no embeddings given")
        labels = np.asarray(self.labels)
        names = _class_names(labels, self.class_names)
        colors = class_colors(len(names))
        n = len(self.embeddings)
        rows = max(1, int(np.ceil(len(names) / 5)))
        fig = Figure(
            figsize=(panel_size * n, panel_size + 0.3 + 0.25 * rows), dpi=120, layout="constrained"
        )
        axes = fig.subplots(1, n, squeeze=False)[0]
        self.axes_ = {}
        for ax, (method, emb) in zip(axes, self.embeddings.items(), strict=True):
            emb, lab = _check_points(emb, labels)
            _draw(ax, emb, lab, colors, s if s is not None else point_size(len(emb)))
            title = (
                method
                if not self.subtitles or method not in self.subtitles
                else (f"{method}\n{self.subtitles[method]}")
            )
            ax.set_title(title, fontsize="medium")
            ax.set_xticks([])
            ax.set_yticks([])
            self.axes_[method] = ax
        self.legend_ = _legend(fig, names, colors, loc="outside upper center")
        self.figure_ = fig
        return self

    @classmethod
    def from_embeddings(
        cls,
        embeddings: Mapping[str, np.ndarray],
        labels: np.ndarray,
        class_names: Sequence[str] | None = None,
        *,
        subtitles: Mapping[str, str] | None = None,
        **plot_kwargs: Any,
    ) -> ComparisonDisplay:
        return cls(embeddings, labels, class_names, subtitles).plot(**plot_kwargs)


class QualityDisplay(FigureRepr):
    """How faithful each map is: its scores as bars, and each map coloured by where it keeps
    neighbourhoods (per-point neighbourhood preservation as neighbours kept of k, dark = lost,
    bright = kept, on :class:`latent_atlas.trust_plot.KeptScale`)."""

    SCORES = (
        "trustworthiness",
        "continuity",
        "knn_ratio",
        "neighbourhood_preservation",
        "triplet_accuracy",
        "silhouette",
    )

    def __init__(self, report: Any, embeddings: Mapping[str, np.ndarray]):
        self.report = report
        self.embeddings = embeddings

    def plot(self, *, panel_size: float = 3.6, s: float | None = None) -> QualityDisplay:
        from matplotlib.figure import Figure

        report = self.report
        methods = list(report.scores)
        if not methods:
            raise ConfigError("nothing to compare: no scores")
        n = len(methods)
        fig = Figure(
            figsize=(max(panel_size * n, 9), panel_size * 2 + 0.8), dpi=110, layout="constrained"
        )
        grid = fig.add_gridspec(2, n, height_ratios=[0.8, 1])
        self.axes_ = {"scores": self._plot_scores(fig.add_subplot(grid[0, :]), methods)}
        from latent_atlas.trust_plot import KeptScale  # (the scale trust.png uses too)

        size = s if s is not None else point_size(len(report.sample))
        self.scale_ = KeptScale.of([report.per_point[m] for m in methods], report.k)
        for i, m in enumerate(methods):
            ax = fig.add_subplot(grid[1, i])
            sc = self._plot_kept(ax, m, size)
            self.axes_[m] = ax
        self.scale_.colorbar(fig, sc, [self.axes_[m] for m in methods])
        self.figure_ = fig
        return self

    def _plot_scores(self, bars: Any, methods: list[str]) -> Any:
        """The scores of every map as grouped bars on ``bars``."""
        report = self.report
        n = len(methods)
        colors = class_colors(n)
        width = 0.8 / n
        x = np.arange(len(self.SCORES))
        for i, m in enumerate(methods):
            values = [report.scores[m][c] for c in self.SCORES]
            bars.bar(x + (i - (n - 1) / 2) * width, values, width, label=m, color=colors[i])
        names = [
            textwrap.fill(c.replace("_", " "), 14, break_long_words=False) for c in self.SCORES
        ]
        bars.set_xticks(x, names, fontsize="small")
        bars.axhline(0, color="black", linewidth=0.6)
        low, high = bars.get_ylim()
        bars.set_ylim(min(-0.1, low), max(1.05, high))
        bars.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
        sampled = (
            f"{len(report.sample):,} of {report.n_total:,} points"
            if report.sampled
            else f"{report.n_total:,} points"
        )
        bars.set_title(
            f"map quality (k = {report.k}, {sampled}; higher is better)", fontsize="medium"
        )
        return bars

    def _plot_kept(self, ax: Any, m: str, size: float) -> Any:
        """Map ``m`` coloured by per-point neighbourhood preservation; returns the scatter."""
        report = self.report
        emb = np.asarray(self.embeddings[m])[report.sample]
        sc = self.scale_.draw(ax, emb, report.per_point[m], size)
        ax.set_title(
            f"{m}: neighbourhoods kept {report.scores[m]['neighbourhood_preservation']:.3f}",
            fontsize="small",
        )
        ax.set_xticks([])
        ax.set_yticks([])
        return sc

    @classmethod
    def from_report(
        cls, report: Any, embeddings: Mapping[str, np.ndarray], **plot_kwargs: Any
    ) -> QualityDisplay:
        """Draw a :class:`latent_atlas.metrics.MetricsReport` of ``embeddings``."""
        return cls(report, embeddings).plot(**plot_kwargs)
