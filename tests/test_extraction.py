"""One extraction path: every backend streams, shards on Dask and folds BatchNorm alike."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_images

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

SIZE = 12


@pytest.fixture(autouse=True)
def _log_to_pytest(monkeypatch):
    monkeypatch.setattr(logging.getLogger("latent_atlas"), "handlers", [])


@pytest.fixture(scope="module")
def article_model():
    from latent_atlas.models import build_model

    model = build_model("article-cnn", (SIZE, SIZE, 3), 4, seed=2)
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():  # BatchNorm statistics far from the identity, so folding matters
        for bn in (model.bn1, model.bn2, model.bn3):
            bn.running_mean.copy_(torch.rand(bn.num_features, generator=gen) - 0.5)
            bn.running_var.copy_(torch.rand(bn.num_features, generator=gen) + 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def model_files(tmp_path_factory, article_model) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("models")
    files = {"torchscript": d / "model.pt", "onnx": d / "model.onnx"}
    torch.jit.script(article_model).save(str(files["torchscript"]))
    pytest.importorskip("onnx")
    torch.onnx.export(
        article_model,
        (torch.zeros(1, 3, SIZE, SIZE),),
        str(files["onnx"]),
        input_names=["images"],
        dynamic_axes={"images": {0: "batch"}},
        dynamo=False,
    )
    return files


def test_trained_network_and_loaded_checkpoint_extract_alike(article_model, tmp_path):
    """The network run trains goes through the same LoadedModel as a file the user brings;
    a model you bring runs as it is unless folding is asked for."""
    from latent_atlas.activations import extract_activations
    from latent_atlas.backends import load_model
    from latent_atlas.backends.torch_module import TorchModuleModel
    from latent_atlas.models import save_checkpoint

    images = make_images(40, size=SIZE, seed=1)[0]
    direct = extract_activations(article_model, images, "dense", progress=False)
    wrapped = TorchModuleModel(spec="article-cnn", module=article_model, fold=True).extract(
        images, "dense", progress=False
    )
    path = save_checkpoint(tmp_path / "m.pt", article_model, "article-cnn")
    loaded = load_model(str(path))
    assert not loaded.fold and loaded.can_fold
    as_it_is = loaded.extract(images, "dense", progress=False)
    loaded.fold = True
    folded = loaded.extract(images, "dense", progress=False)
    np.testing.assert_array_equal(direct.features, wrapped.features)
    np.testing.assert_array_equal(direct.features, folded.features)
    np.testing.assert_array_equal(direct.probabilities, folded.probabilities)
    from latent_atlas.activations import capture_layer
    from latent_atlas.preprocess import Preprocess

    x = torch.from_numpy(Preprocess().resolve(images.shape[1:]).apply(images))
    with capture_layer(article_model, "dense", "avg") as seen, torch.inference_mode():
        for start in range(0, len(x), 64):  # as it is: the module's own forward pass
            article_model(x[start : start + 64])
    own = torch.cat(seen).numpy()
    np.testing.assert_array_equal(as_it_is.features, own)
    # folding is what makes it fast, not what it computes
    np.testing.assert_allclose(as_it_is.features, folded.features, atol=1e-5)
    assert load_model(str(path)).portable().load().fold is False
    trained = TorchModuleModel(spec="article-cnn", module=article_model, fold=True)
    assert trained.portable().load().fold


@pytest.mark.parametrize("kind", ["torchscript", "onnx"])
def test_every_backend_streams_features_to_disk(model_files, kind, tmp_path):
    from latent_atlas.backends import load_model

    model = load_model(str(model_files[kind]))
    images = make_images(70, size=SIZE, seed=3)[0]
    here = model.extract(images, "dense", batch_size=16, progress=False)
    out = tmp_path / "features.npy"
    streamed = model.extract(images, "dense", batch_size=16, progress=False, features_out=out)
    assert isinstance(streamed.features, np.memmap) and out.is_file()
    np.testing.assert_array_equal(here.features, streamed.features)
    np.testing.assert_array_equal(here.probabilities, streamed.probabilities)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["torchscript", "onnx"])
def test_run_with_dask_gives_the_same_activations(model_files, kind, tiny_npz, tmp_path):
    """``run --model FILE --dask local`` equals the run without Dask, for TorchScript and ONNX."""
    from latent_atlas.cli import main

    pytest.importorskip("distributed")
    argv = [
        "-q",
        "run",
        "--model",
        str(model_files[kind]),
        "--dataset",
        "npz",
        "--data-dir",
        str(tiny_npz),
        "--methods",
        "pca",
        "--grid",
        "4",
    ]
    assert main([*argv, "--out", str(tmp_path / "plain")]) == 0
    assert main([*argv, "--out", str(tmp_path / "dask"), "--dask", "local"]) == 0
    for name in ("activations.npy", "probabilities.npy", "embedding_pca.npy"):
        plain, dask = np.load(tmp_path / "plain" / name), np.load(tmp_path / "dask" / name)
        np.testing.assert_array_equal(plain, dask, err_msg=name)
    assert np.load(tmp_path / "plain" / "activations.npy").shape == (80, 128)


def test_portable_models_load_again(model_files, article_model):
    """What travels to a Dask worker: a file's bytes, or a checkpoint of in-memory weights."""
    from latent_atlas.backends import load_model
    from latent_atlas.backends.torch_module import TorchModuleModel

    images = make_images(8, size=SIZE, seed=4)[0]
    for model in (
        load_model(str(model_files["torchscript"])),
        load_model(str(model_files["onnx"])),
        TorchModuleModel(spec="article-cnn", module=article_model, details={"name": "article-cnn"}),
    ):
        again = model.portable().load()
        np.testing.assert_array_equal(
            model.extract(images, "dense", progress=False).features,
            again.extract(images, "dense", progress=False).features,
        )
