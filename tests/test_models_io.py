"""Bring your own model: TorchScript, checkpoints, factories, ONNX and Keras, any layer.

The article's CNN is exported every way there is and each path's ``dense`` activations are checked
against the native forward-hook path.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from latent_atlas.activations import as_probabilities, extract_activations, pool_features
from latent_atlas.backends import classify_spec, format_layers, load_model
from latent_atlas.cli import main
from latent_atlas.errors import ConfigError, LatentAtlasError, MissingDependencyError
from latent_atlas.models import build_model, save_checkpoint, to_tensor
from latent_atlas.pipeline import RunConfig, run_pipeline
from latent_atlas.preprocess import Preprocess
from latent_atlas.runs import RunDir

from .conftest import make_images

# torch 2.13 marks torch.jit deprecated; TorchScript files still load, and users still have them
# (and Keras 3.15's saving on the torch backend trips a numpy 2 deprecation inside Keras)
pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]

SIZE = 16  # three 2×2 poolings leave 2×2 positions: the flatten order matters
TOL = 1e-4
MAX_DIFF: dict[str, float] = {}  # measured differences, printed at the end of the module


@pytest.fixture(scope="module")
def article_model() -> torch.nn.Module:
    """The article's CNN with random weights and non-trivial BatchNorm statistics, in eval mode."""
    model = build_model("article-cnn", (SIZE, SIZE, 3), 4, seed=3)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for bn in (model.bn1, model.bn2, model.bn3):
            n = bn.num_features
            bn.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
            bn.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            bn.weight.copy_(torch.rand(n, generator=gen) + 0.5)
            bn.bias.copy_(torch.rand(n, generator=gen) * 0.4 - 0.2)
    return model.eval()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return make_images(10, size=SIZE, seed=5)[0]


@pytest.fixture(scope="module")
def native(article_model, images):
    return extract_activations(article_model, images, "dense", batch_size=4, progress=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory, article_model) -> dict[str, Path]:
    """The article's CNN as a TorchScript script and trace, a checkpoint and a state dict."""
    d = tmp_path_factory.mktemp("models")
    x = torch.zeros(1, 3, SIZE, SIZE)
    out = {"script": d / "script.pt", "trace": d / "trace.pt"}
    torch.jit.script(article_model).save(str(out["script"]))
    torch.jit.trace(article_model, x).save(str(out["trace"]))
    out["checkpoint"] = save_checkpoint(d / "model.pt", article_model, "article-cnn")
    out["state_dict"] = d / "weights.pth"
    torch.save(article_model.state_dict(), out["state_dict"])
    return out


def _same(name: str, acts, native) -> None:
    diff = float(np.abs(acts.features - native.features).max())
    MAX_DIFF[name] = diff
    assert acts.features.shape == native.features.shape
    assert diff <= TOL, f"{name}: max abs difference {diff}"
    np.testing.assert_allclose(acts.probabilities, native.probabilities, atol=TOL)


@pytest.fixture(autouse=True)
def _log_to_pytest(monkeypatch):
    """The CLI's log handler keeps the stderr of the test that made it; let pytest collect."""
    monkeypatch.setattr(logging.getLogger("latent_atlas"), "handlers", [])


@pytest.fixture(scope="module", autouse=True)
def _report_differences():
    """With ``pytest -s``: the measured differences of every path."""
    yield
    if MAX_DIFF:
        print("\nmax abs difference of dense vs native: " + json.dumps(MAX_DIFF))


# -- PyTorch paths --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["script", "trace"])
def test_torchscript_matches_native(kind, files, images, native, article_model):
    model = load_model(str(files[kind]))
    assert model.kind == "torchscript" and model.layout == "nchw"
    _same(
        f"torchscript-{kind}", model.extract(images, "dense", batch_size=4, progress=False), native
    )
    # a conv layer, pooled
    ref = extract_activations(article_model, images, "relu2", pool="max", progress=False)
    got = model.extract(images, "relu2", pool="max", progress=False)
    np.testing.assert_allclose(got.features, ref.features, atol=TOL)
    # a nested module
    ref = extract_activations(article_model, images, "dense.linear", progress=False)
    got = model.extract(images, "dense.linear", progress=False)
    np.testing.assert_allclose(got.features, ref.features, atol=TOL)


def test_checkpoint_and_factory_match_native(files, images, native):
    model = load_model(str(files["checkpoint"]))
    assert model.kind == "torch" and model.input_shape == (SIZE, SIZE, 3)
    _same("checkpoint", model.extract(images, "dense", progress=False), native)
    model = load_model(
        "latent_atlas.models:ArticleCNN",
        checkpoint=files["state_dict"],
        model_args={"input_shape": [SIZE, SIZE, 3], "num_classes": 4},
    )
    _same("factory", model.extract(images, "dense", progress=False), native)


def test_layers_lists_every_layer_with_its_output_shape(files):
    model = load_model(str(files["script"]), input_shape=(SIZE, SIZE, 3))
    layers = {info.name: info for info in model.layers()}
    assert list(layers)[:4] == ["conv1", "bn1", "relu1", "pool1"]
    assert layers["relu2"].output_shape == (64, 8, 8)
    assert layers["relu2"].feature_size("avg") == 64
    assert layers["relu2"].feature_size("flatten") == 64 * 8 * 8
    assert layers["dense"].output_shape == (128,) and layers["output"].output_shape == (4,)
    assert layers["output.activation"].output_shape is None  # an Identity computes nothing
    with pytest.raises(ConfigError, match="computes nothing"):
        model.extract(make_images(2, size=SIZE)[0], "output.activation", progress=False)
    table = format_layers(model)
    assert "relu2" in table and "64×8×8" in table and "4096" in table
    # without an input size the names are there, the shapes are not
    assert all(i.output_shape is None for i in load_model(str(files["trace"])).layers())


def test_unknown_layer_lists_the_valid_ones(files, images):
    model = load_model(str(files["script"]))
    with pytest.raises(ConfigError, match=r"unknown layer 'fc7'; the model has: conv1, bn1.*dense"):
        model.extract(images, "fc7", progress=False)


def test_the_layers_command(files, capsys):
    assert main(["layers", str(files["script"]), "--input-shape", f"{SIZE},{SIZE},3"]) == 0
    out = capsys.readouterr().out
    assert "torchscript" in out and "dense" in out and "128" in out
    assert main(["layers", "article-cnn", "--input-shape", "28,28,1"]) == 0
    assert "32×28×28" in capsys.readouterr().out


# -- refusals -------------------------------------------------------------------------------------


def test_bad_models_get_one_clear_line(tmp_path, files, article_model):
    with pytest.raises(ConfigError, match="cannot import 'no_such_pkg.models'.*PYTHONPATH"):
        load_model("no_such_pkg.models:build")
    with pytest.raises(ConfigError, match="has no attribute 'Nope'"):
        load_model("latent_atlas.models:Nope")
    with pytest.raises(ConfigError, match="--model-args"):
        load_model("latent_atlas.models:ArticleCNN", checkpoint=files["state_dict"])
    # keys that do not match
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(
        ConfigError, match=r"does not fit the model: missing conv1.weight.*unexpected fc"
    ):
        load_model(
            "latent_atlas.models:ArticleCNN",
            checkpoint=other,
            model_args={"input_shape": [SIZE, SIZE, 3], "num_classes": 4},
        )
    # shapes that do not match
    with pytest.raises(ConfigError, match="size mismatch for output.linear.weight"):
        load_model(
            "latent_atlas.models:ArticleCNN",
            checkpoint=files["state_dict"],
            model_args={"input_shape": [SIZE, SIZE, 3], "num_classes": 7},
        )
    # weights alone, or a pickled module, as --model
    with pytest.raises(ConfigError, match="without the model's code.*--checkpoint"):
        load_model(str(files["state_dict"]))
    pickled = tmp_path / "whole.pt"
    torch.save(article_model, pickled)
    with pytest.raises(LatentAtlasError, match="pickled whole.*torch.jit.script"):
        load_model(str(pickled))
    with pytest.raises(ConfigError, match="model file .*missing.onnx does not exist"):
        load_model(str(tmp_path / "missing.onnx"))
    with pytest.raises(ConfigError, match="--checkpoint .*is a complete model"):
        load_model(str(files["script"]), checkpoint=files["state_dict"])
    with pytest.raises(ConfigError, match="unknown model 'resnet'"):
        load_model("resnet")
    (tmp_path / "old.h5").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"legacy HDF5 .*save the model as \.keras"):
        load_model(str(tmp_path / "old.h5"))


def test_run_options_become_the_config(files):
    from latent_atlas.cli import _preprocess, build_parser

    argv = ["run", "--model", str(files["script"]), "--input-size", "24x32", "--channels", "bgr"]
    argv += ["--scale", "1/127.5", "--mean", "1", "--std", "0.5,0.5,0.5", "--layout", "nhwc"]
    argv += ["--model-args", '{"k": 1}', "--layer", "relu3"]
    args = build_parser().parse_args(argv)
    pre = _preprocess(args)
    assert pre == Preprocess(
        size=(24, 32), channels="bgr", scale=1 / 127.5, mean=(1.0,), std=(0.5,) * 3, layout="nhwc"
    )
    assert args.model_args == {"k": 1} and args.layer == "relu3"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--input-size", "big"])


def test_missing_extras_name_the_extra(tmp_path, monkeypatch):
    (tmp_path / "m.keras").write_bytes(b"PK")
    (tmp_path / "m.onnx").write_bytes(b"\0")
    monkeypatch.setitem(sys.modules, "keras", None)  # import keras → ImportError
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(MissingDependencyError, match=r"latent-atlas\[keras\]"):
        load_model(str(tmp_path / "m.keras"))
    with pytest.raises(MissingDependencyError, match=r"latent-atlas\[onnx\]"):
        load_model(str(tmp_path / "m.onnx"))


def test_specs_are_told_apart(files):
    assert classify_spec("article-cnn") == "name"
    assert classify_spec("torchvision.models:resnet18") == "factory"
    assert classify_spec(str(files["script"])) == "torch"
    assert classify_spec("model.onnx") == "onnx" and classify_spec("m.keras") == "keras"
    assert classify_spec("runs/x/model.pt") == "torch"


# -- ONNX -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory, article_model) -> Path:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    path = tmp_path_factory.mktemp("onnx") / "article.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            article_model,
            (torch.zeros(1, 3, SIZE, SIZE),),
            str(path),
            dynamo=False,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}},
        )
    return path


def test_onnx_matches_native(onnx_file, images, native, article_model):
    model = load_model(str(onnx_file))
    assert model.kind == "onnx" and model.layout == "nchw"
    assert model.input_shape == (SIZE, SIZE, 3)
    layers = {info.name: info for info in model.layers()}
    assert layers["dense"].output_shape == (128,) and layers["relu2"].output_shape == (64, 8, 8)
    _same("onnx", model.extract(images, "dense", batch_size=4, progress=False), native)
    ref = extract_activations(article_model, images, "relu2", pool="avg", progress=False)
    got = model.extract(images, "relu2", pool="avg", progress=False)
    np.testing.assert_allclose(got.features, ref.features, atol=TOL)
    # node and tensor names are layers too
    dense = model.extract(images, "dense", progress=False).features
    for name in ("/dense/activation/Relu", "/dense/activation/Relu_output_0"):
        np.testing.assert_array_equal(model.extract(images, name, progress=False).features, dense)
    with pytest.raises(ConfigError, match=r"unknown layer 'fc7'; the model has: conv1"):
        model.extract(images, "fc7", progress=False)


def test_onnx_with_channels_last_input(onnx_file, tmp_path, article_model, images, native):
    class ChannelsLast(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = article_model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x.permute(0, 3, 1, 2))

    path = tmp_path / "nhwc.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            ChannelsLast().eval(), (torch.zeros(1, SIZE, SIZE, 3),), str(path), dynamo=False
        )
    model = load_model(str(path))
    assert model.layout == "nhwc" and model.input_shape == (SIZE, SIZE, 3)
    assert "net.dense" in model.layer_names()
    _same("onnx-nhwc", model.extract(images, "net.dense", batch_size=4, progress=False), native)


@pytest.mark.slow
def test_onnx_runs_without_torch(onnx_file, tmp_path):
    np.save(tmp_path / "x.npy", make_images(3, size=SIZE)[0])
    code = (
        "import sys, numpy as np; from latent_atlas.backends import load_model; "
        f"m = load_model({str(onnx_file)!r}); "
        f"a = m.extract(np.load({str(tmp_path / 'x.npy')!r}), 'dense', progress=False); "
        "print(a.features.shape, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(3, 128) False"


# -- Keras ----------------------------------------------------------------------------------------


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")  # read when keras is first imported
    return pytest.importorskip("keras")


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory, article_model) -> Path:
    """The article's CNN rebuilt in Keras with the torch weights copied in."""
    keras = _keras()
    layers = keras.layers
    inp = keras.Input((SIZE, SIZE, 3))
    h = inp
    for i, filters in enumerate(article_model.FILTERS, start=1):
        h = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(h)
        h = layers.BatchNormalization(momentum=0.99, epsilon=1e-3, name=f"bn{i}")(h)
        h = layers.ReLU(name=f"relu{i}")(h)
        h = layers.MaxPooling2D(2, name=f"pool{i}")(h)
    h = layers.Flatten(name="flatten")(h)
    h = layers.Dense(128, activation="relu", name="dense")(h)
    model = keras.Model(inp, layers.Dense(4, name="output")(h))
    sd = {k: v.detach().numpy() for k, v in article_model.state_dict().items()}
    for i in (1, 2, 3):
        model.get_layer(f"conv{i}").set_weights([sd[f"conv{i}.weight"].transpose(2, 3, 1, 0)])
        model.get_layer(f"bn{i}").set_weights(
            [sd[f"bn{i}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")]
        )
    # torch flattens C×H×W, Keras H×W×C: reorder the rows of the first dense kernel
    side, channels = SIZE // 8, article_model.FILTERS[-1]
    kernel = sd["dense.linear.weight"].reshape(128, channels, side, side)
    kernel = kernel.transpose(2, 3, 1, 0).reshape(-1, 128)
    model.get_layer("dense").set_weights([kernel, sd["dense.linear.bias"]])
    model.get_layer("output").set_weights([sd["output.linear.weight"].T, sd["output.linear.bias"]])
    path = tmp_path_factory.mktemp("keras") / "article.keras"
    model.save(path)
    return path


@pytest.mark.slow
def test_keras_matches_native(keras_file, images, native, article_model):
    model = load_model(str(keras_file))
    assert model.kind == "keras" and model.layout == "nhwc"
    assert model.input_shape == (SIZE, SIZE, 3)
    layers = {info.name: info for info in model.layers()}
    assert layers["relu2"].output_shape == (8, 8, 64)
    assert layers["relu2"].feature_size("avg", model.channel_axis) == 64
    _same("keras", model.extract(images, "dense", batch_size=4, progress=False), native)
    # channels last: pooled per channel all the same
    ref = extract_activations(article_model, images, "relu2", pool="max", progress=False)
    got = model.extract(images, "relu2", pool="max", progress=False)
    np.testing.assert_allclose(got.features, ref.features, atol=TOL)


# -- preprocessing --------------------------------------------------------------------------------


def test_default_preprocessing_is_the_articles_bit_for_bit():
    x = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=3)
    pre = Preprocess().resolve(x.shape[1:])
    assert pre.size == (16, 16) and pre.channels == "rgb" and pre.layout == "nchw"
    np.testing.assert_array_equal(pre.apply(x), to_tensor(x).numpy())
    assert Preprocess().is_default and not Preprocess(channels="bgr").is_default


def test_preprocessing_options():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (2, 6, 8, 3), dtype=np.uint8)
    pre = Preprocess(channels="bgr", mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.5), layout="nhwc")
    got = pre.resolve(x.shape[1:]).apply(x)
    want = (x[..., ::-1] / 255.0 - [0.5, 0.4, 0.3]) / [0.2, 0.25, 0.5]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    # resize, grey to three channels, scale
    grey = rng.integers(0, 256, (2, 5, 5, 1), dtype=np.uint8)
    pre = Preprocess(size=(10, 12), scale=1.0).resolve(grey.shape[1:], model_input=(None, None, 3))
    assert pre.channels == "rgb"
    out = pre.apply(grey)
    assert out.shape == (2, 3, 10, 12) and out.max() > 1
    np.testing.assert_array_equal(out[:, 0], out[:, 2])
    # the model's fixed size is used when no size is given
    assert Preprocess().resolve((16, 16, 3), model_input=(32, 32, 3)).size == (32, 32)
    # colour to grey
    rgb = np.full((1, 2, 2, 3), (255, 0, 0), np.uint8)
    g = Preprocess(channels="grey", scale=1.0).resolve(rgb.shape[1:]).apply(rgb)
    assert g.shape == (1, 1, 2, 2) and np.all(g == 76)
    assert Preprocess(mean=[1, 2, 3]).to_dict()["mean"] == [1.0, 2.0, 3.0]


def test_preprocessing_refuses_what_cannot_work():
    with pytest.raises(ConfigError, match="mean has 2 values.*give 1 or 3"):
        Preprocess(mean=(0.1, 0.2)).resolve((8, 8, 3))
    with pytest.raises(ConfigError, match="takes 1 input channels"):
        Preprocess(channels="rgb").resolve((8, 8, 3), model_input=(8, 8, 1))
    with pytest.raises(ConfigError, match="std must not contain zeros"):
        Preprocess(std=(0.0,)).check()
    with pytest.raises(ConfigError, match="unknown channel order 'rgba'"):
        Preprocess(channels="rgba").check()
    with pytest.raises(ConfigError, match="preprocessing options apply to a model you bring"):
        RunConfig(preprocess=Preprocess(mean=(0.5,))).check()


def test_probabilities_and_pooling_helpers():
    logits = np.array([[1.0, 2.0, 0.5], [0.0, 0.0, 0.0]])
    p = as_probabilities(logits)
    np.testing.assert_allclose(p.sum(1), 1, rtol=1e-6)
    assert p[0].argmax() == 1
    np.testing.assert_array_equal(as_probabilities(p), p)  # already probabilities: kept
    assert as_probabilities(np.zeros((3, 1))) is None  # one score: not classes
    assert as_probabilities(np.zeros((3, 4, 5))) is None
    fm = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    assert pool_features(fm, "avg", 1).shape == (2, 3)
    assert pool_features(fm, "max", -1).shape == (2, 5)
    assert pool_features(fm, "flatten", 1).shape == (2, 60)


# -- run with a model of your own -----------------------------------------------------------------


def _mixed_folder(root: Path) -> Path:
    """A 4-class image folder with images of 12×12 and (fewer) 16×16 pixels."""
    from PIL import Image

    for split, per_class in (("train", 2), ("test", 6)):
        x, y = make_images(4 * per_class, size=12, seed=len(split))
        for i, (img, label) in enumerate(zip(x, y, strict=True)):
            d = root / split / f"class{label}"
            d.mkdir(parents=True, exist_ok=True)
            pil = Image.fromarray(img)
            if i % 3 == 0:
                pil = pil.resize((16, 16))
            pil.save(d / f"{i}.png")
    return root


def test_run_with_a_torchscript_model_skips_training(tmp_path, capsys):
    model = build_model("article-cnn", (12, 12, 3), 4, seed=0).eval()
    ts = tmp_path / "model.pt"
    torch.jit.script(model).save(str(ts))
    data = _mixed_folder(tmp_path / "data")
    out = tmp_path / "run"
    argv = ["-q", "run", "--model", str(ts), "--dataset", "folder", "--data-dir", str(data)]
    argv += ["--methods", "pca", "--out", str(out)]
    assert main(argv) == 0
    assert "not trained here" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    run = RunDir.open(out)
    assert not (out / "model.pt").exists() and "model" not in run.steps.entries
    assert "training" not in manifest
    assert manifest["model"]["spec"] == str(ts) and manifest["model"]["kind"] == "torchscript"
    assert manifest["model"]["predictions"].startswith("recorded")
    assert manifest["preprocess"] == {
        "size": [12, 12], "channels": "rgb", "scale": 1 / 255, "mean": None, "std": None,
        "layout": "nchw",
    }  # fmt: skip
    assert manifest["dataset"]["info"]["resized_from"] == ["12x12", "16x16"]
    feats = np.load(out / "activations.npy")
    assert feats.shape == (24, 128) and (out / "predictions.npy").is_file()
    # the same command again reuses the extraction
    key = run.space().steps.key("features")
    assert main(argv) == 0
    assert RunDir.open(out).space().steps.key("features") == key


def test_run_with_a_model_of_other_classes_records_no_predictions(tmp_path):
    data = _mixed_folder(tmp_path / "data")
    config = RunConfig(
        dataset="folder",
        data_dir=str(data),
        model="latent_atlas.models:ArticleCNN",
        model_args={"input_shape": [12, 12, 3], "num_classes": 3},
        layer="relu3",
        maps=RunConfig().maps.__class__(methods=("pca",)),
    )
    summary = run_pipeline(config, tmp_path / "run", progress=False)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert (
        manifest["model"]["predictions"] == "none: the model has 3 outputs, the data set 4 classes"
    )
    assert not (tmp_path / "run" / "predictions.npy").exists()
    assert summary.n_features == 128  # relu3: 128 channels, average-pooled


def test_run_refuses_a_bad_model_before_any_work(tmp_path, files, capsys):
    argv = ["-q", "run", "--model", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "r")]
    assert main(argv) == 1
    assert "model file" in capsys.readouterr().err
    argv = ["-q", "run", "--model", str(files["script"]), "--layer", "fc7", "--dataset", "npz"]
    argv += ["--data-dir", str(tmp_path / "x.npz")]
    np.savez(
        tmp_path / "x.npz",
        x_train=make_images(8, size=SIZE)[0],
        y_train=np.arange(8) % 4,
        x_test=make_images(8, size=SIZE)[0],
        y_test=np.arange(8) % 4,
    )
    assert main([*argv, "--methods", "pca", "--out", str(tmp_path / "r2")]) == 1
    assert "unknown layer 'fc7'" in capsys.readouterr().err
