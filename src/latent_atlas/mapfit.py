"""Fitting the maps of one latent space: each map here, or beside the others in a second process.

:func:`fit_maps` fits every map a :class:`~latent_atlas.config.MapConfig` names (or reuses its
finished step) and saves ``embedding_<map>.npy``. A seeded UMAP fit runs on one core
(umap-learn makes a seeded layout single-threaded so that it is reproducible); on a machine with
two cores or more it is fitted in a second process while the other maps are fitted here, so the
two slow maps of a run (t-SNE and UMAP) take about as long as the slower of them instead of the
sum. The maps are the same either way: the second process fits the same reducer with the same
seed. Small data (below :data:`DETACH_MIN_POINTS`), one core, a single slow map or a Dask
cluster (``map_chunks``) keep every fit here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import numpy as np

from latent_atlas import beside
from latent_atlas.align import RECIPE as ALIGN_RECIPE
from latent_atlas.align import procrustes_onto, start_from
from latent_atlas.config import MapConfig, MapSpec
from latent_atlas.errors import ConfigError, LatentAtlasError
from latent_atlas.fileio import load_npy, save_npy
from latent_atlas.keys import changed
from latent_atlas.largedata import (
    ChunkMapper,
    LargeDataRecipe,
    chunk_indices,
    fit_large,
    map_chunks_here,
)
from latent_atlas.latent import LatentSpace
from latent_atlas.runs import SpaceDir, embedding_file
from latent_atlas.sampling import seeded_sample
from latent_atlas.threads import available_cores

log = logging.getLogger("latent_atlas")

#: below this many fitted points a second process costs more (its start, ~3 s) than it saves
DETACH_MIN_POINTS = 5_000


def warm_up(config: MapConfig, n_points: int | None = None) -> None:
    """Let each method prepare in the background what its fit will need (umap-learn's compiled
    code on a machine whose numba cache is empty); runs call this before their long steps.
    Knowing ``n_points`` (the points a map is fitted on), the second process a fit will run in
    is started now and imports what the fit needs (:mod:`latent_atlas.beside`); that fit then
    compiles there what it lacks."""
    reducers = [spec.make(config.seed) for spec in config.maps]
    detach = [] if n_points is None else _detachable(reducers, n_points, None)
    for i, reducer in enumerate(reducers):
        hook = getattr(type(reducer), "warm_up", None)
        if callable(hook) and i not in detach:
            hook()
    hooks = [getattr(type(reducers[i]), "import_backend", None) for i in detach]
    if detach:
        beside.start(partial(_prepare_beside, [h for h in hooks if callable(h)]))


@dataclass(frozen=True)
class Reference:
    """The map a frame's map is aligned to: the previous frame's (see :mod:`latent_atlas.align`)."""

    embedding: np.ndarray
    key: str  # the reference map's step key: an aligned map is made again when it changes
    frame: str  # the space it belongs to


@dataclass
class _Fit:
    """One map to fit: its step, key and configured reducer."""

    spec: MapSpec
    step: str
    key: dict[str, Any]
    reducer: Any
    reference: Reference | None
    started: bool


@dataclass
class _Fitted:
    """What a fit gives back (from here or from the second process)."""

    embedding: np.ndarray
    fit_seconds: float
    large_info: dict[str, Any] | None
    params: dict[str, Any]
    learned: dict[str, Any]
    n_fit: int
    seconds: float


def fit_maps(
    space: SpaceDir,
    latent: LatentSpace,
    config: MapConfig,
    map_chunks: ChunkMapper | None = None,
    references: Mapping[str, Reference] | None = None,
    while_waiting: Callable[[dict[str, np.ndarray]], None] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
    """Every map of ``space`` (fitted now, or its finished step reused) and each one's record.

    Seeded one-core fits run in a second process beside the others where that saves time
    (see the module's docstring); the records and maps do not depend on where a map was fitted.
    ``while_waiting`` is called with the maps fitted here once they are done, while a map in
    the second process is still being fitted (the work a run does next on those maps can run
    meanwhile).
    """
    refs = references or {}
    todo = {s.name: _prepare(space, latent, s, config, refs.get(s.name)) for s in config.maps}
    fit_x, _ = _inputs(latent, config)
    jobs = [j for j in todo.values() if j is not None]
    detached = _to_detach(jobs, len(fit_x), map_chunks)
    if not detached:
        beside.stop()  # (a second process started early for nothing)
    futures = _submit(detached, latent, fit_x, config) if detached else {}
    embeddings: dict[str, np.ndarray] = {}
    try:
        for job in jobs:
            if job.spec.name not in futures:
                _log_fit(job.spec, fit_x, config, "")
                fitted = _fit_here(job, latent, fit_x, config, map_chunks)
                embeddings[job.spec.name] = _finish(space, job, config, fitted)
        if futures and embeddings and while_waiting is not None:
            while_waiting(dict(embeddings))
        for name, future in futures.items():
            embeddings[name] = _finish(space, todo[name], config, beside.result(future))  # type: ignore[arg-type]
    finally:
        for future in futures.values():
            future.cancel()
    ordered = {s.name: _result(space, s, embeddings.get(s.name)) for s in config.maps}
    return {m: e for m, (e, _) in ordered.items()}, {m: r for m, (_, r) in ordered.items()}


def fit_map(
    space: SpaceDir,
    latent: LatentSpace,
    spec: MapSpec,
    config: MapConfig,
    map_chunks: ChunkMapper | None = None,
    reference: Reference | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Fit one map here (or reuse its finished step); return the shown points' map and its
    record. With a ``reference`` the map starts from it where the method can and is turned
    onto it (:mod:`latent_atlas.align`)."""
    job = _prepare(space, latent, spec, config, reference)
    emb = None
    if job is not None:
        fit_x, _ = _inputs(latent, config)
        _log_fit(spec, fit_x, config, "")
        emb = _finish(space, job, config, _fit_here(job, latent, fit_x, config, map_chunks))
    return _result(space, spec, emb)


def _prepare(
    space: SpaceDir,
    latent: LatentSpace,
    spec: MapSpec,
    config: MapConfig,
    reference: Reference | None,
) -> _Fit | None:
    """The fit ``spec`` needs, with its reducer made and started; None when its step is done."""
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
    step = f"embedding:{spec.name}"
    if space.steps.is_done(step, key):
        return None
    reducer = spec.make(config.seed)
    fit_x, _ = _inputs(latent, config)
    started = reference is not None and _start_aligned(reducer, reference, fit_x, config)
    return _Fit(spec, step, key, reducer, reference, started)


def _inputs(latent: LatentSpace, config: MapConfig) -> tuple[Any, Any]:
    """The points a map is fitted on, and the points it shows when those differ (else None)."""
    if config.transform_needed:
        return latent.fit_features, latent.features
    return latent.features, None


def _log_fit(spec: MapSpec, fit_x: Any, config: MapConfig, where: str) -> None:
    log.info("fitting %s on %d × %d (%s split)%s", spec.name, *fit_x.shape, config.fit_on, where)


def _finish(space: SpaceDir, job: _Fit, config: MapConfig, fitted: _Fitted) -> np.ndarray:
    """Save a fitted map (turned onto its reference, if any), finish its step; return the map."""
    emb = fitted.embedding
    if job.reference is not None:
        emb = procrustes_onto(emb, job.reference.embedding)
    name = embedding_file(job.spec.name)
    save_npy(space.file(name), emb)
    ref = job.reference
    space.steps.finish(
        job.step,
        job.key,
        [name],
        fitted.seconds,
        method=job.spec.method_name,
        params=fitted.params,
        effective=fitted.learned,
        fit_on=config.fit_on,
        show=config.show,
        fit_seconds=round(fitted.fit_seconds, 4),
        n_fit=fitted.n_fit,
        large_data=fitted.large_info,
        aligned_to=None if ref is None else {"frame": ref.frame, "start": job.started},
    )
    return emb


def _result(
    space: SpaceDir, spec: MapSpec, emb: np.ndarray | None
) -> tuple[np.ndarray, dict[str, Any]]:
    """A map (read from its file when its step was reused) and its record."""
    step = f"embedding:{spec.name}"
    info = {k: v for k, v in space.steps.info(step).items() if k != "outputs"}
    return (load_npy(space.file(embedding_file(spec.name))) if emb is None else emb), info


# -- where a fit runs ---------------------------------------------------------------------------


def _to_detach(jobs: list[_Fit], n_fit: int, map_chunks: ChunkMapper | None) -> list[_Fit]:
    """The fits worth running in a second process: seeded one-core fits, when at least one
    other slow fit runs here meanwhile, on two cores or more, with enough points."""
    return [jobs[i] for i in _detachable([j.reducer for j in jobs], n_fit, map_chunks)]


def _detachable(reducers: list[Any], n_fit: int, map_chunks: ChunkMapper | None) -> list[int]:
    """Which of ``reducers`` (positions) :func:`_to_detach` sends to the second process."""
    if map_chunks is not None or available_cores() < 2 or n_fit < DETACH_MIN_POINTS:
        return []
    one_core = [i for i, r in enumerate(reducers) if _one_core(r)]
    others = [
        r for i, r in enumerate(reducers) if i not in one_core and not getattr(r, "quick", False)
    ]
    return one_core[:1] if others else []


def _one_core(reducer: Any) -> bool:
    return bool(getattr(reducer, "one_core_when_seeded", False)) and (
        getattr(reducer, "random_state", None) is not None
    )


def _prepare_beside(hooks: list[Callable[[], Any]]) -> None:
    """The second process's start, before its fit arrives: import what the fit will use."""
    for hook in hooks:
        hook()


def _submit(
    jobs: list[_Fit], latent: LatentSpace, fit_x: np.ndarray, config: MapConfig
) -> dict[str, Future]:
    """Start each job's fit in the second process (:mod:`latent_atlas.beside`)."""
    from latent_atlas.jitcache import stop_warm_up

    stop_warm_up()  # (the second process compiles what it needs into the same cache)
    _, show_x = _inputs(latent, config)
    futures = {}
    for job in jobs:
        _log_fit(job.spec, fit_x, config, ", in a second process")
        futures[job.spec.name] = beside.submit(
            _run_fit, job.reducer, job.spec, fit_x, show_x, config, None
        )
    return futures


def _fit_here(
    job: _Fit, latent: LatentSpace, fit_x: np.ndarray, config: MapConfig, map_chunks: Any
) -> _Fitted:
    _, show_x = _inputs(latent, config)
    return _run_fit(job.reducer, job.spec, fit_x, show_x, config, map_chunks)


def _run_fit(
    reducer: Any,
    spec: MapSpec,
    fit_x: np.ndarray,
    show_x: np.ndarray | None,
    config: MapConfig,
    map_chunks: ChunkMapper | None,
) -> _Fitted:
    t0 = time.perf_counter()
    emb, fit_seconds, large_info = _fit(reducer, spec, fit_x, show_x, config, map_chunks)
    return _Fitted(
        emb,
        fit_seconds,
        large_info,
        _params(reducer),
        _learned(reducer),
        len(fit_x),
        time.perf_counter() - t0,
    )


def transform_in_chunks(
    reducer: Any, X: np.ndarray, chunk: int, map_chunks: ChunkMapper | None = None
) -> np.ndarray:
    """``reducer.transform`` of every row of ``X``, chunk by chunk (here, or on Dask workers)."""
    chunks = chunk_indices(np.arange(len(X)), chunk)
    placed = (map_chunks or map_chunks_here)(reducer, X, chunks)
    return np.concatenate(placed).astype(np.float32)


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
    fit_x: np.ndarray,
    show_x: np.ndarray | None,
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
            log.info("placing %d %s points into the %s map", len(show_x), config.show, spec.name)
            emb = transform_in_chunks(reducer, show_x, config.large.chunk, map_chunks)
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
    return {k: plain(v) for k, v in reducer.get_params(deep=False).items()}


def _learned(reducer: Any) -> dict[str, Any]:
    """The plain learned attributes of a fitted reducer (``perplexity_``, ``n_neighbors_``...)."""
    return {
        k: plain(v)
        for k, v in vars(reducer).items()
        if k.endswith("_") and not k.startswith("_") and _isplain(v)
    }


def _isplain(value: Any) -> bool:
    return isinstance(value, bool | int | float | str | np.integer | np.floating) or (
        isinstance(value, np.ndarray) and value.ndim == 1 and value.size <= 64
    )


def plain(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):  # (a starting layout: its shape, not 20,000 numbers)
        return value.tolist() if value.size <= 16 else f"array {'×'.join(map(str, value.shape))}"
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    return repr(value)
