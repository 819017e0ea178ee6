"""The article's pipeline as library calls: ``run_pipeline`` (train or load a model → extract
→ maps) and ``project_features`` (maps for features a user already has, one latent space or
several of the same images).

Each step records a key of its inputs in the run's manifest and is skipped when repeated with
the same key (see :mod:`latent_atlas.runs`); the model stage lives in
:mod:`latent_atlas.extraction`, the map stage in :mod:`latent_atlas.maps`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latent_atlas import beside
from latent_atlas.config import DEFAULT_METHODS, AtlasConfig, MapConfig, RunConfig
from latent_atlas.errors import ConfigError
from latent_atlas.fileio import as_json
from latent_atlas.frames import map_frames, write_frames
from latent_atlas.keys import changed, fingerprint
from latent_atlas.latent import LatentSpace
from latent_atlas.mapfit import warm_up
from latent_atlas.maps import atlas_for_run
from latent_atlas.richdisplay import SCORE_COLUMNS, run_html
from latent_atlas.runs import RunDir, SpaceDir, space_name
from latent_atlas.sampling import seeded_sample
from latent_atlas.sweep import Frame

log = logging.getLogger("latent_atlas")

__all__ = [
    "DEFAULT_METHODS",
    "AtlasConfig",
    "MapConfig",
    "RunConfig",
    "RunSummary",
    "SpaceSummary",
    "atlas_for_run",
    "default_run_dir",
    "project_features",
    "run_pipeline",
]


@dataclass
class SpaceSummary:
    """What one latent space of a run produced."""

    name: str
    n_samples: int
    n_features: int
    maps: dict[str, dict[str, Any]]
    latent: dict[str, Any]

    def format_lines(self) -> list[str]:
        knn = self.latent.get("knn_accuracy", float("nan"))
        lines = [
            f"{self.n_samples} samples × {self.n_features} features "
            f"({self.latent.get('active_units', '?')} ever active); "
            f"5-NN accuracy in the latent space {knn:.4f}"
        ]
        header = f"{'method':<14}{'seconds':>9}" + "".join(f"{c:>10}" for c, _ in SCORE_COLUMNS)
        lines += [header, "-" * len(header)]
        for name, m in self.maps.items():
            s = m.get("scores", {})
            lines.append(
                f"{name:<14}{m['seconds']:>9.2f}"
                + "".join(f"{s.get(key, float('nan')):>10.4f}" for _, key in SCORE_COLUMNS)
            )
        return lines


@dataclass
class RunSummary:
    """What a run produced, for printing and for notebooks."""

    path: Path
    spaces: list[SpaceSummary]
    training: dict[str, Any] | None
    seconds: float
    model: dict[str, Any] | None = None  # a model that was loaded, not trained
    run: RunDir | None = field(default=None, repr=False)

    # the first (for most runs the only) space, as before runs held several
    @property
    def n_samples(self) -> int:
        return self.spaces[0].n_samples

    @property
    def n_features(self) -> int:
        return self.spaces[0].n_features

    @property
    def methods(self) -> dict[str, dict[str, Any]]:
        return self.spaces[0].maps

    @property
    def latent(self) -> dict[str, Any]:
        return self.spaces[0].latent

    def _head_lines(self) -> list[str]:
        lines = []
        if self.model:
            m = self.model
            lines.append(
                f"model {m['spec']} ({m['kind']}, not trained here); predictions: "
                f"{m.get('predictions', 'none')}"
            )
        if self.training:
            t = self.training
            lines.append(
                f"test accuracy {t['test_accuracy']:.4f} (loss {t['test_loss']:.4f}); "
                f"best epoch {t['best_epoch']} of {t['epochs_run']}"
            )
        return lines

    def format(self) -> str:
        lines = [f"run directory: {self.path}", *self._head_lines()]
        for space in self.spaces:
            if len(self.spaces) > 1:
                lines.append(f"space {space.name}:")
            lines += space.format_lines()
        lines.append(f"total {self.seconds:.1f} s")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """Jupyter: the scores table and the comparison figure of every space."""
        folders = {sp.name: sp.path for sp in self.run.spaces()} if self.run else {}
        spaces = [
            (sp.name, sp.format_lines()[0], sp.maps, folders.get(sp.name, self.path))
            for sp in self.spaces
        ]
        lines = [*self._head_lines(), f"total {self.seconds:.1f} s"]
        return run_html(f"run directory: {self.path}", lines, spaces)


def _summarise_space(
    space: SpaceDir, latent: LatentSpace, maps: dict[str, dict[str, Any]], seed: int
) -> SpaceSummary:
    from latent_atlas.metrics import MAX_SAMPLES, knn_accuracy

    n = len(latent.features)
    sample = seeded_sample(n, MAX_SAMPLES, seed)
    scored = space.steps.info("metrics") or {}
    accuracy = (scored.get("reference") or {}).get("knn_accuracy")
    same = (scored.get("n_samples"), scored.get("seed")) == (len(sample), seed)
    if accuracy is None or not same or scored.get("k", 0) < 5:
        # (the metrics step scored the same 5-NN on the same seeded sample: else count it here)
        accuracy = knn_accuracy(latent.features[sample], latent.labels[sample], k=5)
    summary = {
        "n_samples": n,
        "n_features": int(latent.features.shape[1]),
        "knn_accuracy": accuracy,
        "knn_sample": len(sample),
        "active_units": int(np.count_nonzero(np.any(latent.features != 0, axis=0))),
    }
    space.set(latent=summary)
    return SpaceSummary(space.name, n, summary["n_features"], maps, summary)


# -- run: train or load, extract, map --------------------------------------------------------------


def default_run_dir(config: RunConfig) -> Path:
    """``runs/<dataset>-<hash of the options>``: the same arguments give the same directory.

    Only options that differ from the defaults count, so an option added later (with the old
    behaviour as its default) leaves every default directory where it was.
    """
    options = changed(as_json(config.to_dict()), as_json(RunConfig().to_dict()))
    return Path("runs") / f"{config.dataset}-{fingerprint(options)[:8]}"


def run_pipeline(
    config: RunConfig | None = None,
    out: str | Path | None = None,
    *,
    progress: bool = True,
    dask: str | None = None,
) -> RunSummary:
    """Train the model (or load yours), extract the layer's activations and map them.

    ``dask`` (a scheduler address, or ``"local"`` for a 2-worker cluster on 127.0.0.1) runs the
    extraction over image shards and the large-data ``transform`` over chunks on Dask.
    """
    from latent_atlas.sweep import frames_of

    config = config or RunConfig()
    started = time.perf_counter()
    warm_up(config.maps)
    with (
        RunDir.create(
            out if out is not None else default_run_dir(config),
            command="run",
            config=config.to_dict(),
            seed=config.seed,
        ) as run,
        dask_session(dask) as client,
    ):
        frames = frames_of(run, config, progress=progress, client=client)
        return map_run_frames(run, frames, config.maps, started, client)


@contextlib.contextmanager
def dask_session(address: str | None) -> Iterator[Any]:
    """A Dask client for the duration of a run (None without ``address``)."""
    if not address:
        yield None
        return
    from latent_atlas.distributed import connect

    client = connect(address)
    try:
        yield client
    finally:
        cluster = client.cluster if address == "local" else None
        client.close()
        if cluster is not None:
            cluster.close()


def map_run_frames(
    run: RunDir,
    frames: list[Frame],
    maps: MapConfig,
    started: float,
    client: Any = None,
) -> RunSummary:
    """Map every frame (aligned when there are several), summarise, write the viewers."""
    mapper = None
    if client is not None:
        from latent_atlas.distributed import chunk_mapper

        mapper = chunk_mapper(client)
    sweep = map_frames(frames, maps, mapper)
    summaries = [
        _summarise_space(f.space, f.latent, sweep.records[f.name], maps.seed) for f in frames
    ]
    if len(frames) > 1:
        write_frames(run, frames, sweep, maps)
    else:
        run.set(frames=None)
    from latent_atlas.viewer import ensure_viewer

    for frame in frames:
        page, rebuilt = ensure_viewer(run, space=frame.name)
        log.info("viewer %s: %s", "written" if rebuilt else "up to date", page)
    seconds = time.perf_counter() - started
    run.set(total_seconds=round(seconds, 3))
    return RunSummary(
        run.path,
        summaries,
        run.training,
        seconds,
        run.model if run.command == "run" else None,
        run,
    )


# -- project: maps for features the user already has -----------------------------------------------


def project_features(
    features: np.ndarray | Mapping[str, np.ndarray],
    labels: np.ndarray,
    *,
    out: str | Path,
    images: np.ndarray | None = None,
    class_names: list[str] | None = None,
    probabilities: np.ndarray | None = None,
    maps: MapConfig | None = None,
    dask: str | None = None,
) -> RunSummary:
    """Projections, plots, atlases and a run directory for features computed elsewhere.

    ``features`` is one N×D array, or several of the same N images by name (``{"conv3": ...,
    "dense": ...}``): each becomes a latent space of the run with its own maps, metrics and
    atlases. ``dask`` runs the large-data ``transform`` chunks on a Dask cluster (see
    :func:`run_pipeline`).
    """
    maps = maps or MapConfig()
    if maps.transform_needed:
        raise ConfigError("project maps the features it is given: --fit-on/--show do not apply")
    named = dict(features) if isinstance(features, Mapping) else {"features": features}
    if not named:
        raise ConfigError("no features given")
    started = time.perf_counter()
    labels_arr = np.asarray(labels)
    if class_names is None:
        k = int(labels_arr.max()) + 1 if labels_arr.size and labels_arr.dtype.kind in "iu" else 0
        class_names = [str(i) for i in range(k)]
    latents = {
        space_name(name): LatentSpace(
            x, labels_arr, list(class_names), images=images, probabilities=probabilities
        )
        for name, x in named.items()
    }
    warm_up(maps, n_points=None if dask else max(len(s.features) for s in latents.values()))
    config = {"maps": maps.to_dict()}
    try:
        with RunDir.create(out, command="project", config=config, seed=maps.seed) as run:
            names = list(class_names)
            run.set(dataset={"name": "features", "class_names": names, "n_test": len(labels_arr)})
            run.keep_spaces(list(latents))
            alone = len(latents) == 1
            frames = [_project_space(run, name, x, alone=alone) for name, x in latents.items()]
            with dask_session(dask) as client:
                return map_run_frames(run, frames, maps, started, client)
    finally:
        beside.stop()  # (a second process started early and never used: a failed run)


def _project_space(run: RunDir, name: str, latent: LatentSpace, *, alone: bool) -> Frame:
    from latent_atlas.runs import SPACES_FOLDER

    space = run.add_space(
        name,
        source={"given": "features"},
        folder="." if alone else f"{SPACES_FOLDER}/{name}",
    )
    key = fingerprint(  # the arrays are hashed once, for the check and the record
        {
            "features": latent.features,
            "labels": latent.labels,
            "class_names": latent.class_names,
            "images": latent.images,
            "probabilities": latent.probabilities,
        }
    )
    if not space.steps.is_done("features", key):
        outputs = latent.save(space.path)
        space.steps.finish("features", key, outputs, 0.0, n_features=int(latent.features.shape[1]))
    return Frame(space, latent, name)
