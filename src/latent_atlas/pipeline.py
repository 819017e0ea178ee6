"""The seed pipeline as library calls: ``run_pipeline`` (train → extract → maps) and
``project_features`` (maps for features a user already has).

Each step records a key of its inputs in the run manifest and is skipped when repeated with
the same key (see :mod:`latent_atlas.runs`); the map stage itself lives in
:mod:`latent_atlas.maps`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from latent_atlas.config import DEFAULT_METHODS, AtlasConfig, MapConfig, RunConfig
from latent_atlas.errors import ConfigError
from latent_atlas.latent import LatentSpace
from latent_atlas.maps import atlas_for_run, digest, map_latent_space
from latent_atlas.preprocess import Preprocess
from latent_atlas.runs import Run, fingerprint
from latent_atlas.sampling import seeded_sample

log = logging.getLogger("latent_atlas")

STREAM_ABOVE = 100_000  # images: above this many, extracted features stream to disk

__all__ = [
    "DEFAULT_METHODS",
    "AtlasConfig",
    "MapConfig",
    "RunConfig",
    "RunSummary",
    "atlas_for_run",
    "default_run_dir",
    "project_features",
    "run_pipeline",
]


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
    model: dict[str, Any] | None = None  # a model that was loaded, not trained

    def format(self) -> str:
        lines = [f"run directory: {self.path}"]
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
        knn = self.latent.get("knn_accuracy", float("nan"))
        lines.append(
            f"{self.n_samples} samples × {self.n_features} features "
            f"({self.latent.get('active_units', '?')} ever active); "
            f"5-NN accuracy in the latent space {knn:.4f}"
        )
        cols = [
            ("trust", "trustworthiness"),
            ("contin.", "continuity"),
            ("5-NN acc", "knn_accuracy_2d"),
            ("NN kept", "neighbourhood_preservation"),
            ("triplets", "triplet_accuracy"),
        ]
        header = f"{'method':<14}{'seconds':>9}" + "".join(f"{c:>10}" for c, _ in cols)
        lines += [header, "-" * len(header)]
        for name, m in self.methods.items():
            s = m.get("scores", {})
            lines.append(
                f"{name:<14}{m['seconds']:>9.2f}"
                + "".join(f"{s.get(key, float('nan')):>10.4f}" for _, key in cols)
            )
        lines.append(f"total {self.seconds:.1f} s")
        return "\n".join(lines)


def _latent_summary(run: Run, latent: LatentSpace, seed: int) -> dict[str, Any]:
    from latent_atlas.metrics import MAX_SAMPLES, knn_accuracy

    n = len(latent.features)
    sample = seeded_sample(n, MAX_SAMPLES, seed)
    summary = {
        "n_samples": n,
        "n_features": int(latent.features.shape[1]),
        "knn_accuracy": knn_accuracy(latent.features[sample], latent.labels[sample], k=5),
        "knn_sample": len(sample),
        "active_units": int(np.count_nonzero(np.any(latent.features != 0, axis=0))),
    }
    run.update(latent=summary)
    return summary


# -- run: train, extract, map -------------------------------------------------------------------


def default_run_dir(config: RunConfig) -> Path:
    """``runs/<dataset>-<hash of the config>``: the same arguments give the same directory."""
    d = config.to_dict()
    # options added after the seed pipeline count only when set, so its directories stay put
    for key, unset in (
        ("checkpoint", None),
        ("model_args", {}),
        ("preprocess", _SEED_PRE),
        ("augment", False),
        ("lr_schedule", "constant"),
    ):
        if d.get(key) == unset:
            d.pop(key, None)
    return Path("runs") / f"{config.dataset}-{fingerprint(d)[:8]}"


_SEED_PRE = Preprocess().to_dict()


def run_pipeline(
    config: RunConfig | None = None,
    out: str | Path | None = None,
    *,
    progress: bool = True,
    dask: str | None = None,
) -> RunSummary:
    """Train the model, extract the layer's activations and map them.

    ``dask`` (a scheduler address, or ``"local"`` for a 2-worker cluster on 127.0.0.1) runs the
    extraction over image shards and the large-data ``transform`` over chunks on Dask.
    """
    config = config or RunConfig()
    config.check()
    with dask_session(dask) as client:
        return _run(config, out, progress, client)


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


def _run(config: RunConfig, out: str | Path | None, progress: bool, client: Any) -> RunSummary:
    started = time.perf_counter()
    run = Run(out if out is not None else default_run_dir(config))
    run.update(command="run", config=config.to_dict(), seed=config.seed)
    data_dir = str(Path(config.data_dir).expanduser().resolve()) if config.data_dir else None
    maps = config.maps
    data_key = {
        "dataset": config.dataset,
        "data_dir": data_dir,
        "limit": config.limit,
        "seed": config.seed,
    }
    if config.external_model:  # nothing to train: the model's files key the extraction
        train_key = {**data_key, "model": _external_model_key(config)}
    else:
        train_key = {
            **data_key,
            "model": config.model,
            "epochs": config.epochs,
            "batch_size": config.batch_size,
            "validation": config.validation,
        }
        if config.augment or config.lr_schedule != "constant":  # (old keys stay valid)
            train_key.update(augment=config.augment, lr_schedule=config.lr_schedule)
    extract_key = {
        **train_key,
        "layer": config.layer,
        "pool": config.pool,
        "show": maps.show,
        "fit_on": maps.fit_on if maps.transform_needed else None,
    }

    if not run.is_done("extract", extract_key):
        _train_and_extract(run, config, data_dir, train_key, extract_key, progress, client)
    latent = LatentSpace.load(run.path, run.manifest["dataset"]["class_names"])
    return _map_and_summarise(run, latent, maps, extract_key, started, client)


def _external_model_key(config: RunConfig) -> dict[str, Any]:
    """What a loaded model's activations depend on: its files' contents and the options."""
    files = {}
    for name, value in (("model", config.model), ("checkpoint", config.checkpoint)):
        path = Path(value).expanduser() if value else None
        if path is not None and path.is_file():
            files[name] = _file_digest(path)
    return {
        "spec": config.model,
        "files": files,
        "model_args": config.model_args,
        "preprocess": config.preprocess.to_dict(),
    }


def _file_digest(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _train_and_extract(
    run: Run,
    config: RunConfig,
    data_dir: str | None,
    train_key: Any,
    extract_key: Any,
    progress: bool,
    client: Any = None,
) -> None:
    from latent_atlas.datasets import load_dataset

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
    maps = config.maps
    shown_x, shown_y = dataset.split(maps.show)
    if len(shown_x) < 2:
        raise ConfigError(f"{dataset.name}: the {maps.show} split needs at least 2 images to map")

    model_info: dict[str, Any] | None = None
    if config.external_model:
        extract, model_info = _load_external(run, config, dataset, progress)
    else:
        run.manifest.pop("model", None)  # left by an earlier run into this directory
        pre = Preprocess().resolve(dataset.image_shape)  # what the seed's to_tensor does
        run.update(preprocess=pre.to_dict())
        extract = _train_seed(run, config, dataset, train_key, progress, client)

    if len(shown_x) > STREAM_ABOVE and not config.external_model and client is None:
        # stream the features to disk batch by batch: memory stays flat however large N is
        acts = extract(shown_x, features_out=run.file("activations.npy"))
    else:
        acts = extract(shown_x)
    fit_features = None
    if maps.transform_needed:
        fit_features = extract(dataset.split(maps.fit_on)[0]).features
    probabilities = acts.probabilities
    if model_info is not None:  # a loaded model: are its outputs this data set's classes?
        probabilities, note = _predictions_for(probabilities, model_info, dataset.class_names)
        run.update(model={**model_info, "predictions": note})
        log.info("predictions: %s", note)
    latent = LatentSpace(
        acts.features,
        shown_y,
        dataset.class_names,
        images=shown_x,
        probabilities=probabilities,
        fit_features=fit_features,
    )
    outputs = latent.save(run.path)
    run.finish(
        "extract",
        extract_key,
        outputs,
        acts.seconds,
        layer=config.layer,
        split=maps.show,
        n_features=int(acts.features.shape[1]),
        images_per_second=len(shown_x) / max(acts.seconds, 1e-9),
    )


def _train_seed(
    run: Run, config: RunConfig, dataset: Any, train_key: Any, progress: bool, client: Any = None
) -> Callable[[np.ndarray], Any]:
    """Train the registry model (or reuse the run's model.pt); return its extractor."""
    from latent_atlas.activations import extract_activations
    from latent_atlas.models import build_model, load_checkpoint, save_checkpoint
    from latent_atlas.training import TrainConfig, train_model

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
            augment=config.augment,
            lr_schedule=config.lr_schedule,
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

    def extract(images: np.ndarray, features_out: Path | None = None) -> Any:
        if client is not None:
            from latent_atlas import distributed

            return distributed.extract(client, model, images, config.layer, pool=config.pool)
        return extract_activations(
            model,
            images,
            config.layer,
            pool=config.pool,
            threads=config.threads,
            progress=progress,
            features_out=features_out,
        )

    return extract


def _load_external(
    run: Run, config: RunConfig, dataset: Any, progress: bool
) -> tuple[Callable[[np.ndarray], Any], dict[str, Any]]:
    """Load the user's model (no training); return its extractor and its description."""
    from latent_atlas.backends import load_model

    model = load_model(config.model, checkpoint=config.checkpoint, model_args=config.model_args)
    model.check_layer(config.layer)  # before any image runs through it
    pre = model.resolve_preprocess(config.preprocess, dataset.image_shape)
    info = {**model.describe(), "checkpoint": config.checkpoint, "trained": False}
    run.update(preprocess=pre.to_dict(), model=info)
    run.manifest.pop("training", None)
    log.info("using %s (%s) as it is, no training", config.model, model.kind)
    log.info("preprocessing: %s", pre.describe())

    def extract(images: np.ndarray) -> Any:
        return model.extract(
            images,
            config.layer,
            pool=config.pool,
            preprocess=pre,
            threads=config.threads,
            progress=progress,
        )

    return extract, info


def _predictions_for(
    probabilities: np.ndarray | None, model: dict[str, Any], class_names: list[str]
) -> tuple[np.ndarray | None, str]:
    """Keep a loaded model's predictions only when its outputs can be the data set's classes."""
    if probabilities is None:
        return None, "none: the model's output is not one score per class"
    k, c = probabilities.shape[1], len(class_names)
    if k != c:
        return None, f"none: the model has {k} outputs, the data set {c} classes"
    own = model.get("class_names")
    if own is not None and list(own) != list(class_names):
        return None, "none: the model was trained on other classes than the data set's"
    return probabilities, f"recorded ({k} outputs taken in the data set's class order)"


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
    dask: str | None = None,
) -> RunSummary:
    """Projections, plots, atlases and a run directory for features computed elsewhere.

    ``dask`` runs the large-data ``transform`` chunks on a Dask cluster (see
    :func:`run_pipeline`).
    """
    maps = maps or MapConfig()
    if maps.transform_needed:
        raise ConfigError("project maps the features it is given: --fit-on/--show do not apply")
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
        "features": digest(latent.features),
        "labels": digest(latent.labels),
        "images": None if latent.images is None else digest(latent.images),
    }
    run.update(
        command="project",
        config={"maps": maps.to_dict()},
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
    with dask_session(dask) as client:
        return _map_and_summarise(run, latent, maps, base_key, started, client)


def _map_and_summarise(
    run: Run,
    latent: LatentSpace,
    maps: MapConfig,
    base_key: Any,
    started: float,
    client: Any = None,
) -> RunSummary:
    latent_info = _latent_summary(run, latent, maps.seed)
    mapper = None
    if client is not None:
        from latent_atlas.distributed import chunk_mapper

        mapper = chunk_mapper(client)
    methods = map_latent_space(run, latent, maps, base_key=base_key, map_chunks=mapper)
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
        run.manifest.get("model") if run.manifest.get("command") == "run" else None,
    )
