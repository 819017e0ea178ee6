"""The map stage on its own: one latent space of a run directory, maps of any estimator."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import BaseEstimator
from sklearn.datasets import load_digits

from latent_atlas.config import AtlasConfig, MapConfig
from latent_atlas.errors import ConfigError
from latent_atlas.latent import LatentSpace
from latent_atlas.mapfit import fit_map
from latent_atlas.maps import atlas_for_run, map_space
from latent_atlas.runs import RunDir


class FirstTwo(BaseEstimator):
    """A user's own reducer: the first two columns, scaled. Counts its fits."""

    fits = 0

    def __init__(self, scale: float = 1.0, random_state=None):
        self.scale = scale
        self.random_state = random_state

    def fit_transform(self, X, y=None):
        type(self).fits += 1
        self.seen_ = len(X)
        return np.asarray(X)[:, :2] * self.scale


@pytest.fixture
def space(tmp_path):
    x, y = load_digits(return_X_y=True)
    images = (load_digits().images * 15).astype(np.uint8)
    latent = LatentSpace(
        x[:200].astype(np.float32), y[:200], [str(i) for i in range(10)], images=images[:200]
    )
    run = RunDir.create(tmp_path / "run", command="project", config={}, seed=4)
    run.set(dataset={"class_names": latent.class_names})
    found = run.add_space("pixels", source={})
    outputs = latent.save(found.path)
    found.steps.finish("features", {"x": latent.features}, outputs, 0.0)
    return found, latent


def test_a_users_estimator_reaches_maps_metrics_and_atlases(space):
    found, latent = space
    config = MapConfig(
        methods=("pca", ("mine", FirstTwo(scale=2.0))), seed=4, atlas=AtlasConfig(grid=5)
    )
    maps = map_space(found, latent, config)
    assert list(maps) == ["pca", "mine"]
    emb = np.load(found.file("embedding_mine.npy"))
    np.testing.assert_allclose(emb, latent.features[:, :2] * 2.0)
    assert maps["mine"]["method"] == "tests.test_maps.FirstTwo"
    assert maps["mine"]["params"] == {"scale": 2.0, "random_state": 4}  # the run's seed
    assert maps["mine"]["effective"] == {"seen_": 200}
    assert 0 < maps["mine"]["scores"]["trustworthiness"] <= 1
    assert found.file("atlas_mine.png").is_file() and "atlas_mine" in found.atlases
    assert found.file("scatter_mine.png").is_file()
    assert (
        "mine_x"
        in __import__("pyarrow.parquet")
        .parquet.read_table(found.file("projections.parquet"))
        .column_names
    )


def test_finished_maps_are_reused_and_changed_ones_refitted(space):
    found, latent = space
    FirstTwo.fits = 0
    config = MapConfig(methods=(("mine", FirstTwo()),), seed=1)
    spec = config.maps[0]
    first, _ = fit_map(found, latent, spec, config)
    again, _ = fit_map(found, latent, spec, config)
    assert FirstTwo.fits == 1 and np.array_equal(first, again)
    other = MapConfig(methods=(("mine", FirstTwo(scale=3.0)),), seed=1)
    fit_map(found, latent, other.maps[0], other)
    assert FirstTwo.fits == 2  # another parameter: another key


def test_a_map_must_be_two_dimensional(space):
    found, latent = space
    config = MapConfig(methods=(("three", FirstTwo()),))

    class ThreeD(FirstTwo):
        def fit_transform(self, X, y=None):
            return np.asarray(X)[:, :3]

    config = MapConfig(methods=(("three", ThreeD()),))
    with pytest.raises(ConfigError, match="not N×2"):
        fit_map(found, latent, config.maps[0], config)


def test_atlas_for_a_finished_run_appends_to_its_history(space):
    found, latent = space
    map_space(found, latent, MapConfig(methods=("pca",), atlas=AtlasConfig(grid=4)))
    info = atlas_for_run(found.run.path, "pca", AtlasConfig(mode="grid", grid=6), space="pixels")
    assert info["path"] == found.file("atlas_pca_grid.png") and info["filled"] == 36
    run = RunDir.open(found.run.path)
    assert run.history[-1]["command"] == "atlas" and run.command == "project"
    assert set(run.space("pixels").atlases) == {"atlas_pca", "atlas_pca_grid"}
    with pytest.raises(ConfigError, match="no 'umap' map; it has: pca"):
        atlas_for_run(found.run.path, "umap")


@pytest.mark.slow
def test_maps_fitted_here_are_scored_and_drawn_while_another_is_fitted_beside(
    tmp_path, monkeypatch
):
    """While UMAP is fitted in a second process the maps already fitted are scored and drawn;
    every file and score is what the run gives with every map fitted here."""
    import latent_atlas.maps as maps_module
    from latent_atlas import mapfit

    def run_space(name):
        x, y = load_digits(return_X_y=True)
        images = (load_digits().images * 15).astype(np.uint8)
        latent = LatentSpace(
            x[:300].astype(np.float32), y[:300], [str(i) for i in range(10)], images=images[:300]
        )
        run = RunDir.create(tmp_path / name, command="project", config={}, seed=4)
        run.set(dataset={"class_names": latent.class_names})
        found = run.add_space("pixels", source={})
        found.steps.finish("features", {"x": latent.features}, latent.save(found.path), 0.0)
        config = MapConfig(methods=("pca", "tsne", "umap"), seed=4, atlas=AtlasConfig(grid=6))
        return found, map_space(found, latent, config)

    here_space, here = run_space("here")
    monkeypatch.setattr(mapfit, "DETACH_MIN_POINTS", 0)
    monkeypatch.setattr(mapfit, "available_cores", lambda: 2)
    waited = []
    real_draw = maps_module._draw_each
    monkeypatch.setattr(
        maps_module,
        "_draw_each",
        lambda space, latent, embs, config: (
            waited.append(list(embs)) or real_draw(space, latent, embs, config)
        ),
    )
    beside_space, beside = run_space("beside")
    assert waited[0] == ["pca", "tsne"]  # (drawn while UMAP was fitted)
    for m in ("pca", "tsne", "umap"):
        assert beside[m]["scores"] == here[m]["scores"]
    for file in ("atlas_umap.parquet", "atlas_tsne.png", "scatter_pca.png", "metrics.md"):
        assert beside_space.file(file).read_bytes() == here_space.file(file).read_bytes(), file

    def scores_csv(space):  # (but for the fit times)
        rows = [r.split(",") for r in space.file("metrics.csv").read_text().splitlines()]
        at = rows[0].index("fit_seconds")
        return [r[:at] + r[at + 1 :] for r in rows]

    assert scores_csv(beside_space) == scores_csv(here_space)
    from latent_atlas.trust import read_trust

    a, b = (
        read_trust(here_space.file("trust.parquet")),
        read_trust(beside_space.file("trust.parquet")),
    )
    assert list(a.kept) == list(b.kept) == ["pca", "tsne", "umap"]
    for m in a.kept:
        np.testing.assert_array_equal(a.kept[m], b.kept[m])
        np.testing.assert_array_equal(a.reading[m], b.reading[m])
