"""Where maps are fitted: here, or a seeded UMAP beside the others in a second process."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits

import latent_atlas.mapfit as mapfit
from latent_atlas import beside as second_process
from latent_atlas.config import MapConfig
from latent_atlas.latent import LatentSpace
from latent_atlas.reducers import UMAPReducer
from latent_atlas.runs import RunDir


def _space(tmp_path, name: str, n: int = 400):
    x, y = load_digits(return_X_y=True)
    latent = LatentSpace(x[:n].astype(np.float32), y[:n], [str(i) for i in range(10)])
    run = RunDir.create(tmp_path / name, command="project", config={}, seed=3)
    run.set(dataset={"class_names": latent.class_names})
    found = run.add_space("pixels", source={})
    found.steps.finish("features", {"x": latent.features}, latent.save(found.path), 0.0)
    return found, latent


def _jobs(tmp_path, methods, seed=3, n=400):
    found, latent = _space(tmp_path, f"run-{'-'.join(methods)}-{seed}", n)
    config = MapConfig(methods=methods, seed=seed)
    return [mapfit._prepare(found, latent, s, config, None) for s in config.maps]


@pytest.mark.parametrize(
    ("methods", "cores", "n", "detached"),
    [
        (("pca", "tsne", "umap"), 2, 6000, ["umap"]),  # two slow maps, two cores
        (("pca", "tsne", "umap"), 1, 6000, []),  # one core: nothing runs beside
        (("pca", "tsne", "umap"), 2, 100, []),  # small: a second process costs more
        (("pca", "umap"), 2, 6000, []),  # PCA is quick: nothing to fit meanwhile
        (("umap",), 2, 6000, []),
    ],
)
def test_a_seeded_umap_goes_beside_another_slow_map(
    tmp_path, monkeypatch, methods, cores, n, detached
):
    monkeypatch.setattr(mapfit, "available_cores", lambda: cores)
    jobs = _jobs(tmp_path, methods)
    assert [j.spec.name for j in mapfit._to_detach(jobs, n, None)] == detached
    assert mapfit._to_detach(jobs, n, map_chunks=lambda *a: []) == []  # a Dask cluster: here


def test_an_unseeded_umap_is_not_one_core(tmp_path):
    jobs = _jobs(tmp_path, ("tsne", "umap"))
    jobs[1].reducer.set_params(random_state=None)  # unseeded umap-learn uses every core
    assert not mapfit._one_core(jobs[1].reducer)
    assert mapfit._one_core(jobs[0].reducer) is False  # (t-SNE uses every core)


@pytest.mark.slow
def test_maps_fitted_beside_are_the_maps_fitted_here(tmp_path, monkeypatch):
    config = MapConfig(methods=("pca", "tsne", "umap"), seed=3)
    here_space, latent = _space(tmp_path, "here")
    here, here_records = mapfit.fit_maps(here_space, latent, config)
    monkeypatch.setattr(mapfit, "DETACH_MIN_POINTS", 0)
    monkeypatch.setattr(mapfit, "available_cores", lambda: 2)
    submitted = []
    real_submit = mapfit._submit
    monkeypatch.setattr(
        mapfit, "_submit", lambda jobs, *a: submitted.extend(jobs) or real_submit(jobs, *a)
    )
    beside_space, _ = _space(tmp_path, "beside")
    beside, beside_records = mapfit.fit_maps(beside_space, latent, config)
    assert [j.spec.name for j in submitted] == ["umap"]
    assert list(beside) == ["pca", "tsne", "umap"]
    for m in beside:
        np.testing.assert_array_equal(beside[m], here[m])
        np.testing.assert_array_equal(np.load(beside_space.file(f"embedding_{m}.npy")), here[m])
        for field in ("method", "params", "n_fit"):
            assert beside_records[m][field] == here_records[m][field]
        # (t-SNE's KL divergence is a sum over threads: equal to about 1e-12)
        assert beside_records[m]["effective"] == pytest.approx(here_records[m]["effective"])
    again, _ = mapfit.fit_maps(beside_space, latent, config)  # finished steps are reused
    assert len(submitted) == 1 and np.array_equal(again["umap"], here["umap"])


def test_warnings_of_the_second_process_reach_this_one():
    class Loud:
        def result(self):
            caught = [
                {"message": "lowered", "category": UserWarning, "filename": "x.py", "lineno": 1}
            ]
            return "fitted", caught

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert second_process.result(Loud()) == "fitted"
    assert [str(w.message) for w in seen] == ["lowered"]


def test_project_starts_the_second_process_before_its_maps(tmp_path, monkeypatch):
    """Knowing its points, a run that will fit UMAP beside t-SNE starts the second process
    (importing umap-learn there) at once; without enough points, or on one core, it does not."""
    started = []
    monkeypatch.setattr(second_process, "start", lambda prepare=None: started.append(prepare))
    monkeypatch.setattr(mapfit, "available_cores", lambda: 2)
    config = MapConfig(methods=("pca", "tsne", "umap"), seed=3)
    mapfit.warm_up(config, n_points=100)
    mapfit.warm_up(MapConfig(methods=("pca", "umap"), seed=3), n_points=10_000)
    assert started == []  # (too few points; no other slow map)
    mapfit.warm_up(config, n_points=10_000)
    (prepare,) = started
    assert prepare.args == ([UMAPReducer.import_backend],)
    monkeypatch.setattr(mapfit, "available_cores", lambda: 1)
    mapfit.warm_up(config, n_points=10_000)
    assert len(started) == 1


def test_a_second_process_started_for_nothing_is_stopped(tmp_path, monkeypatch):
    second_process.start(lambda: None)  # (a lambda cannot go to a new interpreter: never run)
    assert second_process._STARTED
    found, latent = _space(tmp_path, "small", n=300)  # (too few points to fit beside)
    maps, _ = mapfit.fit_maps(found, latent, MapConfig(methods=("pca",), seed=3))
    assert second_process._STARTED == [] and list(maps) == ["pca"]
