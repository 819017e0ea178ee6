"""Keras 3 models saved as ``.keras`` files (extra ``keras``).

Keras runs on the backend named by ``KERAS_BACKEND``; when it is not set, latent-atlas picks
``torch`` (already installed, no TensorFlow needed) before Keras is first imported. Files are
loaded with Keras' ``safe_mode``, which refuses to deserialise Python code (``Lambda``
layers). Every top-level layer is a layer (by its Keras name); its output comes from a second
model, ``keras.Model(model.inputs, [layer.output, model.outputs[0]])``. Keras takes images
N×H×W×C, so feature maps keep their channels last.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latent_atlas.backends.base import LayerInfo, LoadedModel
from latent_atlas.errors import ConfigError, LatentAtlasError, require


def import_keras() -> Any:
    """Keras, on the torch backend unless ``KERAS_BACKEND`` says otherwise."""
    if "keras" not in sys.modules:
        os.environ.setdefault("KERAS_BACKEND", "torch")
    return require("keras", "keras", "keras", "loading Keras models (.keras)")


@dataclass
class KerasModel(LoadedModel):
    """A loaded Keras model with one image input."""

    model: Any = None
    kind: str = "keras"
    layout: str = "nhwc"
    _extractors: dict[tuple[str, ...], Any] = field(default_factory=dict, repr=False)

    def layer_names(self) -> list[str]:
        return [layer.name for layer in self.model.layers]

    def layers(self) -> list[LayerInfo]:
        out = []
        for layer in self.model.layers:
            try:
                shape = tuple(layer.output.shape)[1:]
            except (AttributeError, ValueError):  # never called, or several outputs
                shape = None
            out.append(LayerInfo(layer.name, shape, type(layer).__name__))
        return out

    def _start(self, layers: tuple[str, ...], pool: str, threads: int | None) -> None:
        keras = import_keras()
        if keras.backend.backend() == "torch":
            from latent_atlas.threads import configure_threads

            configure_threads(threads)
        if layers not in self._extractors:
            outputs = []
            for layer in layers:
                try:
                    outputs.append(self.model.get_layer(layer).output)
                except (AttributeError, ValueError) as exc:
                    raise ConfigError(f"layer {layer!r} has no single output ({exc})") from None
            self._extractors[layers] = keras.Model(
                self.model.inputs, [*outputs, self.model.outputs[0]]
            )

    def _run(self, batch: np.ndarray, layers: tuple[str, ...]) -> tuple[list[np.ndarray], Any]:
        *values, out = self._extractors[layers]([batch], training=False)
        return [_numpy(v) for v in values], _numpy(out)


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor (the torch backend)
        value = value.detach().cpu().numpy()
    else:
        value = import_keras().ops.convert_to_numpy(value)
    return np.asarray(value, dtype=np.float32)


def load_keras(
    path: str | Path, input_shape: tuple[int | None, int | None, int | None] | None = None
) -> KerasModel:
    """Load a ``.keras`` file in safe mode."""
    keras = import_keras()
    try:
        model = keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except FileNotFoundError:
        raise LatentAtlasError(f"model file {path} does not exist") from None
    except Exception as exc:  # zip, JSON and deserialisation errors
        text = str(exc).strip().splitlines()
        raise LatentAtlasError(
            f"{path}: not a loadable Keras model ({text[0] if text else type(exc).__name__})"
        ) from None
    if len(model.inputs) != 1:
        raise ConfigError(
            f"the Keras model has {len(model.inputs)} inputs; latent-atlas feeds one image tensor"
        )
    dims = tuple(model.inputs[0].shape)
    declared = tuple(dims[1:4]) if len(dims) == 4 else None
    shape = declared
    if input_shape is not None:
        shape = tuple(
            given if given is not None else (declared[i] if declared else None)
            for i, given in enumerate(input_shape)
        )
    return KerasModel(
        spec=str(path),
        input_shape=shape,  # type: ignore[arg-type]
        details={"source": "Keras", "keras_backend": keras.backend.backend()},
        model=model,
    )
