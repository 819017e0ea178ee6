"""Training a classifier the way the seed does: Adam, batches of 128, early stopping.

The seed trains with Adam (learning rate 1e-3), batch size 128, up to 50 epochs, stops when
the validation loss has not improved for 7 epochs and restores the best weights. The seed
validates on the *test* set; latent-atlas holds out 10% of the training images instead
(``validation="split"``) so the reported test accuracy is honest. ``validation="test"``
reproduces the seed exactly.

BatchNorm keeps Keras' running-statistics momentum (0.01 per batch in torch's convention)
where an epoch has 300 batches or more, as on CIFAR-10 (352). On small data sets (the bundled
``digits`` has 9 batches an epoch) those statistics would still be far from the data's when
early stopping judges the first epochs, so ``bn_momentum="auto"`` raises the momentum to
3/batches-per-epoch (at most 0.5): the statistics then follow the data within one epoch.

An opt-in improved recipe keeps the architecture: ``augment=True`` (random 32×32 crops of the
image padded by 4 pixels, and horizontal flips) and ``lr_schedule="cosine"`` (the learning
rate decays from 1e-3 to 0 over ``epochs``, per step).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from latent_atlas.threads import configure_threads, prefer_passive_waiting

prefer_passive_waiting()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from latent_atlas.datasets.base import Dataset  # noqa: E402
from latent_atlas.errors import ConfigError, DatasetError  # noqa: E402
from latent_atlas.models import to_tensor  # noqa: E402
from latent_atlas.progress import progress_bar  # noqa: E402

VALIDATION_CHOICES = ("split", "test")
LR_SCHEDULES = ("constant", "cosine")
CROP_PADDING = 4
log = logging.getLogger("latent_atlas")


@dataclass(frozen=True)
class TrainConfig:
    """The training recipe; the defaults are the seed's."""

    epochs: int = 50
    batch_size: int = 128
    learning_rate: float = 1e-3
    patience: int = 7
    validation: str = "split"
    val_fraction: float = 0.1
    seed: int = 0
    threads: int | None = None
    bn_momentum: float | str = "auto"
    augment: bool = False
    lr_schedule: str = "constant"

    def check(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {self.batch_size}")
        if self.learning_rate <= 0:
            raise ConfigError(f"learning rate must be positive, got {self.learning_rate}")
        if self.patience < 1:
            raise ConfigError(f"patience must be at least 1, got {self.patience}")
        if self.validation not in VALIDATION_CHOICES:
            raise ConfigError(
                f"validation must be one of {', '.join(VALIDATION_CHOICES)}, "
                f"got {self.validation!r}"
            )
        if self.bn_momentum != "auto" and not (
            isinstance(self.bn_momentum, int | float) and 0 < self.bn_momentum <= 1
        ):
            raise ConfigError(
                f"bn_momentum must be 'auto' or lie in (0, 1], got {self.bn_momentum!r}"
            )
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"val_fraction must lie in (0, 1), got {self.val_fraction}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(
                f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}"
            )


@dataclass
class TrainResult:
    """What training did: per-epoch history, the epoch restored, and the test scores."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    epochs_run: int = 0
    stopped_early: bool = False
    test_loss: float = float("nan")
    test_accuracy: float = float("nan")
    seconds: float = 0.0
    train_images_per_second: float = 0.0
    threads: int = 1
    n_train: int = 0
    n_val: int = 0
    bn_momentum: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def validation_split(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded split of training indices into (fit, validation)."""
    rng = np.random.default_rng(seed)
    fit, val = [], []
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_val = round(len(idx) * fraction)
        n_val = min(max(n_val, 1), len(idx) - 1) if len(idx) > 1 else 0
        val.append(idx[:n_val])
        fit.append(idx[n_val:])
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(val))


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def augment_batch(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crops (zero padding of 4 pixels, as is usual for CIFAR-10) and horizontal flips."""
    n, _, h, w = x.shape
    p = CROP_PADDING
    padded = nn.functional.pad(x, (p, p, p, p))
    dy = torch.randint(0, 2 * p + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * p + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None]  # n×1×h×1
    cols = torch.arange(w)[None, :].expand(n, w)
    cols = torch.where(flip[:, None], w - 1 - cols, cols) + dx[:, None]
    cols = cols[:, None, None, :]  # n×1×1×w
    batch = torch.arange(n)[:, None, None, None]
    channels = torch.arange(x.shape[1])[None, :, None, None]
    out = padded[batch, channels, rows, cols]
    return _channels_last(out)


def _set_bn_momentum(model: nn.Module, momentum: float | str, n_batches: int) -> float | None:
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return None
    if momentum == "auto":
        value = max(float(norms[0].momentum or 0.01), min(0.5, 3.0 / n_batches))
    else:
        value = float(momentum)
    for m in norms:
        m.momentum = value
    return value


def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512
) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy of ``model`` on prepared tensors."""
    model.eval()
    total_loss, correct = 0.0, 0
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            logits = model(x[start : start + batch_size])
            target = y[start : start + batch_size]
            total_loss += float(loss_fn(logits, target))
            correct += int((logits.argmax(1) == target).sum())
    n = max(len(x), 1)
    return total_loss / n, correct / n


def train_model(
    model: nn.Module,
    dataset: Dataset,
    config: TrainConfig | None = None,
    *,
    progress: bool = True,
) -> TrainResult:
    """Train ``model`` on ``dataset``'s train split, early-stopping on validation loss.

    The best weights (lowest validation loss) are restored into ``model`` before the test split
    is scored. Deterministic for a given ``config.seed`` on the same machine.
    """
    config = config or TrainConfig()
    config.check()
    if len(dataset.x_train) < 2:
        raise DatasetError(f"{dataset.name}: the train split needs at least 2 images to train")
    if len(np.unique(dataset.y_train)) < 2:
        raise DatasetError(
            f"{dataset.name}: the train split holds a single class; nothing to learn"
        )
    threads = configure_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)

    if config.validation == "split":
        fit_idx, val_idx = validation_split(dataset.y_train, config.val_fraction, config.seed)
        x_fit, y_fit = dataset.x_train[fit_idx], dataset.y_train[fit_idx]
        x_val, y_val = dataset.x_train[val_idx], dataset.y_train[val_idx]
    else:
        x_fit, y_fit = dataset.x_train, dataset.y_train
        x_val, y_val = dataset.x_test, dataset.y_test
    # channels-last tensors let oneDNN's convolutions skip layout conversions (measured 1.4×
    # faster training on this CNN, see bench/RESULTS.md)
    model.to(memory_format=torch.channels_last)
    xf, yf = _channels_last(to_tensor(x_fit)), torch.from_numpy(y_fit)
    xv, yv = _channels_last(to_tensor(x_val)), torch.from_numpy(y_val)
    generator = torch.Generator().manual_seed(config.seed)

    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    result = TrainResult(threads=threads, n_train=len(xf), n_val=len(xv))
    best_loss, best_state, waited = float("inf"), copy.deepcopy(model.state_dict()), 0
    n_batches = (len(xf) + config.batch_size - 1) // config.batch_size
    result.bn_momentum = _set_bn_momentum(model, config.bn_momentum, n_batches)
    scheduler = None
    if config.lr_schedule == "cosine":  # per step, from the base rate down to zero
        total = config.epochs * n_batches
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
        )
    started = time.perf_counter()
    train_seconds = 0.0
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.from_numpy(rng.permutation(len(xf)))
        seen, loss_sum, correct = 0, 0.0, 0
        t0 = time.perf_counter()
        with progress_bar(
            total=n_batches,
            desc=f"epoch {epoch}/{config.epochs}",
            unit="batch",
            enabled=progress,
            leave=True,
        ) as bar:
            for b in range(n_batches):
                idx = order[b * config.batch_size : (b + 1) * config.batch_size]
                xb, yb = xf[idx], yf[idx]
                if config.augment:
                    xb = augment_batch(xb, generator)
                optimizer.zero_grad(set_to_none=True)
                logits = model(xb)
                loss = loss_fn(logits, yb)
                loss.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                seen += len(idx)
                loss_sum += loss.item() * len(idx)
                correct += int((logits.argmax(1) == yb).sum())
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}")
            epoch_train_seconds = time.perf_counter() - t0
            train_seconds += epoch_train_seconds
            val_loss, val_acc = evaluate(model, xv, yv)
            bar.set_postfix(
                loss=f"{loss_sum / seen:.4f}",
                acc=f"{correct / seen:.4f}",
                val_loss=f"{val_loss:.4f}",
                val_acc=f"{val_acc:.4f}",
            )
            if progress and bar.disable:
                log.info(
                    "epoch %d/%d: loss %.4f, accuracy %.4f, val_loss %.4f, val_accuracy %.4f",
                    epoch,
                    config.epochs,
                    loss_sum / seen,
                    correct / seen,
                    val_loss,
                    val_acc,
                )
        result.history.append(
            {
                "epoch": epoch,
                "loss": loss_sum / seen,
                "accuracy": correct / seen,
                "val_loss": val_loss,
                "val_accuracy": val_acc,
                "seconds": time.perf_counter() - t0,
                "train_seconds": epoch_train_seconds,
            }
        )
        result.epochs_run = epoch
        if val_loss < best_loss:
            best_loss, waited, result.best_epoch = val_loss, 0, epoch
            best_state = copy.deepcopy(model.state_dict())
        else:
            waited += 1
            if waited >= config.patience:
                result.stopped_early = True
                break
    model.load_state_dict(best_state)
    # back to the standard layout, so a model used after training computes exactly like one
    # loaded from its checkpoint
    model.to(memory_format=torch.contiguous_format)
    result.seconds = time.perf_counter() - started
    result.train_images_per_second = result.epochs_run * len(xf) / max(train_seconds, 1e-9)
    if len(dataset.x_test):
        result.test_loss, result.test_accuracy = evaluate(
            model, to_tensor(dataset.x_test), torch.from_numpy(dataset.y_test)
        )
    return result
