"""The options of a run, as frozen dataclasses that check themselves when they are made.

``RunConfig`` (what ``latent-atlas run`` does) holds a :class:`~latent_atlas.recipes.TrainingConfig`
(how a model is trained here) and a ``MapConfig`` (what the map stage does with each latent
space: its maps, the seed, which split is fitted and which is shown, the metrics), which holds
an ``AtlasConfig`` (how atlases are built and drawn). A map is a :class:`MapSpec`: a name (its
files, columns and steps are called after it) and a method, given as a registry name or as any
estimator instance with ``fit_transform``.

Step keys are made from these objects (``to_dict``/:meth:`MapSpec.key`), never from lists kept
by hand.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from latent_atlas.atlas import check_options
from latent_atlas.errors import ConfigError
from latent_atlas.largedata import LargeDataRecipe
from latent_atlas.preprocess import Preprocess
from latent_atlas.recipes import ARTICLE_MODEL, TrainingConfig, resolve_model_name
from latent_atlas.reducers import REDUCERS, get_reducer, reducer_class

DEFAULT_METHODS = ("pca", "tsne", "umap")
SPLITS = ("test", "train")
POOLS = ("avg", "max", "flatten")
PIXELS = "pixels"  # a frame of the input pixels themselves (not a layer of the model)
ALL_LAYERS = "all"  # every layer of the model (see LoadedModel.sweep_layers)
BEST = "best"  # the snapshot of the trained model (the weights training restores)
_MAP_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,39}")


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

    def __post_init__(self) -> None:
        check_options(self.grid, self.mode, self.max_distance, self.min_count)
        if self.tile < 1:
            raise ConfigError(f"tile must be at least 1 pixel, got {self.tile}")
        if self.border < 0 or 2 * self.border >= self.tile:
            raise ConfigError(f"border must lie in 0..{(self.tile - 1) // 2} pixels")

    def stem(self, map_name: str) -> str:
        """``atlas_<map>`` for the article's mode, else ``atlas_<map>_<mode>``."""
        return f"atlas_{map_name}" if self.mode == "nearest" else f"atlas_{map_name}_{self.mode}"


@dataclass(frozen=True)
class MapSpec:
    """One map of a latent space: ``name`` and a ``method`` (registry name or estimator).

    ``params`` are set on the method before it is fitted. An estimator instance is cloned
    (scikit-learn's ``clone``) for each fit, so one instance serves several spaces.
    """

    name: str
    method: Any
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _MAP_NAME.fullmatch(self.name):
            raise ConfigError(
                f"map name {self.name!r}: use up to 40 letters, digits and '-', starting with a "
                "letter (it names files and columns)"
            )
        if isinstance(self.method, str):
            reducer_class(self.method, self.params)  # unknown names and parameters fail here
        elif not hasattr(self.method, "fit_transform") or not hasattr(self.method, "get_params"):
            raise ConfigError(
                f"map {self.name!r}: {type(self.method).__name__} is not an estimator "
                "(it needs get_params and fit_transform)"
            )

    @property
    def method_name(self) -> str:
        """The registry name, or ``module.Class`` of an instance."""
        if isinstance(self.method, str):
            return self.method
        return f"{type(self.method).__module__}.{type(self.method).__qualname__}"

    @property
    def supports_transform(self) -> bool:
        cls = reducer_class(self.method) if isinstance(self.method, str) else type(self.method)
        return bool(getattr(cls, "supports_transform", hasattr(cls, "transform")))

    def make(self, seed: int) -> Any:
        """A fresh, unfitted estimator for this map, seeded with ``seed`` where it takes one.

        A registry method always gets the run's seed; an instance keeps a ``random_state`` it
        was given and gets the run's seed where it has none, and ``n_components=None`` becomes
        2 (a map has two dimensions).
        """
        if isinstance(self.method, str):
            reducer = get_reducer(self.method, **self.params)
            if "random_state" in reducer.get_params():
                reducer.set_params(random_state=seed)
            return reducer
        from sklearn.base import clone

        reducer = clone(self.method)
        if self.params:
            reducer.set_params(**self.params)
        given = reducer.get_params(deep=False)
        if "random_state" in given and given["random_state"] is None:
            reducer.set_params(random_state=seed)
        if "n_components" in given and given["n_components"] is None:
            reducer.set_params(n_components=2)  # scikit-learn's PCA() keeps every component
        return reducer

    def key(self) -> dict[str, Any]:
        """What the map depends on: the method and every parameter it was made with."""
        if isinstance(self.method, str):
            return {"method": self.method, "params": self.params}
        params = {**self.method.get_params(deep=False), **self.params}
        return {"method": self.method_name, "params": params}


def as_map_specs(
    methods: Sequence[Any] | Mapping[str, Any], params: Mapping[str, dict[str, Any]]
) -> tuple[MapSpec, ...]:
    """Map specs from names, estimators, ``(name, estimator)`` pairs or a name → method dict.

    An estimator without a name is called after its class (``pca``, ``myreducer``), with
    ``-2``, ``-3``... where that name is taken.
    """
    items = list(methods.items()) if isinstance(methods, Mapping) else list(methods)
    taken = {i if isinstance(i, str) else getattr(i, "name", None) for i in items}
    taken |= {i[0] for i in items if isinstance(i, tuple) and len(i) == 2}
    specs = []
    for item in items:
        if isinstance(item, MapSpec):
            specs.append(item)
            continue
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            name, method = item
        elif isinstance(item, str):
            name, method = item, item
        else:
            name, method = _free_name(_default_name(item), taken), item
            taken.add(name)
        specs.append(MapSpec(name, method, dict(params.get(name, {}))))
    return tuple(specs)


def _free_name(name: str, taken: set[Any]) -> str:
    if name not in taken:
        return name
    n = 2
    while f"{name}-{n}" in taken:
        n += 1
    return f"{name}-{n}"


def _default_name(estimator: Any) -> str:
    """``tsne`` for a registered reducer, else the class name in lower case (``pca`` for
    scikit-learn's PCA, ``myreducer`` for ``MyReducer``)."""
    for name, cls in REDUCERS.items():
        if type(estimator) is cls:
            return name
    return re.sub(r"[^a-z0-9-]", "", type(estimator).__name__.lower()) or "map"


@dataclass(frozen=True)
class MapConfig:
    """What the map stage does with a latent space.

    ``methods`` are registry names (``"tsne"``), estimator instances, ``(name, estimator)``
    pairs or :class:`MapSpec` objects; ``method_params`` sets parameters by map name.
    ``fit_on`` names the split each map is fitted on and ``show`` the split it shows; when they
    differ (``run --fit-on train --show test``) the shown points are placed into the fitted map
    with ``transform``. ``metrics_k`` and ``metrics_max_samples`` shape the comparison.
    """

    methods: Sequence[Any] = DEFAULT_METHODS
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: int = 0
    fit_on: str = "test"
    show: str = "test"
    metrics_k: int = 10
    metrics_max_samples: int | None = 10_000
    atlas: AtlasConfig = field(default_factory=AtlasConfig)
    large: LargeDataRecipe = field(default_factory=LargeDataRecipe)
    align: bool = True  # maps of several frames (layers, epochs, models): each one aligned

    def __post_init__(self) -> None:
        specs = as_map_specs(self.methods, self.method_params)
        object.__setattr__(self, "_specs", specs)
        names = [s.name for s in specs]
        if not specs:
            raise ConfigError("no methods given")
        if len(set(names)) != len(names):
            raise ConfigError(f"map names repeat: {', '.join(names)}")
        unknown = sorted(set(self.method_params) - set(names))
        if unknown:
            raise ConfigError(f"parameters for maps that are not made: {', '.join(unknown)}")
        for split in (self.fit_on, self.show):
            if split not in SPLITS:
                raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        for spec in specs:
            if self.transform_needed and not spec.supports_transform:
                able = [n for n, c in REDUCERS.items() if c.supports_transform]
                raise ConfigError(
                    f"{spec.name} cannot place new points into a fitted map, which --fit-on "
                    f"{self.fit_on} --show {self.show} needs; methods that can: {', '.join(able)}"
                )
        if self.metrics_k < 1:
            raise ConfigError(f"metrics k must be at least 1, got {self.metrics_k}")
        if self.metrics_max_samples is not None and self.metrics_max_samples < 10:
            raise ConfigError("metrics need a sample of at least 10 points")

    @property
    def maps(self) -> tuple[MapSpec, ...]:
        """Every map to make, in order."""
        return self._specs  # type: ignore[attr-defined,no-any-return]

    @property
    def transform_needed(self) -> bool:
        return self.fit_on != self.show

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "methods"}
        d["methods"] = [_spec_dict(s) for s in self.maps]
        d["method_params"] = {s.name: s.params for s in self.maps if s.params}
        return d


def check_snapshots(
    snapshots: Sequence[int | str], training: TrainingConfig
) -> tuple[int | str, ...]:
    """The snapshot epochs in order (ints, then ``"best"``), or one error for one that cannot be."""
    epochs: set[int] = set()
    best = False
    for value in snapshots:
        if value == BEST:
            best = True
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"snapshot epochs are whole numbers from 0 or 'best', got {value!r}")
        if value > training.epochs:
            raise ConfigError(
                f"snapshot epoch {value} is beyond the training's end ({training.epochs} epochs)"
            )
        epochs.add(value)
    return (*sorted(epochs), *((BEST,) if best else ()))


def _spec_dict(spec: MapSpec) -> str | dict[str, Any]:
    """A map as the run's recorded configuration shows it: its name when that is the method."""
    if isinstance(spec.method, str) and spec.method == spec.name:
        return spec.name
    return {"name": spec.name, **spec.key()}


@dataclass(frozen=True)
class RunConfig:
    """Everything ``latent-atlas run`` needs; the defaults reproduce the article on ``digits``.

    ``model`` is a registry name (``"article-cnn"``: trained here with ``training``) or a model
    to load and use as it is, without training (see :func:`latent_atlas.backends.load_model`): a
    TorchScript, latent-atlas checkpoint, ``.onnx`` or ``.keras`` file, or
    ``package.module:factory`` called with ``model_args`` and given the state dict in
    ``checkpoint``. ``preprocess`` says how images are prepared for such a model; the article's
    network always takes pixels scaled to [0, 1]. ``fold_batchnorm`` runs a PyTorch model you
    bring as the network trained here always runs: BatchNorm folded into the convolutions,
    channels-last (about twice as fast on the CPU; activations within about 1e-5).
    """

    dataset: str = "digits"
    data_dir: str | None = None
    limit: int | None = None
    model: str = ARTICLE_MODEL
    training: TrainingConfig = field(default_factory=TrainingConfig)
    layer: str = "dense"
    pool: str = "avg"
    threads: int | None = None
    maps: MapConfig = field(default_factory=MapConfig)
    checkpoint: str | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    preprocess: Preprocess = field(default_factory=Preprocess)
    fold_batchnorm: bool = False
    layers: tuple[str, ...] = ()  # several layers, one latent space each ("all", "pixels")
    snapshots: tuple[int | str, ...] = ()  # epochs (0: untrained) and "best"
    snapshot_layers: tuple[str, ...] = ()  # the layers kept at the snapshots (default: layers)

    def __post_init__(self) -> None:
        from latent_atlas.datasets import available_datasets

        object.__setattr__(self, "model", resolve_model_name(self.model))
        if self.dataset not in available_datasets():
            raise ConfigError(
                f"unknown dataset {self.dataset!r}; choose one of {', '.join(available_datasets())}"
            )
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be at least 1, got {self.limit}")
        if self.data_dir is not None and not Path(self.data_dir).expanduser().exists():
            raise ConfigError(f"{self.dataset}: {self.data_dir} does not exist")
        if self.pool not in POOLS:
            raise ConfigError(f"unknown pooling {self.pool!r}; choose one of {', '.join(POOLS)}")
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "snapshot_layers", tuple(self.snapshot_layers))
        object.__setattr__(self, "snapshots", check_snapshots(self.snapshots, self.training))
        self._check_model()
        self._check_snapshots()

    def _check_snapshots(self) -> None:
        if not self.snapshots:
            if self.snapshot_layers:
                raise ConfigError("--snapshot-layers go with --snapshots EPOCHS")
            return
        if self.external_model:
            raise ConfigError(
                f"--snapshots keep activations during training; {self.model} is used as it is"
            )
        if self.maps.transform_needed:
            raise ConfigError("--snapshots keep the shown split; --fit-on/--show do not apply")

    @property
    def frame_layers(self) -> tuple[str, ...]:
        """The layers mapped at the end of the run (``layers``, else ``layer``), as given."""
        return self.layers or (self.layer,)

    def _check_model(self) -> None:
        from latent_atlas.backends.base import check_spec

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
        elif self.fold_batchnorm:
            raise ConfigError(
                f"--fold-batchnorm applies to a model you bring; {self.model}, trained here, "
                "always runs with BatchNorm folded"
            )

    @property
    def seed(self) -> int:
        """The run's seed: data subsets, training, every map, metric samples, the viewer."""
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
        d["training"] = self.training.to_dict()
        return d
