"""The common interface of every model latent-atlas can load, and how a ``--model`` is read.

A :class:`LoadedModel` lists its layers (:meth:`LoadedModel.layers`, with output shapes) and
extracts one layer's activations over uint8 images (:meth:`LoadedModel.extract`), whatever
framework runs it. The backends fill in three methods: ``layer_names``, ``layers`` and
``_run`` (one batch → the layer's output and the model's output).

This module needs no torch, nor any optional backend.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from latent_atlas.activations import (
    EXTRACT_BATCH,
    Activations,
    as_probabilities,
    check_pool,
    pool_features,
    run_layers,
)
from latent_atlas.errors import ConfigError
from latent_atlas.fileio import as_array_like
from latent_atlas.preprocess import Preprocess

# what a --model can be, by classify_spec()
SPEC_KINDS = ("name", "factory", "torch", "onnx", "keras")
_FACTORY = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
# names listed in an "unknown layer" error before it refers to `latent-atlas layers`
_MAX_LISTED = 60


def classify_spec(spec: str) -> str:
    """What ``spec`` names: ``"onnx"`` or ``"keras"`` (by suffix), ``"torch"`` (any other
    file: a TorchScript archive or a latent-atlas checkpoint), ``"factory"``
    (``package.module:callable``) or ``"name"`` (a model of the registry, trained by ``run``).
    """
    path = Path(spec).expanduser()
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix in (".keras", ".h5", ".hdf5"):
        return "keras"
    if path.is_file():
        return "torch"
    if _FACTORY.fullmatch(spec):
        return "factory"
    if suffix or "/" in spec or os.sep in spec:
        return "torch"  # a file that is not there: said so when it is loaded
    return "name"


def check_spec(
    spec: str, checkpoint: str | None = None, model_args: dict[str, Any] | None = None
) -> str:
    """Refuse a ``--model`` that cannot load, without loading it; return its kind."""
    kind = classify_spec(spec)
    if kind in ("torch", "onnx", "keras") and not Path(spec).expanduser().is_file():
        raise ConfigError(f"model file {spec} does not exist")
    if kind == "keras" and Path(spec).suffix.lower() != ".keras":
        raise ConfigError(
            f"{spec}: legacy HDF5 Keras files are not loaded; save the model as .keras "
            "(model.save('model.keras')) and pass that"
        )
    if checkpoint is not None:
        if kind != "factory":
            raise ConfigError(
                "--checkpoint holds the weights for --model package.module:factory; "
                f"{spec} is a complete model"
            )
        if not Path(checkpoint).expanduser().is_file():
            raise ConfigError(f"checkpoint {checkpoint} does not exist")
    if model_args and kind != "factory":
        raise ConfigError("--model-args are the arguments of --model package.module:factory")
    return kind


@dataclass(frozen=True)
class LayerInfo:
    """One layer: its name (what ``--layer`` takes), output shape of one sample, and type."""

    name: str
    output_shape: tuple[int | None, ...] | None  # no batch axis; None: not known
    kind: str = ""

    def feature_size(self, pool: str, channel_axis: int = 1) -> int | None:
        """How many features ``pool`` makes of this layer's output (None when unknown)."""
        shape = self.output_shape
        if shape is None:
            return None
        if len(shape) <= 1 or pool == "flatten":
            return None if any(d is None for d in shape) else math.prod(shape)  # type: ignore[arg-type]
        return shape[channel_axis - 1 if channel_axis > 0 else channel_axis]


@dataclass
class LoadedModel:
    """A model of any framework, ready to list its layers and extract activations.

    ``input_shape`` is (height, width, channels) the model takes, None where any value goes
    (or where it cannot tell); ``layout`` the tensor layout it takes (``"nchw"``/``"nhwc"``).
    ``fold``: run a copy with BatchNorm folded into the convolution before it and
    channels-last tensors, where the backend can (``can_fold``: PyTorch modules; exporters to
    ONNX fold already, TorchScript and Keras run as they are).
    """

    spec: str
    kind: str = ""
    input_shape: tuple[int | None, int | None, int | None] | None = None
    layout: str = "nchw"
    details: dict[str, Any] = field(default_factory=dict)
    fold: bool = False
    can_fold: ClassVar[bool] = False

    # -- what the backends implement ------------------------------------------------------

    def layer_names(self) -> list[str]:
        """Every name ``--layer`` takes, in forward order."""
        raise NotImplementedError

    def layers(self) -> list[LayerInfo]:
        """Every layer with its output shape (shapes need a known input shape)."""
        raise NotImplementedError

    def sweep_layers(self) -> list[str]:
        """What ``--layers all`` maps: every layer, in forward order (modules: the layers a
        container such as ``nn.Sequential`` holds, not the container nor a layer's parts)."""
        return self.layer_names()

    def _start(self, layers: tuple[str, ...], pool: str, threads: int | None) -> None:
        """Prepare to extract ``layers`` in one pass (build a session, a graph, hooks)."""

    def _run(self, batch: np.ndarray, layers: tuple[str, ...]) -> tuple[list[np.ndarray], Any]:
        """One preprocessed batch → (each layer's output, in order; the model's output)."""
        raise NotImplementedError

    def _finish(self) -> None:
        """Undo what ``_start`` set up."""

    # -- shared -------------------------------------------------------------------------------

    @property
    def channel_axis(self) -> int:
        """Where feature maps keep their channels: 1 (N×C×H×W) or -1 (N×H×W×C)."""
        return 1 if self.layout == "nchw" else -1

    def check_layer(self, layer: str) -> str:
        """``layer`` when the model has it, else one error listing the valid names."""
        names = self.layer_names()
        if layer in names:
            return layer
        shown = ", ".join(names[:_MAX_LISTED])
        more = f" … ({len(names)} in all)" if len(names) > _MAX_LISTED else ""
        raise ConfigError(
            f"unknown layer {layer!r}; the model has: {shown}{more} "
            f"(see: latent-atlas layers {self.spec})"
        )

    def resolve_preprocess(
        self, preprocess: Preprocess | None, image_shape: tuple[int, ...]
    ) -> Preprocess:
        """The preprocessing these images get before this model, every option filled in."""
        return (preprocess or Preprocess()).resolve(
            image_shape, model_input=self.input_shape, layout=self.layout
        )

    def extract(
        self,
        images: np.ndarray,
        layer: str,
        *,
        pool: str = "avg",
        preprocess: Preprocess | None = None,
        batch_size: int = EXTRACT_BATCH,
        threads: int | None = None,
        progress: bool = True,
        features_out: str | Path | None = None,
    ) -> Activations:
        """Run the model over uint8 N×H×W×C ``images`` and capture ``layer``'s outputs.

        Feature maps are reduced by ``pool`` (see :func:`latent_atlas.activations.pool_features`).
        ``probabilities`` are the model's output as class probabilities when it is an N×K score
        vector, else None. With ``features_out`` the features stream into that ``.npy`` file
        batch by batch (see :func:`latent_atlas.activations.run_layers`).
        """
        outs = {layer: features_out} if features_out else None
        return self.extract_layers(
            images, [layer], pool=pool, preprocess=preprocess, batch_size=batch_size,
            threads=threads, progress=progress, features_out=outs,
        )[layer]  # fmt: skip

    def extract_layers(
        self,
        images: np.ndarray,
        layers: Sequence[str],
        *,
        pool: str = "avg",
        preprocess: Preprocess | None = None,
        batch_size: int = EXTRACT_BATCH,
        threads: int | None = None,
        progress: bool = True,
        features_out: Mapping[str, str | Path] | None = None,
    ) -> dict[str, Activations]:
        """:meth:`extract` for several layers in one pass over the images (each image runs
        through the model once); a layer named in ``features_out`` streams into that file."""
        check_pool(pool)
        wanted = tuple(dict.fromkeys(self.check_layer(layer) for layer in layers))
        if not wanted:
            raise ConfigError("no layers to extract")
        images = as_array_like(images)  # (lazy images are decoded batch by batch below)
        if len(images) == 0:
            raise ConfigError("no images to extract activations from")
        pre = self.resolve_preprocess(preprocess, images.shape[1:])

        def run_batch(batch: np.ndarray) -> tuple[list[np.ndarray], np.ndarray | None]:
            values, output = self._run(pre.apply(batch), wanted)
            pooled = [pool_features(v, pool, self.channel_axis) for v in values]
            return pooled, as_probabilities(output)

        self._start(wanted, pool, threads)
        try:
            return run_layers(
                images, run_batch, layers=wanted, pool=pool, batch_size=batch_size,
                progress=progress, features_out=features_out,
            )  # fmt: skip
        finally:
            self._finish()

    def portable(self) -> PortableModel:
        """This model as bytes that load again elsewhere (a Dask worker, say).

        The default sends the model's file; backends whose model lives in memory override it.
        """
        path = Path(self.spec).expanduser()
        if not path.is_file():
            raise ConfigError(f"{self.spec}: this model cannot be sent to other processes")
        return PortableModel(
            kind="file", data=path.read_bytes(), suffix=path.suffix, input_shape=self.input_shape
        )

    def describe(self) -> dict[str, Any]:
        """What the manifest records about the model."""
        return {
            "spec": self.spec,
            "kind": self.kind,
            "input_shape": None if self.input_shape is None else list(self.input_shape),
            "layout": self.layout,
            **self.details,
        }


def format_layers(model: LoadedModel) -> str:
    """The table ``latent-atlas layers`` prints: name, output shape, feature sizes, type."""
    rows = [("layer", "output", "avg/max", "flatten", "type")]
    for info in model.layers():
        shape = "?" if info.output_shape is None else _shape_text(info.output_shape)
        pooled = info.feature_size("avg", model.channel_axis)
        flat = info.feature_size("flatten", model.channel_axis)
        rows.append(
            (
                info.name,
                shape,
                "?" if pooled is None else str(pooled),
                "?" if flat is None else str(flat),
                info.kind,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        "  ".join(
            [r[0].ljust(widths[0]), r[1].ljust(widths[1]), r[2].rjust(widths[2]),
             r[3].rjust(widths[3]), r[4]]
        ).rstrip()
        for r in rows
    ]  # fmt: skip
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)


def _shape_text(shape: tuple[int | None, ...]) -> str:
    return "×".join("?" if d is None else str(d) for d in shape) or "scalar"


@dataclass(frozen=True)
class PortableModel:
    """A model as bytes (picklable), and how to load it again: :meth:`load`.

    ``kind`` is ``"file"`` (the bytes of a model file, loaded by its suffix; a module in memory
    travels as a latent-atlas checkpoint made of it) or ``"factory"`` (``spec`` with
    ``model_args``, the bytes its state dict). The receiving side needs latent-atlas, the
    model's framework and, for a factory, its package.
    """

    kind: str
    data: bytes
    suffix: str = ""
    spec: str = ""
    model_args: dict[str, Any] = field(default_factory=dict)
    input_shape: tuple[int | None, int | None, int | None] | None = None
    fold: bool = False  # a torch module: run it with BatchNorm folded, as it ran here

    def load(self) -> LoadedModel:
        from latent_atlas.backends import load_model

        with tempfile.TemporaryDirectory(prefix="latent-atlas-model-") as tmp:
            file = Path(tmp) / f"model{self.suffix or '.pt'}"
            file.write_bytes(self.data)
            if self.kind == "factory":
                model = load_model(
                    self.spec,
                    checkpoint=file,
                    model_args=self.model_args,
                    input_shape=self.input_shape,
                )
            else:
                model = load_model(str(file), input_shape=self.input_shape)
        model.fold = self.fold and model.can_fold
        return model
