"""The large-data recipe: fit on a sample, transform the rest in chunks, refine t-SNE."""

from __future__ import annotations

import numpy as np
import pytest

from latent_atlas.errors import ConfigError
from latent_atlas.largedata import LargeDataRecipe, chunk_indices, fit_large
from latent_atlas.metrics import knn_accuracy, trustworthiness
from latent_atlas.reducers import get_reducer
from latent_atlas.runs import RunDir
from latent_atlas.sampling import seeded_sample


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, 3000)
    centres = rng.normal(0, 6, size=(6, 20))
    return (centres[labels] + rng.normal(size=(3000, 20))).astype(np.float32), labels


RECIPE = LargeDataRecipe(threshold=1000, sample=600, chunk=700, refine_iter=100)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["tsne", "umap", "pca"])
def test_recipe_maps_every_point(blobs, method):
    x, y = blobs
    reducer = get_reducer(method, random_state=0)
    emb, info = fit_large(reducer, x, RECIPE, seed=0)
    assert emb.shape == (3000, 2) and np.all(np.isfinite(emb))
    assert info["n_sample"] == 600 and info["n_chunks"] == 4  # 2,400 others in chunks of 700
    expected = "fit on sample → transform the rest"
    assert info["recipe"] == expected + (" → refine all points" if method == "tsne" else "")
    if method != "tsne":  # (t-SNE's refinement moves every point, the sample's too)
        sample = seeded_sample(3000, 600, 0)
        np.testing.assert_array_equal(emb[sample], reducer.embedding_)
    if method != "pca":
        assert knn_accuracy(emb, y) > 0.95
        assert trustworthiness(x, emb) > 0.85
    again, _ = fit_large(get_reducer(method, random_state=0), x, RECIPE, seed=0)
    np.testing.assert_array_equal(emb, again)


def test_chunks_and_sample_are_seeded_and_complete():
    s = seeded_sample(100, 30, seed=4)
    assert len(np.unique(s)) == 30 and np.all(np.diff(s) > 0)
    np.testing.assert_array_equal(s, seeded_sample(100, 30, seed=4))
    chunks = chunk_indices(np.arange(10), 4)
    assert [c.tolist() for c in chunks] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    with pytest.raises(ConfigError, match="threshold ≥ sample"):
        LargeDataRecipe(threshold=10, sample=100).check()


@pytest.mark.slow
def test_runs_use_the_recipe_above_the_threshold(tmp_path, blobs):
    from latent_atlas.config import MapConfig
    from latent_atlas.pipeline import project_features

    x, y = blobs
    maps = MapConfig(methods=("pca", "umap"), large=RECIPE, metrics_max_samples=500)
    project_features(x, y, out=tmp_path / "run", maps=maps)
    space = RunDir.open(tmp_path / "run").space()
    info = space.steps.info("embedding:umap")["large_data"]
    assert info["n_sample"] == 600 and info["threshold"] == 1000
    assert space.metrics["n_samples"] == 500 and space.metrics["sampled"] is True


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None, processes=True
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.mark.slow
def test_dask_transform_chunks_equal_the_single_machine_path(blobs, dask_client):
    from latent_atlas.distributed import chunk_mapper

    x, _ = blobs
    assert len(dask_client.scheduler_info()["workers"]) == 2
    for method in ("umap", "tsne"):
        recipe = LargeDataRecipe(threshold=1000, sample=600, chunk=700, refine=False)
        here, _ = fit_large(get_reducer(method, random_state=0), x, recipe, seed=0)
        there, info = fit_large(
            get_reducer(method, random_state=0),
            x,
            recipe,
            seed=0,
            map_chunks=chunk_mapper(dask_client),
        )
        assert info["n_chunks"] == 4
        np.testing.assert_array_equal(here, there, err_msg=method)


@pytest.mark.slow
def test_dask_extraction_equals_the_single_machine_path(tiny_npz, dask_client):
    from latent_atlas import distributed
    from latent_atlas.activations import extract_activations
    from latent_atlas.backends.torch_module import TorchModuleModel
    from latent_atlas.datasets import load_dataset
    from latent_atlas.models import build_model

    ds = load_dataset("npz", tiny_npz)
    model = build_model("article-cnn", ds.image_shape, ds.num_classes, seed=0)
    images = np.concatenate([ds.x_test] * 30)  # 2,400 images: 3 shards of 16 batches of 50
    here = extract_activations(model, images, "dense", batch_size=50, progress=False)
    loaded = TorchModuleModel(
        spec="article-cnn", module=model, details={"name": "article-cnn"}, fold=True
    )
    there = distributed.extract(dask_client, loaded, images, "dense", batch_size=50)
    np.testing.assert_array_equal(here.features, there.features)
    np.testing.assert_array_equal(here.probabilities, there.probabilities)


@pytest.mark.slow
def test_run_with_dask_local_equals_the_plain_run(tiny_npz, tmp_path):
    from latent_atlas.cli import main

    pytest.importorskip("distributed")
    args = [
        "-q",
        "run",
        "--dataset",
        "npz",
        "--data-dir",
        str(tiny_npz),
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--methods",
        "pca,tsne",
        "--large-threshold",
        "40",
        "--large-sample",
        "30",
        "--large-refine-max",
        "39",
        "--grid",
        "4",
    ]
    assert main([*args, "--out", str(tmp_path / "plain")]) == 0
    assert main([*args, "--out", str(tmp_path / "dask"), "--dask", "local"]) == 0
    for name in ("activations.npy", "embedding_tsne.npy", "embedding_pca.npy"):
        np.testing.assert_array_equal(
            np.load(tmp_path / "plain" / name), np.load(tmp_path / "dask" / name), err_msg=name
        )
    tsne = RunDir.open(tmp_path / "dask").space().steps.info("embedding:tsne")
    assert tsne["large_data"]["n_sample"] == 30 and tsne["large_data"]["refine_max"] == 39
    assert "refine" not in tsne["large_data"]["recipe"]  # 40+ points > --large-refine-max


@pytest.mark.slow
def test_tsne_above_refine_max_keeps_the_transform_positions(blobs):
    x, y = blobs
    recipe = LargeDataRecipe(threshold=1000, sample=600, chunk=700, refine_max=2999)
    assert recipe.refines(2999, get_reducer("tsne")) and not recipe.refines(3000, "tsne")
    reducer = get_reducer("tsne", random_state=0)
    emb, info = fit_large(reducer, x, recipe, seed=0)
    assert info["recipe"] == "fit on sample → transform the rest" and info["refine_max"] == 2999
    np.testing.assert_array_equal(emb[seeded_sample(3000, 600, 0)], reducer.embedding_)
    assert knn_accuracy(emb, y) > 0.95 and trustworthiness(x, emb) > 0.85
    with pytest.raises(ConfigError, match="refine_max"):
        LargeDataRecipe(refine_max=-1)
