"""Image folders read lazily: the same images as the eager loader, decoded only when sliced."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from PIL import Image

from latent_atlas.cli import main
from latent_atlas.datasets import folder as folder_module
from latent_atlas.datasets import load_dataset
from latent_atlas.datasets.lazy import LazyImages
from latent_atlas.errors import DatasetError
from latent_atlas.fileio import load_npy, save_npy
from latent_atlas.runs import array_digest as digest


def _folder(root, grey_one=True):
    """3 classes; mostly 10×10 RGB, some 14×12, one grey image."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("test", 5)):
        for c in range(3):
            d = root / split / f"c{c}"
            d.mkdir(parents=True)
            for i in range(n):
                h, w = (14, 12) if i == 1 else (10, 10)
                pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                img = Image.fromarray(pixels)
                if grey_one and split == "test" and c == 2 and i == 0:
                    img = img.convert("L")
                img.save(d / f"{i}.png")
    return root


def test_lazy_folder_holds_the_same_images_as_the_eager_loader(tmp_path):
    root = _folder(tmp_path)
    eager = load_dataset("folder", root, progress=False, lazy=False)
    lazy = load_dataset("folder", root, progress=False, lazy=True)
    assert isinstance(lazy.x_test, LazyImages) and isinstance(eager.x_test, np.ndarray)
    assert lazy.x_test.shape == eager.x_test.shape == (15, 10, 10, 3)
    assert lazy.info == {**eager.info, "lazy": True}
    assert eager.info["resized_from"] == ["10x10", "14x12"]
    for split in ("train", "test"):
        x_lazy, y_lazy = lazy.split(split)
        x_eager, y_eager = eager.split(split)
        np.testing.assert_array_equal(np.asarray(x_lazy), x_eager)
        np.testing.assert_array_equal(y_lazy, y_eager)
    # every kind of index a step uses
    x, e = lazy.x_test, eager.x_test
    np.testing.assert_array_equal(x[3], e[3])
    np.testing.assert_array_equal(x[np.int64(-1)], e[-1])
    np.testing.assert_array_equal(x[2:11:3], e[2:11:3])
    np.testing.assert_array_equal(x[::-2], e[::-2])
    np.testing.assert_array_equal(x[[4, 0, 4]], e[[4, 0, 4]])
    mask = np.arange(15) % 4 == 0
    np.testing.assert_array_equal(x[mask], e[mask])
    np.testing.assert_array_equal(x[1:3, :, :, 0], e[1:3, :, :, 0])
    assert x[5:5].shape == (0, 10, 10, 3)
    with pytest.raises(IndexError):
        x[np.ones(3, bool)]
    # a subset stays lazy; pickling keeps only the file list (what Dask workers receive)
    sub = lazy.subset(7, seed=1)
    assert isinstance(sub.x_test, LazyImages) and len(sub.x_test) == 7
    np.testing.assert_array_equal(np.asarray(sub.x_test), eager.subset(7, seed=1).x_test)
    clone = pickle.loads(pickle.dumps(x))
    np.testing.assert_array_equal(clone[:], e)
    assert len(pickle.dumps(x)) < 4096
    # saving and hashing go in chunks and agree with the decoded array
    save_npy(tmp_path / "lazy.npy", x, chunk=4)
    np.testing.assert_array_equal(load_npy(tmp_path / "lazy.npy"), e)
    assert digest(x) == digest(e)
    # a chunked write that fails half-way leaves neither the file nor a temporary behind
    with open(x.paths[5], "wb") as fh:
        fh.write(b"broken")
    with pytest.raises(DatasetError, match="not a readable image"):
        save_npy(tmp_path / "broken.npy", x, chunk=4)
    assert not (tmp_path / "broken.npy").exists() and not list(tmp_path.glob(".*.tmp"))


def test_grey_folders_stay_grey_and_unreadable_files_are_named(tmp_path):
    root = tmp_path / "grey"
    for split in ("train", "test"):
        for c in range(2):
            d = root / split / f"k{c}"
            d.mkdir(parents=True)
            Image.new("L", (8, 8), 40 * c).save(d / "a.png")
    ds = load_dataset("folder", root, progress=False, lazy=True)
    assert ds.x_test.shape == (2, 8, 8, 1)
    assert ds.x_test[1].max() == 40
    (root / "test" / "k1" / "a.png").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match=r"a\.png is not a readable image"):
        load_dataset("folder", root, progress=False, lazy=True)


@pytest.mark.slow
def test_run_on_a_lazy_folder_gives_the_eager_run_results(tmp_path, monkeypatch):
    import torch

    from latent_atlas.models import build_model

    root = _folder(tmp_path / "data", grey_one=False)
    model = build_model("article-cnn", (10, 10, 3), 3, seed=0).eval()
    ts = tmp_path / "model.pt"
    torch.jit.script(model).save(str(ts))
    outs = {}
    for lazy, threshold in (("eager", 10**9), ("lazy", 0)):
        monkeypatch.setattr(folder_module, "LAZY_ABOVE", threshold)
        out = tmp_path / lazy
        argv = ["-q", "run", "--model", str(ts), "--dataset", "folder", "--data-dir", str(root)]
        argv += ["--methods", "pca", "--out", str(out), "--grid", "4", "--mode", "grid"]
        assert main(argv) == 0
        outs[lazy] = out
    manifest = json.loads((outs["lazy"] / "manifest.json").read_text())
    assert manifest["dataset"]["info"]["lazy"] is True
    for name in ("activations.npy", "images.npy", "embedding_pca.npy", "predictions.npy"):
        np.testing.assert_array_equal(
            np.load(outs["lazy"] / name), np.load(outs["eager"] / name), err_msg=name
        )
    assert (outs["lazy"] / "atlas_pca_grid.png").read_bytes() == (
        outs["eager"] / "atlas_pca_grid.png"
    ).read_bytes()
