"""Bring your own model: PyTorch, TorchScript, ONNX or Keras, any layer.

:func:`load_model` reads a ``--model`` (a file or ``package.module:factory``) into a
:class:`LoadedModel`, which lists its layers and extracts any of them over uint8 images with
the same :class:`~latent_atlas.activations.Activations` result as the article's own CNN. The
backends are imported when a model of their kind is loaded: ``torch_module`` (PyTorch modules
with forward hooks: latent-atlas checkpoints, factories with a state dict), ``torchscript``
(TorchScript archives), ``onnx_model`` (ONNX Runtime, extra ``onnx``), ``keras_model``
(Keras 3, extra ``keras``).

Loading a model runs it, and TorchScript files and factories are code: load only models you
trust. Weights files (checkpoints, state dicts) are read with ``weights_only=True``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from latent_atlas.backends.base import (
    SPEC_KINDS,
    LayerInfo,
    LoadedModel,
    check_spec,
    classify_spec,
    format_layers,
)
from latent_atlas.errors import ConfigError

InputShape = tuple[int | None, int | None, int | None]


def load_model(
    spec: str,
    *,
    checkpoint: str | Path | None = None,
    input_shape: InputShape | None = None,
    model_args: Mapping[str, Any] | None = None,
) -> LoadedModel:
    """Load ``spec`` as a :class:`LoadedModel`.

    ``spec`` is one of: a ``.onnx`` file; a ``.keras`` file; a TorchScript archive or a
    checkpoint saved by :func:`latent_atlas.models.save_checkpoint` (any other file name,
    usually ``.pt``); ``package.module:factory``, called with ``model_args`` and given the
    weights of the state dict in ``checkpoint``; or a registry name such as ``article-cnn`` (its
    initial, untrained weights: for listing layers). ``input_shape`` (H, W, C) is the image
    size the model takes, where the file does not say (needed for the output shapes of
    :meth:`LoadedModel.layers`).
    """
    kind = check_spec(spec, None if checkpoint is None else str(checkpoint), dict(model_args or {}))
    path = Path(spec).expanduser()
    if kind == "onnx":
        from latent_atlas.backends.onnx_model import load_onnx

        return load_onnx(path, input_shape)
    if kind == "keras":
        from latent_atlas.backends.keras_model import load_keras

        return load_keras(path, input_shape)
    if kind == "factory":
        from latent_atlas.backends.torch_module import load_factory_model

        return load_factory_model(spec, checkpoint, model_args, input_shape)
    if kind == "name":
        from latent_atlas.backends.torch_module import load_registry_model
        from latent_atlas.models import MODELS, resolve_model_name

        name = resolve_model_name(spec)  # an earlier name (seed-cnn), with a warning
        if name not in MODELS:
            raise ConfigError(
                f"unknown model {spec!r}: not a file, not package.module:factory, and not one "
                f"of {', '.join(MODELS)}"
            )
        return load_registry_model(name, input_shape)
    from latent_atlas.backends.torchscript import is_torchscript, load_torchscript

    if is_torchscript(path):
        return load_torchscript(path, input_shape)
    from latent_atlas.backends.torch_module import load_checkpoint_model

    model = load_checkpoint_model(path)
    if input_shape is not None and None not in input_shape:
        model.input_shape = input_shape
    return model


__all__ = [
    "SPEC_KINDS",
    "InputShape",
    "LayerInfo",
    "LoadedModel",
    "check_spec",
    "classify_spec",
    "format_layers",
    "load_model",
]
