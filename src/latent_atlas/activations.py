"""Activations of any named layer, captured with forward hooks.

The default is the seed's latent space: the output of the penultimate ``dense`` layer (after
its ReLU). Feature maps (N×C×H×W) are reduced by ``pool``: ``"avg"`` or ``"max"`` over the
spatial positions (global pooling), or ``"flatten"``. Predictions and confidences for every
sample come from the same forward pass.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from latent_atlas.threads import configure_threads, prefer_passive_waiting

prefer_passive_waiting()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from latent_atlas.errors import ConfigError  # noqa: E402
from latent_atlas.models import to_tensor  # noqa: E402
from latent_atlas.progress import progress_bar  # noqa: E402

POOLING = ("avg", "max", "flatten")


@dataclass
class Activations:
    """Features of one layer, with the model's predictions, for N samples."""

    features: np.ndarray  # N×D float32
    probabilities: np.ndarray  # N×K float32 (softmax of the output layer)
    layer: str
    pool: str
    seconds: float = 0.0

    @property
    def predictions(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1).astype(np.int64)

    @property
    def confidence(self) -> np.ndarray:
        return self.probabilities.max(axis=1).astype(np.float32)


def list_layers(model: nn.Module) -> list[str]:
    """Names of every sub-module a hook can be put on (dotted paths, in forward order)."""
    return [name for name, _ in model.named_modules() if name]


def _pool(t: torch.Tensor, pool: str) -> torch.Tensor:
    if t.ndim <= 2:
        return t.reshape(len(t), -1)
    if pool == "avg":
        return t.flatten(2).mean(2)
    if pool == "max":
        return t.flatten(2).amax(2)
    return t.reshape(len(t), -1)


def extract_activations(
    model: nn.Module,
    images: np.ndarray,
    layer: str = "dense",
    *,
    pool: str = "avg",
    batch_size: int = 512,
    threads: int | None = None,
    progress: bool = True,
) -> Activations:
    """Run ``model`` over uint8 N×H×W×C ``images`` and capture ``layer``'s outputs."""
    modules = dict(model.named_modules())
    if layer not in modules or not layer:
        raise ConfigError(
            f"unknown layer {layer!r}; the model has: {', '.join(list_layers(model))}"
        )
    if pool not in POOLING:
        raise ConfigError(f"unknown pooling {pool!r}; choose one of {', '.join(POOLING)}")
    configure_threads(threads)
    captured: list[torch.Tensor] = []
    handle = modules[layer].register_forward_hook(
        lambda _m, _inp, out: captured.append(_pool(out.detach(), pool).float())
    )
    model.eval()
    feats, probs = [], []
    t0 = time.perf_counter()
    try:
        with torch.inference_mode():
            for start in progress_bar(
                range(0, len(images), batch_size),
                enabled=progress,
                desc=f"extract {layer}",
                unit="batch",
                leave=False,
            ):
                logits = model(to_tensor(images[start : start + batch_size]))
                probs.append(torch.softmax(logits, 1).numpy())
                feats.append(captured.pop().numpy())
    finally:
        handle.remove()
    if not feats:
        raise ConfigError("no images to extract activations from")
    return Activations(
        features=np.ascontiguousarray(np.concatenate(feats), dtype=np.float32),
        probabilities=np.concatenate(probs).astype(np.float32),
        layer=layer,
        pool=pool,
        seconds=time.perf_counter() - t0,
    )
