"""Class-coloured scatter plots of 2-D maps, as scikit-learn-style Display objects.

``ScatterDisplay.from_embedding(...)`` draws one map the way the seed article does (points
coloured by class, the legend of class names above the axes in five columns);
``ComparisonDisplay.from_embeddings(...)`` draws several maps side by side with one legend.
Both return the display; its ``figure_`` and ``ax_`` are there for further work. Nothing here
calls ``plt.show()``: save the figure or let the notebook display it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from latent_atlas.errors import ConfigError
from latent_atlas.palette import class_colors


def point_size(n_points: int) -> float:
    """Marker area: the seed's 3 at 10,000 points, larger for fewer points, 0.5 at least."""
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


def _draw(ax: Any, emb: np.ndarray, labels: np.ndarray, colors: np.ndarray, s: float) -> Any:
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


class ScatterDisplay:
    """One map, coloured by class, with the seed's legend of class names above the axes."""

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
        """Draw on ``ax`` (a new 6×5-inch, 120-dpi figure when None, as in the seed)."""
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


class ComparisonDisplay:
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


class QualityDisplay:
    """How faithful each map is: its scores as bars, and each map coloured by where it keeps
    neighbourhoods (per-point neighbourhood preservation, dark = lost, bright = kept)."""

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
        bars = fig.add_subplot(grid[0, :])
        colors = class_colors(n)
        width = 0.8 / n
        x = np.arange(len(self.SCORES))
        for i, m in enumerate(methods):
            values = [report.scores[m][c] for c in self.SCORES]
            bars.bar(x + (i - (n - 1) / 2) * width, values, width, label=m, color=colors[i])
        bars.set_xticks(x, [c.replace("_", " ") for c in self.SCORES], fontsize="small")
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
        self.axes_ = {"scores": bars}
        size = s if s is not None else point_size(len(report.sample))
        for i, m in enumerate(methods):
            ax = fig.add_subplot(grid[1, i])
            emb = np.asarray(self.embeddings[m])[report.sample]
            values = report.per_point[m]
            order = np.argsort(values, kind="stable")[::-1]  # lost neighbourhoods on top
            sc = ax.scatter(
                emb[order, 0],
                emb[order, 1],
                c=values[order],
                s=size,
                cmap="viridis",
                vmin=0,
                vmax=1,
                linewidths=0,
                rasterized=True,
            )
            ax.set_title(
                f"{m}: neighbourhoods kept {report.scores[m]['neighbourhood_preservation']:.3f}",
                fontsize="small",
            )
            ax.set_xticks([])
            ax.set_yticks([])
            self.axes_[m] = ax
        fig.colorbar(
            sc, ax=[self.axes_[m] for m in methods], shrink=0.8, label="share of 10-NN kept"
        )
        self.figure_ = fig
        return self

    @classmethod
    def from_report(
        cls, report: Any, embeddings: Mapping[str, np.ndarray], **plot_kwargs: Any
    ) -> QualityDisplay:
        """Draw a :class:`latent_atlas.metrics.MetricsReport` of ``embeddings``."""
        return cls(report, embeddings).plot(**plot_kwargs)
