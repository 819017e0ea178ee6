"""The model stage of ``latent-atlas run``: data, a model, and the latent space it makes.

:func:`load_data` reads the data set (and records it in the run); :func:`prepare_model`
trains the registry model (or reuses the run's finished ``model.pt``) or loads the model the
user brings — either way the result is one :class:`~latent_atlas.backends.LoadedModel`;
:func:`extract_layers_of` runs it over the shown split (streaming the features to disk above
``STREAM_ABOVE`` images, or in shards on Dask), every layer in one pass; :mod:`latent_atlas.sweep`
makes the run's latent spaces of it. Every backend takes the same path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from latent_atlas.config import RunConfig
from latent_atlas.errors import ConfigError
from latent_atlas.keys import changed
from latent_atlas.preprocess import Preprocess
from latent_atlas.recipes import TrainingConfig
from latent_atlas.runs import RunDir

log = logging.getLogger("latent_atlas")

STREAM_ABOVE = 100_000  # images: above this many, extracted features stream to disk


@dataclass
class PreparedModel:
    """A model ready to extract, with what its activations depend on."""

    model: Any  # LoadedModel
    preprocess: Preprocess  # resolved for the run's images
    info: dict[str, Any] | None  # a model that was loaded, not trained: its description


def data_key(config: RunConfig) -> dict[str, Any]:
    """What the images of a run depend on."""
    data_dir = str(Path(config.data_dir).expanduser().resolve()) if config.data_dir else None
    return {
        "dataset": config.dataset,
        "data_dir": data_dir,
        "limit": config.limit,
        "seed": config.seed,
    }


def load_data(run: RunDir, config: RunConfig, *, progress: bool = True) -> Any:
    """The run's data set (``--limit`` applied, seeded), recorded in the run's manifest."""
    from latent_atlas.datasets import load_dataset

    t0 = time.perf_counter()
    log.info("loading %s", config.dataset)
    key = data_key(config)
    dataset = load_dataset(config.dataset, key["data_dir"], progress=progress).subset(
        config.limit, config.seed
    )
    run.set(
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
    if len(dataset.split(config.maps.show)[0]) < 2:
        raise ConfigError(
            f"{dataset.name}: the {config.maps.show} split needs at least 2 images to map"
        )
    return dataset


def prepare_model(
    run: RunDir,
    config: RunConfig,
    dataset: Any,
    *,
    progress: bool = True,
    layers: Sequence[str] | None = None,
    on_epoch: Any = None,
) -> PreparedModel:
    """Train the registry model, or load the user's; either way, a LoadedModel.

    ``layers`` (default: ``config.layer``) are checked before any training or extraction.
    ``on_epoch(epoch, module)`` (snapshots during training) trains again even when the run's
    ``model.pt`` is finished: the same seed gives the same model.
    """
    layers = [config.layer] if layers is None else list(layers)
    if config.external_model:
        return _load_external(run, config, dataset, layers)
    return _train_here(run, config, dataset, progress, layers, on_epoch)


def new_model(config: RunConfig, dataset: Any) -> Any:
    """The registry model ``config`` trains, untrained (seeded)."""
    from latent_atlas.models import build_model

    return build_model(config.model, dataset.image_shape, dataset.num_classes, seed=config.seed)


def _train_here(
    run: RunDir,
    config: RunConfig,
    dataset: Any,
    progress: bool,
    layers: list[str],
    on_epoch: Any,
) -> PreparedModel:
    """Train the registry model (or reuse the run's ``model.pt``) and wrap it."""
    from latent_atlas.activations import check_layer
    from latent_atlas.backends.torch_module import TorchModuleModel
    from latent_atlas.models import load_checkpoint, save_checkpoint
    from latent_atlas.training import train_model

    key = model_key(config)
    if run.steps.is_done("model", key) and on_epoch is None:
        module, _ = load_checkpoint(run.file("model.pt"))
    else:
        module = new_model(config, dataset)
        for layer in layers:
            check_layer(module, layer)  # before training, not after
        log.info("training %s on %d images", config.model, len(dataset.x_train))
        result = train_model(
            module,
            dataset,
            config.training,
            seed=config.seed,
            threads=config.threads,
            progress=progress,
            on_epoch=on_epoch,
        )
        extra = {"class_names": dataset.class_names}
        save_checkpoint(run.file("model.pt"), module, config.model, extra=extra)
        run.set(training=result.to_dict())
        run.steps.finish(
            "model",
            key,
            ["model.pt"],
            result.seconds,
            test_accuracy=result.test_accuracy,
            test_loss=result.test_loss,
        )
    model = TorchModuleModel(
        spec=config.model,
        input_shape=tuple(dataset.image_shape),
        details={
            "source": "trained here",
            "name": config.model,
            "class_names": list(dataset.class_names),
        },
        module=module,
        fold=True,  # BatchNorm folded, channels-last: about twice as fast
    )
    pre = Preprocess().resolve(dataset.image_shape)  # pixels scaled to [0, 1]
    run.set(preprocess=pre.to_dict(), model=None)  # (model: left by an earlier run)
    return PreparedModel(model, pre, None)


def _load_external(
    run: RunDir, config: RunConfig, dataset: Any, layers: list[str]
) -> PreparedModel:
    """Load the user's model (no training) and say how images are prepared for it."""
    model = load_external(config)
    for layer in layers:
        model.check_layer(layer)  # before any image runs through it
    if config.fold_batchnorm and not model.can_fold:
        log.info("--fold-batchnorm: %s models run as they are", model.kind)
    model.fold = config.fold_batchnorm and model.can_fold
    pre = model.resolve_preprocess(config.preprocess, dataset.image_shape)
    info = {**model.describe(), "checkpoint": config.checkpoint, "trained": False}
    run.set(preprocess=pre.to_dict(), model=info, training=None)
    run.steps.drop("model")
    log.info("using %s (%s) as it is, no training", config.model, model.kind)
    log.info("preprocessing: %s", pre.describe())
    return PreparedModel(model, pre, info)


def load_external(config: RunConfig) -> Any:
    """The model the user brings, loaded (a LoadedModel)."""
    from latent_atlas.backends import load_model

    return load_model(config.model, checkpoint=config.checkpoint, model_args=config.model_args)


def model_key(config: RunConfig) -> dict[str, Any]:
    """What a model's activations depend on, known before it is trained or loaded."""
    if not config.external_model:
        training = changed(config.training.to_dict(), TrainingConfig().to_dict())
        return {**data_key(config), "model": config.model, "training": training}
    files = {
        name: Path(value).expanduser()  # hashed by content
        for name, value in (("model", config.model), ("checkpoint", config.checkpoint))
        if value and Path(value).expanduser().is_file()
    }
    source = _factory_source(config.model) if ":" in config.model else None
    if source is not None:
        files["code"] = source  # the factory's module: edited code extracts again
    return {
        "spec": config.model,
        "files": files,
        "model_args": config.model_args,
        "preprocess": config.preprocess.to_dict(),
        "fold_batchnorm": config.fold_batchnorm,
    }


def _factory_source(spec: str) -> Path | None:
    """The file of a ``package.module:factory``'s module, found without importing it."""
    import importlib.util

    try:
        found = importlib.util.find_spec(spec.partition(":")[0])
    except (ImportError, ValueError):
        return None
    origin = getattr(found, "origin", None)
    return Path(origin) if origin and Path(origin).is_file() else None


def features_key(
    config: RunConfig, layer: str | None = None, epoch: int | None = None
) -> dict[str, Any]:
    """What the features of a run's latent space depend on: ``layer`` (default
    ``config.layer``) of the trained model, or of its snapshot at ``epoch``."""
    maps = config.maps
    key = {
        **data_key(config),
        "model": model_key(config),
        "layer": config.layer if layer is None else layer,
        "pool": config.pool,
        "show": maps.show,
        "fit_on": maps.fit_on if maps.transform_needed else None,
    }
    if epoch is not None:
        key["epoch"] = epoch
    return key


def extract_layers_of(
    prepared: PreparedModel,
    config: RunConfig,
    images: Any,
    layers: Sequence[str],
    progress: bool,
    client: Any,
    features_out: dict[str, Path],
) -> dict[str, Any]:
    """One pass of the model over ``images`` for every one of ``layers``: here, or in shards on
    the Dask cluster; a layer in ``features_out`` streams into that file."""
    options = {"pool": config.pool, "preprocess": prepared.preprocess, "features_out": features_out}
    if client is not None:
        from latent_atlas import distributed

        return distributed.extract_layers(client, prepared.model, images, layers, **options)
    return prepared.model.extract_layers(
        images, layers, threads=config.threads, progress=progress, **options
    )


def predictions_for(
    probabilities: np.ndarray | None, prepared: PreparedModel, class_names: list[str]
) -> tuple[np.ndarray | None, str]:
    """Keep a model's predictions only when its outputs can be the data set's classes."""
    if probabilities is None:
        return None, "none: the model's output is not one score per class"
    if prepared.info is None:  # trained here, on these classes
        return probabilities, "recorded"
    k, c = probabilities.shape[1], len(class_names)
    if k != c:
        return None, f"none: the model has {k} outputs, the data set {c} classes"
    own = prepared.info.get("class_names")
    if own is not None and list(own) != list(class_names):
        return None, "none: the model was trained on other classes than the data set's"
    return probabilities, f"recorded ({k} outputs taken in the data set's class order)"
