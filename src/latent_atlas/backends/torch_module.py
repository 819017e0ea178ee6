"""PyTorch modules in Python: latent-atlas checkpoints, ``package.module:factory`` plus a
state dict, and the registry's models. Layers are captured with forward hooks
(:func:`latent_atlas.activations.capture_layer`), as for the article's own CNN.

Weights are read with ``torch.load(weights_only=True)``: a checkpoint holds tensors, never
code. The model's code is the factory the user names, imported like any Python module.
"""

from __future__ import annotations

import importlib
import io
import tempfile
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from latent_atlas.threads import prefer_passive_waiting

prefer_passive_waiting()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from latent_atlas.activations import capture_layers, inference_model, list_layers  # noqa: E402
from latent_atlas.backends.base import LayerInfo, LoadedModel, PortableModel  # noqa: E402
from latent_atlas.errors import ConfigError, LatentAtlasError  # noqa: E402
from latent_atlas.models import (  # noqa: E402
    build_model,
    is_checkpoint,
    model_from_checkpoint,
    resolve_model_name,
    save_checkpoint,
)
from latent_atlas.threads import configure_threads  # noqa: E402

# keys listed in a "state dict does not fit" error
_MAX_KEYS = 5


@dataclass
class TorchModuleModel(LoadedModel):
    """An ``nn.Module`` run in eval mode; any named sub-module is a layer."""

    module: nn.Module = field(default_factory=nn.Identity)
    kind: str = "torch"
    # fold: run a copy with BatchNorm folded into the convolutions and channels-last tensors
    # (see inference_model): about twice as fast on the CPU, outputs within about 1e-5 of the
    # module's own. The network a run trains always runs so; a model you bring when asked.
    can_fold: ClassVar[bool] = True
    _stack: ExitStack | None = field(default=None, repr=False)
    _fast: nn.Module | None = field(default=None, repr=False)
    _captured: dict[str, list[torch.Tensor]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.module.eval()

    def layer_names(self) -> list[str]:
        return list_layers(self.module)

    def sweep_layers(self) -> list[str]:
        return sweep_modules(self.module)

    def layers(self) -> list[LayerInfo]:
        shapes: dict[str, tuple[int, ...] | None] = {}
        kinds = {name: type(m).__name__ for name, m in self.module.named_modules() if name}
        x = _dummy_input(self.input_shape)
        if x is not None:
            handles = []
            for name, m in self.module.named_modules():
                if name:
                    handles.append(m.register_forward_hook(_shape_hook(name, shapes)))
            try:
                with torch.inference_mode():
                    self.module(x)
            finally:
                for h in handles:
                    h.remove()
        return [LayerInfo(n, shapes.get(n), kinds[n]) for n in self.layer_names()]

    def _start(self, layers: tuple[str, ...], pool: str, threads: int | None) -> None:
        configure_threads(threads)
        self._stack = ExitStack()
        # BatchNorm folded into the convolutions before it, channels-last: the fast copy
        self._fast = inference_model(self.module, keep=layers) if self.fold else self.module
        self._captured = self._stack.enter_context(capture_layers(self._fast, layers, pool))

    def _run(self, batch: np.ndarray, layers: tuple[str, ...]) -> tuple[list[np.ndarray], Any]:
        x = torch.from_numpy(batch)
        if self.fold and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        try:
            with torch.inference_mode():
                out = self._fast(x)
        except RuntimeError as exc:
            if not self.fold:
                raise
            raise ConfigError(
                f"{self.spec} does not run with BatchNorm folded and channels-last tensors "
                f"({_first_line(exc)}); run it without --fold-batchnorm"
            ) from None
        return [self._captured[layer].pop().numpy() for layer in layers], _to_numpy(out)

    def _finish(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None
        self._fast = None

    def portable(self) -> PortableModel:
        """The module's weights (and, for a factory, its spec) as bytes for other processes."""
        if self.details.get("source") == "factory":
            buffer = io.BytesIO()
            torch.save(self.module.state_dict(), buffer)
            return PortableModel(
                kind="factory",
                data=buffer.getvalue(),
                spec=self.spec,
                model_args=dict(self.details.get("model_args") or {}),
                input_shape=self.input_shape,
                fold=self.fold,
            )
        name = self.details.get("name") or self.spec
        names = self.details.get("class_names")
        extra = {"class_names": names} if names is not None else {}
        with tempfile.TemporaryDirectory(prefix="latent-atlas-model-") as tmp:
            data = save_checkpoint(Path(tmp) / "model.pt", self.module, name, extra).read_bytes()
        return PortableModel(kind="file", data=data, suffix=".pt", fold=self.fold)


_CONTAINERS = ("Sequential", "ModuleList", "ModuleDict")


def sweep_modules(module: Any, prefix: str = "") -> list[str]:
    """The layers of ``module`` in order: its children, containers opened (also compiled
    TorchScript ones, known by their original class name)."""
    names = []
    for name, child in module.named_children():
        kind = getattr(child, "original_name", type(child).__name__)
        if kind in _CONTAINERS:
            names += sweep_modules(child, f"{prefix}{name}.")
        else:
            names.append(prefix + name)
    return names


def _shape_hook(
    name: str, shapes: dict[str, tuple[int, ...] | None]
) -> Callable[[nn.Module, object, object], None]:
    def hook(_m: nn.Module, _inp: object, out: object) -> None:
        if name not in shapes:  # the first call, for modules used more than once
            shapes[name] = tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else None

    return hook


def _dummy_input(shape: tuple[int | None, ...] | None) -> torch.Tensor | None:
    if shape is None or any(d is None for d in shape):
        return None
    h, w, c = (int(d) for d in shape)  # type: ignore[arg-type]
    return torch.zeros(1, c, h, w)


def _to_numpy(out: object) -> np.ndarray | None:
    return out.detach().float().numpy() if isinstance(out, torch.Tensor) else None


def load_checkpoint_model(path: str | Path) -> TorchModuleModel:
    """A model saved by :func:`latent_atlas.models.save_checkpoint` (e.g. a run's model.pt)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise LatentAtlasError(f"model file {path} does not exist") from None
    except Exception as exc:  # corrupt files, pickled objects refused by weights_only
        raise LatentAtlasError(
            f"{path}: neither a TorchScript archive nor a latent-atlas checkpoint, and not "
            f"loadable with weights_only=True ({_first_line(exc)}); a model pickled whole "
            "with torch.save(model) is not loaded, since unpickling runs code: export it with "
            "torch.jit.script or torch.jit.trace, or save its state_dict and pass "
            "--model package.module:factory --checkpoint FILE"
        ) from None
    if not is_checkpoint(payload):
        if isinstance(payload, Mapping) and payload:
            raise ConfigError(
                f"{path} holds weights without the model's code: pass the code as --model "
                f"package.module:factory and the file as --checkpoint {path}"
            )
        raise LatentAtlasError(
            f"{path}: neither a TorchScript archive nor a latent-atlas checkpoint"
        )
    model, extra = model_from_checkpoint(payload, where=str(path))
    config = getattr(model, "config", {})
    shape = config.get("input_shape")
    name = payload.get("model")
    if isinstance(name, str):  # a checkpoint saved under an earlier name (seed-cnn)
        name = resolve_model_name(name, warn=False)
    details: dict[str, Any] = {"source": "latent-atlas checkpoint", "name": name}
    if "class_names" in extra:
        details["class_names"] = list(extra["class_names"])
    return TorchModuleModel(
        spec=str(path),
        input_shape=tuple(shape) if shape else None,
        details=details,
        module=model,
    )


def load_registry_model(
    name: str, input_shape: tuple[int | None, int | None, int | None] | None = None
) -> TorchModuleModel:
    """A registry model with its initial (untrained) weights, e.g. to list its layers."""
    shape = input_shape if input_shape and None not in input_shape else (32, 32, 3)
    model = build_model(name, shape, 10, seed=0)  # type: ignore[arg-type]
    return TorchModuleModel(
        spec=name,
        input_shape=tuple(shape),  # type: ignore[arg-type]
        details={"source": "registry", "weights": "initial (untrained), 10 classes"},
        module=model,
    )


_MISSING = object()


def load_factory_model(
    spec: str,
    checkpoint: str | Path | None = None,
    model_args: Mapping[str, Any] | None = None,
    input_shape: tuple[int | None, int | None, int | None] | None = None,
) -> TorchModuleModel:
    """``package.module:factory`` called with ``model_args``, weights from ``checkpoint``."""
    module_name, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"--model {spec}: cannot import {module_name!r} ({exc}); is it installed or on "
            "PYTHONPATH (e.g. PYTHONPATH=. for a file in this folder)?"
        ) from None
    for part in attr.split("."):
        # one lookup: a deprecated alias (latent_atlas.models:SeedCNN) warns once
        obj = getattr(obj, part, _MISSING)
        if obj is _MISSING:
            raise ConfigError(f"--model {spec}: {module_name} has no attribute {attr!r}")
    if not callable(obj):
        raise ConfigError(f"--model {spec}: {attr} is not callable")
    try:
        model = obj(**dict(model_args or {}))
    except TypeError as exc:
        raise ConfigError(
            f"--model {spec}: calling {attr}() failed ({exc}); pass its arguments as "
            "--model-args JSON"
        ) from None
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"--model {spec}: {attr}() returned {type(model).__name__}, not a torch.nn.Module"
        )
    details: dict[str, Any] = {"source": "factory", "model_args": dict(model_args or {})}
    if checkpoint is not None:
        load_state_dict_into(model, read_state_dict(checkpoint), str(checkpoint))
        details["checkpoint"] = str(checkpoint)
    else:
        details["weights"] = "as the factory made them (no --checkpoint)"
    return TorchModuleModel(spec=spec, input_shape=input_shape, details=details, module=model)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in ``path``: a plain one, ``{"state_dict": ...}`` or a latent-atlas
    checkpoint, read with ``weights_only=True`` (tensors only, no code)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise LatentAtlasError(f"checkpoint {path} does not exist") from None
    except Exception as exc:  # corrupt files, pickled objects refused by weights_only
        raise LatentAtlasError(
            f"{path}: not a state dict that loads with weights_only=True ({_first_line(exc)}); "
            "save model.state_dict() with torch.save"
        ) from None
    if isinstance(payload, Mapping) and isinstance(payload.get("state_dict"), Mapping):
        payload = payload["state_dict"]  # a latent-atlas checkpoint or a training wrapper
    if not isinstance(payload, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in payload.items()
    ):
        raise LatentAtlasError(f"{path}: holds no state dict (names → tensors)")
    return dict(payload)


def load_state_dict_into(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """``model.load_state_dict(state)``, strict, with one clear line when they do not fit."""
    expected = list(model.state_dict())  # in the model's order
    if expected and not (set(state) & set(expected)):
        # saved from a DataParallel/DistributedDataParallel wrapper
        stripped = {k.removeprefix("module."): v for k, v in state.items()}
        if set(stripped) & set(expected):
            state = stripped
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in set(expected)]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {_some(missing)}")
        if unexpected:
            parts.append(f"unexpected {_some(unexpected)}")
        raise ConfigError(
            f"checkpoint {where} does not fit the model: {'; '.join(parts)} "
            f"(the model has {len(expected)} entries, the checkpoint {len(state)})"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # shapes differ
        lines = [ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln]
        detail = "; ".join(lines[:_MAX_KEYS]) or _first_line(exc)
        raise ConfigError(f"checkpoint {where} does not fit the model: {detail}") from None


def _some(keys: list[str]) -> str:
    more = f" and {len(keys) - _MAX_KEYS} more" if len(keys) > _MAX_KEYS else ""
    return ", ".join(keys[:_MAX_KEYS]) + more


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
