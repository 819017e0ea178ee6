"""Figures of a sweep of frames (the same N images mapped at several layers, epochs or models),
as scikit-learn-style Display objects like those of :mod:`latent_atlas.plotting`.

``FilmStripDisplay.from_frames(...)`` draws one small map per frame, in a row or a grid (layers
along rows, epochs along columns), with one class legend; ``ScoreCurvesDisplay.from_table(...)``
draws score columns against the frame axis; ``CKADisplay.from_matrix(...)`` draws the linear-CKA
heatmap between frames. Each returns the display; its ``figure_`` is there for further work.
Nothing here calls ``plt.show()``. The animation (:func:`write_animation`,
:func:`normalise_frame`) lives in :mod:`latent_atlas.frames_anim` and is re-exported here.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from latent_atlas.errors import ConfigError
from latent_atlas.frames_anim import check_frames, normalise_frame, write_animation
from latent_atlas.palette import class_colors
from latent_atlas.plotting import _class_names, point_size
from latent_atlas.richdisplay import FigureRepr
from latent_atlas.sampling import seeded_sample

__all__ = [
    "CKADisplay",
    "FilmStripDisplay",
    "ScoreCurvesDisplay",
    "normalise_frame",
    "write_animation",
]

WRAP_ABOVE = 8  # panels in one row at most, without a grid


def _class_legend(fig: Any, names: list[str], colors: np.ndarray, ncol: int) -> Any:
    from matplotlib.lines import Line2D

    dot = {"marker": "o", "linestyle": "", "markersize": 6, "markeredgewidth": 0}
    pairs = zip(names, colors, strict=True)
    handles = [Line2D([], [], markerfacecolor=c, label=n, **dot) for n, c in pairs]
    return fig.legend(
        handles=handles,
        ncol=ncol,
        columnspacing=1,
        handletextpad=0.3,
        frameon=False,
        fontsize="small",
        loc="outside upper center",
    )


def _film_cells(
    n: int,
    grid: Sequence[tuple[int, int]] | None,
    row_names: Sequence[str] | None,
    col_names: Sequence[str] | None,
) -> tuple[list[tuple[int, int]], int, int]:
    """Each frame's (row, column), and the number of rows and columns."""
    if grid is None:
        if row_names is not None or col_names is not None:
            raise ConfigError("row_names and col_names need a grid")
        cols = n if n <= WRAP_ABOVE else int(np.ceil(n / np.ceil(n / WRAP_ABOVE)))
        return [divmod(k, cols) for k in range(n)], int(np.ceil(n / cols)), cols
    cells = [(int(r), int(c)) for r, c in grid]
    if len(cells) != n:
        raise ConfigError(f"{n} frames but {len(cells)} grid cells")
    if len(set(cells)) != n or min(min(cell) for cell in cells) < 0:
        raise ConfigError(f"grid cells must be distinct (row, column) pairs from 0: {cells}")
    rows = len(row_names) if row_names is not None else max(r for r, _ in cells) + 1
    cols = len(col_names) if col_names is not None else max(c for _, c in cells) + 1
    outside = [cell for cell in cells if cell[0] >= rows or cell[1] >= cols]
    if outside:
        raise ConfigError(f"grid cells {outside} lie outside {rows} row and {cols} column names")
    return cells, rows, cols


class FilmStripDisplay(FigureRepr):
    """One small map per frame, the same classes in the same colours, one shared legend."""

    def __init__(
        self,
        embeddings: Sequence[np.ndarray],
        labels: np.ndarray,
        class_names: Sequence[str],
        titles: Sequence[str],
        captions: Sequence[str] | None = None,
        grid: Sequence[tuple[int, int]] | None = None,
        row_names: Sequence[str] | None = None,
        col_names: Sequence[str] | None = None,
        max_points: int = 10_000,
        seed: int = 0,
    ):
        self.embeddings = embeddings
        self.labels = labels
        self.class_names = class_names
        self.titles = titles
        self.captions = captions
        self.grid = grid
        self.row_names = row_names
        self.col_names = col_names
        self.max_points = max_points
        self.seed = seed

    def plot(self, *, s: float | None = None, panel_size: float = 2.4) -> FilmStripDisplay:
        """Draw a new figure: ``panel_size`` inches a panel; markers of area ``s`` (1 to 4 by
        default, 1.5 at 10,000 points)."""
        frames, labels = check_frames(self.embeddings, self.labels, self.titles)
        if self.captions is not None and len(self.captions) != len(frames):
            raise ConfigError(f"{len(frames)} frames but {len(self.captions)} captions")
        names = _class_names(labels, self.class_names)
        colors = class_colors(len(names))
        cells, n_rows, n_cols = _film_cells(len(frames), self.grid, self.row_names, self.col_names)
        self.sample_ = seeded_sample(len(labels), self.max_points, self.seed)
        order = self.sample_[np.random.default_rng(self.seed).permutation(len(self.sample_))]
        size = s if s is not None else float(np.clip(point_size(len(order)) / 2, 1.0, 4.0))
        fig, spec, off = self._figure(n_rows, n_cols, panel_size, names)
        self.axes_, self.scatters_ = [], []
        dots = {"s": size, "linewidths": 0, "rasterized": True}
        for k, (emb, (r, c)) in enumerate(zip(frames, cells, strict=True)):
            ax = fig.add_subplot(spec[r + off, c + off])
            xy = emb[order]
            self.scatters_.append(ax.scatter(xy[:, 0], xy[:, 1], c=colors[labels[order]], **dots))
            ax.set_aspect("equal", adjustable="datalim")
            ax.set_box_aspect(1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(str(self.titles[k]), fontsize=9, pad=3)
            if self.captions is not None:
                ax.set_xlabel(str(self.captions[k]), fontsize=7.5, color="0.25", labelpad=3)
            self.axes_.append(ax)
        self.headers_ = self._headers(fig, spec) if self.grid is not None else []
        rows = max(1, int(np.ceil(len(names) / self._ncol)))  # balanced legend rows
        self.legend_ = _class_legend(fig, names, colors, max(1, int(np.ceil(len(names) / rows))))
        self.figure_ = fig
        return self

    def _figure(
        self, n_rows: int, n_cols: int, panel: float, names: list[str]
    ) -> tuple[Any, Any, int]:
        """The figure, its grid of cells and the offset of the panels in it (1 with headers)."""
        from matplotlib.figure import Figure

        off = 1 if self.grid is not None else 0
        width = n_cols * panel + off * 0.35 + 0.2
        longest = max((len(n) for n in names), default=1)
        self._ncol = max(1, min(10, int((max(width, 6.0) - 0.3) / (0.35 + 0.075 * longest))))
        legend_rows = int(np.ceil(len(names) / min(len(names), self._ncol))) if names else 0
        caption = 0.2 if self.captions is not None else 0.0
        height = n_rows * (panel + 0.3 + caption) + off * 0.3 + 0.25 * legend_rows + 0.2
        fig = Figure(figsize=(max(width, 6.0), height), dpi=120, layout="constrained")
        spec = fig.add_gridspec(
            n_rows + off,
            n_cols + off,
            width_ratios=[0.12] * off + [1] * n_cols,
            height_ratios=[0.1] * off + [1] * n_rows,
        )
        return fig, spec, off

    def _headers(self, fig: Any, spec: Any) -> list[Any]:
        """Row names on the left and column names on top of the grid; returns their texts."""
        texts = []
        style = {"ha": "center", "va": "center", "fontsize": 10, "fontweight": "bold"}
        for r, name in enumerate(self.row_names or []):
            ax = fig.add_subplot(spec[r + 1, 0])
            ax.axis("off")
            texts.append(ax.text(0.5, 0.5, str(name), rotation=90, **style))
        for c, name in enumerate(self.col_names or []):
            ax = fig.add_subplot(spec[0, c + 1])
            ax.axis("off")
            texts.append(ax.text(0.5, 0.5, str(name), **style))
        return texts

    @classmethod
    def from_frames(
        cls,
        embeddings: Sequence[np.ndarray],
        labels: np.ndarray,
        class_names: Sequence[str],
        *,
        titles: Sequence[str],
        captions: Sequence[str] | None = None,
        grid: Sequence[tuple[int, int]] | None = None,
        row_names: Sequence[str] | None = None,
        col_names: Sequence[str] | None = None,
        max_points: int = 10_000,
        seed: int = 0,
        **plot_kwargs: Any,
    ) -> FilmStripDisplay:
        """Draw the maps of a sweep (one N×2 embedding per frame, the same N points)."""
        return cls(
            embeddings,
            labels,
            class_names,
            titles,
            captions,
            grid,
            row_names,
            col_names,
            max_points,
            seed,
        ).plot(**plot_kwargs)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _positions(values: Sequence[Any]) -> tuple[np.ndarray, list[str] | None]:
    """x positions of ``values``: numbers as they are, anything else as categories in the order
    they first appear (positions 0, 1, ... and their tick labels)."""
    if len(values) and all(_is_number(v) and np.isfinite(v) for v in values):
        return np.asarray(values, dtype=np.float64), None
    ticks = list(dict.fromkeys(str(v) for v in values))
    return np.array([ticks.index(str(v)) for v in values], dtype=np.float64), ticks


def _column(table: Mapping[str, Sequence[Any]], name: str, n: int | None = None) -> list[Any]:
    if name not in table:
        raise ConfigError(f"the table has no column {name!r} (it has: {', '.join(table)})")
    values = list(table[name])
    if n is not None and len(values) != n:
        raise ConfigError(f"column {name!r} has {len(values)} values, not {n}")
    return values


class ScoreCurvesDisplay(FigureRepr):
    """Score columns of a table as lines against a frame axis (layers, epochs, models)."""

    def __init__(
        self,
        table: Mapping[str, Sequence[Any]],
        x: str,
        ys: Sequence[str],
        group: str | None = None,
        xlabel: str | None = None,
    ):
        self.table = table
        self.x = x
        self.ys = ys
        self.group = group
        self.xlabel = xlabel

    def plot(
        self, *, single_axes: bool | None = None, panel_size: float = 3.0
    ) -> ScoreCurvesDisplay:
        """Draw a new figure: one subplot per score column, or every column on one axes
        (``single_axes``; by default when there are at most 3 columns and no ``group``)."""
        from matplotlib.figure import Figure

        if not self.ys:
            raise ConfigError("no score columns given")
        xs = _column(self.table, self.x)
        pos, ticks = _positions(xs)
        keys = _column(self.table, self.group, len(xs)) if self.group else [None] * len(xs)
        groups = list(dict.fromkeys(keys))
        order = np.argsort(pos, kind="stable")
        rows_of = {g: [i for i in order if keys[i] == g] for g in groups}
        single = single_axes if single_axes is not None else (len(self.ys) <= 3 and not self.group)
        panels = [None] if single else list(self.ys)
        cols = min(3, len(panels))
        rows = int(np.ceil(len(panels) / cols))
        longest = max((len(t) for t in ticks or []), default=0)
        tall = 0.055 * min(longest, 24) if longest > 6 or len(ticks or []) > 6 else 0.0
        size = (max(cols * panel_size + 0.4, 5.0), rows * (panel_size * 0.8 + tall) + 0.7)
        fig = Figure(figsize=size, dpi=120, layout="constrained")
        grid = fig.add_gridspec(rows, cols)
        self.axes_, self.lines_ = {}, {}
        style = {"marker": "o", "markersize": 3.5, "linewidth": 1.5}
        for k, panel in enumerate(panels):
            ax = fig.add_subplot(grid[divmod(k, cols)])
            lines = [(y, g) for y in (self.ys if single else [panel]) for g in groups]
            colors = class_colors(len(lines) if single else len(groups))
            for (y, g), color in zip(lines, colors, strict=True):
                values = [
                    np.nan if v is None else float(v) for v in _column(self.table, y, len(xs))
                ]
                label = (y if g is None else f"{y} · {g}") if single else str(g)
                take = rows_of[g]
                line = ax.plot(
                    pos[take], np.asarray(values)[take], color=color, label=label, **style
                )
                self.lines_[(y, g)] = line[0]
            self._dress(ax, panel, ticks, last_row=k + cols >= len(panels))
            self.axes_[panel if panel is not None else "scores"] = ax
        self.legend_ = None
        if single or self.group:  # the first axes holds one line of each kind
            handles = next(iter(self.axes_.values())).lines
            title = None if single else self.group
            where = {"loc": "outside upper center", "fontsize": "small", "frameon": False}
            self.legend_ = fig.legend(
                handles=handles, ncol=min(4, len(handles)), title=title, **where
            )
        self.figure_ = fig
        return self

    def _dress(self, ax: Any, panel: str | None, ticks: list[str] | None, last_row: bool) -> None:
        """Title, grid, categorical ticks (rotated when long) and the x label on the last row."""
        if panel is not None:
            ax.set_title(panel.replace("_", " "), fontsize="medium")
            if not np.isfinite([ln.get_ydata() for ln in ax.lines]).any():
                ax.text(0.5, 0.5, "no values", transform=ax.transAxes, ha="center", color="0.4")
        ax.grid(True, linewidth=0.4, alpha=0.5)
        if ticks is not None:
            ax.set_xticks(range(len(ticks)), ticks if last_row else [""] * len(ticks))
            if len(ticks) > 6 or max((len(t) for t in ticks), default=0) > 6:
                ax.tick_params(axis="x", labelrotation=30)
                for label in ax.get_xticklabels():
                    label.set_horizontalalignment("right")
                    label.set_rotation_mode("anchor")
            ax.set_xlim(-0.4, len(ticks) - 0.6)
        elif not last_row:
            ax.tick_params(labelbottom=False)
        if last_row:
            ax.set_xlabel(self.xlabel if self.xlabel is not None else self.x)
        ax.tick_params(labelsize="small")

    @classmethod
    def from_table(
        cls,
        table: Mapping[str, Sequence[Any]],
        x: str,
        ys: Sequence[str],
        *,
        group: str | None = None,
        xlabel: str | None = None,
        **plot_kwargs: Any,
    ) -> ScoreCurvesDisplay:
        """Draw ``ys`` against ``x`` from a table of columns (a dict of equal-length lists)."""
        return cls(table, x, ys, group, xlabel).plot(**plot_kwargs)


class CKADisplay(FigureRepr):
    """The linear CKA between every pair of frames as a heatmap (0 to 1)."""

    ANNOTATE_UP_TO = 16  # frames; with more, the values are not written in the cells

    def __init__(self, matrix: np.ndarray, names: Sequence[str]):
        self.matrix = matrix
        self.names = names

    def plot(
        self, ax: Any = None, *, annotate: bool | None = None, cmap: str = "viridis"
    ) -> CKADisplay:
        """Draw on ``ax`` (a new figure sized to the number of frames when None)."""
        import matplotlib as mpl
        from matplotlib.figure import Figure

        m = np.asarray(self.matrix, dtype=np.float64)
        n = len(self.names)
        if m.shape != (n, n):
            raise ConfigError(f"a CKA matrix of {n} names must be {n}×{n}, got shape {m.shape}")
        if ax is None:
            side = float(np.clip(0.45 * n + 2.6, 4.0, 14.0))
            ax = Figure(figsize=(side + 1.0, side), dpi=120, layout="constrained").add_subplot()
        colormap = mpl.colormaps[cmap].with_extremes(bad="0.85")
        self.image_ = ax.imshow(np.ma.masked_invalid(m), cmap=colormap, vmin=0, vmax=1)
        self.colorbar_ = ax.figure.colorbar(self.image_, ax=ax, shrink=0.8, label="linear CKA")
        names = [str(name) for name in self.names]
        ax.set_xticks(range(n), names, rotation=45, ha="right", rotation_mode="anchor")
        ax.set_yticks(range(n), names)
        ax.tick_params(labelsize="small" if n <= 10 else "x-small", length=0)
        ax.set_title("linear CKA between frames", fontsize="medium")
        self.texts_ = []
        if annotate if annotate is not None else n <= self.ANNOTATE_UP_TO:
            size = 9 if n <= 6 else 7.5 if n <= 11 else 6
            for (i, j), v in np.ndenumerate(m):
                if np.isfinite(v):
                    self.texts_.append(
                        ax.text(
                            j,
                            i,
                            f"{v:.2f}",
                            ha="center",
                            va="center",
                            fontsize=size,
                            color="white" if v < 0.6 else "black",
                        )
                    )
        self.ax_, self.figure_ = ax, ax.figure
        return self

    @classmethod
    def from_matrix(
        cls, matrix: np.ndarray, names: Sequence[str], *, ax: Any = None, **plot_kwargs: Any
    ) -> CKADisplay:
        """Draw an n×n CKA matrix (``similarity.cka_matrix``) of frames named ``names``."""
        return cls(matrix, names).plot(ax=ax, **plot_kwargs)
