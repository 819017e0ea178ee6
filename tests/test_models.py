from __future__ import annotations

import inspect
import warnings
from dataclasses import fields

import numpy as np
import pytest
import torch

from latent_atlas.activations import extract_activations, list_layers
from latent_atlas.datasets import load_dataset
from latent_atlas.errors import ConfigError, LatentAtlasError, RenamedWarning
from latent_atlas.models import (
    CHECKPOINT_FORMAT,
    MODELS,
    ArticleCNN,
    available_models,
    build_model,
    load_checkpoint,
    resolve_model_name,
    save_checkpoint,
    to_tensor,
)
from latent_atlas.recipes import TrainingConfig
from latent_atlas.training import train_model, validation_split

from .conftest import make_images

# parameters of the article's Keras model on CIFAR-10 (model.summary(): 357,482 in all,
# BatchNorm's moving mean and variance included)
ARTICLE_PARAMS_CIFAR = 357_482
RENAMED = "'seed-cnn' is now called 'article-cnn'; use 'article-cnn'"


def test_article_cnn_matches_the_article_layer_for_layer():
    model = build_model("article-cnn", (32, 32, 3), 10)
    assert isinstance(model, ArticleCNN)
    names = [n for n, _ in model.named_children()]
    assert names == [
        "conv1", "bn1", "relu1", "pool1", "conv2", "bn2", "relu2", "pool2",
        "conv3", "bn3", "relu3", "pool3", "flatten", "dense", "output",
    ]  # fmt: skip
    convs = [model.conv1, model.conv2, model.conv3]
    assert [c.out_channels for c in convs] == [32, 64, 128]
    assert all(c.bias is None and c.kernel_size == (3, 3) and c.padding == "same" for c in convs)
    n = sum(p.numel() for p in model.parameters()) + sum(
        b.numel() for name, b in model.named_buffers() if "num_batches" not in name
    )
    assert n == ARTICLE_PARAMS_CIFAR
    assert model.dense.linear.out_features == 128 and model.output.linear.out_features == 10


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1), (32, 32, 3), (40, 24, 3)])
def test_article_cnn_adapts_to_input_size(shape):
    model = build_model("article-cnn", shape, 7).eval()
    x = torch.zeros(2, shape[2], shape[0], shape[1])
    assert model(x).shape == (2, 7)


def test_article_cnn_refuses_what_cannot_work():
    with pytest.raises(ConfigError, match="article-cnn needs images of at least 8×8"):
        build_model("article-cnn", (4, 4, 1), 10)
    with pytest.raises(ConfigError, match="article-cnn needs at least 2 classes"):
        build_model("article-cnn", (8, 8, 1), 1)
    with pytest.raises(ConfigError, match="unknown model 'resnet'; choose one of article-cnn,"):
        build_model("resnet", (32, 32, 3), 10)


def test_the_old_name_seed_cnn_builds_the_same_network_with_a_warning():
    with pytest.warns(DeprecationWarning, match=RENAMED):
        old = build_model("seed-cnn", (32, 32, 3), 10, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # the new name does not warn
        new = build_model("article-cnn", (32, 32, 3), 10, seed=0)
        assert resolve_model_name("article-cnn") == "article-cnn"
        assert resolve_model_name("resnet") == "resnet"  # unknown names: build_model says so
        assert resolve_model_name("seed-cnn", warn=False) == "article-cnn"
    assert type(old) is ArticleCNN and type(new) is ArticleCNN
    assert old.config == new.config
    for (k, a), (_, b) in zip(old.state_dict().items(), new.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    with pytest.warns(RenamedWarning, match=RENAMED):
        assert resolve_model_name("seed-cnn") == "article-cnn"
    # the registry lists the new name only
    assert list(MODELS) == ["article-cnn"] and available_models() == ["article-cnn"]


def test_the_old_class_name_seed_cnn_is_a_deprecated_alias():
    import latent_atlas.models as models

    with pytest.warns(DeprecationWarning, match="SeedCNN is now called ArticleCNN"):
        from latent_atlas.models import SeedCNN
    assert SeedCNN is ArticleCNN
    with pytest.warns(DeprecationWarning, match="use latent_atlas.models.ArticleCNN"):
        assert models.SeedCNN is ArticleCNN
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchModel'"):
        models.NoSuchModel  # noqa: B018
    assert not hasattr(models, "NoSuchModel")


def test_load_model_takes_the_old_registry_name_with_a_warning():
    from latent_atlas.backends import load_model

    with pytest.warns(DeprecationWarning, match=RENAMED):
        old = load_model("seed-cnn", input_shape=(28, 28, 1))
    new = load_model("article-cnn", input_shape=(28, 28, 1))
    assert old.spec == new.spec == "article-cnn"
    assert [i.name for i in old.layers()] == [i.name for i in new.layers()]
    with pytest.raises(ConfigError, match="unknown model 'resnet'.*article-cnn"):
        load_model("resnet")


def test_a_checkpoint_saved_under_seed_cnn_loads(tmp_path):
    """Older runs' model.pt record the model as "seed-cnn": they load, without a warning."""
    from latent_atlas.backends import load_model

    model = build_model("article-cnn", (12, 12, 3), 4, seed=1).eval()
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": 1,
        "model": "seed-cnn",
        "config": dict(model.config),
        "state_dict": model.state_dict(),
        "extra": {"class_names": ["a", "b", "c", "d"]},
    }
    torch.save(payload, tmp_path / "model.pt")
    x = to_tensor(make_images(5)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RenamedWarning)  # not the user's spelling: no warning
        loaded, extra = load_checkpoint(tmp_path / "model.pt")
        as_file = load_model(str(tmp_path / "model.pt"))
    assert type(loaded) is ArticleCNN and extra == {"class_names": ["a", "b", "c", "d"]}
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert as_file.details["name"] == "article-cnn"
    assert as_file.details["class_names"] == ["a", "b", "c", "d"]
    assert type(as_file.module) is ArticleCNN
    # saving it again records the new name, even when told the old one
    with pytest.warns(DeprecationWarning, match=RENAMED):
        save_checkpoint(tmp_path / "again.pt", loaded, "seed-cnn")
    assert torch.load(tmp_path / "again.pt", weights_only=True)["model"] == "article-cnn"


def test_checkpoint_round_trip_is_weights_only(tmp_path):
    model = build_model("article-cnn", (12, 12, 3), 4)
    path = save_checkpoint(tmp_path / "m.pt", model, "article-cnn", extra={"class_names": ["a"]})
    assert torch.load(path, weights_only=True)["model"] == "article-cnn"
    loaded, extra = load_checkpoint(path)
    assert type(loaded) is ArticleCNN
    assert extra == {"class_names": ["a"]}
    x = to_tensor(make_images(5)[0])
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model.eval()(x))
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(LatentAtlasError, match="bad.pt: not a loadable"):
        load_checkpoint(tmp_path / "bad.pt")


def test_validation_split_is_stratified_and_disjoint():
    y = np.repeat(np.arange(5), 20)
    fit, val = validation_split(y, 0.1, seed=0)
    assert len(set(fit) & set(val)) == 0 and len(fit) + len(val) == 100
    assert np.bincount(y[val]).tolist() == [2] * 5


@pytest.mark.slow
def test_training_learns_stops_early_and_is_deterministic(tiny_npz):
    ds = load_dataset("npz", tiny_npz)
    cfg, seed = TrainingConfig(epochs=40, batch_size=32, patience=3), 7
    runs = []
    for _ in range(2):
        model = build_model("article-cnn", ds.image_shape, ds.num_classes, seed=seed)
        result = train_model(model, ds, cfg, seed=seed, progress=False)
        runs.append((model, result))
    (m1, r1), (m2, r2) = runs
    assert r1.test_accuracy >= 0.95
    assert [h["val_loss"] for h in r1.history] == [h["val_loss"] for h in r2.history]
    for (k, a), (_, b) in zip(m1.state_dict().items(), m2.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    # early stopping: the best epoch is restored and the run stopped `patience` epochs later
    if r1.stopped_early:
        assert r1.epochs_run == r1.best_epoch + cfg.patience
    best = min(h["val_loss"] for h in r1.history)
    assert r1.history[r1.best_epoch - 1]["val_loss"] == best


@pytest.mark.slow
def test_digits_reaches_a_quality_floor():
    ds = load_dataset("digits")
    model = build_model("article-cnn", ds.image_shape, ds.num_classes)
    result = train_model(model, ds, TrainingConfig(epochs=50), seed=0, progress=False)
    assert result.test_accuracy >= 0.95
    assert result.n_train + result.n_val == len(ds.x_train)


def test_activations_of_the_dense_layer(tiny_npz):
    ds = load_dataset("npz", tiny_npz)
    model = build_model("article-cnn", ds.image_shape, ds.num_classes)
    acts = extract_activations(model, ds.x_test, "dense", batch_size=16, progress=False)
    assert acts.features.shape == (len(ds.x_test), 128) and acts.features.dtype == np.float32
    assert acts.features.min() >= 0  # after the ReLU, as Keras' Dense(activation='relu')
    # the hook sees what the layers compute
    with torch.inference_mode():
        x = to_tensor(ds.x_test)
        manual = model.dense(
            model.flatten(
                model.pool3(
                    model.relu3(
                        model.bn3(
                            model.conv3(
                                model.pool2(
                                    model.relu2(
                                        model.bn2(
                                            model.conv2(
                                                model.pool1(model.relu1(model.bn1(model.conv1(x))))
                                            )
                                        )
                                    )
                                )
                            )
                        )
                    )
                )
            )
        )
    np.testing.assert_allclose(acts.features, manual.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(acts.probabilities.sum(1), 1, rtol=1e-5)
    assert acts.predictions.shape == (len(ds.x_test),)
    assert np.all((acts.confidence > 0) & (acts.confidence <= 1))


def test_activations_of_conv_layers_are_pooled(tiny_npz):
    ds = load_dataset("npz", tiny_npz)
    model = build_model("article-cnn", ds.image_shape, ds.num_classes)
    avg = extract_activations(model, ds.x_test, "relu2", pool="avg", progress=False)
    mx = extract_activations(model, ds.x_test, "relu2", pool="max", progress=False)
    flat = extract_activations(model, ds.x_test, "relu2", pool="flatten", progress=False)
    assert avg.features.shape == (80, 64) and mx.features.shape == (80, 64)
    assert flat.features.shape == (80, 64 * 6 * 6)
    assert np.all(mx.features >= avg.features - 1e-6)
    with pytest.raises(ConfigError, match="unknown layer 'fc7'.*conv1.*dense"):
        extract_activations(model, ds.x_test, "fc7", progress=False)
    assert "dense.linear" in list_layers(model)


def test_augmentation_is_a_padded_crop_or_its_mirror():
    from latent_atlas.training import augment_batch

    x = torch.arange(4 * 3 * 8 * 8, dtype=torch.float32).reshape(4, 3, 8, 8)
    out = augment_batch(x, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.is_contiguous(memory_format=torch.channels_last)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(4):
        crops = [padded[i, :, dy : dy + 8, dx : dx + 8] for dy in range(9) for dx in range(9)]
        assert any(torch.equal(c, out[i]) or torch.equal(c.flip(2), out[i]) for c in crops)
    again = augment_batch(x, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)


def test_improved_recipe_trains_and_is_deterministic(tiny_npz):
    ds = load_dataset("npz", tiny_npz)
    cfg = TrainingConfig(epochs=6, batch_size=32, augment=True, lr_schedule="cosine")
    seed = 3
    runs = []
    for _ in range(2):
        model = build_model("article-cnn", ds.image_shape, ds.num_classes, seed=seed)
        runs.append((model, train_model(model, ds, cfg, seed=seed, progress=False)))
    history = runs[0][1].history
    # 4-pixel shifts on 12-pixel images blur the quadrant classes: learning, but slowly
    assert history[-1]["loss"] < history[0]["loss"] and runs[0][1].test_accuracy > 0.4
    assert [h["val_loss"] for h in runs[0][1].history] == [
        h["val_loss"] for h in runs[1][1].history
    ]
    with pytest.raises(ConfigError, match="lr_schedule must be one of"):
        TrainingConfig(lr_schedule="step")


def test_a_training_config_is_checked_when_it_is_made():
    with pytest.raises(ConfigError, match="lr_schedule must be one of constant, cosine"):
        TrainingConfig(lr_schedule="step")
    with pytest.raises(ConfigError, match="validation must be one of split, test"):
        TrainingConfig(validation="val")


def test_the_old_train_config_still_trains_the_same(tiny_npz):
    """TrainConfig(epochs=..., seed=...) of earlier versions: the same training, with a note."""
    from latent_atlas import training
    from latent_atlas.errors import RenamedWarning

    ds = load_dataset("npz", tiny_npz)
    with pytest.warns(RenamedWarning, match="TrainConfig is now latent_atlas.recipes"):
        old = training.TrainConfig(epochs=2, batch_size=32, seed=5)
    a = build_model("article-cnn", ds.image_shape, ds.num_classes, seed=0)
    b = build_model("article-cnn", ds.image_shape, ds.num_classes, seed=0)
    got = train_model(a, ds, old, progress=False)
    want = train_model(b, ds, TrainingConfig(epochs=2, batch_size=32), seed=5, progress=False)
    assert [h["loss"] for h in got.history] == [h["loss"] for h in want.history]
    assert old.to_dict() == TrainingConfig(epochs=2, batch_size=32).to_dict()


def test_training_keeps_no_copy_of_the_training_options(tiny_npz):
    """recipes.TrainingConfig (torch-free) is the one declaration; seed and threads are keywords."""
    from latent_atlas import recipes, training

    assert training.TrainingConfig is recipes.TrainingConfig
    for gone in ("VALIDATION_CHOICES", "LR_SCHEDULES"):
        assert not hasattr(training, gone), gone
    assert not {"seed", "threads"} & {f.name for f in fields(TrainingConfig)}
    params = inspect.signature(train_model).parameters
    assert params["config"].default is None
    assert params["seed"].kind is inspect.Parameter.KEYWORD_ONLY and params["seed"].default == 0
    assert params["threads"].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["threads"].default is None
    ds = load_dataset("npz", tiny_npz)
    model = build_model("article-cnn", ds.image_shape, ds.num_classes, seed=0)
    with pytest.raises(TypeError, match="config must be a latent_atlas.recipes.TrainingConfig"):
        train_model(model, ds, {"epochs": 1}, progress=False)  # type: ignore[arg-type]


def test_fused_inference_copy_keeps_every_layer_s_values(tiny_npz):
    from latent_atlas.activations import inference_model

    ds = load_dataset("npz", tiny_npz)
    model = build_model("article-cnn", ds.image_shape, ds.num_classes, seed=0)
    # real BN stats
    train_model(model, ds, TrainingConfig(epochs=2, batch_size=32), progress=False)
    fast = inference_model(model)
    assert isinstance(fast.bn1, torch.nn.Identity) and model.bn1.weight is not None  # a copy
    x = to_tensor(ds.x_test)
    with torch.inference_mode():
        conv1 = model.conv1(x)
        bn1 = model.bn1(conv1)
    for layer, want in (("conv1", conv1), ("bn1", bn1)):
        got = extract_activations(model, ds.x_test, layer, pool="flatten", progress=False)
        np.testing.assert_allclose(got.features, want.flatten(1).numpy(), rtol=1e-4, atol=1e-5)


def test_features_stream_to_a_memory_mapped_file(tiny_npz, tmp_path):
    ds = load_dataset("npz", tiny_npz)
    model = build_model("article-cnn", ds.image_shape, ds.num_classes, seed=0)
    np.save(tmp_path / "images.npy", ds.x_test)
    images = np.load(tmp_path / "images.npy", mmap_mode="r")  # read lazily, batch by batch
    here = extract_activations(model, ds.x_test, "dense", batch_size=16, progress=False)
    out = tmp_path / "activations.npy"
    streamed = extract_activations(
        model, images, "dense", batch_size=16, progress=False, features_out=out
    )
    assert isinstance(streamed.features, np.memmap) and not list(tmp_path.glob(".*.tmp"))
    np.testing.assert_array_equal(streamed.features, here.features)
    np.testing.assert_array_equal(np.load(out), here.features)
    np.testing.assert_array_equal(streamed.probabilities, here.probabilities)


def test_a_streamed_feature_file_is_not_written_twice(tmp_path, monkeypatch):
    from latent_atlas import latent as latent_mod
    from latent_atlas.fileio import load_npy
    from latent_atlas.latent import LatentSpace

    x = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    np.save(tmp_path / "activations.npy", x)
    before = (tmp_path / "activations.npy").stat().st_mtime_ns
    space = LatentSpace(
        load_npy(tmp_path / "activations.npy", mmap=True), np.arange(50) % 2, ["a", "b"]
    )
    assert "activations.npy" in space.save(tmp_path)
    assert (tmp_path / "activations.npy").stat().st_mtime_ns == before
    monkeypatch.setattr(latent_mod, "MMAP_ABOVE", 0)
    loaded = LatentSpace.load(tmp_path, ["a", "b"])
    assert isinstance(np.asarray(loaded.features).base, np.memmap) or isinstance(
        loaded.features, np.memmap
    )
    np.testing.assert_array_equal(loaded.features, x)
