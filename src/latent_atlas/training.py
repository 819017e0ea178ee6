"""Training a classifier the way the article does: Adam, batches of 128, early stopping.

The article trains with Adam (learning rate 1e-3), batch size 128, up to 50 epochs, stops when
the validation loss has not improved for 7 epochs and restores the best weights. The article
validates on the *test* set; latent-atlas holds out 10% of the training images instead
(``validation="split"``) so the reported test accuracy is honest. ``validation="test"``
reproduces the article exactly. The options are a :class:`~latent_atlas.recipes.TrainingConfig`;
the random seed and the number of threads are :func:`train_model`'s keywords.

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
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from latent_atlas.threads import configure_threads, prefer_passive_waiting

prefer_passive_waiting()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from latent_atlas.datasets.base import Dataset  # noqa: E402
from latent_atlas.errors import DatasetError, RenamedWarning  # noqa: E402
from latent_atlas.models import to_tensor  # noqa: E402
from latent_atlas.progress import progress_bar  # noqa: E402
from latent_atlas.recipes import TrainingConfig  # noqa: E402

CROP_PADDING = 4
log = logging.getLogger("latent_atlas")


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
    snapshot_seconds: float = 0.0  # spent in ``on_epoch`` (not counted in ``seconds``)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: called with (epoch, model) before training (epoch 0) and after every epoch, in eval mode
EpochHook = Callable[[int, "nn.Module"], None]


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
    config: TrainingConfig | None = None,
    *,
    seed: int = 0,
    threads: int | None = None,
    progress: bool = True,
    on_epoch: EpochHook | None = None,
) -> TrainResult:
    """Train ``model`` on ``dataset``'s train split, early-stopping on validation loss.

    ``config`` is the recipe (the article's by default); ``seed`` seeds the validation split,
    the batch order and the augmentation; ``threads`` is torch's thread count (None: the
    default of :func:`~latent_atlas.threads.configure_threads`). The best weights (lowest
    validation loss) are restored into ``model`` before the test split is scored.
    Deterministic for a given ``seed`` on the same machine. ``on_epoch(epoch, model)`` runs
    before the first epoch (epoch 0, the untrained model) and after each one, in eval mode and
    with no effect on training (it must not change the model: snapshots read activations);
    its time is kept apart in ``snapshot_seconds``.
    """
    config = TrainingConfig() if config is None else config
    if isinstance(config, TrainConfig):  # the earlier name carried the seed and threads
        seed, threads = config.seed, config.threads
    if not isinstance(config, TrainingConfig):
        raise TypeError(
            f"config must be a latent_atlas.recipes.TrainingConfig, got {type(config).__name__}"
        )
    _check_dataset(dataset)
    used_threads = configure_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data = _prepare_data(model, dataset, config, seed)
    generator = torch.Generator().manual_seed(seed)
    result = TrainResult(threads=used_threads, n_train=len(data.x_fit), n_val=len(data.x_val))
    loop = _make_loop(model, config, data, rng, generator, progress)
    stopping = _EarlyStopping(config.patience, copy.deepcopy(model.state_dict()))
    result.bn_momentum = _set_bn_momentum(model, config.bn_momentum, loop.n_batches)
    loop.scheduler = _make_scheduler(loop.optimizer, config, loop.n_batches)
    started = time.perf_counter()
    _call_hook(on_epoch, 0, model, result)
    for epoch in range(1, config.epochs + 1):
        record = _run_epoch(loop, epoch)
        result.history.append(record)
        result.epochs_run = epoch
        _call_hook(on_epoch, epoch, model, result)
        if stopping.should_stop(epoch, record["val_loss"], model):
            result.stopped_early = True
            break
    result.best_epoch = stopping.best_epoch
    _finish(model, dataset, result, stopping.best_state, started)
    return result


def _call_hook(hook: EpochHook | None, epoch: int, model: nn.Module, result: TrainResult) -> None:
    """Run ``hook`` on the model in eval mode, timing it apart from training."""
    if hook is None:
        return
    t0 = time.perf_counter()
    was_training = model.training
    model.eval()
    try:
        hook(epoch, model)
    finally:
        model.train(was_training)
        result.snapshot_seconds += time.perf_counter() - t0


@dataclass
class _Data:
    """The prepared tensors: the images trained on and the validation images."""

    x_fit: torch.Tensor
    y_fit: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor


@dataclass
class _Loop:
    """What an epoch needs: the model, its optimiser, the data and the seeded generators."""

    model: nn.Module
    config: TrainingConfig
    data: _Data
    optimizer: torch.optim.Optimizer
    rng: np.random.Generator
    generator: torch.Generator
    n_batches: int
    progress: bool
    loss_fn: nn.Module = field(default_factory=nn.CrossEntropyLoss)
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None


@dataclass
class _EarlyStopping:
    """The best validation loss so far, its epoch and weights, and the epochs waited since."""

    patience: int
    best_state: dict[str, Any]
    best_loss: float = float("inf")
    best_epoch: int = 0
    waited: int = 0

    def should_stop(self, epoch: int, val_loss: float, model: nn.Module) -> bool:
        """Record ``epoch``'s validation loss; True once ``patience`` epochs did not improve."""
        if val_loss < self.best_loss:
            self.best_loss, self.waited, self.best_epoch = val_loss, 0, epoch
            self.best_state = copy.deepcopy(model.state_dict())
            return False
        self.waited += 1
        return self.waited >= self.patience


def _check_dataset(dataset: Dataset) -> None:
    if len(dataset.x_train) < 2:
        raise DatasetError(f"{dataset.name}: the train split needs at least 2 images to train")
    if len(np.unique(dataset.y_train)) < 2:
        raise DatasetError(
            f"{dataset.name}: the train split holds a single class; nothing to learn"
        )


def _prepare_data(model: nn.Module, dataset: Dataset, config: TrainingConfig, seed: int) -> _Data:
    """The fit and validation tensors (channels-last), and ``model`` made channels-last."""
    if config.validation == "split":
        fit_idx, val_idx = validation_split(dataset.y_train, config.val_fraction, seed)
        x_fit, y_fit = dataset.x_train[fit_idx], dataset.y_train[fit_idx]
        x_val, y_val = dataset.x_train[val_idx], dataset.y_train[val_idx]
    else:
        x_fit, y_fit = dataset.x_train, dataset.y_train
        x_val, y_val = dataset.x_test, dataset.y_test
    # channels-last tensors let oneDNN's convolutions skip layout conversions (measured 1.4×
    # faster training on this CNN, see bench/RESULTS.md)
    model.to(memory_format=torch.channels_last)
    return _Data(
        _channels_last(to_tensor(x_fit)),
        torch.from_numpy(y_fit),
        _channels_last(to_tensor(x_val)),
        torch.from_numpy(y_val),
    )


def _make_loop(
    model: nn.Module,
    config: TrainingConfig,
    data: _Data,
    rng: np.random.Generator,
    generator: torch.Generator,
    progress: bool,
) -> _Loop:
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, eps=1e-7)
    n_batches = (len(data.x_fit) + config.batch_size - 1) // config.batch_size
    return _Loop(model, config, data, optimizer, rng, generator, n_batches, progress)


def _make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainingConfig, n_batches: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The cosine schedule, per step from the base rate down to zero; None for a constant rate."""
    if config.lr_schedule != "cosine":
        return None
    total = config.epochs * n_batches
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    )


def _run_epoch(loop: _Loop, epoch: int) -> dict[str, float]:
    """Train one epoch in a shuffled order, then score the validation data: its history row."""
    loop.model.train()
    order = torch.from_numpy(loop.rng.permutation(len(loop.data.x_fit)))
    t0 = time.perf_counter()
    with progress_bar(
        total=loop.n_batches,
        desc=f"epoch {epoch}/{loop.config.epochs}",
        unit="batch",
        enabled=loop.progress,
        leave=True,
    ) as bar:
        seen, loss_sum, correct = _fit_batches(loop, order, bar)
        train_seconds = time.perf_counter() - t0
        val_loss, val_acc = evaluate(loop.model, loop.data.x_val, loop.data.y_val)
        _report_epoch(loop, bar, epoch, (loss_sum / seen, correct / seen, val_loss, val_acc))
    return {
        "epoch": epoch,
        "loss": loss_sum / seen,
        "accuracy": correct / seen,
        "val_loss": val_loss,
        "val_accuracy": val_acc,
        "seconds": time.perf_counter() - t0,
        "train_seconds": train_seconds,
    }


def _fit_batches(loop: _Loop, order: torch.Tensor, bar: Any) -> tuple[int, float, int]:
    """One optimiser step per batch of ``order``: images seen, summed loss, correct answers."""
    size = loop.config.batch_size
    seen, loss_sum, correct = 0, 0.0, 0
    for b in range(loop.n_batches):
        idx = order[b * size : (b + 1) * size]
        xb, yb = loop.data.x_fit[idx], loop.data.y_fit[idx]
        if loop.config.augment:
            xb = augment_batch(xb, loop.generator)
        loop.optimizer.zero_grad(set_to_none=True)
        logits = loop.model(xb)
        loss = loop.loss_fn(logits, yb)
        loss.backward()
        loop.optimizer.step()
        if loop.scheduler is not None:
            loop.scheduler.step()
        seen += len(idx)
        loss_sum += loss.item() * len(idx)
        correct += int((logits.argmax(1) == yb).sum())
        bar.update(1)
        bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}")
    return seen, loss_sum, correct


def _report_epoch(
    loop: _Loop, bar: Any, epoch: int, scores: tuple[float, float, float, float]
) -> None:
    """Show the epoch's loss and accuracy, on training and validation data, on the bar or log."""
    loss, acc, val_loss, val_acc = scores
    bar.set_postfix(
        loss=f"{loss:.4f}", acc=f"{acc:.4f}", val_loss=f"{val_loss:.4f}", val_acc=f"{val_acc:.4f}"
    )
    if loop.progress and bar.disable:
        log.info(
            "epoch %d/%d: loss %.4f, accuracy %.4f, val_loss %.4f, val_accuracy %.4f",
            epoch,
            loop.config.epochs,
            loss,
            acc,
            val_loss,
            val_acc,
        )


def _finish(
    model: nn.Module,
    dataset: Dataset,
    result: TrainResult,
    best_state: dict[str, Any],
    started: float,
) -> None:
    """Restore the best weights, fill in the timings and score the test split."""
    model.load_state_dict(best_state)
    # back to the standard layout, so a model used after training computes exactly like one
    # loaded from its checkpoint
    model.to(memory_format=torch.contiguous_format)
    result.seconds = time.perf_counter() - started - result.snapshot_seconds
    train_seconds = sum(row["train_seconds"] for row in result.history)
    result.train_images_per_second = result.epochs_run * result.n_train / max(train_seconds, 1e-9)
    if len(dataset.x_test):
        result.test_loss, result.test_accuracy = evaluate(
            model, to_tensor(dataset.x_test), torch.from_numpy(dataset.y_test)
        )


@dataclass(frozen=True)
class TrainConfig(TrainingConfig):
    """The earlier name, which also held ``seed`` and ``threads``; still taken, with a note.

    ``train_model(model, ds, TrainConfig(epochs=5, seed=1))`` trains as
    ``train_model(model, ds, TrainingConfig(epochs=5), seed=1)`` does.
    """

    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        warnings.warn(
            "TrainConfig is now latent_atlas.recipes.TrainingConfig, with seed= and threads= "
            "passed to train_model; the old name will go",
            RenamedWarning,
            stacklevel=3,
        )
        super().__post_init__()

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d.pop("seed")
        d.pop("threads")
        return d
