"""The map stage, shared by ``run`` and ``project``: from a latent space to every map of it.

For each method: fit the reducer (on the shown points, or on other points and ``transform``
the shown ones), save ``embedding_<method>.npy``; then ``projections.parquet``, the comparison
of map quality (:mod:`latent_atlas.compare`), scatter plots, the side-by-side figure and the
atlases. Every step is keyed in the manifest and skipped when repeated unchanged.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from latent_atlas.atlas import build_atlas, render_atlas
from latent_atlas.compare import write_comparison
from latent_atlas.config import AtlasConfig, MapConfig
from latent_atlas.errors import ConfigError, LatentAtlasError
from latent_atlas.fileio import load_npy, save_figure, save_image, save_npy, save_table
from latent_atlas.largedata import (
    ChunkMapper,
    chunk_indices,
    fit_large,
    map_chunks_here,
)
from latent_atlas.latent import LatentSpace
from latent_atlas.plotting import ComparisonDisplay, ScatterDisplay
from latent_atlas.reducers import get_reducer
from latent_atlas.runs import Run
from latent_atlas.sampling import seeded_sample
from latent_atlas.viewer import ensure_viewer

log = logging.getLogger("latent_atlas")


def map_latent_space(
    run: Run,
    latent: LatentSpace,
    config: MapConfig,
    *,
    base_key: Any,
    map_chunks: ChunkMapper | None = None,
) -> dict[str, dict[str, Any]]:
    """Fit every method, then write projections, the comparison, plots and atlases."""
    if config.transform_needed and latent.fit_features is None:
        raise ConfigError(f"--fit-on {config.fit_on} needs the {config.fit_on} split's features")
    embeddings: dict[str, np.ndarray] = {}
    methods: dict[str, dict[str, Any]] = {}
    for method in config.methods:
        embeddings[method], methods[method] = fit_method(
            run, latent, method, config, base_key, map_chunks
        )
    write_projections(run, latent, embeddings)
    metrics = write_comparison(
        run,
        latent,
        embeddings,
        k=config.metrics_k,
        max_samples=config.metrics_max_samples,
        seed=config.seed,
        base_key=base_key,
    )
    for method in methods:
        methods[method]["scores"] = metrics["scores"][method]
    run.update(methods=methods)
    write_plots(run, latent, embeddings, metrics["scores"], base_key)
    if latent.images is None:
        log.info("no images: skipping the atlases")
    else:
        for method, emb in embeddings.items():
            write_atlas(run, latent, method, emb, config.atlas, base_key=base_key)
    page, rebuilt = ensure_viewer(run.path)
    log.info("viewer %s: %s", "written" if rebuilt else "up to date", page)
    return methods


def transform_in_chunks(
    reducer: Any, X: np.ndarray, chunk: int, map_chunks: ChunkMapper | None = None
) -> np.ndarray:
    """``reducer.transform`` of every row of ``X``, chunk by chunk (here, or on Dask workers)."""
    chunks = chunk_indices(np.arange(len(X)), chunk)
    placed = (map_chunks or map_chunks_here)(reducer, X, chunks)
    return np.concatenate(placed).astype(np.float32)


def fit_method(
    run: Run,
    latent: LatentSpace,
    method: str,
    config: MapConfig,
    base_key: Any,
    map_chunks: ChunkMapper | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Fit one method (or reuse its finished step); return the shown points' map and its info."""
    params = config.method_params.get(method, {})
    key = {
        "base": base_key,
        "method": method,
        "params": params,
        "seed": config.seed,
        "fit_on": config.fit_on,
        "show": config.show,
        "large": asdict(config.large),
    }
    step, name = f"project:{method}", f"embedding_{method}.npy"
    if not run.is_done(step, key):
        reducer = get_reducer(method, **params)
        if "random_state" in reducer.get_params():
            reducer.set_params(random_state=config.seed)
        fit_x = latent.fit_features if config.transform_needed else latent.features
        large = config.large.applies(len(fit_x), reducer)
        log.info("fitting %s on %d × %d (%s split)", method, *fit_x.shape, config.fit_on)
        t0 = time.perf_counter()
        large_info = None
        try:
            if config.transform_needed:
                if large:
                    sample = seeded_sample(len(fit_x), config.large.sample, config.seed)
                    reducer.fit(np.asarray(fit_x[sample]))
                else:
                    reducer.fit(fit_x)
                fit_seconds = time.perf_counter() - t0
                log.info(
                    "placing %d %s points into the %s map",
                    len(latent.features),
                    config.show,
                    method,
                )
                emb = transform_in_chunks(reducer, latent.features, config.large.chunk, map_chunks)
            elif large:
                emb, large_info = fit_large(
                    reducer, fit_x, config.large, config.seed, map_chunks=map_chunks
                )
                fit_seconds = large_info["seconds"]["fit_sample"]
            else:
                emb = reducer.fit_transform(fit_x)
                fit_seconds = time.perf_counter() - t0
        except LatentAtlasError:
            raise
        except (ValueError, np.linalg.LinAlgError) as exc:  # a backend refused this data
            raise ConfigError(f"{method} cannot map these features: {exc}") from exc
        seconds = time.perf_counter() - t0
        save_npy(run.file(name), emb)
        effective = {
            k: _plain(v)
            for k, v in vars(reducer).items()
            if k.endswith("_") and not k.startswith("_") and _is_plain(v)
        }
        run.finish(
            step,
            key,
            [name],
            seconds,
            params=_params(reducer),
            effective=effective,
            fit_on=config.fit_on,
            show=config.show,
            fit_seconds=round(fit_seconds, 4),
            n_fit=len(fit_x),
            large_data=large_info,
        )
    info = {k: v for k, v in run.step_info(step).items() if k not in ("key", "finished", "outputs")}
    return load_npy(run.file(name)), info


def _params(reducer: Any) -> dict[str, Any]:
    return {k: _plain(v) for k, v in reducer.get_params().items()}


def write_projections(run: Run, latent: LatentSpace, embeddings: dict[str, np.ndarray]) -> None:
    """``projections.parquet``: one row per shown sample, x/y columns per method."""
    columns: dict[str, np.ndarray] = {
        "index": np.arange(len(latent.labels), dtype=np.int64),
        "label": latent.labels,
        "label_name": np.asarray(latent.class_names, dtype=object)[latent.labels].astype(str),
    }
    if latent.probabilities is not None:
        columns["predicted"] = latent.predictions  # type: ignore[assignment]
        columns["confidence"] = latent.confidence  # type: ignore[assignment]
    for method, emb in embeddings.items():
        columns[f"{method}_x"] = emb[:, 0].astype(np.float32)
        columns[f"{method}_y"] = emb[:, 1].astype(np.float32)
    save_table(run.file("projections.parquet"), columns)


def write_plots(
    run: Run,
    latent: LatentSpace,
    embeddings: dict[str, np.ndarray],
    scores: dict[str, dict[str, float]],
    base_key: Any,
) -> None:
    """``scatter_<method>.png`` for each map and ``comparison.png`` with all of them."""
    for method, emb in embeddings.items():
        key = {"base": base_key, "embedding": run.step_info(f"project:{method}")["key"]}
        name = f"scatter_{method}.png"
        if run.is_done(f"scatter:{method}", key):
            continue
        t0 = time.perf_counter()
        disp = ScatterDisplay.from_embedding(emb, latent.labels, latent.class_names, title=method)
        save_figure(run.file(name), disp.figure_, bbox_inches="tight")
        run.finish(f"scatter:{method}", key, [name], time.perf_counter() - t0)
    key = {
        "base": base_key,
        "metrics": run.step_info("compare").get("key"),
        "embeddings": [run.step_info(f"project:{m}")["key"] for m in embeddings],
    }
    if not run.is_done("comparison", key):
        t0 = time.perf_counter()
        subtitles = {m: _subtitle(scores[m]) for m in embeddings}
        disp = ComparisonDisplay.from_embeddings(
            embeddings, latent.labels, latent.class_names, subtitles=subtitles
        )
        save_figure(run.file("comparison.png"), disp.figure_)
        run.finish("comparison", key, ["comparison.png"], time.perf_counter() - t0)


def _subtitle(s: dict[str, float]) -> str:
    return (
        f"trust {s['trustworthiness']:.3f} · 5-NN acc {s['knn_accuracy_2d']:.3f}"
        f" · kept {s['neighbourhood_preservation']:.3f}"
    )


def write_atlas(
    run: Run,
    latent: LatentSpace,
    method: str,
    embedding: np.ndarray,
    config: AtlasConfig,
    *,
    base_key: Any,
) -> dict[str, Any]:
    """Build, draw and save one atlas (PNG + per-cell Parquet); record it in the manifest."""
    if latent.images is None:
        raise ConfigError("this run has no images, so it cannot have an atlas")
    stem = config.stem(method)
    png, table = f"{stem}.png", f"{stem}.parquet"
    key = {"base": base_key, "embedding": digest(np.asarray(embedding)), "atlas": asdict(config)}
    step = f"atlas:{stem.removeprefix('atlas_')}"
    if not run.is_done(step, key):
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
        if config.mode == "grid" and len(embedding) < atlas.indices.size:
            log.warning(
                "grid atlas: %d samples for %d cells; %d cells stay empty",
                len(embedding),
                atlas.indices.size,
                atlas.indices.size - len(embedding),
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
        save_image(run.file(png), pixels)
        save_table(run.file(table), atlas.cells(latent.labels, latent.predictions))
        run.finish(
            step,
            key,
            [png, table],
            time.perf_counter() - t0,
            method=method,
            mode=config.mode,
            grid=list(atlas.shape),
            filled=atlas.n_filled,
            cells=int(atlas.indices.size),
            mean_distance=atlas.mean_distance,
            params={k: _plain(v) for k, v in atlas.params.items()},
        )
    info = {k: v for k, v in run.step_info(step).items() if k not in ("key", "finished")}
    run.manifest.setdefault("atlases", {})[stem] = info
    run.save()
    return info


def atlas_for_run(run_dir: str | Path, method: str, config: AtlasConfig | None = None) -> dict:
    """Build another atlas for a finished run (``latent-atlas atlas RUN_DIR``)."""
    config = config or AtlasConfig()
    config.check()
    run = Run(run_dir, create=False)
    embedding_file = run.file(f"embedding_{method}.npy")
    if not embedding_file.is_file():
        have = sorted(p.stem.removeprefix("embedding_") for p in run.path.glob("embedding_*.npy"))
        raise ConfigError(f"{run.path} has no {method!r} map; it has: {', '.join(have) or 'none'}")
    latent = LatentSpace.load(run.path, run.manifest.get("dataset", {}).get("class_names"))
    base_key = run.step_info("extract").get("key")
    return write_atlas(run, latent, method, load_npy(embedding_file), config, base_key=base_key)


def digest(array: np.ndarray) -> str:
    """A short content hash of an array (shape and dtype included).

    Hashed in blocks of rows, so a memory-mapped or lazily decoded array is never copied whole.
    """
    h = hashlib.sha256(str((np.dtype(array.dtype).str, tuple(array.shape))).encode())
    if not len(array.shape):
        h.update(np.ascontiguousarray(array).data)
        return h.hexdigest()[:16]
    row_bytes = max(1, int(np.prod(array.shape[1:])) * np.dtype(array.dtype).itemsize)
    step = max(1, (64 * 2**20) // row_bytes)
    for start in range(0, len(array), step):
        h.update(np.ascontiguousarray(array[start : start + step]).data)
    return h.hexdigest()[:16]


def _is_plain(value: Any) -> bool:
    return isinstance(value, bool | int | float | str | np.integer | np.floating) or (
        isinstance(value, np.ndarray) and value.ndim == 1 and value.size <= 64
    )


def _plain(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return repr(value)
