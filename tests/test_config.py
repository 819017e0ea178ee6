"""Run options: checked when made, from one source, names or estimators alike."""

from __future__ import annotations

from dataclasses import fields

import pytest
from sklearn.decomposition import PCA

from latent_atlas.config import AtlasConfig, MapConfig, MapSpec, RunConfig
from latent_atlas.errors import ConfigError, RenamedWarning
from latent_atlas.recipes import RECIPES, TrainingConfig, recipe


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: TrainingConfig(epochs=0), "epochs"),
        (lambda: TrainingConfig(lr_schedule="step"), "lr_schedule"),
        (lambda: TrainingConfig(validation="holdout"), "validation"),
        (lambda: TrainingConfig(val_fraction=1.0), "val_fraction"),
        (lambda: TrainingConfig(bn_momentum=2.0), "bn_momentum"),
        (lambda: AtlasConfig(mode="spiral"), "mode"),
        (lambda: AtlasConfig(tile=4, border=2), "border"),
        (lambda: MapConfig(methods=()), "no methods"),
        (lambda: MapConfig(methods=("pca", "pca")), "repeat"),
        (lambda: MapConfig(methods=("nope",)), "unknown method"),
        (lambda: MapConfig(method_params={"tsne": {"perplexityy": 3}}), "perplexityy"),
        (lambda: MapConfig(method_params={"isomap": {"n_neighbors": 3}}), "not made"),
        (lambda: MapConfig(methods=("tsne-sklearn",), fit_on="train"), "cannot place"),
        (lambda: MapConfig(metrics_k=0), "metrics k"),
        (lambda: RunConfig(dataset="imagenet"), "unknown dataset"),
        (lambda: RunConfig(limit=0), "limit"),
        (lambda: RunConfig(pool="median"), "pooling"),
        (lambda: RunConfig(model="missing.onnx"), "does not exist"),
        (lambda: RunConfig(checkpoint="w.pt"), "--checkpoint"),
    ],
)
def test_configs_refuse_bad_values_when_made(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_recipes_are_training_configs():
    assert recipe("article") == TrainingConfig()
    assert recipe("improved").augment and recipe("improved").lr_schedule == "cosine"
    assert TrainingConfig().with_options(epochs=3, augment=None).epochs == 3
    assert TrainingConfig.from_dict(RECIPES["improved"].to_dict()) == RECIPES["improved"]
    with pytest.raises(ConfigError, match="unknown recipe"):
        recipe("fast")
    with pytest.raises(ConfigError, match="unknown training options: lr"):
        TrainingConfig.from_dict({"lr": 1})


def test_training_options_come_from_one_dataclass():
    """Every training option of the command line is a TrainingConfig field, by its dest,
    and the run's recorded configuration (hence its step keys) holds every field."""
    from latent_atlas.cli import build_parser

    parser = build_parser()
    run = parser._subparsers._group_actions[0].choices["run"]
    group = next(g for g in run._action_groups if g.title and g.title.startswith("training"))
    dests = {a.dest for a in group._group_actions} - {"recipe"}
    names = {f.name for f in fields(TrainingConfig)}
    assert dests and dests <= names
    assert set(RunConfig().to_dict()["training"]) == names


def test_old_model_name_is_renamed_with_a_note():
    with pytest.warns(RenamedWarning, match="'seed-cnn' is now called 'article-cnn'"):
        config = RunConfig(model="seed-cnn")
    assert config.model == "article-cnn"


def test_maps_take_names_instances_and_pairs():
    cfg = MapConfig(methods=("pca", PCA(n_components=2), ("wide", PCA(whiten=True))), seed=7)
    names = [s.name for s in cfg.maps]
    assert names == ["pca", "pca-2", "wide"]
    assert cfg.maps[1].method_name == "sklearn.decomposition._pca.PCA"


def test_instance_maps_get_the_run_seed_and_are_cloned():
    spec = MapSpec("p", PCA(n_components=2))
    made = spec.make(seed=5)
    assert made is not spec.method and made.random_state == 5
    assert spec.method.random_state is None  # the user's instance is left as it was
    kept = MapSpec("p", PCA(n_components=2, random_state=1)).make(seed=5)
    assert kept.random_state == 1  # a seed the user chose is kept
    assert spec.key()["method"] == "sklearn.decomposition._pca.PCA"
    assert spec.key() != MapSpec("p", PCA(n_components=2, whiten=True)).key()
    with pytest.raises(ConfigError, match="not an estimator"):
        MapSpec("x", object())
    with pytest.raises(ConfigError, match="map name"):
        MapSpec("bad name", "pca")


def test_registry_maps_always_get_the_run_seed():
    made = MapSpec("tsne", "tsne", {"perplexity": 20}).make(seed=9)
    assert made.random_state == 9 and made.perplexity == 20


def test_config_dicts_are_plain_and_stable():
    a, b = RunConfig().to_dict(), RunConfig().to_dict()
    assert a == b and a["maps"]["methods"] == ["pca", "tsne", "umap"]
    assert a["training"] == TrainingConfig().to_dict()
    custom = MapConfig(methods=(("p", PCA()),)).to_dict()["methods"][0]
    assert custom["name"] == "p" and custom["method"].endswith("PCA")
