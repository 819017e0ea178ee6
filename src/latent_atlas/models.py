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
    return model_from_checkpoint(payload, where=str(path))


def is_checkpoint(payload: object) -> bool:
    """True for what :func:`save_checkpoint` writes, read back with ``torch.load``."""
    return isinstance(payload, dict) and payload.get("format") == CHECKPOINT_FORMAT


#: the largest image side (pixels) and channel count a checkpoint may ask its model to take
MAX_CHECKPOINT_SIDE = 16_384
#: the most parameters a checkpoint may ask for (4 GB of float32 weights)
MAX_CHECKPOINT_PARAMETERS = 1_000_000_000


def model_from_checkpoint(
    payload: dict[str, Any], *, where: str = "checkpoint"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint already read with ``weights_only=True``.

    A checkpoint saved under an earlier registry name (``seed-cnn``, older runs' ``model.pt``)
    rebuilds the model under its new name, without a warning. Every field is checked before
    anything is built: its types, the input shape (at most :data:`MAX_CHECKPOINT_SIDE` a side),
    the size of the model it asks for (at most :data:`MAX_CHECKPOINT_PARAMETERS`, counted on
    torch's ``meta`` device, which allocates nothing) and that the weights fit it, so a damaged
    or crafted file is one clear :class:`LatentAtlasError` (``where`` names the file).
    """
    name, shape, num_classes, kwargs = _checkpoint_config(payload, where)
    extra = _checkpoint_extra(payload, where)
    state = _checkpoint_state(payload, where)
    _check_fit(state, name, shape, num_classes, kwargs, where)
    model = _build(name, shape, num_classes, **kwargs)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # e.g. dtypes that do not convert
        raise LatentAtlasError(f"{where}: its weights do not load ({_line(exc)})") from None
    model.eval()
    return model, extra


def _checkpoint_extra(payload: dict[str, Any], where: str) -> dict[str, Any]:
    extra = payload.get("extra", {})
    if not isinstance(extra, dict):
        raise LatentAtlasError(f"{where}: 'extra' must be a mapping, got {type(extra).__name__}")
    names = extra.get("class_names")
    if names is not None and (
        not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names)
    ):
        raise LatentAtlasError(f"{where}: 'class_names' must be a list of names, got {names!r:.60}")
    return extra


def _checkpoint_state(payload: dict[str, Any], where: str) -> dict[str, torch.Tensor]:
    state = payload.get("state_dict")
    if not isinstance(state, dict) or not state:
        raise LatentAtlasError(
            f"{where}: has no 'state_dict' (the model's weights)"
            if state is None
            else f"{where}: 'state_dict' must map names to tensors, got {type(state).__name__}"
        )
    odd = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if odd:
        raise LatentAtlasError(
            f"{where}: 'state_dict' holds entries that are not tensors: {_few(odd)}"
        )
    return state


def _check_fit(
    state: dict[str, torch.Tensor],
    name: str,
    shape: tuple[int, int, int],
    num_classes: int,
    kwargs: dict[str, Any],
    where: str,
) -> None:
    """Build the model on torch's ``meta`` device (nothing allocated): refuse one too large,
    and weights that do not fit it."""
    described = f"{name} for {'×'.join(map(str, shape))} images and {num_classes} classes"
    try:
        with torch.device("meta"):  # shapes only: nothing is allocated
            skeleton = _build(name, shape, num_classes, **kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except (TypeError, ValueError, RuntimeError) as exc:
        raise LatentAtlasError(f"{where}: cannot build {described} ({_line(exc)})") from None
    size = sum(p.numel() for p in skeleton.parameters())
    if size > MAX_CHECKPOINT_PARAMETERS:
        raise LatentAtlasError(
            f"{where}: its config asks for {described}: {size:,} parameters "
            f"({size * 4 / 2**30:,.0f} GiB); latent-atlas builds at most "
            f"{MAX_CHECKPOINT_PARAMETERS:,}, so the file is damaged or not what it claims"
        )
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} (expected {expected[k]})"
        for k in expected
        if k in state and tuple(state[k].shape) != expected[k]
    ]
    if missing or unexpected or wrong:
        parts = [f"missing {_few(missing)}"] if missing else []
        parts += [f"unexpected {_few(unexpected)}"] if unexpected else []
        parts += [f"of other shapes: {_few(wrong)}"] if wrong else []
        raise LatentAtlasError(f"{where}: its weights do not fit {described}: {'; '.join(parts)}")


def _checkpoint_config(
    payload: dict[str, Any], where: str
) -> tuple[str, tuple[int, int, int], int, dict[str, Any]]:
    """The registry name, input shape, class count and options of a checkpoint, checked."""
    version = payload.get("version", 1)
    if not _whole(version) or version < 1:
        raise LatentAtlasError(
            f"{where}: format version must be a whole number, got {version!r:.40}"
        )
    if version > 1:
        raise LatentAtlasError(
            f"{where}: checkpoint format version {version} is newer than this latent-atlas "
            "reads (1); upgrade latent-atlas"
        )
    name = _checkpoint_name(payload, where)
    cfg = payload.get("config")
    if cfg is None:
        raise LatentAtlasError(
            f"{where}: has the latent-atlas checkpoint marker but no 'config' (the input shape "
            "and classes its model was built for); the file is damaged or was not written by "
            "latent-atlas"
        )
    if not isinstance(cfg, dict):
        raise LatentAtlasError(f"{where}: 'config' must be a mapping, got {type(cfg).__name__}")
    for key in ("input_shape", "num_classes"):
        if key not in cfg:
            raise LatentAtlasError(f"{where}: its config has no {key!r}")
    shape = cfg["input_shape"]
    if not isinstance(shape, list | tuple) or len(shape) != 3 or not all(map(_whole, shape)):
        raise LatentAtlasError(
            f"{where}: input_shape must be three whole numbers H, W, C, got {shape!r:.60}"
        )
    if not all(1 <= v <= MAX_CHECKPOINT_SIDE for v in shape):
        raise LatentAtlasError(
            f"{where}: input_shape {list(shape)} is out of range: height, width and channels "
            f"must each lie in 1..{MAX_CHECKPOINT_SIDE:,}"
        )
    num_classes = cfg["num_classes"]
    if not _whole(num_classes) or num_classes < 1:
        raise LatentAtlasError(
            f"{where}: num_classes must be a whole number of at least 1, got {num_classes!r:.40}"
        )
    kwargs: dict[str, Any] = {}
    if "dense_units" in cfg:
        units = cfg["dense_units"]
        if not _whole(units) or units < 1:
            raise LatentAtlasError(
                f"{where}: dense_units must be a whole number of at least 1, got {units!r:.40}"
            )
        kwargs["dense_units"] = int(units)
    return name, (int(shape[0]), int(shape[1]), int(shape[2])), int(num_classes), kwargs


def _checkpoint_name(payload: dict[str, Any], where: str) -> str:
    name = payload.get("model")
    if not isinstance(name, str):
        raise LatentAtlasError(
            f"{where}: has no 'model' (the registry name of its network)"
            if name is None
            else f"{where}: 'model' must be a registry name such as 'article-cnn', got {name!r:.40}"
        )
    name = resolve_model_name(name, warn=False)
    if name not in MODELS:
        raise LatentAtlasError(
            f"{where}: saved for model {name!r:.40}, which this latent-atlas does not have "
            f"({', '.join(MODELS)})"
        )
    return name


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _few(items: list[str], limit: int = 4) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(str(i) for i in items[:limit]) + more


def _line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
