"""Where a map can be trusted, drawn: :class:`TrustDisplay` (a run's ``trust.png``).

For each map one panel coloured by how much of each point's neighbourhood the map keeps and
one coloured by the point's reading (:data:`latent_atlas.trust.READINGS`: four colours, the
rarer readings drawn on top, a legend with counts and percentages).

The neighbourhood kept is drawn on :class:`KeptScale`, which :class:`QualityDisplay` shares: one
colour per number of shared neighbours (0..k, the only values a k-NN Jaccard overlap takes),
topped at the 98th percentile of all panels (higher counts take the top colour), so maps that
keep little are not one uniform dark colour and panels of one figure compare directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from latent_atlas.errors import ConfigError
from latent_atlas.richdisplay import FigureRepr
from latent_atlas.trust import MAX_POINTS, READINGS, PointTrust, point_trust

UNSCORED_COLOUR = "#edf0f5"  # the points outside the scored sample, drawn beneath
MAX_REST = 200_000  # at most this many of them (a seeded sample)
# Okabe-Ito colours (distinct for colour-blind readers), agreed a quiet grey
READING_COLOURS = ("#c8c8c8", "#e69f00", "#0072b2", "#cc3399")
KEPT_CMAP = "viridis"


def shared_neighbours(kept: np.ndarray, k: int) -> np.ndarray:
    """The number of shared neighbours s (0..k) behind a k-NN Jaccard overlap J = s / (2k − s)."""
    j = np.clip(np.nan_to_num(np.asarray(kept, dtype=np.float64)), 0.0, 1.0)
    return np.rint(2 * k * j / (1 + j)).astype(np.int64)


@dataclass(frozen=True)
class KeptScale:
    """Discrete colours for 0..``top`` shared neighbours of ``k`` (``top`` or more: the top
    colour)."""

    k: int
    top: int

    @classmethod
    def of(cls, values: Sequence[np.ndarray], k: int, percentile: float = 98.0) -> KeptScale:
        """The scale for these per-point overlaps (one array per panel), topped at their
        ``percentile``-th percentile of shared neighbours (at least 1, at most k)."""
        counts = np.concatenate([shared_neighbours(v, k) for v in values] or [np.zeros(1, int)])
        top = int(np.ceil(np.percentile(counts, percentile))) if counts.size else k
        return cls(k, int(np.clip(top, 1, k)))

    def cmap_norm(self) -> tuple[Any, Any]:
        import matplotlib as mpl
        from matplotlib.colors import BoundaryNorm

        cmap = mpl.colormaps[KEPT_CMAP].resampled(self.top + 1)
        return cmap, BoundaryNorm(np.arange(-0.5, self.top + 1), self.top + 1)

    def draw(self, ax: Any, emb: np.ndarray, kept: np.ndarray, size: float) -> Any:
        """Scatter ``emb`` coloured by ``kept`` (shuffled in a fixed order); returns it."""
        counts = np.minimum(shared_neighbours(kept, self.k), self.top)
        order = np.random.default_rng(0).permutation(len(emb))
        cmap, norm = self.cmap_norm()
        return ax.scatter(
            emb[order, 0],
            emb[order, 1],
            c=counts[order],
            cmap=cmap,
            norm=norm,
            s=size,
            linewidths=0,
            rasterized=True,
        )

    def colorbar(self, fig: Any, mappable: Any, axes: Any) -> Any:
        """A colour bar of the shared-neighbour counts beside ``axes``."""
        ticks = np.arange(self.top + 1)
        step = max(1, int(np.ceil(len(ticks) / 11)))
        ticks = ticks[::step]
        bar = fig.colorbar(mappable, ax=axes, shrink=0.85, ticks=ticks, pad=0.01)
        labels = [str(t) for t in ticks]
        if self.top < self.k and ticks[-1] == self.top:
            labels[-1] = f"≥{self.top}"
        bar.ax.set_yticklabels(labels)
        bar.set_label(f"neighbours kept (of {self.k} nearest)")
        return bar


def reading_labels(codes: np.ndarray) -> list[str]:
    """Legend entries: each reading with its count and percentage."""
    found = np.bincount(np.asarray(codes, dtype=np.int64), minlength=len(READINGS))
    n = max(int(found.sum()), 1)
    return [f"{r} {c:,} ({100 * c / n:.1f}%)" for r, c in zip(READINGS, found, strict=False)]


def draw_readings(ax: Any, emb: np.ndarray, codes: np.ndarray, size: float) -> Any:
    """Scatter ``emb`` coloured by reading, the most common first (rarer ones on top); the
    legend (counts and percentages) goes below the panel. Returns the legend."""
    from matplotlib.lines import Line2D

    codes = np.asarray(codes, dtype=np.int64)
    found = np.bincount(codes, minlength=len(READINGS))
    for code in np.argsort(-found, kind="stable"):
        pick = codes == code
        if pick.any():
            ax.scatter(
                emb[pick, 0],
                emb[pick, 1],
                s=size if code == 0 else size * 1.6,
                c=READING_COLOURS[code],
                linewidths=0,
                rasterized=True,
            )
    handles = [
        Line2D([], [], marker="o", linestyle="", markersize=6, markerfacecolor=c, markeredgewidth=0)
        for c in READING_COLOURS
    ]
    return ax.legend(
        handles,
        reading_labels(codes),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.01),
        ncol=1,
        fontsize="small",
        frameon=False,
        handletextpad=0.2,
        columnspacing=1.0,
    )


class TrustDisplay(FigureRepr):
    """Where each map can be trusted: per map, the neighbourhood kept and the reading."""

    def __init__(self, trust: PointTrust, embeddings: Mapping[str, np.ndarray]):
        self.trust = trust
        self.embeddings = embeddings

    def plot(self, *, panel_size: float = 4.2, s: float | None = None) -> TrustDisplay:
        """Draw the figure: a row of kept panels over a row of reading panels, one column per
        map (the maps that ``trust`` scored and ``embeddings`` holds)."""
        from matplotlib.figure import Figure

        from latent_atlas.plotting import point_size

        trust = self.trust
        maps = [m for m in trust.kept if m in self.embeddings]
        if not maps:
            raise ConfigError("nothing to draw: no map both scored and given")
        n = len(maps)
        fig = Figure(figsize=(panel_size * n + 1.2, panel_size * 2 + 1.3), dpi=110)
        fig.set_layout_engine("constrained")
        axes = fig.subplots(2, n, squeeze=False)
        scale = KeptScale.of([trust.kept[m] for m in maps], trust.k)
        size = s if s is not None else point_size(len(trust.sample))
        self.axes_: dict[str, dict[str, Any]] = {"kept": {}, "reading": {}}
        self.legends_ = {}
        rest = self._rest()
        for col, m in enumerate(maps):
            emb = self._points(m)
            top, bottom = axes[0, col], axes[1, col]
            for ax in (top, bottom):  # the points not scored, grey beneath the scored ones
                if len(rest):
                    xy = np.asarray(self.embeddings[m])[rest]
                    ax.scatter(xy[:, 0], xy[:, 1], s=size * 0.6, c=UNSCORED_COLOUR,
                               linewidths=0, rasterized=True)  # fmt: skip
            sc = scale.draw(top, emb, trust.kept[m], size)
            mean = shared_neighbours(trust.kept[m], trust.k).mean()
            top.set_title(f"{m}: neighbours kept, mean {mean:.1f} of {trust.k}", fontsize="medium")
            self.legends_[m] = draw_readings(bottom, emb, trust.reading[m], size)
            bottom.set_title(f"{m}: reading", fontsize="medium")
            for ax in (top, bottom):
                ax.set_xticks([])
                ax.set_yticks([])
            self.axes_["kept"][m], self.axes_["reading"][m] = top, bottom
        self.colorbar_ = scale.colorbar(fig, sc, list(axes[0]))
        self.scale_ = scale
        fig.suptitle(
            f"Where each map can be trusted (k = {trust.k})\n{trust.describe()}"
            + ("; the others in pale grey beneath" if len(trust.sample) < trust.n_total else ""),
            fontsize="large",
        )
        self.figure_ = fig
        return self

    def _rest(self) -> np.ndarray:
        """Rows outside the scored sample (at most :data:`MAX_REST` of them, seeded)."""
        from latent_atlas.sampling import seeded_sample

        rest = np.setdiff1d(np.arange(self.trust.n_total), self.trust.sample)
        return rest[seeded_sample(len(rest), MAX_REST, self.trust.seed)]

    def _points(self, m: str) -> np.ndarray:
        emb = np.asarray(self.embeddings[m])
        if emb.ndim != 2 or emb.shape[1] != 2 or len(emb) != self.trust.n_total:
            raise ConfigError(
                f"map {m!r} has shape {emb.shape}; the trust scores cover "
                f"{self.trust.n_total} points in 2-D"
            )
        return emb[self.trust.sample]

    @classmethod
    def from_trust(
        cls, trust: PointTrust, embeddings: Mapping[str, np.ndarray], **plot_kwargs: Any
    ) -> TrustDisplay:
        """Draw a :class:`~latent_atlas.trust.PointTrust` of ``embeddings`` (full-size maps)."""
        return cls(trust, embeddings).plot(**plot_kwargs)

    @classmethod
    def from_embeddings(
        cls,
        X: np.ndarray,
        embeddings: Mapping[str, np.ndarray],
        labels: np.ndarray,
        predictions: np.ndarray | None = None,
        *,
        k: int = 10,
        max_points: int | None = MAX_POINTS,
        random_state: int = 0,
        **plot_kwargs: Any,
    ) -> TrustDisplay:
        """Score ``embeddings`` of ``X`` with :func:`~latent_atlas.trust.point_trust`, then draw."""
        seed = random_state
        trust = point_trust(
            X, embeddings, labels, predictions, k=k, max_points=max_points, random_state=seed
        )
        return cls(trust, embeddings).plot(**plot_kwargs)
