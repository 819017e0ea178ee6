"""Every latent space ``latent-atlas run`` maps: the frames of a sweep.

The layers of the model (``--layers``: names, ``all`` for every layer, ``pixels`` for the input
images themselves) are extracted in one pass over the images; ``--snapshots`` keeps the chosen
layers' activations of the same images at chosen epochs while the model trains (epoch 0 is the
untrained network), without a second training run. Each frame is one latent space of the run:
a layer of the trained model is called after the layer (``dense``), a snapshot
``<layer>-epoch<e>`` (``dense-epoch5``). Finished frames are read back; the model is trained
(again, deterministically) only when a snapshot is missing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from latent_atlas.config import ALL_LAYERS, BEST, PIXELS, RunConfig
from latent_atlas.errors import ConfigError
from latent_atlas.fileio import load_npy
from latent_atlas.keys import fingerprint
from latent_atlas.latent import LatentSpace
from latent_atlas.runs import RunDir, SpaceDir, space_name

log = logging.getLogger("latent_atlas")


@dataclass
class Frame:
    """One latent space of a sweep and where it sits: its layer, its epoch (a snapshot's,
    ``"best"`` for the trained model in an epoch sweep, None without one) or its model."""

    space: SpaceDir
    latent: LatentSpace
    layer: str
    epoch: int | str | None = None
    model: str | None = None

    @property
    def name(self) -> str:
        return self.space.name

    @property
    def label(self) -> str:
        """How pictures and tables call the frame: ``dense``, ``dense · epoch 5``, ``dense · best``
        (the trained model in an epoch sweep), ``A · dense`` (a model of ``compare-runs``)."""
        parts = [self.model] if self.model else []
        parts.append(self.layer)
        if self.epoch == BEST and self.layer != PIXELS:
            parts.append("best")
        elif isinstance(self.epoch, int):
            parts.append(f"epoch {self.epoch}")
        return " · ".join(parts)


def snapshot_name(layer: str, epoch: int) -> str:
    """The space name of ``layer``'s snapshot at ``epoch``."""
    return space_name(f"{layer}-epoch{epoch}")


def resolve_layers(names: tuple[str, ...], sweep: Callable[[], list[str]]) -> list[str]:
    """``names`` with ``all`` replaced by the model's layers (``sweep()``), repeats dropped."""
    out: list[str] = []
    for name in names:
        out += sweep() if name == ALL_LAYERS else [name]
    if not out:
        raise ConfigError("no layers given")
    return list(dict.fromkeys(out))


@dataclass
class _Want:
    """A frame the run maps: made now, or read back."""

    layer: str
    epoch: int | None
    space: SpaceDir | None = None
    key: str = ""
    latent: LatentSpace | None = None

    @property
    def name(self) -> str:
        return (
            space_name(self.layer) if self.epoch is None else snapshot_name(self.layer, self.epoch)
        )


def frames_of(
    run: RunDir, config: RunConfig, *, progress: bool = True, client: Any = None
) -> list[Frame]:
    """The run's frames: each layer of the trained (or loaded) model, then each snapshot."""
    from latent_atlas.extraction import features_key

    layers = resolve_layers(config.frame_layers, lambda: _sweep_layers(run, config))
    wants = [_Want(layer, None) for layer in layers]
    if config.snapshots:
        chosen = resolve_layers(
            config.snapshot_layers or tuple(layers), lambda: _sweep_layers(run, config)
        )
        epochs = [e for e in config.snapshots if e != BEST]
        wants += [_Want(layer, e) for e in epochs for layer in chosen if layer != PIXELS]
    run.keep_spaces([w.name for w in wants])
    for w in wants:
        source = {
            "layer": w.layer,
            "pool": config.pool,
            "model": config.model,
            "split": config.maps.show,
        }
        if w.epoch is not None:
            source["epoch"] = w.epoch
        w.space = run.add_space(w.name, source=source)
        key = (
            {"pixels": _pixels_key(config)}
            if w.layer == PIXELS
            else features_key(config, w.layer, w.epoch)
        )
        w.key = fingerprint(key)
    missing = [w for w in wants if not w.space.steps.is_done("features", w.key)]
    if missing:
        _make(run, config, missing, progress, client)
    made = [w for w in wants if w.latent is not None or w.space.steps.is_done("features", w.key)]
    if len(made) < len(wants):
        run.keep_spaces([w.name for w in made])
    final_epoch = BEST if config.snapshots else None
    return [
        Frame(
            w.space,
            w.latent or w.space.load_latent(),
            w.layer,
            final_epoch if w.epoch is None else w.epoch,
        )
        for w in made
    ]


def _pixels_key(config: RunConfig) -> dict[str, Any]:
    from latent_atlas.extraction import data_key

    return {**data_key(config), "show": config.maps.show}


def _sweep_layers(run: RunDir, config: RunConfig) -> list[str]:
    """``--layers all``: the layers of the model the run trains or loads."""
    if config.external_model:
        from latent_atlas.extraction import load_external

        return load_external(config).sweep_layers()
    from latent_atlas.backends.torch_module import sweep_modules
    from latent_atlas.models import build_model

    shape, classes = run.dataset.get("image_shape"), run.class_names
    if not shape or not classes:  # (the layers do not depend on the data's size)
        shape, classes = (32, 32, 3), ["a", "b"]
    return sweep_modules(build_model(config.model, tuple(shape), len(classes), seed=config.seed))


@dataclass
class _Shared:
    """The shown images and labels, saved once and hard-linked into every other frame."""

    images: Any
    labels: np.ndarray
    class_names: list[str]
    saved: bool = False

    def latent(self, features: np.ndarray, probabilities: np.ndarray | None) -> LatentSpace:
        return LatentSpace(
            features, self.labels, self.class_names, images=self.images, probabilities=probabilities
        )

    def save(self, w: _Want, latent: LatentSpace, seconds: float, **info: Any) -> None:
        assert w.space is not None
        outputs = latent.save(w.space.path)
        if not self.saved and "images.npy" in outputs:
            self.images = load_npy(w.space.file("images.npy"), mmap=True)
            self.saved = True
        w.space.steps.finish(
            "features",
            w.key,
            outputs,
            seconds,
            layer=w.layer,
            epoch=w.epoch,
            n_features=int(latent.features.shape[1]),
            **info,
        )
        w.latent = latent


def _make(
    run: RunDir, config: RunConfig, missing: list[_Want], progress: bool, client: Any
) -> None:
    """Make the missing frames: train (with snapshots) or load the model, extract in one pass."""
    from latent_atlas.extraction import load_data, prepare_model

    dataset = load_data(run, config, progress=progress)
    shown_x, shown_y = dataset.split(config.maps.show)
    shared = _Shared(shown_x, shown_y, list(dataset.class_names))
    snaps = [w for w in missing if w.epoch is not None]
    final = [w for w in missing if w.epoch is None]
    model_layers = [w.layer for w in missing if w.layer != PIXELS]
    if model_layers:
        hook = _SnapshotHook(config, shared, snaps, progress) if snaps else None
        prepared = prepare_model(
            run,
            config,
            dataset,
            progress=progress,
            layers=list(dict.fromkeys(model_layers)),
            on_epoch=hook,
        )
        if hook is not None:
            hook.report(run)
        _extract_final(
            prepared,
            config,
            dataset,
            shared,
            [w for w in final if w.layer != PIXELS],
            progress,
            client,
        )
    for w in final:
        if w.layer == PIXELS:
            pixels = np.asarray(shown_x, dtype=np.float32).reshape(len(shown_x), -1) / 255.0
            shared.save(w, shared.latent(pixels.astype(np.float32), None), 0.0)


def _extract_final(
    prepared: Any,
    config: RunConfig,
    dataset: Any,
    shared: _Shared,
    wants: list[_Want],
    progress: bool,
    client: Any,
) -> None:
    """The trained (or loaded) model's layers: one pass over the shown images."""
    from latent_atlas.extraction import STREAM_ABOVE, extract_layers_of, predictions_for

    if not wants:
        return
    layers = list(dict.fromkeys(w.layer for w in wants))
    big = len(shared.images) > STREAM_ABOVE
    streams = {w.layer: w.space.file("activations.npy") for w in wants if big and w.space}
    acts = extract_layers_of(prepared, config, shared.images, layers, progress, client, streams)
    fit = None
    if config.maps.transform_needed:
        fit_x = dataset.split(config.maps.fit_on)[0]
        fit = extract_layers_of(prepared, config, fit_x, layers, progress, client, {})
    first = acts[layers[0]]
    probabilities, note = predictions_for(first.probabilities, prepared, dataset.class_names)
    if prepared.info is not None:
        prepared.info["predictions"] = note
        wants[0].space.run.set(model=prepared.info)
        log.info("predictions: %s", note)
    for w in wants:
        latent = shared.latent(acts[w.layer].features, probabilities)
        latent.fit_features = None if fit is None else fit[w.layer].features
        n = len(latent.features)
        shared.save(
            w,
            latent,
            first.seconds,
            split=config.maps.show,
            images_per_second=n / max(first.seconds, 1e-9),
        )


@dataclass
class _SnapshotHook:
    """``train_model``'s ``on_epoch``: the chosen layers of the shown images at each epoch."""

    config: RunConfig
    shared: _Shared
    wants: list[_Want]
    progress: bool
    seconds: dict[int, float] = field(default_factory=dict)

    def __call__(self, epoch: int, module: Any) -> None:
        from latent_atlas.backends.torch_module import TorchModuleModel
        from latent_atlas.extraction import STREAM_ABOVE

        todo = [w for w in self.wants if w.epoch == epoch]
        if not todo:
            return
        model = TorchModuleModel(spec=self.config.model, module=module, fold=True)
        big = len(self.shared.images) > STREAM_ABOVE
        streams = {w.layer: w.space.file("activations.npy") for w in todo if big and w.space}
        acts = model.extract_layers(
            self.shared.images,
            [w.layer for w in todo],
            pool=self.config.pool,
            threads=self.config.threads,
            progress=self.progress,
            features_out=streams,
        )
        for w in todo:
            a = acts[w.layer]
            self.shared.save(w, self.shared.latent(a.features, a.probabilities), a.seconds)
        self.seconds[epoch] = acts[todo[0].layer].seconds
        log.info(
            "snapshot of epoch %d: %d layer(s) in %.1f s", epoch, len(todo), self.seconds[epoch]
        )

    def report(self, run: RunDir) -> None:
        """Record the snapshots' cost; say which epochs training never reached."""
        never = sorted({w.epoch for w in self.wants if w.latent is None}, key=int)
        if never:
            log.warning(
                "training stopped early at epoch %s: no snapshot of epoch %s",
                (run.training or {}).get("epochs_run", "?"),
                ", ".join(map(str, never)),
            )
        run.set(
            snapshots={
                "epochs": sorted(self.seconds),
                "seconds": self.seconds,
                "never_reached": never,
            }
        )
