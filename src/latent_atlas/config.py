"""The options of a run, as frozen dataclasses that check themselves before any work starts.

``RunConfig`` (what ``latent-atlas run`` does) holds a ``MapConfig`` (what the map stage does
with a latent space: methods, their parameters, the seed, which split is fitted and which is
shown, the metrics) which holds an ``AtlasConfig`` (how atlases are built and drawn).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from latent_atlas.atlas import build_atlas
from latent_atlas.errors import ConfigError
from latent_atlas.largedata import LargeDataRecipe
from latent_atlas.preprocess import Preprocess
from latent_atlas.reducers import REDUCERS, get_reducer

DEFAULT_METHODS = ("pca", "tsne", "umap")
SPLITS = ("test", "train")
# the training options RunConfig checks before torch loads; training.py (which imports torch)
# keeps the same tuples, and a test holds them and the CLI's choices equal
VALIDATIONS = ("split", "test")
LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class AtlasConfig:
    """How to build and draw an image atlas (see :func:`latent_atlas.build_atlas`)."""

    mode: str = "nearest"
    grid: int | tuple[int, int] = 20
    max_distance: float | str | None = "auto"
    min_count: int = 1
    tile: int = 32
    border: int = 0
    mark_errors: bool = False

    def check(self) -> None:
        # building a 1-point atlas runs every parameter check of build_atlas
        build_atlas(
            np.zeros((1, 2)),
            self.grid,
            mode=self.mode,
            max_distance=self.max_distance,
            min_count=self.min_count,
        )
        if self.tile < 1:
            raise ConfigError(f"tile must be at least 1 pixel, got {self.tile}")
        if self.border < 0 or 2 * self.border >= self.tile:
            raise ConfigError(f"border must lie in 0..{(self.tile - 1) // 2} pixels")

    def stem(self, method: str) -> str:
        """``atlas_<method>`` for the seed's mode, else ``atlas_<method>_<mode>``."""
        return f"atlas_{method}" if self.mode == "nearest" else f"atlas_{method}_{self.mode}"


@dataclass(frozen=True)
class MapConfig:
    """What the map stage does with a latent space.

    ``fit_on`` names the split each map is fitted on and ``show`` the split it shows; when they
    differ (``run --fit-on train --show test``) the shown points are placed into the fitted map
    with ``transform``. ``metrics_k`` and ``metrics_max_samples`` shape the comparison.
    """

    methods: tuple[str, ...] = DEFAULT_METHODS
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: int = 0
    fit_on: str = "test"
    show: str = "test"
    metrics_k: int = 10
    metrics_max_samples: int | None = 10_000
    atlas: AtlasConfig = field(default_factory=AtlasConfig)
    large: LargeDataRecipe = field(default_factory=LargeDataRecipe)

    @property
    def transform_needed(self) -> bool:
        return self.fit_on != self.show

    def check(self) -> None:
        if not self.methods:
            raise ConfigError("no methods given")
        if len(set(self.methods)) != len(self.methods):
            raise ConfigError(f"methods repeat: {', '.join(self.methods)}")
        for split in (self.fit_on, self.show):
            if split not in SPLITS:
                raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        for m in self.methods:  # fail on unknown names or parameters before any work
            reducer = get_reducer(m, **self.method_params.get(m, {}))
            if self.transform_needed and not reducer.supports_transform:
                able = [n for n, c in REDUCERS.items() if c.supports_transform]
                raise ConfigError(
                    f"{m} cannot place new points into a fitted map, which --fit-on "
                    f"{self.fit_on} --show {self.show} needs; methods that can: {', '.join(able)}"
                )
        if self.metrics_k < 1:
            raise ConfigError(f"metrics k must be at least 1, got {self.metrics_k}")
        if self.metrics_max_samples is not None and self.metrics_max_samples < 10:
            raise ConfigError("metrics need a sample of at least 10 points")
        self.atlas.check()
        self.large.check()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["methods"] = list(self.methods)
        return d


@dataclass(frozen=True)
class RunConfig:
    """Everything ``latent-atlas run`` needs; the defaults reproduce the seed on ``digits``.

    ``model`` is a registry name (``"seed-cnn"``: trained on the data set) or a model to load
    and use as it is, without training (see :func:`latent_atlas.backends.load_model`): a
    TorchScript, latent-atlas checkpoint, ``.onnx`` or ``.keras`` file, or
    ``package.module:factory`` called with ``model_args`` and given the state dict in
    ``checkpoint``. ``preprocess`` says how images are prepared for such a model; the seed CNN
    always takes pixels scaled to [0, 1].
    """

    dataset: str = "digits"
    data_dir: str | None = None
    limit: int | None = None
    model: str = "seed-cnn"
    epochs: int = 50
    batch_size: int = 128
    validation: str = "split"
    augment: bool = False
    lr_schedule: str = "constant"
    layer: str = "dense"
    pool: str = "avg"
    threads: int | None = None
    maps: MapConfig = field(default_factory=MapConfig)
    checkpoint: str | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    preprocess: Preprocess = field(default_factory=Preprocess)

    @property
    def seed(self) -> int:
        return self.maps.seed

    @property
    def external_model(self) -> bool:
        """True when ``model`` is loaded rather than trained."""
        from latent_atlas.backends.base import classify_spec

        return classify_spec(self.model) != "name"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["maps"] = self.maps.to_dict()
        d["preprocess"] = self.preprocess.to_dict()
        return d

    def check(self) -> None:
        from latent_atlas.backends.base import check_spec
        from latent_atlas.datasets import available_datasets

        if self.dataset not in available_datasets():
            raise ConfigError(
                f"unknown dataset {self.dataset!r}; choose one of {', '.join(available_datasets())}"
            )
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be at least 1, got {self.limit}")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {self.batch_size}")
        if self.validation not in VALIDATIONS:
            raise ConfigError(
                f"validation must be one of {', '.join(VALIDATIONS)}, got {self.validation!r}"
            )
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(
                f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}"
            )
        self.preprocess.check()
        if self.external_model:
            check_spec(self.model, self.checkpoint, self.model_args)
        elif self.checkpoint is not None or self.model_args:
            raise ConfigError(
                "--checkpoint and --model-args go with --model package.module:factory, "
                f"not with {self.model!r}"
            )
        elif not self.preprocess.is_default:
            raise ConfigError(
                f"preprocessing options apply to a model you bring (--model FILE); {self.model} "
                "is trained here on pixels scaled to [0, 1]"
            )
        self.maps.check()
