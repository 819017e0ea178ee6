"""The map stage, shared by ``run`` and ``project``: from one latent space to every map of it.

Every map is fitted (:mod:`latent_atlas.mapfit`: on the shown points, or on other points and
``transform`` the shown ones) and saved as ``embedding_<map>.npy``; then ``projections.parquet``,
the comparison of map quality (:mod:`latent_atlas.compare`), scatter plots, the side-by-side
figure and the atlases, all in the space's folder. Every step is keyed in the space's manifest
entry and skipped when repeated unchanged. While a map is fitted in a second process, the maps
already fitted are scored and drawn (:class:`latent_atlas.compare.SpaceScoring`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from latent_atlas.atlas import build_atlas, render_atlas
from latent_atlas.compare import SpaceScoring, write_metrics
from latent_atlas.config import AtlasConfig, MapConfig
from latent_atlas.errors import ConfigError
from latent_atlas.fileio import save_figure, save_image, save_table
from latent_atlas.largedata import ChunkMapper
from latent_atlas.latent import LatentSpace
from latent_atlas.mapfit import Reference, fit_maps, plain
from latent_atlas.plotting import ComparisonDisplay, ScatterDisplay
from latent_atlas.richdisplay import COMPARISON_FILE
from latent_atlas.runs import RunDir, SpaceDir

log = logging.getLogger("latent_atlas")


def map_space(
    space: SpaceDir,
    latent: LatentSpace,
    config: MapConfig,
    *,
    map_chunks: ChunkMapper | None = None,
    references: Mapping[str, Reference] | None = None,
    embeddings_out: dict[str, np.ndarray] | None = None,
) -> dict[str, dict[str, Any]]:
    """Fit every map of ``space``, then write projections, the comparison, plots and atlases.

    A map named in ``references`` is aligned to that map (a frame of a sweep). Returns each
    map's record (method, parameters, times, scores), as the manifest keeps it; the maps
    themselves go into ``embeddings_out`` when given.
    """
    if config.transform_needed and latent.fit_features is None:
        raise ConfigError(f"--fit-on {config.fit_on} needs the {config.fit_on} split's features")
    embeddings: dict[str, np.ndarray] = {} if embeddings_out is None else embeddings_out
    scoring = SpaceScoring(
        latent, k=config.metrics_k, max_samples=config.metrics_max_samples, seed=config.seed
    )

    def while_waiting(done: dict[str, np.ndarray]) -> None:
        """The work on the maps fitted so far, while another is fitted in a second process."""
        t0 = time.perf_counter()
        _draw_each(space, latent, done, config)
        scoring.add(done)
        log.info(
            "while the other maps were fitted: %s scored and drawn in %.1f s",
            ", ".join(done),
            time.perf_counter() - t0,
        )

    fitted, maps = fit_maps(space, latent, config, map_chunks, references, while_waiting)
    embeddings.update(fitted)
    write_projections(space, latent, embeddings)
    metrics = write_metrics(
        space,
        latent,
        embeddings,
        k=config.metrics_k,
        max_samples=config.metrics_max_samples,
        seed=config.seed,
        scoring=scoring,
    )
    for name in maps:
        maps[name]["scores"] = metrics["scores"][name]
    space.set(maps=maps)
    write_comparison(space, latent, embeddings, metrics["scores"])
    if latent.images is None:
        log.info("no images: skipping the atlases")
    _draw_each(space, latent, embeddings, config)
    return maps


def _draw_each(
    space: SpaceDir, latent: LatentSpace, embeddings: dict[str, np.ndarray], config: MapConfig
) -> None:
    """Each map's own figures: its scatter plot and atlas (each skipped when already drawn)."""
    for name, emb in embeddings.items():
        write_scatter(space, latent, name, emb)
        if latent.images is not None:
            write_atlas(space, latent, name, emb, config.atlas)


def write_projections(
    space: SpaceDir, latent: LatentSpace, embeddings: dict[str, np.ndarray]
) -> None:
    """``projections.parquet``: one row per shown sample, x/y columns per map."""
    columns: dict[str, np.ndarray] = {
        "index": np.arange(len(latent.labels), dtype=np.int64),
        "label": latent.labels,
        "label_name": np.asarray(latent.class_names, dtype=object)[latent.labels].astype(str),
    }
    if latent.probabilities is not None:
        columns["predicted"] = latent.predictions  # type: ignore[assignment]
        columns["confidence"] = latent.confidence  # type: ignore[assignment]
    for name, emb in embeddings.items():
        columns[f"{name}_x"] = emb[:, 0].astype(np.float32)
        columns[f"{name}_y"] = emb[:, 1].astype(np.float32)
    save_table(space.file("projections.parquet"), columns)


def write_comparison(
    space: SpaceDir,
    latent: LatentSpace,
    embeddings: dict[str, np.ndarray],
    scores: dict[str, dict[str, float]],
) -> None:
    """``comparison.png``: every map side by side with its scores."""
    steps = space.steps
    key = {
        "metrics": steps.key("metrics"),
        "embeddings": [steps.key(f"embedding:{m}") for m in embeddings],
    }
    if not steps.is_done("comparison", key):
        t0 = time.perf_counter()
        subtitles = {m: _subtitle(scores[m]) for m in embeddings}
        disp = ComparisonDisplay.from_embeddings(
            embeddings, latent.labels, latent.class_names, subtitles=subtitles
        )
        save_figure(space.file(COMPARISON_FILE), disp.figure_)
        steps.finish("comparison", key, [COMPARISON_FILE], time.perf_counter() - t0)


def write_scatter(space: SpaceDir, latent: LatentSpace, name: str, emb: np.ndarray) -> None:
    """``scatter_<map>.png`` (skipped when drawn before from the same map)."""
    steps = space.steps
    key = {"embedding": steps.key(f"embedding:{name}")}
    file = f"scatter_{name}.png"
    if steps.is_done(f"scatter:{name}", key):
        return
    t0 = time.perf_counter()
    disp = ScatterDisplay.from_embedding(emb, latent.labels, latent.class_names, title=name)
    save_figure(space.file(file), disp.figure_, bbox_inches="tight")
    steps.finish(f"scatter:{name}", key, [file], time.perf_counter() - t0)


def _subtitle(s: dict[str, float]) -> str:
    return (
        f"trust {s['trustworthiness']:.3f} · 5-NN acc {s['knn_accuracy_2d']:.3f}"
        f" · kept {s['neighbourhood_preservation']:.3f}"
    )


def write_atlas(
    space: SpaceDir,
    latent: LatentSpace,
    map_name: str,
    embedding: np.ndarray,
    config: AtlasConfig,
) -> dict[str, Any]:
    """Build, draw and save one atlas (PNG + per-cell Parquet); record it in the manifest."""
    if latent.images is None:
        raise ConfigError("this run has no images, so it cannot have an atlas")
    stem = config.stem(map_name)
    png, table = f"{stem}.png", f"{stem}.parquet"
    embedding_key = space.steps.key(f"embedding:{map_name}") or {"embedding": embedding}
    key = {
        "features": space.steps.key("features"),
        "embedding": embedding_key,
        "atlas": asdict(config),
    }
    step = f"atlas:{stem.removeprefix('atlas_')}"
    if not space.steps.is_done(step, key):
        t0 = time.perf_counter()
        atlas = build_atlas(
            embedding,
            config.grid,
            mode=config.mode,
            max_distance=config.max_distance,
            min_count=config.min_count,
            labels=latent.labels,
            features=latent.features,
        )
        _draw_atlas(space, latent, atlas, config, png, table)
        space.steps.finish(
            step,
            key,
            [png, table],
            time.perf_counter() - t0,
            method=map_name,
            mode=config.mode,
            grid=list(atlas.shape),
            filled=atlas.n_filled,
            cells=int(atlas.indices.size),
            mean_distance=atlas.mean_distance,
            params={k: plain(v) for k, v in atlas.params.items()},
        )
    info = space.steps.info(step)
    space.set(atlases={**space.atlases, stem: info})
    return {**info, "path": space.file(png)}


def _draw_atlas(
    space: SpaceDir, latent: LatentSpace, atlas: Any, config: AtlasConfig, png: str, table: str
) -> None:
    if config.mode == "grid" and len(latent.labels) < atlas.indices.size:
        log.warning(
            "grid atlas: %d samples for %d cells; %d cells stay empty",
            len(latent.labels),
            atlas.indices.size,
            atlas.indices.size - len(latent.labels),
        )
    preds = latent.predictions if config.mark_errors else None
    if config.mark_errors and preds is None:
        log.info("no predictions in this run: atlas tiles are not marked")
    pixels = render_atlas(
        atlas,
        latent.images,
        tile=config.tile,
        border=config.border,
        labels=latent.labels if (config.border or preds is not None) else None,
        predictions=preds,
    )
    save_image(space.file(png), pixels)
    save_table(space.file(table), atlas.cells(latent.labels, latent.predictions))


def atlas_for_run(
    run_dir: str | Path,
    map_name: str,
    config: AtlasConfig | None = None,
    *,
    space: str | None = None,
) -> dict[str, Any]:
    """Build another atlas for a finished run (``latent-atlas atlas RUN_DIR``).

    ``space`` names the latent space (default: the run's first); the run's history records
    the command, its provenance stays as it was.
    """
    config = config or AtlasConfig()
    with RunDir.open(run_dir) as run:
        found = run.space(space)
        embedding = found.embedding(map_name)  # (a name the run lacks fails before any record)
        run.record("atlas")
        return write_atlas(found, found.load_latent(), map_name, embedding, config)
