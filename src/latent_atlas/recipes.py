"""Training recipes: every option of training, in one torch-free dataclass.

:class:`TrainingConfig` is the one place a training option is declared: ``training`` reads it,
``config.RunConfig`` holds one, the run's step keys are made from its fields, and the command
line builds it from the arguments named after them. It checks itself when it is made, before
torch loads.

Two named recipes: ``"article"`` (the defaults: the article's Adam 1e-3, batches of 128, up to
50 epochs, early stopping with patience 7 on the validation loss) and ``"improved"`` (the same
network and optimiser with random crops and flips and a cosine learning-rate schedule).
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from latent_atlas.errors import ConfigError, RenamedWarning

ARTICLE_MODEL = "article-cnn"  # the article's network, by its registry name
# earlier registry names, still taken (with a deprecation warning) and read from checkpoints
MODEL_ALIASES: dict[str, str] = {"seed-cnn": ARTICLE_MODEL}
VALIDATIONS = ("split", "test")  # early-stop on 10% of the train split, or (the article) on test
LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainingConfig:
    """How a model is trained here; the defaults are the article's recipe.

    ``validation="split"`` early-stops on a seeded, stratified ``val_fraction`` of the training
    images; ``"test"`` on the test split, as the article does. ``bn_momentum="auto"`` raises
    BatchNorm's momentum on small data sets (see :mod:`latent_atlas.training`). ``augment``
    (random crops with 4-pixel padding, horizontal flips) and ``lr_schedule="cosine"`` make the
    improved recipe.
    """

    epochs: int = 50
    batch_size: int = 128
    learning_rate: float = 1e-3
    patience: int = 7
    validation: str = "split"
    val_fraction: float = 0.1
    bn_momentum: float | str = "auto"
    augment: bool = False
    lr_schedule: str = "constant"

    def __post_init__(self) -> None:
        _at_least("epochs", self.epochs, 1)
        _at_least("batch size", self.batch_size, 1)
        _at_least("patience", self.patience, 1)
        if not self.learning_rate > 0:
            raise ConfigError(f"learning rate must be positive, got {self.learning_rate}")
        _one_of("validation", self.validation, VALIDATIONS)
        _one_of("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"val_fraction must lie in (0, 1), got {self.val_fraction}")
        if self.bn_momentum != "auto" and not (
            isinstance(self.bn_momentum, int | float) and 0 < self.bn_momentum <= 1
        ):
            raise ConfigError(
                f"bn_momentum must be 'auto' or lie in (0, 1], got {self.bn_momentum!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingConfig:
        """The inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown training options: {', '.join(unknown)}")
        return cls(**values)

    def with_options(self, **options: Any) -> TrainingConfig:
        """A copy with the options that are not None replaced (the command line's overrides)."""
        return replace(self, **{k: v for k, v in options.items() if v is not None})


def resolve_model_name(name: str, *, warn: bool = True) -> str:
    """The registry name ``name`` stands for: an earlier name is mapped to its new one.

    ``seed-cnn`` becomes ``article-cnn``, with a :class:`~latent_atlas.errors.RenamedWarning`
    (a ``DeprecationWarning``) unless ``warn`` is False (as for a checkpoint saved under the old
    name, which its user cannot respell). Any other name is returned as it is.
    """
    new = MODEL_ALIASES.get(name)
    if new is None:
        return name
    if warn:
        warnings.warn(
            f"model {name!r} is now called {new!r}; use {new!r} (the old name will go)",
            RenamedWarning,
            stacklevel=3,
        )
    return new


def _at_least(what: str, value: int, low: int) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise ConfigError(f"{what} must be a whole number, got {value!r}")
    if value < low:
        raise ConfigError(f"{what} must be at least {low}, got {value}")


def _one_of(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{what} must be one of {', '.join(choices)}, got {value!r}")


RECIPES: dict[str, TrainingConfig] = {
    "article": TrainingConfig(),
    "improved": TrainingConfig(augment=True, lr_schedule="cosine"),
}


def recipe(name: str) -> TrainingConfig:
    """The named training recipe (``"article"`` or ``"improved"``)."""
    try:
        return RECIPES[name]
    except KeyError:
        raise ConfigError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}") from None
