"""Frames: every layer in one pass, snapshots during training, aligned maps, their numbers."""

from __future__ import annotations

import csv
import json
import logging

import numpy as np
import pytest

from latent_atlas.errors import ConfigError
from tests.conftest import make_images

SIZE = 12


@pytest.fixture(autouse=True)
def _log_to_pytest(monkeypatch):
    monkeypatch.setattr(logging.getLogger("latent_atlas"), "handlers", [])


# -- every layer in one pass ------------------------------------------------------------------


@pytest.fixture(scope="module")
def article_model():
    torch = pytest.importorskip("torch")
    from latent_atlas.models import build_model

    model = build_model("article-cnn", (SIZE, SIZE, 3), 4, seed=3)
    with torch.no_grad():
        for bn in (model.bn1, model.bn2, model.bn3):
            bn.running_mean.uniform_(-0.5, 0.5)
    return model.eval()


def _count_forward(module, counter: list[int]):
    return module.register_forward_pre_hook(lambda *_: counter.append(1))


@pytest.mark.parametrize("fold", [False, True])
def test_several_layers_in_one_pass_equal_one_at_a_time(article_model, fold):
    from latent_atlas.backends.torch_module import TorchModuleModel

    images = make_images(40, size=SIZE)[0]
    model = TorchModuleModel(spec="article-cnn", module=article_model, fold=fold)
    layers = ["relu1", "pool2", "flatten", "dense"]
    calls: list[int] = []
    handle = _count_forward(article_model, calls)
    try:
        if not fold:  # (the folded copy is another module: count the unfolded one)
            together = model.extract_layers(images, layers, batch_size=16, progress=False)
            assert len(calls) == 3  # one forward pass per batch for all four layers
        else:
            together = model.extract_layers(images, layers, batch_size=16, progress=False)
    finally:
        handle.remove()
    for layer in layers:
        alone = model.extract(images, layer, batch_size=16, progress=False)
        np.testing.assert_array_equal(together[layer].features, alone.features)
        np.testing.assert_array_equal(together[layer].probabilities, alone.probabilities)
    assert together["flatten"].features.shape == (40, 128)  # 128 channels · 1 · 1 at this size


def test_one_pass_for_torchscript_and_onnx(article_model, tmp_path):
    torch = pytest.importorskip("torch")
    from latent_atlas.backends import load_model

    images = make_images(20, size=SIZE)[0]
    path = tmp_path / "m.pt"
    torch.jit.script(article_model).save(str(path))
    files = [path]
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401

        onnx_path = tmp_path / "m.onnx"
        torch.onnx.export(article_model, (torch.zeros(1, 3, SIZE, SIZE),), str(onnx_path),
                          input_names=["images"], dynamic_axes={"images": {0: "batch"}},
                          dynamo=False)  # fmt: skip
        files.append(onnx_path)
    except ImportError:
        pass
    for file in files:
        model = load_model(str(file))
        layers = ["pool2", "dense"]
        together = model.extract_layers(images, layers, progress=False)
        for layer in layers:
            alone = model.extract(images, layer, progress=False)
            np.testing.assert_allclose(together[layer].features, alone.features, atol=1e-6)


def test_sweep_layers_open_containers_only(article_model):
    from latent_atlas.backends.torch_module import TorchModuleModel

    names = TorchModuleModel(spec="x", module=article_model).sweep_layers()
    assert names[0] == "conv1" and names[-2:] == ["dense", "output"]
    assert "dense.linear" not in names and len(names) == 15


def test_unknown_layer_in_a_list_is_one_error_listing_the_layers(article_model):
    from latent_atlas.backends.torch_module import TorchModuleModel

    model = TorchModuleModel(spec="x", module=article_model)
    with pytest.raises(ConfigError, match="unknown layer 'fc7'.*conv1"):
        model.extract_layers(make_images(4, size=SIZE)[0], ["dense", "fc7"], progress=False)


# -- snapshots --------------------------------------------------------------------------------


def test_snapshots_leave_training_unchanged():
    torch = pytest.importorskip("torch")
    from latent_atlas.datasets.base import Dataset
    from latent_atlas.models import build_model
    from latent_atlas.recipes import TrainingConfig
    from latent_atlas.training import train_model

    x, y = make_images(120, size=SIZE, seed=1)
    ds = Dataset("toy", x[:90], y[:90], x[90:], y[90:], ["a", "b", "c", "d"])
    config = TrainingConfig(epochs=3, patience=5)
    seen: list[tuple[int, bool]] = []

    def hook(epoch, model):
        seen.append((epoch, model.training))
        model(torch.zeros(2, 3, SIZE, SIZE))  # a forward pass in eval mode changes nothing

    plain = build_model("article-cnn", (SIZE, SIZE, 3), 4, seed=0)
    watched = build_model("article-cnn", (SIZE, SIZE, 3), 4, seed=0)
    r1 = train_model(plain, ds, config, seed=0, progress=False)
    r2 = train_model(watched, ds, config, seed=0, progress=False, on_epoch=hook)
    assert seen == [(0, False), (1, False), (2, False), (3, False)]
    for (k, a), b in zip(plain.state_dict().items(), watched.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert r1.history[-1]["val_loss"] == r2.history[-1]["val_loss"]
    assert r2.snapshot_seconds > 0 and r1.snapshot_seconds == 0


def test_snapshot_epochs_are_checked_before_anything_runs():
    from latent_atlas.config import RunConfig
    from latent_atlas.recipes import TrainingConfig

    with pytest.raises(ConfigError, match="snapshot epoch 9 is beyond the training's end"):
        RunConfig(training=TrainingConfig(epochs=5), snapshots=(0, 9))
    with pytest.raises(ConfigError, match="whole numbers from 0"):
        RunConfig(snapshots=(-1,))
    assert RunConfig(snapshots=("best", 5, 0, 5)).snapshots == (0, 5, "best")
    with pytest.raises(ConfigError, match="--snapshots EPOCHS"):
        RunConfig(snapshot_layers=("dense",))


def test_the_snapshots_option_refuses_bad_epochs(capsys):
    from latent_atlas.cli import main

    with pytest.raises(SystemExit):
        main(["run", "--snapshots", "0,x"])
    assert "expected epochs such as 0,1,2,5,10,best" in capsys.readouterr().err


# -- order and alignment ----------------------------------------------------------------------


class _F:
    def __init__(self, layer, epoch, model=None):
        self.layer, self.epoch, self.model = layer, epoch, model


def test_sweep_order_chains_epochs_then_layers():
    from latent_atlas.frames import sweep_order

    frames = [_F("a", "best"), _F("b", "best"), _F("c", "best"), _F("b", 0), _F("b", 2)]
    order, parents = sweep_order(frames)  # type: ignore[arg-type]
    assert parents == [None, 4, 1, None, 3]  # b·best follows b·2; c follows b at best
    for i, p in enumerate(parents):
        if p is not None:
            assert order.index(p) < order.index(i)  # a previous frame is mapped first


def test_procrustes_and_disparity():
    from latent_atlas.align import disparity, procrustes_disparity, procrustes_onto

    rng = np.random.default_rng(0)
    ref = rng.normal(size=(200, 2))
    angle = 1.1
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    turned = (ref @ rot) * [1, -1] * 3 + 5  # rotated, reflected, scaled, shifted
    assert disparity(ref, turned) > 0.5
    assert procrustes_disparity(ref, turned) < 1e-10  # scipy's removes the rotation
    back = procrustes_onto(turned, ref)
    assert disparity(ref, back) < 1e-10
    d = np.linalg.norm(back[:, None] - back[None], axis=-1)
    np.testing.assert_allclose(
        d, np.linalg.norm(turned[:, None] - turned[None], axis=-1), rtol=1e-4
    )  # fmt: skip  (distances within the map kept)


def test_start_from_sets_a_default_start_only():
    from latent_atlas.align import start_from
    from latent_atlas.reducers import PCAReducer, TSNEReducer, UMAPReducer

    ref = np.random.default_rng(0).normal(size=(50, 2)) * 7
    tsne = TSNEReducer()
    assert start_from(tsne, ref)
    assert tsne.initialization.shape == (50, 2)
    assert abs(tsne.initialization[:, 0].std() - 1e-4) < 1e-9
    assert tsne.early_exaggeration_iter == 0  # (it would scatter the start)
    kept = TSNEReducer(early_exaggeration_iter=100)
    assert start_from(kept, ref) and kept.early_exaggeration_iter == 100  # the user's choice
    assert start_from(UMAPReducer(), ref)
    assert not start_from(PCAReducer(), ref)
    assert not start_from(TSNEReducer(initialization="random"), ref)  # the user's choice
    from latent_atlas.mapfit import _params

    assert _params(tsne)["initialization"] == "array 50×2"  # (the manifest stays small)


@pytest.mark.slow
def test_aligned_tsne_moves_points_less_and_keeps_quality():
    pytest.importorskip("openTSNE")
    from latent_atlas.align import disparity
    from latent_atlas.metrics import trustworthiness
    from latent_atlas.reducers import TSNEReducer

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(5, 20)) * 6
    y = rng.integers(0, 5, 600)
    x1 = centres[y] + rng.normal(size=(600, 20))
    x2 = x1 @ np.linalg.qr(rng.normal(size=(20, 20)))[0] + 0.3 * rng.normal(size=(600, 20))
    first = TSNEReducer(random_state=0, n_iter=300).fit_transform(x1)
    independent = TSNEReducer(random_state=0, n_iter=300).fit_transform(x2)
    reducer = TSNEReducer(random_state=0, n_iter=300)
    from latent_atlas.align import procrustes_onto, start_from

    start_from(reducer, first)
    aligned = procrustes_onto(reducer.fit_transform(x2), first)
    assert disparity(first, aligned) < disparity(first, independent) / 5
    t_ind, t_al = trustworthiness(x2, independent), trustworthiness(x2, aligned)
    assert t_al > t_ind - 0.01


# -- similarity -------------------------------------------------------------------------------


def test_linear_cka_invariances_and_formula():
    from latent_atlas.similarity import cka_matrix, linear_cka

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 10))
    q = np.linalg.qr(rng.normal(size=(10, 10)))[0]
    assert linear_cka(x, 3 * x @ q + 1) == pytest.approx(1.0)
    assert linear_cka(x, rng.normal(size=(300, 10))) < 0.2
    y = x[:, :4] + 0.5 * rng.normal(size=(300, 4))
    xc, yc = x - x.mean(0), y - y.mean(0)  # Kornblith et al.'s feature-space form
    direct = np.linalg.norm(yc.T @ xc) ** 2 / (
        np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc)
    )
    assert linear_cka(x, y) == pytest.approx(direct)
    m = cka_matrix([x, y, x @ q], sample=None)
    assert m.shape == (3, 3) and np.allclose(m, m.T) and np.allclose(np.diag(m), 1)


def test_linear_probe_tells_separable_from_random():
    from latent_atlas.similarity import linear_probe_accuracy

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    x = np.eye(3)[y] * 4 + rng.normal(size=(400, 3))
    assert linear_probe_accuracy(x, y, seed=0) > 0.95
    noise = rng.normal(size=(400, 300))  # wider than PROBE_DIMS: probed on principal components
    assert linear_probe_accuracy(noise, y, seed=0) < 0.5
    assert linear_probe_accuracy(x, y, seed=1) == linear_probe_accuracy(x, y, seed=1)


# -- runs -------------------------------------------------------------------------------------


def _rows(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_project_several_features_is_an_aligned_sweep(tmp_path, digits_features):
    from latent_atlas.config import MapConfig
    from latent_atlas.pipeline import project_features

    x, y = digits_features
    x, y = x[:400], y[:400]
    rng = np.random.default_rng(0)
    named = {
        "first": x,
        "noisy": x + rng.normal(size=x.shape) * 2,
        "mixed": x @ rng.normal(size=(64, 20)),
    }
    summary = project_features(named, y, out=tmp_path / "p", maps=MapConfig(methods=("pca",)))
    rows = _rows(tmp_path / "p" / "frames.csv")
    assert [r["frame"] for r in rows] == ["first", "noisy", "mixed"]
    assert rows[0]["previous"] == "" and rows[1]["previous"] == "first"
    assert float(rows[0]["knn_accuracy"]) > 0.9 and float(rows[0]["linear_probe"]) > 0.9
    assert int(rows[2]["dims"]) == 20
    cka = np.load(tmp_path / "p" / "cka.npy")
    assert cka.shape == (3, 3) and cka[0, 1] > cka[0, 2] * 0  # a CKA value for every pair
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert manifest["frames"]["previous"] == [None, "first", "noisy"]
    assert len(summary.spaces) == 3


@pytest.mark.slow
def test_compare_runs_needs_the_same_images(tmp_path, digits_features):
    from latent_atlas.config import MapConfig
    from latent_atlas.pipeline import project_features
    from latent_atlas.runpair import compare_runs

    x, y = digits_features
    x, y = x[:400], y[:400]
    maps = MapConfig(methods=("pca",))
    project_features(x, y, out=tmp_path / "a", maps=maps)
    project_features(x[:, ::-1].copy() * 2, y, out=tmp_path / "b", maps=maps)
    project_features(x[:-1], y[:-1], out=tmp_path / "c", maps=maps)
    summary = compare_runs(tmp_path / "a", tmp_path / "b", tmp_path / "ab", maps=maps)
    assert [s.name for s in summary.spaces] == ["a", "b"]
    rows = _rows(tmp_path / "ab" / "frames.csv")
    assert [r["model"] for r in rows] == ["a", "b"]
    # the same features reversed and scaled: aligned PCA maps coincide
    assert float(rows[1]["disparity_pca"]) < 1e-6
    with pytest.raises(ConfigError, match="runs over different images"):
        compare_runs(tmp_path / "a", tmp_path / "c", tmp_path / "ac", maps=maps)
    with pytest.raises(ConfigError, match="one of the runs compared"):
        compare_runs(tmp_path / "a", tmp_path / "b", tmp_path / "a", maps=maps)


@pytest.mark.slow
def test_run_with_layers_and_snapshots(tmp_path):
    pytest.importorskip("torch")
    from latent_atlas.cli import main

    out = tmp_path / "run"
    argv = ["-q", "run", "--limit", "300", "--epochs", "3", "--methods", "pca", "--out", str(out),
            "--layers", "pixels,pool2,dense", "--snapshots", "0,2,best",
            "--snapshot-layers", "dense"]  # fmt: skip
    assert main(argv) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    names = ["pixels", "pool2", "dense", "dense-epoch0", "dense-epoch2"]
    assert manifest["frames"]["frames"] == names
    rows = _rows(out / "frames.csv")
    labels = ["pixels", "pool2 · best", "dense · best", "dense · epoch 0", "dense · epoch 2"]
    assert [r["frame"] for r in rows] == labels
    assert int(rows[0]["dims"]) == 8 * 8  # digits' 8×8 pixels
    by = {r["space"]: r for r in rows}
    assert by["dense"]["previous"] == "dense · epoch 2"
    assert float(by["dense"]["knn_accuracy"]) > float(by["dense-epoch0"]["knn_accuracy"])
    assert manifest["snapshots"]["epochs"] == [0, 2]
    images = [out / "images.npy", *(out / "spaces" / n / "images.npy" for n in names[1:])]
    assert len({p.stat().st_ino for p in images}) == 1  # saved once, hard-linked
    steps = {n: s["steps"]["features"]["key"] for n, s in manifest["spaces"].items()}
    assert main(argv) == 0  # again: everything is read back, nothing retrained
    again = json.loads((out / "manifest.json").read_text())
    assert {n: s["steps"]["features"]["key"] for n, s in again["spaces"].items()} == steps
    assert again["spaces"]["dense"]["steps"]["features"]["finished"]


def test_probe_and_labels_cope_with_small_wide_data_and_odd_names():
    from latent_atlas import frames_anim
    from latent_atlas.similarity import linear_probe_accuracy

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 432)), np.arange(60) % 3  # wider than a fold has rows
    assert 0 <= linear_probe_accuracy(x, y) <= 1
    canvas = np.zeros((40, 200), np.uint8)
    frames_anim._text(canvas, "cat\nwith\ta tab", 14, (0, 20), "lm")  # (Pillow cannot lay out \n)
    assert canvas.any()
