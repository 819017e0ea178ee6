"""Image classifiers, found by name, and their checkpoints.

``article-cnn`` is the article's CIFAR-10 network, layer for layer: three blocks of
[Conv 3×3 'same' without bias → BatchNorm → ReLU → MaxPool 2×2] with 32, 64 and 128 filters,
Flatten, ``dense`` (Dense(128) with ReLU) and ``output`` (Dense(num_classes); softmax is applied
by :func:`predict_proba` and folded into the loss during training). Initialisation and
BatchNorm settings follow Keras' defaults so that training behaves like the article's.

Its earlier names, the registry name ``seed-cnn`` and the class ``SeedCNN``, still work with a
deprecation warning (:func:`resolve_model_name`); checkpoints saved under ``seed-cnn`` load.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from latent_atlas.threads import prefer_passive_waiting

prefer_passive_waiting()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from latent_atlas.errors import ConfigError, LatentAtlasError, RenamedWarning  # noqa: E402
from latent_atlas.fileio import atomic_path  # noqa: E402
from latent_atlas.recipes import MODEL_ALIASES, resolve_model_name  # noqa: E402,F401

CHECKPOINT_FORMAT = "latent-atlas-checkpoint"


class Dense(nn.Module):
    """A fully connected layer with an optional activation, like Keras' ``Dense``.

    Its output (what a forward hook on it sees) is *after* the activation, as in Keras.
    """

    def __init__(self, in_features: int, out_features: int, activation: str | None = None):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.activation = nn.ReLU() if activation == "relu" else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.linear(x))


class ArticleCNN(nn.Sequential):
    """The article's CNN, adapting to the input's size and channels."""

    FILTERS = (32, 64, 128)

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, dense_units: int = 128):
        h, w, c = (int(v) for v in input_shape)
        if min(h, w) < 8:
            raise ConfigError(
                f"article-cnn needs images of at least 8×8 pixels (three 2×2 poolings), got {h}×{w}"
            )
        if num_classes < 2:
            raise ConfigError(f"article-cnn needs at least 2 classes, got {num_classes}")
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        channels = c
        for i, filters in enumerate(self.FILTERS, start=1):
            layers[f"conv{i}"] = nn.Conv2d(channels, filters, 3, padding="same", bias=False)
            # Keras: momentum 0.99 (torch counts the other way), epsilon 1e-3
            layers[f"bn{i}"] = nn.BatchNorm2d(filters, eps=1e-3, momentum=0.01)
            layers[f"relu{i}"] = nn.ReLU()
            layers[f"pool{i}"] = nn.MaxPool2d(2)
            channels = filters
            h, w = h // 2, w // 2
        layers["flatten"] = nn.Flatten()
        layers["dense"] = Dense(channels * h * w, dense_units, activation="relu")
        layers["output"] = Dense(dense_units, num_classes)
        super().__init__(layers)
        self.config = {
            "input_shape": [int(v) for v in input_shape],
            "num_classes": int(num_classes),
            "dense_units": int(dense_units),
        }
        self.apply(_keras_init)


def _keras_init(module: nn.Module) -> None:
    if isinstance(module, nn.Conv2d | nn.Linear):
        nn.init.xavier_uniform_(module.weight)  # Keras' glorot_uniform
        if module.bias is not None:
            nn.init.zeros_(module.bias)


MODELS: dict[str, Callable[..., nn.Module]] = {"article-cnn": ArticleCNN}
# earlier names of this module's attributes, still importable with a deprecation warning
_RENAMED_ATTRIBUTES: dict[str, str] = {"SeedCNN": "ArticleCNN"}


def available_models() -> list[str]:
    return list(MODELS)


def __getattr__(attr: str) -> Any:
    """Earlier names of the module's attributes (``SeedCNN``), with a deprecation warning."""
    new = _RENAMED_ATTRIBUTES.get(attr)
    if new is None:
        raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
    warnings.warn(
        f"latent_atlas.models.{attr} is now called {new}; use latent_atlas.models.{new} "
        "(the old name will go)",
        RenamedWarning,
        stacklevel=2,
    )
    return globals()[new]


def build_model(
    name: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    seed: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a model by registry name, e.g. ``build_model("article-cnn", (32, 32, 3), 10)``.

    An earlier name (``seed-cnn``) builds the same model, with a deprecation warning. With
    ``seed``, the initial weights depend on it alone (torch's global generator is left as it
    was).
    """
    return _build(resolve_model_name(name), input_shape, num_classes, seed=seed, **kwargs)


def _build(
    name: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    seed: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    try:
        factory = MODELS[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}; choose one of {', '.join(MODELS)}, or pass a model file "
            "or package.module:factory"
        ) from None
    if seed is None:
        return factory(input_shape, num_classes, **kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory(input_shape, num_classes, **kwargs)


def to_tensor(images: np.ndarray, *, channels_last: bool = False) -> torch.Tensor:
    """uint8 N×H×W×C images to float32 N×C×H×W in [0, 1] (the article's preprocessing).

    With ``channels_last`` the tensor keeps the images' N×H×W×C memory order (no copy to
    reorder it), which is what channels-last models want.
    """
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    x = x.float().div_(255.0)
    if channels_last:
        return x.contiguous(memory_format=torch.channels_last)
    return x.contiguous()


def predict_proba(model: nn.Module, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Class probabilities (softmax of the output layer) for uint8 images."""
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            logits = model(to_tensor(images[start : start + batch_size]))
            out.append(torch.softmax(logits, dim=1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def save_checkpoint(
    path: str | Path, model: nn.Module, name: str, extra: dict[str, Any] | None = None
) -> Path:
    """Save weights and the information needed to rebuild the model, atomically.

    ``name`` is the model's registry name; an earlier one (``seed-cnn``) is recorded under its
    new name (``article-cnn``), with a deprecation warning.
    """
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": 1,
        "model": resolve_model_name(name),
        "config": dict(getattr(model, "config", {})),
        "state_dict": model.state_dict(),
        "extra": extra or {},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model saved by :func:`save_checkpoint` (tensors only: ``weights_only=True``)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise LatentAtlasError(f"checkpoint {path} does not exist") from None
    except Exception as exc:  # torch raises many types for corrupt or unsafe files
        raise LatentAtlasError(f"{path}: not a loadable latent-atlas checkpoint ({exc})") from None
    if not is_checkpoint(payload):
        raise LatentAtlasError(f"{path}: not a latent-atlas checkpoint")
    return model_from_checkpoint(payload)


def is_checkpoint(payload: object) -> bool:
    """True for what :func:`save_checkpoint` writes, read back with ``torch.load``."""
    return isinstance(payload, dict) and payload.get("format") == CHECKPOINT_FORMAT


def model_from_checkpoint(payload: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint already read with ``weights_only=True``.

    A checkpoint saved under an earlier registry name (``seed-cnn``, older runs' ``model.pt``)
    rebuilds the model under its new name, without a warning.
    """
    cfg = payload["config"]
    model = _build(
        resolve_model_name(payload["model"], warn=False),
        tuple(cfg["input_shape"]),
        cfg["num_classes"],
        dense_units=cfg.get("dense_units", 128),
    )
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, payload.get("extra", {})
