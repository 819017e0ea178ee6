"""The pictures of a sweep of frames, in the run's folder: film strips, score curves, the CKA
heatmap, animations of the aligned maps, and the frames viewer (see :mod:`latent_atlas.frames`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from latent_atlas.config import BEST, MapConfig
from latent_atlas.fileio import save_figure
from latent_atlas.runs import RunDir

if TYPE_CHECKING:
    from latent_atlas.frames import SweepMaps
    from latent_atlas.sweep import Frame

log = logging.getLogger("latent_atlas")

SCORES = ("knn_accuracy", "linear_probe", "silhouette")


def _epoch_text(epoch: Any) -> str:
    return "best" if epoch == BEST else "" if epoch is None else f"epoch {epoch}"


def _axis_of(frame: Frame) -> str:
    return frame.model or frame.layer


def chains(frames: list[Frame]) -> dict[str, list[int]]:
    """The sweep's animations: ``layers`` (the frames of the latest epoch, in layer order) and
    ``epochs`` (the last layer with several epochs, in time order); each needs two frames."""
    from latent_atlas.frames import frame_grid

    axes, epochs = frame_grid(frames)
    last = epochs[-1]
    out = {
        "layers": [
            i for a in axes for i, f in enumerate(frames) if _axis_of(f) == a and f.epoch == last
        ]
    }
    timed = [a for a in axes if sum(_axis_of(f) == a for f in frames) > 1]
    if timed:
        out["epochs"] = [
            i
            for e in epochs
            for i, f in enumerate(frames)
            if _axis_of(f) == timed[-1] and f.epoch == e
        ]
    return {k: v for k, v in out.items() if len(v) > 1}


def _caption(row: dict[str, Any], method: str) -> str:
    trust = row.get(f"trust_{method}", float("nan"))
    return f"trust {trust:.3f} · 5-NN {row['knn_accuracy']:.2f} · probe {row['linear_probe']:.2f}"


def _film_strip(
    frames: list[Frame], sweep: SweepMaps, rows: list[dict[str, Any]], method: str, seed: int
) -> Any:
    from latent_atlas.frames import frame_grid
    from latent_atlas.frames_plot import FilmStripDisplay

    axes, epochs = frame_grid(frames)
    gridded = len(axes) > 1 and len(epochs) > 1
    latent = frames[0].latent
    display = FilmStripDisplay.from_frames(
        [sweep.embeddings[f.name][method] for f in frames],
        latent.labels,
        latent.class_names,
        titles=[f.label for f in frames],
        captions=[_caption(r, method) for r in rows],
        grid=[(axes.index(_axis_of(f)), epochs.index(f.epoch)) for f in frames]
        if gridded
        else None,
        row_names=axes if gridded else None,
        col_names=[_epoch_text(e) for e in epochs] if gridded else None,
        seed=seed,
    )
    return display.figure_


def _score_curves(
    frames: list[Frame], rows: list[dict[str, Any]], chain: list[int], x: str, methods: list[str]
) -> Any:
    from latent_atlas.frames_plot import ScoreCurvesDisplay

    ys = [*SCORES, *(f"trust_{m}" for m in methods)]
    table: dict[str, list[Any]] = {x: [], **{y: [] for y in ys}}
    for i in chain:
        table[x].append(frames[i].label if x == "frame" else _epoch_text(frames[i].epoch))
        for y in ys:
            table[y].append(float(rows[i].get(y, np.nan)))
    return ScoreCurvesDisplay.from_table(table, x=x, ys=ys).figure_


def draw_frames(
    run: RunDir,
    frames: list[Frame],
    sweep: SweepMaps,
    rows: list[dict[str, Any]],
    cka: np.ndarray,
    maps: MapConfig,
) -> list[str]:
    """Write every picture of the sweep into the run's folder; return the file names."""
    import matplotlib.pyplot as plt

    from latent_atlas.frames_plot import CKADisplay, write_animation

    methods = [m.name for m in maps.maps]
    written: list[str] = []

    def save(name: str, figure: Any) -> None:
        save_figure(run.file(name), figure)
        plt.close(figure)
        written.append(name)

    for method in methods:
        save(f"frames_{method}.png", _film_strip(frames, sweep, rows, method, maps.seed))
    main = next((m for m in ("umap", "tsne") if m in methods), methods[0])
    if run.file(f"frames_{main}.png").is_file():
        save("frames.png", _film_strip(frames, sweep, rows, main, maps.seed))
    found = chains(frames)
    for kind, chain in found.items():
        x = "frame" if kind == "layers" else "epoch"
        name = "frames_scores.png" if kind == "layers" else "frames_scores_epochs.png"
        save(name, _score_curves(frames, rows, chain, x, methods))
        labels = frames[0].latent.labels
        paths = write_animation(
            [sweep.embeddings[frames[i].name][main] for i in chain],
            labels,
            frames[0].latent.class_names,
            run.file(f"frames_{main}_{kind}.gif"),
            titles=[frames[i].label for i in chain],
            seed=maps.seed,
        )
        written += [p.name for p in paths]
    save("cka.png", CKADisplay.from_matrix(cka, [f.label for f in frames]).figure_)
    written.append(_viewer(run, frames))
    return written


def _viewer(run: RunDir, frames: list[Frame]) -> str:
    from latent_atlas.viewer import build_frames_viewer

    page = build_frames_viewer(run, [(f.name, f.label) for f in frames], run.file("frames.html"))
    return page.name
