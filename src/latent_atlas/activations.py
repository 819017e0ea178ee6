"""Activations of any named layer, captured with forward hooks.

The default is the article's latent space: the output of the penultimate ``dense`` layer (after
its ReLU). Feature maps (N×C×H×W) are reduced by ``pool``: ``"avg"`` or ``"max"`` over the
spatial positions (global pooling), or ``"flatten"``. Predictions and confidences for every
sample come from the same forward pass.

torch is imported when a model runs: :class:`Activations`, :func:`pool_features` and
:func:`as_probabilities` also serve the backends that need no torch (ONNX Runtime).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from latent_atlas.threads import prefer_passive_waiting

prefer_passive_waiting()

import numpy as np  # noqa: E402

from latent_atlas.errors import ConfigError  # noqa: E402
from latent_atlas.fileio import load_npy, npy_writer  # noqa: E402
from latent_atlas.progress import progress_bar  # noqa: E402

if TYPE_CHECKING:
    import torch
    from torch import nn

POOLING = ("avg", "max", "flatten")
# Images per forward pass when extracting. Small batches keep a conv layer's activations in the
# CPU caches: the article's CNN extracts 1.4-2x faster with 64 than with 256 on the 2-core machine
# (bench/RESULTS.md, "thread policy and extraction batch size").
EXTRACT_BATCH = 64
# When streaming, hand freed heap memory back to the OS every this many batches: decoded
# images and torch's intermediates interleave on glibc's heap, which otherwise keeps the freed
# space (measured: peak RSS 0.94 GiB for 100,000 streamed images without, see bench/stream.py)
TRIM_EVERY = 64


@dataclass
class Activations:
    """Features of one layer, with the model's predictions when it makes any, for N samples."""

    features: np.ndarray  # N×D float32
    probabilities: np.ndarray | None  # N×K float32 (softmax of the output layer), or None
    layer: str
    pool: str
    seconds: float = 0.0

    @property
    def predictions(self) -> np.ndarray | None:
        if self.probabilities is None:
            return None
        return self.probabilities.argmax(axis=1).astype(np.int64)

    @property
    def confidence(self) -> np.ndarray | None:
        if self.probabilities is None:
            return None
        return self.probabilities.max(axis=1).astype(np.float32)


def list_layers(model: nn.Module) -> list[str]:
    """Names of every sub-module a hook can be put on (dotted paths, in forward order)."""
    return [name for name, _ in model.named_modules() if name]


def check_pool(pool: str) -> None:
    """Refuse an unknown pooling name with the valid ones."""
    if pool not in POOLING:
        raise ConfigError(f"unknown pooling {pool!r}; choose one of {', '.join(POOLING)}")


def pool_features(values: np.ndarray, pool: str, channel_axis: int = 1) -> np.ndarray:
    """N×… layer outputs to N×D features.

    Outputs of up to two axes are kept as they are. Larger ones (feature maps) are pooled per
    channel over every other axis (``"avg"``/``"max"``: global pooling) or flattened in their
    own memory order (``"flatten"``). ``channel_axis`` is 1 for N×C×H×W (PyTorch, most ONNX
    models) and -1 for N×H×W×C (Keras).
    """
    x = np.asarray(values)
    if x.ndim <= 2 or pool == "flatten":
        return x.reshape(len(x), -1).astype(np.float32, copy=False)
    x = np.moveaxis(x, channel_axis, 1).reshape(x.shape[0], x.shape[channel_axis], -1)
    reduced = x.mean(axis=2) if pool == "avg" else x.max(axis=2)
    return reduced.astype(np.float32, copy=False)


def as_probabilities(output: object) -> np.ndarray | None:
    """Class probabilities from a model's output, or None when it is not a class score vector.

    A 2-D N×K output (K ≥ 2) whose rows are non-negative and sum to 1 is taken as
    probabilities already (a model ending in softmax); any other N×K output as logits, and
    softmax is applied. Anything else (several outputs, feature maps, one score) gives None.
    """
    if output is None or not hasattr(output, "shape") or len(output.shape) != 2:
        return None
    x = np.asarray(output, dtype=np.float64)
    if x.shape[1] < 2 or not np.all(np.isfinite(x)):
        return None
    if x.min() >= 0 and np.allclose(x.sum(axis=1), 1, atol=1e-3):
        return x.astype(np.float32)
    z = np.exp(x - x.max(axis=1, keepdims=True))
    return (z / z.sum(axis=1, keepdims=True)).astype(np.float32)


def _pool(t: torch.Tensor, pool: str) -> torch.Tensor:
    if t.ndim <= 2:
        return t.reshape(len(t), -1)
    if pool == "avg":
        return t.flatten(2).mean(2)
    if pool == "max":
        return t.flatten(2).amax(2)
    return t.reshape(len(t), -1)


def check_layer(model: nn.Module, layer: str) -> nn.Module:
    """The sub-module called ``layer``, or an error listing every valid name."""
    modules = dict(model.named_modules())
    if layer not in modules or not layer:
        raise ConfigError(
            f"unknown layer {layer!r}; the model has: {', '.join(list_layers(model))}"
        )
    return modules[layer]


@contextmanager
def capture_layer(model: nn.Module, layer: str, pool: str) -> Iterator[list[torch.Tensor]]:
    """A forward hook on ``layer`` for the duration of the block.

    Yields the list the hook appends to: one pooled float32 N×D tensor per forward pass.
    """
    with capture_layers(model, (layer,), pool) as captured:
        yield captured[layer]


@contextmanager
def capture_layers(
    model: nn.Module, layers: Sequence[str], pool: str
) -> Iterator[dict[str, list[torch.Tensor]]]:
    """Forward hooks on every one of ``layers`` for the duration of the block (one pass
    captures them all); yields, per layer, the list its hook appends to."""
    modules = {layer: check_layer(model, layer) for layer in layers}
    check_pool(pool)
    captured: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
    handles = [
        m.register_forward_hook(_hook(layer, pool, captured[layer])) for layer, m in modules.items()
    ]
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def _hook(layer: str, pool: str, into: list[torch.Tensor]) -> Callable[..., None]:
    def hook(_m: nn.Module, _inp: object, out: object) -> None:
        import torch

        if not isinstance(out, torch.Tensor):
            raise ConfigError(
                f"layer {layer!r} returns {type(out).__name__}, not one tensor; "
                "choose one of its sub-layers"
            )
        into.append(_pool(out.detach(), pool).float())

    return hook


def inference_model(model: nn.Module, keep: str | Collection[str] | None = None) -> nn.Module:
    """A copy of ``model`` for fast CPU inference.

    Every ``Conv2d`` directly followed by a ``BatchNorm2d`` in a ``Sequential`` is folded into
    one convolution; the BatchNorm's place keeps an ``Identity`` under its name, so a hook there
    sees the same values as before. Convolutions named in ``keep`` are left unfused (a hook on
    one must see the convolution alone). Weights are made channels-last, which oneDNN's CPU kernels
    prefer.
    """
    import copy
    from itertools import pairwise

    import torch
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    kept = {keep} if isinstance(keep, str) else set(keep or ())
    fast = copy.deepcopy(model).eval()
    for prefix, parent in list(fast.named_modules()):
        if not isinstance(parent, nn.Sequential):
            continue
        names = list(parent._modules)
        for first, second in pairwise(names):
            conv, norm = parent._modules[first], parent._modules[second]
            qualified = f"{prefix}.{first}" if prefix else first
            if (
                isinstance(conv, nn.Conv2d)
                and isinstance(norm, nn.BatchNorm2d)
                and norm.track_running_stats
                and norm.running_mean is not None
                and qualified not in kept
            ):
                parent._modules[first] = fuse_conv_bn_eval(conv, norm)
                parent._modules[second] = nn.Identity()
    return fast.to(memory_format=torch.channels_last)


def extract_activations(
    model: nn.Module,
    images: np.ndarray,
    layer: str = "dense",
    *,
    pool: str = "avg",
    batch_size: int = EXTRACT_BATCH,
    threads: int | None = None,
    progress: bool = True,
    features_out: str | Path | None = None,
) -> Activations:
    """Run ``model`` over uint8 N×H×W×C ``images`` and capture ``layer``'s outputs.

    With ``features_out`` the features stream batch by batch into that ``.npy`` file (a
    memory-mapped array, written atomically), so memory does not grow with N; the returned
    features are then a read-only memory map of the file. ``images`` may be any array-like that
    slices (a memory-mapped ``.npy``, say).

    The forward passes run on :func:`inference_model`'s copy of ``model`` (BatchNorm folded
    into the convolutions before it, channels-last tensors): about twice as fast on the CPU,
    with outputs within about 1e-6 of the unfused model's. The same loop serves every model a
    user brings (:meth:`latent_atlas.backends.LoadedModel.extract`).
    """
    import torch

    from latent_atlas.models import to_tensor
    from latent_atlas.threads import configure_threads

    check_layer(model, layer)
    check_pool(pool)
    configure_threads(threads)
    model.eval()
    fast = inference_model(model, keep=layer)
    with capture_layer(fast, layer, pool) as captured, torch.inference_mode():

        def run_batch(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
            logits = fast(to_tensor(batch, channels_last=True))
            return captured.pop().numpy(), as_probabilities(logits.numpy())

        return run_extraction(
            images,
            run_batch,
            layer=layer,
            pool=pool,
            batch_size=batch_size,
            progress=progress,
            features_out=features_out,
        )


#: one batch of uint8 images → (its N×D float32 features, N×K probabilities or None)
BatchFn = Callable[[np.ndarray], tuple[np.ndarray, "np.ndarray | None"]]
#: one batch → (N×D float32 features of each layer, in order; N×K probabilities or None)
LayersBatchFn = Callable[[np.ndarray], tuple[list[np.ndarray], "np.ndarray | None"]]


def run_extraction(
    images: Any,
    run_batch: BatchFn,
    *,
    layer: str,
    pool: str,
    batch_size: int = EXTRACT_BATCH,
    progress: bool = True,
    features_out: str | Path | None = None,
) -> Activations:
    """The extraction loop every model shares, for one layer (see :func:`run_layers`).

    With ``features_out`` the features go straight into that ``.npy`` file (see
    :func:`extract_activations`).
    """

    def run_one(batch: np.ndarray) -> tuple[list[np.ndarray], np.ndarray | None]:
        out, p = run_batch(batch)
        return [out], p

    outs = {layer: features_out} if features_out else None
    return run_layers(
        images, run_one, layers=(layer,), pool=pool, batch_size=batch_size,
        progress=progress, features_out=outs,
    )[layer]  # fmt: skip


def run_layers(
    images: Any,
    run_batch: LayersBatchFn,
    *,
    layers: Sequence[str],
    pool: str,
    batch_size: int = EXTRACT_BATCH,
    progress: bool = True,
    features_out: Mapping[str, str | Path] | None = None,
) -> dict[str, Activations]:
    """The extraction loop every model shares: one pass over the images captures every one of
    ``layers``; batches, a progress bar, optional streaming.

    ``images`` is any array-like that slices; each batch is decoded only when it is run.
    Probabilities are kept while every batch gives some. A layer named in ``features_out``
    streams into that ``.npy`` file (a memory-mapped array, written atomically), so memory
    does not grow with N; its features are then a read-only memory map of the file.
    """
    if len(images) == 0:
        raise ConfigError("no images to extract activations from")
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    files = dict(features_out or {})
    feats: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    probs: list[np.ndarray] | None = []
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        streams: dict[str, Any] = {}  # features files, opened once the first batch gives widths
        desc = f"extract {layers[0]}" if len(layers) == 1 else f"extract {len(layers)} layers"
        for start in progress_bar(
            range(0, len(images), batch_size), enabled=progress, desc=desc, unit="batch",
            leave=False,
        ):  # fmt: skip
            outs, p = run_batch(np.asarray(images[start : start + batch_size]))
            if p is None:
                probs = None  # not a class score vector: no predictions at all
            elif probs is not None:
                probs.append(p)
            for layer, out in zip(layers, outs, strict=True):
                if layer not in files:
                    feats[layer].append(out)
                    continue
                if layer not in streams:
                    shape = (len(images), out.shape[1])
                    streams[layer] = stack.enter_context(
                        npy_writer(files[layer], np.float32, shape)
                    )
                streams[layer][start : start + len(out)] = out
            if files and (start // batch_size) % TRIM_EVERY == TRIM_EVERY - 1:
                _trim_heap()
        streams.clear()  # (the writers flush, close and rename the files as the block ends)
    seconds = time.perf_counter() - t0
    probabilities = None if not probs else np.concatenate(probs).astype(np.float32)
    return {
        layer: Activations(
            features=load_npy(files[layer], mmap=True)
            if layer in files
            else np.ascontiguousarray(np.concatenate(feats[layer]), dtype=np.float32),
            probabilities=probabilities,
            layer=layer,
            pool=pool,
            seconds=seconds,
        )
        for layer in layers
    }


def _trim_heap() -> None:
    """Return freed heap pages to the OS (glibc's ``malloc_trim``; a no-op elsewhere)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or None where the C library has none."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
