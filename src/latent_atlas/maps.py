"""The map stage, shared by ``run`` and ``project``: from one latent space to every map of it.

For each map: fit its method (on the shown points, or on other points and ``transform`` the
shown ones) and save ``embedding_<map>.npy``; then ``projections.parquet``, the comparison of
map quality (:mod:`latent_atlas.compare`), scatter plots, the side-by-side figure and the
atlases, all in the space's folder. Every step is keyed in the space's manifest entry and
skipped when repeated unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from latent_atlas.align import RECIPE as ALIGN_RECIPE
from latent_atlas.align import procrustes_onto, start_from
from latent_atlas.atlas import build_atlas, render_atlas
from latent_atlas.compare import write_metrics
from latent_atlas.config import AtlasConfig, MapConfig, MapSpec
from latent_atlas.errors import ConfigError, LatentAtlasError
from latent_atlas.fileio import load_npy, save_figure, save_image, save_npy, save_table
from latent_atlas.keys import changed
from latent_atlas.largedata import (
    ChunkMapper,
    LargeDataRecipe,
    chunk_indices,
    fit_large,
    map_chunks_here,
)
from latent_atlas.latent import LatentSpace
from latent_atlas.plotting import ComparisonDisplay, ScatterDisplay
from latent_atlas.richdisplay import COMPARISON_FILE
from latent_atlas.runs import RunDir, SpaceDir, embedding_file
from latent_atlas.sampling import seeded_sample

log = logging.getLogger("latent_atlas")


def warm_up(config: MapConfig) -> None:
    """Let each method prepare in the background what its fit will need (umap-learn's compiled
    code on a machine whose numba cache is empty); runs call this before their long steps."""
    from latent_atlas.reducers import reducer_class

    for spec in config.maps:
        method = spec.method
        cls = reducer_class(method, spec.params) if isinstance(method, str) else type(method)
        hook = getattr(cls, "warm_up", None)
        if callable(hook):
            hook()


@dataclass(frozen=True)
class Reference:
    """The map a frame's map is aligned to: the previous frame's (see :mod:`latent_atlas.align`)."""

    embedding: np.ndarray
    key: str  # the reference map's step key: an aligned map is made again when it changes
    frame: str  # the space it belongs to


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
    maps: dict[str, dict[str, Any]] = {}
    refs = references or {}
    for spec in config.maps:
        embeddings[spec.name], maps[spec.name] = fit_map(
            space, latent, spec, config, map_chunks, refs.get(spec.name)
        )
    write_projections(space, latent, embeddings)
    metrics = write_metrics(
        space,
        latent,
        embeddings,
        k=config.metrics_k,
        max_samples=config.metrics_max_samples,
        seed=config.seed,
    )
    for name in maps:
        maps[name]["scores"] = metrics["scores"][name]
    space.set(maps=maps)
    write_plots(space, latent, embeddings, metrics["scores"])
    if latent.images is None:
        log.info("no images: skipping the atlases")
    else:
        for name, emb in embeddings.items():
            write_atlas(space, latent, name, emb, config.atlas)
    return maps


def transform_in_chunks(
    reducer: Any, X: np.ndarray, chunk: int, map_chunks: ChunkMapper | None = None
) -> np.ndarray:
    """``reducer.transform`` of every row of ``X``, chunk by chunk (here, or on Dask workers)."""
    chunks = chunk_indices(np.arange(len(X)), chunk)
    placed = (map_chunks or map_chunks_here)(reducer, X, chunks)
    return np.concatenate(placed).astype(np.float32)


def fit_map(
    space: SpaceDir,
    latent: LatentSpace,
    spec: MapSpec,
    config: MapConfig,
    map_chunks: ChunkMapper | None = None,
    reference: Reference | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Fit one map (or reuse its finished step); return the shown points' map and its record.

    With a ``reference`` the map starts from it where the method can and is turned onto it
    (:mod:`latent_atlas.align`).
    """
    key = {
        "features": space.steps.key("features"),
        "map": spec.key(),
        "seed": config.seed,
        "fit_on": config.fit_on,
        "show": config.show,
        "large": changed(asdict(config.large), asdict(LargeDataRecipe())),
    }
    if reference is not None:
        key["aligned_to"] = reference.key
        key["align"] = ALIGN_RECIPE
    step, name = f"embedding:{spec.name}", embedding_file(spec.name)
    if not space.steps.is_done(step, key):
        reducer = spec.make(config.seed)
        fit_x = latent.fit_features if config.transform_needed else latent.features
        started = reference is not None and _start_aligned(reducer, reference, fit_x, config)
        log.info("fitting %s on %d × %d (%s split)", spec.name, *fit_x.shape, config.fit_on)
        t0 = time.perf_counter()
        emb, fit_seconds, large_info = _fit(reducer, spec, latent, fit_x, config, map_chunks)
        if reference is not None:
            emb = procrustes_onto(emb, reference.embedding)
        save_npy(space.file(name), emb)
        space.steps.finish(
            step,
            key,
            [name],
            time.perf_counter() - t0,
            method=spec.method_name,
            params=_params(reducer),
            effective=_learned(reducer),
            fit_on=config.fit_on,
            show=config.show,
            fit_seconds=round(fit_seconds, 4),
            n_fit=len(fit_x),
            large_data=large_info,
            aligned_to=None if reference is None else {"frame": reference.frame, "start": started},
        )
        info = {k: v for k, v in space.steps.info(step).items() if k != "outputs"}
        return emb, info
    info = {k: v for k, v in space.steps.info(step).items() if k != "outputs"}
    return load_npy(space.file(name)), info


def _start_aligned(reducer: Any, reference: Reference, fit_x: Any, config: MapConfig) -> bool:
    """Start the fit from the reference map where it is a map of the same fitted points."""
    if config.transform_needed or config.large.applies(len(fit_x), reducer):
        return False  # (fitted on other points, or on a sample: Procrustes alone)
    if len(reference.embedding) != len(fit_x):
        raise ConfigError(
            f"frame {reference.frame} maps {len(reference.embedding)} points, this one {len(fit_x)}"
        )
    return start_from(reducer, reference.embedding)


def _fit(
    reducer: Any,
    spec: MapSpec,
    latent: LatentSpace,
    fit_x: np.ndarray,
    config: MapConfig,
    map_chunks: ChunkMapper | None,
) -> tuple[np.ndarray, float, dict[str, Any] | None]:
    """The map of the shown points, the seconds the fit took, and the large-data record."""
    large = config.large.applies(len(fit_x), reducer)
    t0 = time.perf_counter()
    try:
        if config.transform_needed:
            if large:
                sample = seeded_sample(len(fit_x), config.large.sample, config.seed)
                reducer.fit(np.asarray(fit_x[sample]))
            else:
                reducer.fit(fit_x)
            fit_seconds = time.perf_counter() - t0
            log.info(
                "placing %d %s points into the %s map", len(latent.features), config.show, spec.name
            )
            emb = transform_in_chunks(reducer, latent.features, config.large.chunk, map_chunks)
            return emb, fit_seconds, None
        if large:
            emb, info = fit_large(reducer, fit_x, config.large, config.seed, map_chunks=map_chunks)
            return emb, info["seconds"]["fit_sample"], info
        emb = np.asarray(reducer.fit_transform(fit_x))
    except LatentAtlasError:
        raise
    except (ValueError, np.linalg.LinAlgError) as exc:  # a backend refused this data
        raise ConfigError(f"{spec.name} cannot map these features: {exc}") from exc
    if emb.ndim != 2 or emb.shape[1] != 2:
        raise ConfigError(f"{spec.name} made a map of shape {emb.shape}, not N×2")
    return emb, time.perf_counter() - t0, None


def _params(reducer: Any) -> dict[str, Any]:
    return {k: _plain(v) for k, v in reducer.get_params(deep=False).items()}


def _learned(reducer: Any) -> dict[str, Any]:
    """The plain learned attributes of a fitted reducer (``perplexity_``, ``n_neighbors_``...)."""
    return {
        k: _plain(v)
        for k, v in vars(reducer).items()
        if k.endswith("_") and not k.startswith("_") and _is_plain(v)
    }


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


def write_plots(
    space: SpaceDir,
    latent: LatentSpace,
    embeddings: dict[str, np.ndarray],
    scores: dict[str, dict[str, float]],
) -> None:
    """``scatter_<map>.png`` for each map and ``comparison.png`` with all of them."""
    steps = space.steps
    for name, emb in embeddings.items():
        key = {"embedding": steps.key(f"embedding:{name}")}
        file = f"scatter_{name}.png"
        if steps.is_done(f"scatter:{name}", key):
            continue
        t0 = time.perf_counter()
        disp = ScatterDisplay.from_embedding(emb, latent.labels, latent.class_names, title=name)
        save_figure(space.file(file), disp.figure_, bbox_inches="tight")
        steps.finish(f"scatter:{name}", key, [file], time.perf_counter() - t0)
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
            params={k: _plain(v) for k, v in atlas.params.items()},
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


def _is_plain(value: Any) -> bool:
    return isinstance(value, bool | int | float | str | np.integer | np.floating) or (
        isinstance(value, np.ndarray) and value.ndim == 1 and value.size <= 64
    )


def _plain(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):  # (a starting layout: its shape, not 20,000 numbers)
        return value.tolist() if value.size <= 16 else f"array {'×'.join(map(str, value.shape))}"
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return repr(value)
