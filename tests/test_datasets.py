from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latent_atlas.datasets import available_datasets, load_dataset, read_idx
from latent_atlas.datasets.cifar10 import load_cifar10
from latent_atlas.datasets.download import safe_extract
from latent_atlas.errors import ConfigError, DatasetError

from .conftest import make_images, serving, shared_data


def check_dataset(ds, n_classes=None):
    for split in ("train", "test"):
        x, y = ds.split(split)
        assert x.dtype == np.uint8 and x.ndim == 4 and x.shape[3] in (1, 3)
        assert y.dtype == np.int64 and y.shape == (len(x),)
    if n_classes:
        assert ds.num_classes == n_classes


def test_registry_lists_every_loader():
    assert set(available_datasets()) == {
        "digits",
        "cifar10",
        "mnist",
        "fashion-mnist",
        "folder",
        "npz",
    }
    with pytest.raises(ConfigError, match="unknown dataset 'nope'.*digits"):
        load_dataset("nope")


def test_digits_is_bundled_and_split():
    ds = load_dataset("digits")
    check_dataset(ds, 10)
    assert ds.image_shape == (8, 8, 1)
    assert len(ds.x_train) + len(ds.x_test) == 1797
    assert len(ds.x_test) == 540
    assert ds.x_train.max() == 255  # scaled from 0..16 to 0..255
    # stratified: every class in both splits in about equal shares
    assert np.bincount(ds.y_test).min() >= 50


def test_subset_is_seeded_and_ordered():
    ds = load_dataset("digits")
    a, b = ds.subset(100, seed=3), ds.subset(100, seed=3)
    assert len(a.x_train) == len(a.x_test) == 100
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.y_test, ds.subset(100, seed=4).y_test)


# -- IDX ----------------------------------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_layout_gzipped_or_not(tmp_path, gz):
    x_train, y_train = make_images(30, size=28, channels=1)
    x_test, y_test = make_images(10, size=28, channels=1)
    sfx = ".gz" if gz else ""
    write_idx(tmp_path / f"train-images-idx3-ubyte{sfx}", x_train[..., 0], gz)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{sfx}", y_train, gz)
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{sfx}", x_test[..., 0], gz)
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{sfx}", y_test, gz)
    for name in ("mnist", "fashion-mnist"):
        ds = load_dataset(name, tmp_path)
        check_dataset(ds, 10)
        np.testing.assert_array_equal(ds.x_train, x_train)
        np.testing.assert_array_equal(ds.y_test, y_test)
    assert load_dataset("fashion-mnist", tmp_path).class_names[9] == "Ankle boot"


def test_idx_errors_name_the_file(tmp_path):
    good = write_idx(tmp_path / "a", np.zeros((3, 4, 4), np.uint8), gz=False)
    bad_magic = tmp_path / "bad"
    bad_magic.write_bytes(b"\x12\x34\x08\x03" + good.read_bytes()[4:])
    with pytest.raises(DatasetError, match="bad: wrong magic number"):
        read_idx(bad_magic)
    truncated = tmp_path / "trunc"
    truncated.write_bytes(good.read_bytes()[:-5])
    with pytest.raises(DatasetError, match="trunc: header says .* truncated"):
        read_idx(truncated)
    corrupt = tmp_path / "corrupt.gz"
    corrupt.write_bytes(gzip.compress(good.read_bytes())[:-12])
    with pytest.raises(DatasetError, match="corrupt.gz: cannot read"):
        read_idx(corrupt)
    with pytest.raises(DatasetError, match="missing file"):
        load_dataset("mnist", tmp_path)


@pytest.mark.slow
def test_real_mnist_and_fashion_mnist():
    # figures from ../shared/data/*/README.md
    for name, first, mean in (
        ("mnist", [7, 2, 1, 0, 4, 1, 4, 9, 5, 9], 33.3184),
        ("fashion-mnist", [9, 2, 1, 1, 6, 1, 4, 6, 5, 7], 72.9404),
    ):
        ds = load_dataset(name, shared_data(name))
        assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
        assert ds.y_test[:10].tolist() == first
        assert ds.x_train.mean() == pytest.approx(mean, abs=1e-4)


# -- CIFAR-10 ------------------------------------------------------------------------------------


def cifar_batch(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = make_images(n, size=32, channels=3, n_classes=10, seed=seed)
    return x, y


def write_python_batches(folder: Path, n: int = 6) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        x, y = cifar_batch(n, seed=i)
        data = x.transpose(0, 3, 1, 2).reshape(n, 3072)
        obj = {
            b"batch_label": name.encode(),
            b"labels": y.tolist(),
            b"data": data,
            b"filenames": [f"{j}.png".encode() for j in range(n)],
        }
        (folder / name).write_bytes(pickle.dumps(obj, protocol=2))
        written[name] = (x, y)
    meta = {b"label_names": [n.encode() for n in "abcdefghij"], b"num_cases_per_batch": n}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return written


def test_cifar10_python_batches(tmp_path):
    written = write_python_batches(tmp_path / "cifar-10-batches-py")
    ds = load_cifar10(tmp_path, progress=False)
    check_dataset(ds, 10)
    assert ds.class_names == list("abcdefghij")
    assert len(ds.x_train) == 30
    np.testing.assert_array_equal(ds.x_test, written["test_batch"][0])
    np.testing.assert_array_equal(ds.x_train[:6], written["data_batch_1"][0])
    assert ds.info["layout"] == "python"


class _Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/latent-atlas-pwned",))


def test_cifar10_refuses_a_pickle_that_runs_code(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_python_batches(folder)
    marker = Path("/tmp/latent-atlas-pwned")
    marker.unlink(missing_ok=True)
    (folder / "test_batch").write_bytes(pickle.dumps({"data": _Exploit(), "labels": []}))
    with pytest.raises(DatasetError, match="refus.*posix.system|refus.*os.system"):
        load_cifar10(tmp_path, progress=False)
    assert not marker.exists()


@pytest.mark.parametrize("gz", [False, True])
def test_cifar10_binary_batches(tmp_path, gz):
    expected = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        x, y = cifar_batch(5, seed=10 + i)
        records = np.concatenate(
            [y.astype(np.uint8)[:, None], x.transpose(0, 3, 1, 2).reshape(5, 3072)], axis=1
        )
        raw = records.tobytes()
        path = tmp_path / f"{name}.bin{'.gz' if gz else ''}"
        path.write_bytes(gzip.compress(raw) if gz else raw)
        expected[name] = (x, y)
    ds = load_cifar10(tmp_path, progress=False)
    check_dataset(ds, 10)
    np.testing.assert_array_equal(ds.x_test, expected["test_batch"][0])
    np.testing.assert_array_equal(ds.y_train[5:10], expected["data_batch_2"][1])
    assert ds.class_names[0] == "airplane"
    (tmp_path / f"test_batch.bin{'.gz' if gz else ''}").write_bytes(
        gzip.compress(b"\x01" * 100) if gz else b"\x01" * 100
    )
    with pytest.raises(DatasetError, match="not a whole number of 3073-byte records"):
        load_cifar10(tmp_path, progress=False)


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def test_cifar10_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    expected = {}
    for split, n in (("train", 8), ("test", 4)):
        x, y = cifar_batch(n, seed=20 if split == "train" else 21)
        table = pa.table(
            {
                "img": [{"bytes": png_bytes(im), "path": f"{i}.png"} for i, im in enumerate(x)],
                "label": y,
            }
        )
        pq.write_table(table, tmp_path / f"{split}.parquet")
        expected[split] = (x, y)
    (tmp_path / "classes.txt").write_text("\n".join(f"class{i}" for i in range(10)) + "\n")
    ds = load_cifar10(tmp_path, progress=False)
    np.testing.assert_array_equal(ds.x_train, expected["train"][0])  # PNG is lossless
    np.testing.assert_array_equal(ds.y_test, expected["test"][1])
    assert ds.class_names[3] == "class3"


@pytest.mark.slow
def test_cifar10_real_parquet_test_split():
    folder = shared_data("cifar10")
    import pyarrow.parquet as pq

    from latent_atlas.datasets.cifar10 import _read_parquet  # noqa: F401 (layout is detected)

    ds = load_cifar10(folder, progress=False)
    assert ds.x_train.shape == (50000, 32, 32, 3) and ds.x_test.shape == (10000, 32, 32, 3)
    digest = hashlib.sha256(np.ascontiguousarray(ds.x_test).tobytes()).hexdigest()
    assert digest == "b7018a062865e9348a704e72416eb53c816b43cc8ac42ab43276a2b967508ab6"
    assert ds.class_names[8] == "ship"
    labels = pq.read_table(folder / "test.parquet", columns=["label"]).column("label").to_numpy()
    np.testing.assert_array_equal(ds.y_test, labels)


def make_archive(tmp_path: Path) -> tuple[bytes, dict]:
    src = tmp_path / "src"
    written = write_python_batches(src / "cifar-10-batches-py", n=3)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return buf.getvalue(), written


def test_cifar10_download_verifies_checksum(tmp_path, monkeypatch):
    payload, written = make_archive(tmp_path)
    md5 = hashlib.md5(payload).hexdigest()
    cache = tmp_path / "cache"
    monkeypatch.setenv("LATENT_ATLAS_CACHE", str(cache))
    with serving(payload, "cifar-10-python.tar.gz") as server:
        with pytest.raises(DatasetError, match="corrupt: checksum"):
            load_cifar10(url=server.url, md5="0" * 32, progress=False)
        assert not (cache / "cifar10" / "cifar-10-python.tar.gz").exists()
        ds = load_cifar10(url=server.url, md5=md5, progress=False)
    np.testing.assert_array_equal(ds.x_test, written["test_batch"][0])
    assert (cache / "cifar10" / "cifar-10-batches-py" / "test_batch").is_file()
    # the second call finds the cache and downloads nothing
    again = load_cifar10(url="http://127.0.0.1:9/unreachable", md5=md5, progress=False)
    np.testing.assert_array_equal(again.y_train, ds.y_train)


def test_archive_members_cannot_escape(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(DatasetError, match="outside"):
        safe_extract(archive, tmp_path / "target")
    assert not (tmp_path / "escaped.txt").exists()


def test_cifar10_missing_files_are_named(tmp_path):
    with pytest.raises(DatasetError, match="holds no CIFAR-10 files"):
        load_cifar10(tmp_path, progress=False)
    folder = tmp_path / "cifar-10-batches-py"
    write_python_batches(folder)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match="missing file .*data_batch_3"):
        load_cifar10(tmp_path, progress=False)


# -- folder and npz ---------------------------------------------------------------------------


def test_folder_layout_resizes_mixed_sizes(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("cat", "dog"):
            d = tmp_path / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                size = 16 if i else 20
                Image.new("RGB", (size, size), (200, 10 * i, 0)).save(d / f"{i}.png")
    ds = load_dataset("folder", tmp_path, progress=False)
    check_dataset(ds, 2)
    assert ds.class_names == ["cat", "dog"]
    assert ds.image_shape == (16, 16, 3)
    assert ds.info["resized_from"] == ["16x16", "20x20"]
    assert ds.y_train.tolist() == [0, 0, 0, 1, 1, 1]


def test_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match="no 'test' folder"):
        load_dataset("folder", tmp_path)
    (tmp_path / "test" / "cat").mkdir(parents=True)
    with pytest.raises(DatasetError, match="holds no images"):
        load_dataset("folder", tmp_path)
    (tmp_path / "test" / "cat" / "x.png").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match="x.png is not a readable image"):
        load_dataset("folder", tmp_path, progress=False)


def test_npz(tiny_npz, tmp_path):
    ds = load_dataset("npz", tiny_npz)
    check_dataset(ds, 4)
    assert ds.class_names[1] == "north-east"
    bad = tmp_path / "bad.npz"
    np.savez(
        bad,
        x_train=np.zeros((3, 8, 8), np.uint8),
        y_train=np.zeros(2),
        x_test=np.zeros((2, 8, 8), np.uint8),
        y_test=np.zeros(2),
    )
    with pytest.raises(DatasetError, match="3 images but 2 labels"):
        load_dataset("npz", bad)
