"""The seed pipeline as library calls: ``run_pipeline`` (train → extract → maps) and
``project_features`` (maps for features a user already has).

Each step records a key of its inputs in the run manifest and is skipped when repeated with
the same key (see :mod:`latent_atlas.runs`). The map stage — reducers, ``projections.parquet``,
scatter plots, the comparison figure, atlases and the summary metrics — is shared by both.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latent_atlas.atlas import build_atlas, render_atlas
from latent_atlas.errors import ConfigError
from latent_atlas.fileio import load_npy, save_figure, save_image, save_npy, save_table
from latent_atlas.latent import LatentSpace
from latent_atlas.metrics import knn_accuracy, trustworthiness
from latent_atlas.plotting import ComparisonDisplay, ScatterDisplay
from latent_atlas.reducers import get_reducer
from latent_atlas.runs import Run, fingerprint

log = logging.getLogger("latent_atlas")

DEFAULT_METHODS = ("pca", "tsne", "umap")
METRIC_SAMPLE = 5000  # summary metrics use at most this many (seeded) points


@dataclass(frozen=True)
class AtlasConfig:
    """How to build and draw an image atlas (see :func:`latent_atlas.build_atlas`)."""

    mode: str = "nearest"
    grid: int | tuple[int, int] = 20
    max_distance: float | str | None = "auto"
    min_count: int = 1
    tile: int = 32
    border: int = 0
    mark_errors: bool = False

    def check(self) -> None:
        # building a 1-point atlas runs every parameter check of build_atlas
        build_atlas(
            np.zeros((1, 2)),
            self.grid,
            mode=self.mode,
            max_distance=self.max_distance,
            min_count=self.min_count,
        )
        if self.tile < 1:
            raise ConfigError(f"tile must be at least 1 pixel, got {self.tile}")
        if self.border < 0 or 2 * self.border >= self.tile:
            raise ConfigError(f"border must lie in 0..{(self.tile - 1) // 2} pixels")

    def stem(self, method: str) -> str:
        """``atlas_<method>`` for the seed's mode, else ``atlas_<method>_<mode>``."""
        return f"atlas_{method}" if self.mode == "nearest" else f"atlas_{method}_{self.mode}"


@dataclass(frozen=True)
class MapConfig:
    """What the map stage does with a latent space."""

    methods: tuple[str, ...] = DEFAULT_METHODS
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: int = 0
    atlas: AtlasConfig = field(default_factory=AtlasConfig)

    def check(self) -> None:
        if not self.methods:
            raise ConfigError("no methods given")
        if len(set(self.methods)) != len(self.methods):
            raise ConfigError(f"methods repeat: {', '.join(self.methods)}")
        for m in self.methods:  # fail on unknown names or parameters before any work
            get_reducer(m, **self.method_params.get(m, {}))
        self.atlas.check()


@dataclass(frozen=True)
class RunConfig:
    """Everything ``latent-atlas run`` needs; the defaults reproduce the seed on ``digits``."""

    dataset: str = "digits"
    data_dir: str | None = None
    limit: int | None = None
    model: str = "seed-cnn"
    epochs: int = 50
    batch_size: int = 128
    validation: str = "split"
    layer: str = "dense"
    pool: str = "avg"
    threads: int | None = None
    maps: MapConfig = field(default_factory=MapConfig)

    @property
    def seed(self) -> int:
        return self.maps.seed

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["maps"]["methods"] = list(self.maps.methods)
        return d

    def check(self) -> None:
        from latent_atlas.datasets import available_datasets

        if self.dataset not in available_datasets():
            raise ConfigError(
                f"unknown dataset {self.dataset!r}; choose one of {', '.join(available_datasets())}"
            )
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be at least 1, got {self.limit}")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}")
        self.maps.check()


@dataclass
class RunSummary:
    """What a run produced, for printing and for notebooks."""

    path: Path
    n_samples: int
    n_features: int
    training: dict[str, Any] | None
    methods: dict[str, dict[str, Any]]
    latent: dict[str, Any]
    seconds: float

    def format(self) -> str:
        lines = [f"run directory: {self.path}"]
        if self.training:
            t = self.training
            lines.append(
                f"test accuracy {t['test_accuracy']:.4f} (loss {t['test_loss']:.4f}); "
                f"best epoch {t['best_epoch']} of {t['epochs_run']}"
            )
        lines.append(
            f"{self.n_samples} samples × {self.n_features} features; "
            f"5-NN accuracy in the latent space {self.latent.get('knn_accuracy', float('nan')):.4f}"
        )
        header = f"{'method':<14}{'seconds':>9}{'5-NN acc (2-D)':>16}{'trustworthiness':>17}"
        lines += [header, "-" * len(header)]
        for name, m in self.methods.items():
            lines.append(
                f"{name:<14}{m['seconds']:>9.2f}{m['knn_accuracy']:>16.4f}"
                f"{m['trustworthiness']:>17.4f}"
            )
        lines.append(f"total {self.seconds:.1f} s")
        return "\n".join(lines)


# -- the map stage ------------------------------------------------------------------------------


def map_latent_space(
    run: Run, latent: LatentSpace, config: MapConfig, *, base_key: Any, progress: bool = True
) -> dict[str, dict[str, Any]]:
    """Fit every method, then write projections.parquet, plots, atlases and summary metrics."""
    embeddings: dict[str, np.ndarray] = {}
    methods: dict[str, dict[str, Any]] = {}
    sample = _metric_sample(len(latent.features), config.seed)
    for method in config.methods:
        params = config.method_params.get(method, {})
        key = {"base": base_key, "method": method, "params": params, "seed": config.seed}
        step = f"project:{method}"
        if not run.is_done(step, key):
            reducer = get_reducer(method, **params)
            if "random_state" in reducer.get_params():
                reducer.set_params(random_state=config.seed)
            log.info("fitting %s on %d × %d", method, *latent.features.shape)
            t0 = time.perf_counter()
            emb = reducer.fit_transform(latent.features)
            seconds = time.perf_counter() - t0
            save_npy(run.file(f"embedding_{method}.npy"), emb)
            effective = {
                k: _plain(v)
                for k, v in vars(reducer).items()
                if k.endswith("_") and not k.startswith("_") and _is_plain(v)
            }
            info = {
                "params": {k: _plain(v) for k, v in reducer.get_params().items()},
                "effective": effective,
                "knn_accuracy": knn_accuracy(emb[sample], latent.labels[sample], k=5),
                "trustworthiness": trustworthiness(latent.features[sample], emb[sample], k=10),
                "metric_sample": len(sample),
            }
            run.finish(step, key, [f"embedding_{method}.npy"], seconds, **info)
        embeddings[method] = load_npy(run.file(f"embedding_{method}.npy"))
        entry = run.step_info(step)
        methods[method] = {
            k: entry[k]
            for k in ("params", "effective", "knn_accuracy", "trustworthiness", "metric_sample")
        }
        methods[method]["seconds"] = entry["seconds"]

    _write_projections(run, latent, embeddings)
    _write_plots(run, latent, embeddings, methods, base_key, config)
    run.update(methods=methods)
    if latent.images is None:
        log.info("no images: skipping the atlases")
    else:
        for method, emb in embeddings.items():
            write_atlas(run, latent, method, emb, config.atlas, base_key=base_key)
    return methods


def _write_projections(run: Run, latent: LatentSpace, embeddings: dict[str, np.ndarray]) -> None:
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


def _write_plots(
    run: Run,
    latent: LatentSpace,
    embeddings: dict[str, np.ndarray],
    methods: dict[str, dict[str, Any]],
    base_key: Any,
    config: MapConfig,
) -> None:
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
        "embeddings": [run.step_info(f"project:{m}")["key"] for m in embeddings],
    }
    if not run.is_done("comparison", key):
        t0 = time.perf_counter()
        subtitles = {
            m: f"5-NN acc {methods[m]['knn_accuracy']:.3f}"
            f" · trust {methods[m]['trustworthiness']:.3f}"
            for m in embeddings
        }
        disp = ComparisonDisplay.from_embeddings(
            embeddings, latent.labels, latent.class_names, subtitles=subtitles
        )
        save_figure(run.file("comparison.png"), disp.figure_)
        run.finish("comparison", key, ["comparison.png"], time.perf_counter() - t0)


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
    key = {"base": base_key, "embedding": _digest(np.asarray(embedding)), "atlas": asdict(config)}
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


def _metric_sample(n: int, seed: int) -> np.ndarray:
    if n <= METRIC_SAMPLE:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, METRIC_SAMPLE, replace=False))


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
    return repr(value)


def _latent_summary(run: Run, latent: LatentSpace, seed: int) -> dict[str, Any]:
    sample = _metric_sample(len(latent.features), seed)
    summary = {
        "n_samples": len(latent.features),
        "n_features": int(latent.features.shape[1]),
        "knn_accuracy": knn_accuracy(latent.features[sample], latent.labels[sample], k=5),
        "active_units": int(np.count_nonzero(np.any(latent.features != 0, axis=0))),
    }
    run.update(latent=summary)
    return summary


# -- run: train, extract, map -------------------------------------------------------------------


def default_run_dir(config: RunConfig) -> Path:
    """``runs/<dataset>-<hash of the config>``: the same arguments give the same directory."""
    return Path("runs") / f"{config.dataset}-{fingerprint(config.to_dict())[:8]}"


def run_pipeline(
    config: RunConfig | None = None, out: str | Path | None = None, *, progress: bool = True
) -> RunSummary:
    """Train the model, extract the layer's activations of the test split and map them."""
    config = config or RunConfig()
    config.check()
    started = time.perf_counter()
    run = Run(out if out is not None else default_run_dir(config))
    run.update(command="run", config=config.to_dict(), seed=config.seed)
    data_dir = str(Path(config.data_dir).expanduser().resolve()) if config.data_dir else None
    data_key = {
        "dataset": config.dataset,
        "data_dir": data_dir,
        "limit": config.limit,
        "seed": config.seed,
    }
    train_key = {
        **data_key,
        "model": config.model,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "validation": config.validation,
    }
    extract_key = {**train_key, "layer": config.layer, "pool": config.pool}

    if not run.is_done("extract", extract_key):
        _train_and_extract(run, config, data_dir, train_key, extract_key, progress)
    latent = LatentSpace.load(run.path, run.manifest["dataset"]["class_names"])
    latent_info = _latent_summary(run, latent, config.seed)
    methods = map_latent_space(run, latent, config.maps, base_key=extract_key, progress=progress)
    seconds = time.perf_counter() - started
    run.update(total_seconds=round(seconds, 3))
    return RunSummary(
        run.path,
        len(latent.features),
        int(latent.features.shape[1]),
        run.manifest.get("training"),
        methods,
        latent_info,
        seconds,
    )


def _train_and_extract(
    run: Run,
    config: RunConfig,
    data_dir: str | None,
    train_key: Any,
    extract_key: Any,
    progress: bool,
) -> None:
    from latent_atlas.activations import extract_activations
    from latent_atlas.datasets import load_dataset
    from latent_atlas.models import build_model, load_checkpoint, save_checkpoint
    from latent_atlas.training import TrainConfig, train_model

    t0 = time.perf_counter()
    log.info("loading %s", config.dataset)
    dataset = load_dataset(config.dataset, data_dir, progress=progress).subset(
        config.limit, config.seed
    )
    run.update(
        dataset={
            "name": dataset.name,
            "source": dataset.source,
            "n_train": len(dataset.x_train),
            "n_test": len(dataset.x_test),
            "image_shape": list(dataset.image_shape),
            "class_names": dataset.class_names,
            "info": dataset.info,
        }
    )
    log.info("%r loaded in %.1f s", dataset, time.perf_counter() - t0)
    if len(dataset.x_test) < 2:
        raise ConfigError(f"{dataset.name}: the test split needs at least 2 images to map")

    if run.is_done("train", train_key):
        model, _ = load_checkpoint(run.file("model.pt"))
    else:
        model = build_model(
            config.model, dataset.image_shape, dataset.num_classes, seed=config.seed
        )
        train_cfg = TrainConfig(
            epochs=config.epochs,
            batch_size=config.batch_size,
            validation=config.validation,
            seed=config.seed,
            threads=config.threads,
        )
        log.info("training %s on %d images", config.model, len(dataset.x_train))
        result = train_model(model, dataset, train_cfg, progress=progress)
        save_checkpoint(
            run.file("model.pt"), model, config.model, extra={"class_names": dataset.class_names}
        )
        run.update(training=result.to_dict())
        run.finish(
            "train",
            train_key,
            ["model.pt"],
            result.seconds,
            test_accuracy=result.test_accuracy,
            test_loss=result.test_loss,
        )

    acts = extract_activations(
        model,
        dataset.x_test,
        config.layer,
        pool=config.pool,
        threads=config.threads,
        progress=progress,
    )
    latent = LatentSpace(
        acts.features,
        dataset.y_test,
        dataset.class_names,
        images=dataset.x_test,
        probabilities=acts.probabilities,
    )
    outputs = latent.save(run.path)
    run.finish(
        "extract",
        extract_key,
        outputs,
        acts.seconds,
        layer=config.layer,
        n_features=int(acts.features.shape[1]),
        images_per_second=len(dataset.x_test) / max(acts.seconds, 1e-9),
    )


# -- project: maps for features the user already has -----------------------------------------------


def project_features(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    out: str | Path,
    images: np.ndarray | None = None,
    class_names: list[str] | None = None,
    probabilities: np.ndarray | None = None,
    maps: MapConfig | None = None,
    progress: bool = True,
) -> RunSummary:
    """Projections, plots, atlases and a run directory for features computed elsewhere."""
    maps = maps or MapConfig()
    maps.check()
    started = time.perf_counter()
    labels_arr = np.asarray(labels)
    if class_names is None:
        k = int(labels_arr.max()) + 1 if labels_arr.size and labels_arr.dtype.kind in "iu" else 0
        class_names = [str(i) for i in range(k)]
    latent = LatentSpace(
        features, labels_arr, list(class_names), images=images, probabilities=probabilities
    )
    run = Run(out)
    base_key = {
        "features": _digest(latent.features),
        "labels": _digest(latent.labels),
        "images": None if latent.images is None else _digest(latent.images),
    }
    run.update(
        command="project",
        config={"maps": asdict(maps)},
        seed=maps.seed,
        dataset={
            "name": "features",
            "class_names": latent.class_names,
            "n_test": len(latent.labels),
        },
    )
    if not run.is_done("extract", base_key):
        outputs = latent.save(run.path)
        run.finish("extract", base_key, outputs, 0.0, n_features=int(latent.features.shape[1]))
    latent_info = _latent_summary(run, latent, maps.seed)
    methods = map_latent_space(run, latent, maps, base_key=base_key, progress=progress)
    seconds = time.perf_counter() - started
    run.update(total_seconds=round(seconds, 3))
    return RunSummary(
        run.path,
        len(latent.features),
        int(latent.features.shape[1]),
        None,
        methods,
        latent_info,
        seconds,
    )


def _digest(array: np.ndarray) -> str:
    h = hashlib.sha256(str((array.dtype.str, array.shape)).encode())
    h.update(np.ascontiguousarray(array).data)
    return h.hexdigest()[:16]
