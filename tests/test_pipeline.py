"""The library calls behind the command line, from Python, as a notebook user makes them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA

import latent_atlas
from latent_atlas.config import MapConfig, RunConfig
from latent_atlas.pipeline import default_run_dir, project_features, run_pipeline
from latent_atlas.recipes import TrainingConfig
from latent_atlas.runs import RunDir


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return x[:300].astype(np.float32), y[:300]


def test_the_package_root_has_what_a_notebook_needs():
    for name in (
        "RunConfig",
        "MapConfig",
        "AtlasConfig",
        "TrainingConfig",
        "run_pipeline",
        "project_features",
        "LatentSpace",
        "Reducer",
        "build_viewer",
        "ViewerData",
        "ScatterDisplay",
        "ComparisonDisplay",
        "QualityDisplay",
        "DensityDisplay",
        "RunDir",
        "load_model",
        "get_reducer",
    ):
        assert name in latent_atlas.__all__, name
        assert getattr(latent_atlas, name) is not None


def test_project_with_estimator_instances(digits, tmp_path):
    x, y = digits
    maps = MapConfig(methods=("pca", ("whitened", PCA(whiten=True))), seed=2)
    summary = project_features(x, y, out=tmp_path / "p", maps=maps)
    assert list(summary.methods) == ["pca", "whitened"]
    assert summary.methods["whitened"]["params"]["random_state"] == 2
    space = RunDir.open(tmp_path / "p").space()
    assert space.name == "features" and space.path == tmp_path / "p"
    assert set(space.map_names) == {"pca", "whitened"}
    assert space.file("viewer.html").is_file()
    # the same call again reuses every step
    before = space.file("embedding_whitened.npy").stat().st_mtime_ns
    project_features(x, y, out=tmp_path / "p", maps=maps)
    assert space.file("embedding_whitened.npy").stat().st_mtime_ns == before


@pytest.mark.slow
def test_project_several_spaces_of_the_same_images(digits, tmp_path):
    x, y = digits
    summary = project_features(
        {"all": x, "top": x[:, :24]}, y, out=tmp_path / "two", maps=MapConfig(methods=("pca",))
    )
    assert [s.name for s in summary.spaces] == ["all", "top"]
    assert [s.n_features for s in summary.spaces] == [64, 24]
    text = summary.format()
    assert "space all:" in text and "space top:" in text
    run = RunDir.open(tmp_path / "two")
    assert [s.path.name for s in run.spaces()] == ["all", "top"]


def test_default_run_dir_follows_the_config():
    a = default_run_dir(RunConfig())
    assert a == default_run_dir(RunConfig()) and a.parent.name == "runs"
    assert a.name.startswith("digits-")
    assert default_run_dir(RunConfig(training=TrainingConfig(epochs=3))) != a
    assert default_run_dir(RunConfig(maps=MapConfig(seed=1))) != a


@pytest.mark.slow
def test_run_pipeline_from_python_with_a_users_reducer(tmp_path):
    config = RunConfig(
        limit=200,
        training=TrainingConfig(epochs=2),
        maps=MapConfig(methods=(PCA(),), seed=3),
    )
    summary = run_pipeline(config, tmp_path / "r", progress=False)
    assert summary.training["epochs_run"] == 2 and list(summary.methods) == ["pca"]
    run = summary.run
    assert run.seed == 3 and run.space().name == "dense"
    assert run.space().maps["pca"]["method"] == "sklearn.decomposition._pca.PCA"
    assert np.load(run.space().file("activations.npy")).shape == (200, 128)


@pytest.mark.slow
def test_other_features_into_the_same_directory_are_never_mixed_up(digits, tmp_path):
    x, y = digits
    maps = MapConfig(methods=("pca",))
    project_features({"a": x}, y, out=tmp_path / "o", maps=maps)
    project_features({"b": x[:, :16]}, y, out=tmp_path / "o", maps=maps)
    project_features({"a": x}, y, out=tmp_path / "o", maps=maps)
    run = RunDir.open(tmp_path / "o")
    assert run.space_names == ["a"]
    np.testing.assert_array_equal(np.load(run.space("a").file("activations.npy")), x)
    assert np.load(run.space("a").file("embedding_pca.npy")).shape == (300, 2)


@pytest.mark.slow
def test_a_users_estimator_is_refitted_when_its_parameters_change(digits, tmp_path):
    x, y = digits
    plain = MapConfig(methods=(("p", PCA()),))
    whitened = MapConfig(methods=(("p", PCA()),), method_params={"p": {"whiten": True}})
    project_features(x, y, out=tmp_path / "w", maps=plain)
    first = np.load(tmp_path / "w" / "embedding_p.npy")
    project_features(x, y, out=tmp_path / "w", maps=whitened)
    second = np.load(tmp_path / "w" / "embedding_p.npy")
    assert not np.allclose(first, second)
    np.testing.assert_allclose(second.std(axis=0), 1.0, rtol=1e-2)  # whitened
