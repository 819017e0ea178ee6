"""Issue 18, items 1, 3 and 5: an interrupted CIFAR-10 unpack repairs itself, and hostile or
broken inputs (reducer parameters, IDX headers, checkpoints, Parquet columns) end in one clear
line instead of a traceback."""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from latent_atlas.cli import main
from latent_atlas.datasets import download as download_module
from latent_atlas.datasets.cifar10 import load_cifar10
from latent_atlas.datasets.download import safe_extract
from latent_atlas.errors import ConfigError, DatasetError, LatentAtlasError

from .conftest import LoopbackServer, make_images, serving

BATCHES = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]


def one_clear_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI; it must fail with exactly one line on stderr, which is returned."""
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("latent-atlas: error:"), err
    return err[0]


# -- item 1: an interrupted CIFAR-10 unpack ------------------------------------------------------


def fake_cifar_archive(n: int = 3) -> tuple[bytes, dict[str, np.ndarray]]:
    """A small cifar-10-python.tar.gz (python batches of ``n`` images each), made in memory."""
    buf = io.BytesIO()
    written = {}
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))

        for i, name in enumerate(BATCHES):
            x, y = make_images(n, size=32, channels=3, n_classes=10, seed=i)
            obj = {b"labels": y.tolist(), b"data": x.transpose(0, 3, 1, 2).reshape(n, 3072)}
            add(name, pickle.dumps(obj, protocol=2))
            written[name] = x
        meta = {b"label_names": [c.encode() for c in "abcdefghij"]}
        add("batches.meta", pickle.dumps(meta, protocol=2))
    return buf.getvalue(), written


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache and a fake ``download`` that serves the fake archive (no network)."""
    root = tmp_path / "cache"
    monkeypatch.setenv("LATENT_ATLAS_CACHE", str(root))
    payload, written = fake_cifar_archive()
    calls = []

    def fake_download(url, dest, *, md5=None, sha256=None, progress=True, timeout=60.0):
        calls.append(url)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(payload)
        return dest

    monkeypatch.setattr("latent_atlas.datasets.cifar10.download", fake_download)
    return {
        "root": root / "cifar10",
        "md5": hashlib.md5(payload).hexdigest(),
        "written": written,
        "calls": calls,
        "payload": payload,
    }


def fail_after(monkeypatch, files: int, exc: BaseException) -> None:
    """Make tar extraction raise ``exc`` once ``files`` regular files have been written."""
    original = tarfile.TarFile.makefile
    count = {"n": 0}

    def makefile(self, tarinfo, targetpath):
        if count["n"] >= files:
            raise exc
        count["n"] += 1
        return original(self, tarinfo, targetpath)

    monkeypatch.setattr(tarfile.TarFile, "makefile", makefile)


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith("."))


def test_an_interrupted_unpack_repairs_itself(cache, monkeypatch):
    with monkeypatch.context() as m:
        fail_after(m, 2, KeyboardInterrupt())
        with pytest.raises(KeyboardInterrupt):
            load_cifar10(md5=cache["md5"], progress=False)
    # nothing half-unpacked is left where the next run would take it for the data set
    assert not (cache["root"] / "cifar-10-batches-py").exists()
    assert leftovers(cache["root"]) == []
    ds = load_cifar10(md5=cache["md5"], progress=False)  # re-extracts, no "missing file"
    np.testing.assert_array_equal(ds.x_test, cache["written"]["test_batch"])
    assert len(ds.x_train) == 15
    # the verified archive kept after the interruption was unpacked again, not downloaded again
    assert len(cache["calls"]) == 1
    assert not (cache["root"] / "cifar-10-python.tar.gz").exists()


def test_a_full_disk_while_unpacking_says_so(cache, monkeypatch):
    with monkeypatch.context() as m:
        fail_after(m, 3, OSError(errno.ENOSPC, "No space left on device"))
        with pytest.raises(DatasetError, match="disk is full") as info:
            load_cifar10(md5=cache["md5"], progress=False)
    assert "not a readable tar archive" not in str(info.value)
    assert not (cache["root"] / "cifar-10-batches-py").exists()
    assert leftovers(cache["root"]) == []
    assert (cache["root"] / "cifar-10-python.tar.gz").is_file()  # kept for the next try
    ds = load_cifar10(md5=cache["md5"], progress=False)
    np.testing.assert_array_equal(ds.x_train[:3], cache["written"]["data_batch_1"])
    assert len(cache["calls"]) == 1


def test_a_cache_left_half_unpacked_by_an_older_version_is_repaired(cache):
    partial = cache["root"] / "cifar-10-batches-py"
    partial.mkdir(parents=True)
    (partial / "data_batch_1").write_bytes(b"what an interrupted unpack left")
    ds = load_cifar10(md5=cache["md5"], progress=False)
    np.testing.assert_array_equal(ds.x_train[:3], cache["written"]["data_batch_1"])
    assert len(cache["calls"]) == 1


def test_a_truncated_batch_in_the_cache_is_repaired(cache):
    load_cifar10(md5=cache["md5"], progress=False)
    batch = cache["root"] / "cifar-10-batches-py" / "data_batch_4"
    batch.write_bytes(batch.read_bytes()[:100])  # e.g. an older version's interrupted unpack
    ds = load_cifar10(md5=cache["md5"], progress=False)
    assert len(ds.x_train) == 15
    assert len(cache["calls"]) == 2


def test_a_bad_archive_is_named_and_removed(cache, monkeypatch):
    garbage = b"\x1f\x8b" + bytes(500)
    monkeypatch.setitem(cache, "payload", garbage)

    def fake_download(url, dest, **kwargs):
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        Path(dest).write_bytes(garbage)
        return Path(dest)

    monkeypatch.setattr("latent_atlas.datasets.cifar10.download", fake_download)
    with pytest.raises(DatasetError, match="not a readable tar archive"):
        load_cifar10(md5=hashlib.md5(garbage).hexdigest(), progress=False)
    assert list(cache["root"].iterdir()) == []  # neither partial output nor the bad archive


def test_safe_extract_never_leaves_partial_output(tmp_path, monkeypatch):
    payload, _ = fake_cifar_archive()
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(payload)
    target = tmp_path / "target"
    target.mkdir()
    fail_after(monkeypatch, 1, OSError(errno.EIO, "Input/output error"))
    with pytest.raises(DatasetError) as info:
        safe_extract(archive, target)
    assert "not a readable tar archive" not in str(info.value)
    assert list(target.iterdir()) == []


def test_what_killed_downloads_and_unpacks_left_is_swept(cache):
    root = cache["root"]
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = int(gone.stdout)
    stale = root / f".cifar-10-python.tar.gz.latent-atlas-{dead}-abc.tmp"  # a killed unpack
    (stale / "cifar-10-batches-py").mkdir(parents=True)
    (stale / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"x")
    half = root / f".cifar-10-python.tar.gz.latent-atlas-{dead}-def.tmp"  # a killed download
    half.write_bytes(b"half an archive")
    in_flight = root / f".cifar-10-python.tar.gz.latent-atlas-{os.getppid()}-ghi.tmp"
    in_flight.mkdir()
    notes = root / ".notes"  # not the project's: left alone
    notes.write_text("keep")
    load_cifar10(md5=cache["md5"], progress=False)
    assert not stale.exists() and not half.exists()
    assert in_flight.is_dir() and notes.read_text() == "keep"


def _short_server(chunked: bool):
    """Sends part of what it announces, then hangs up: a download cut off half-way."""

    def reply(handler):
        handler.send_response(200)
        if chunked:
            handler.send_header("Transfer-Encoding", "chunked")
            handler.end_headers()
            handler.wfile.write(b"3e8\r\n" + b"x" * 1000 + b"\r\n")
        else:
            handler.send_header("Content-Length", "100000")
            handler.end_headers()
            handler.wfile.write(b"x" * 1000)
        handler.wfile.flush()
        handler.close_connection = True

    return LoopbackServer(reply, protocol="HTTP/1.1")


def test_a_full_disk_while_downloading_says_so(tmp_path, monkeypatch):
    class Full(io.BytesIO):
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(download_module, "open", lambda *a, **k: Full(), raising=False)
    payload, _ = fake_cifar_archive()
    with serving(payload) as server, pytest.raises(DatasetError, match="the disk is full"):
        download_module.download(server.url, tmp_path / "a.tar.gz", md5="0" * 32, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_an_archive_left_after_a_finished_unpack_is_removed(cache):
    load_cifar10(md5=cache["md5"], progress=False)
    left = cache["root"] / "cifar-10-python.tar.gz"
    left.write_bytes(cache["payload"])  # a run stopped between its unpack and the clean-up
    load_cifar10(md5=cache["md5"], progress=False)
    assert not left.exists() and len(cache["calls"]) == 1


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_download_cut_off_half_way_is_one_clear_error(tmp_path, chunked):
    with (
        _short_server(chunked) as server,
        pytest.raises(DatasetError, match="cut off|could not download"),
    ):
        download_module.download(server.url, tmp_path / "a.tar.gz", md5="0" * 32, progress=False)
    assert list(tmp_path.iterdir()) == []


# -- item 3: reducer parameters ------------------------------------------------------------------


@pytest.fixture
def features(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "f.npy", rng.normal(size=(40, 6)).astype(np.float32))
    np.save(tmp_path / "y.npy", np.arange(40) % 3)
    return tmp_path


BAD_PARAMS = [
    # the examples
    ("pca", "n_components=abc", "n_components"),
    ("tsne", "perplexity=abc", "perplexity"),
    # other types where a number goes
    ("pca", "n_components=true", "n_components"),
    ("pca", "n_components=null", "n_components"),
    ("pca", "n_components=2.5", "n_components"),
    ("pca", 'n_components="2"', "n_components"),
    ("pca", "n_components=[2]", "n_components"),
    ("tsne", "perplexity=true", "perplexity"),
    ("tsne", "perplexity=NaN", "perplexity"),
    ("tsne", "perplexity=Infinity", "perplexity"),
    ("tsne", "n_iter=abc", "n_iter"),
    ("tsne", "n_iter=2.5", "n_iter"),
    ("tsne", "early_exaggeration_iter=abc", "early_exaggeration_iter"),
    ("tsne", "tol=abc", "tol"),
    ("tsne", "dof=abc", "dof"),
    ("tsne", "learning_rate=fast", "learning_rate"),
    ("tsne", "n_jobs=abc", "n_jobs"),
    ("tsne", "pca_dims=abc", "pca_dims"),
    ("tsne-sklearn", "perplexity=abc", "perplexity"),
    ("tsne-sklearn", "max_iter=abc", "max_iter"),
    ("umap", "n_neighbors=abc", "n_neighbors"),
    ("umap", "min_dist=abc", "min_dist"),
    ("umap", "n_epochs=abc", "n_epochs"),
    ("umap", "n_components=abc", "n_components"),
    ("pacmap", "n_neighbors=abc", "n_neighbors"),
    ("pacmap", "MN_ratio=abc", "MN_ratio"),
    ("pacmap", "FP_ratio=abc", "FP_ratio"),
    ("pacmap", "num_iters=abc", "num_iters"),
    ("isomap", "n_neighbors=abc", "n_neighbors"),
    ("pca", "whiten=abc", "whiten"),
    # values out of range
    ("pca", "n_components=-1", "n_components"),
    ("pca", "n_components=0", "n_components"),
    ("tsne", "perplexity=-5", "perplexity"),
    ("tsne", "perplexity=0", "perplexity"),
    ("tsne", "n_iter=-1", "n_iter"),
    ("tsne", "early_exaggeration_iter=-1", "early_exaggeration_iter"),
    ("tsne", "dof=0", "dof"),
    ("tsne", "learning_rate=-1", "learning_rate"),
    ("tsne", "n_jobs=0", "n_jobs"),
    ("tsne", "pca_dims=1", "pca_dims"),
    ("tsne-sklearn", "perplexity=-1", "perplexity"),
    ("tsne-sklearn", "max_iter=10", "max_iter"),
    ("umap", "n_neighbors=1", "n_neighbors"),
    ("umap", "min_dist=-1", "min_dist"),
    ("umap", "n_epochs=-5", "n_epochs"),
    ("isomap", "n_neighbors=0", "n_neighbors"),
    ("pacmap", "n_neighbors=0", "n_neighbors"),
    ("pacmap", "MN_ratio=-1", "MN_ratio"),
    ("pacmap", "FP_ratio=0", "FP_ratio"),
    ("pacmap", "num_iters=[1,2]", "num_iters"),
    # strings that name nothing
    ("tsne", "neighbors=fast", "neighbors"),
    ("tsne", "negative_gradient_method=fast", "negative_gradient_method"),
    ("tsne", "initialization=fast", "initialization"),
    ("tsne", "metric=5", "metric"),
    ("tsne-sklearn", "init=fast", "init"),
    ("umap", "init=fast", "init"),
    ("umap", "metric=5", "metric"),
]


@pytest.mark.parametrize(("method", "param", "name"), BAD_PARAMS)
def test_a_bad_reducer_parameter_is_one_clear_line(features, capsys, method, param, name):
    d = features
    argv = ["-q", "project", str(d / "f.npy"), "--labels", str(d / "y.npy"), "--methods", method]
    line = one_clear_line([*argv, "--param", f"{method}.{param}", "--out", str(d / "o")], capsys)
    assert name in line


def test_parameter_checks_also_guard_the_python_api():
    from latent_atlas.reducers import PCAReducer, TSNEReducer

    x = np.random.default_rng(0).normal(size=(30, 4))
    with pytest.raises(ConfigError, match="n_components must be a whole number"):
        PCAReducer(n_components="abc").fit(x)
    with pytest.raises(ConfigError, match="perplexity must be a number"):
        TSNEReducer(perplexity="abc").fit(x)
    # good values of every kind still pass the checks
    from latent_atlas.reducers import REDUCERS

    for cls in REDUCERS.values():
        cls._check_param_values(cls().get_params())
    TSNEReducer._check_param_values({"learning_rate": 200, "perplexity": 30, "pca_dims": 50})
    PCAReducer._check_param_values({"n_components": np.int64(3), "whiten": np.bool_(True)})


# -- item 3: IDX headers -------------------------------------------------------------------------


def idx_bytes(dims: list[int], data: bytes = b"", dtype: int = 0x08) -> bytes:
    return bytes([0, 0, dtype, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims) + data


def write_mnist(
    folder: Path, images: bytes | None = None, gz: bool = False, labels: bytes | None = None
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    x = np.zeros((4, 28, 28), np.uint8)
    good_images = idx_bytes([4, 28, 28], x.tobytes())
    labels = labels or idx_bytes([4], bytes([0, 1, 2, 3]))
    sfx = ".gz" if gz else ""
    for prefix in ("train", "t10k"):
        for kind, blob in (
            ("images-idx3-ubyte", images or good_images),
            ("labels-idx1-ubyte", labels),
        ):
            path = folder / f"{prefix}-{kind}{sfx}"
            path.write_bytes(gzip.compress(blob) if gz else blob)
    return folder


BAD_IDX = {
    # 2**16 * 2**24 * 2**24 = 2**64: np.prod wraps it round to 0, which an empty file matches
    "sizes overflow 64 bits": (idx_bytes([2**16, 2**24, 2**24]), "header says"),
    "sizes overflow, some data": (idx_bytes([2**16, 2**24, 2**24], bytes(64)), "header says"),
    "largest sizes": (idx_bytes([2**32 - 1] * 3), "header says"),
    "truncated data": (idx_bytes([4, 28, 28], bytes(100)), "truncated"),
    "trailing data": (idx_bytes([4, 28, 28], bytes(4 * 28 * 28 + 7)), "header says"),
    "truncated header": (b"\x00\x00\x08\x03\x00\x00", "truncated"),
    "wrong magic": (b"\x08\x03\x00\x00" + bytes(40), "wrong magic number"),
    "unknown type code": (b"\x00\x00\x07\x03" + bytes(40), "wrong magic number"),
    "int32 images": (idx_bytes([4, 28, 28], bytes(4 * 28 * 28 * 4), dtype=0x0C), "must be uint8"),
    "four dimensions": (idx_bytes([4, 28, 28, 1], bytes(4 * 28 * 28)), "must be uint8 N×H×W"),
    "no pixels": (idx_bytes([4, 0, 28]), "no pixels"),
}


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("case", list(BAD_IDX))
def test_a_bad_idx_header_is_one_clear_line(tmp_path, capsys, case, gz):
    images, message = BAD_IDX[case]
    folder = write_mnist(tmp_path / "mnist", images, gz=gz)
    argv = [
        "-q",
        "run",
        "--dataset",
        "mnist",
        "--data-dir",
        str(folder),
        "--out",
        str(tmp_path / "o"),
    ]
    line = one_clear_line(argv, capsys)
    assert message in line and "images-idx3-ubyte" in line


@pytest.mark.parametrize(
    "labels",
    [
        idx_bytes([4], np.array([0.0, 1.7, 2.0, 3.0], ">f4").tobytes(), dtype=0x0D),
        idx_bytes([2, 2], bytes([0, 1, 2, 3])),
    ],
    ids=["float labels", "2-D labels"],
)
def test_bad_idx_labels_are_one_clear_line(tmp_path, capsys, labels):
    folder = write_mnist(tmp_path / "mnist", labels=labels)
    argv = [
        "-q",
        "run",
        "--dataset",
        "mnist",
        "--data-dir",
        str(folder),
        "--out",
        str(tmp_path / "o"),
    ]
    line = one_clear_line(argv, capsys)
    assert "labels-idx1-ubyte: labels must be whole numbers in one dimension" in line


def test_read_idx_checks_the_size_before_reading(tmp_path):
    from latent_atlas.datasets import read_idx

    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(idx_bytes([2**16, 2**24, 2**24])))
    with pytest.raises(DatasetError, match=r"header says \[65536, 16777216, 16777216\]"):
        read_idx(path)
    good = tmp_path / "good"
    good.write_bytes(idx_bytes([2, 3], bytes(range(6))))
    assert read_idx(good).tolist() == [[0, 1, 2], [3, 4, 5]]


# -- item 3: checkpoints -------------------------------------------------------------------------


def good_checkpoint() -> dict:
    from latent_atlas.models import CHECKPOINT_FORMAT, build_model

    model = build_model("article-cnn", (16, 16, 3), 4, seed=0)
    return {
        "format": CHECKPOINT_FORMAT,
        "version": 1,
        "model": "article-cnn",
        "config": dict(model.config),
        "state_dict": model.state_dict(),
        "extra": {"class_names": list("abcd")},
    }


def _without(d: dict, key: str) -> dict:
    return {k: v for k, v in d.items() if k != key}


def _with(d: dict, **changes) -> dict:
    return {**d, **changes}


def _config(**changes) -> dict:
    good = good_checkpoint()
    return _with(good, config=_with(good["config"], **changes))


BAD_CHECKPOINTS = {
    # the examples
    "no config": lambda: _without(good_checkpoint(), "config"),
    "terabytes": lambda: _config(input_shape=[10**6, 10**6, 3]),
    # wrong field types and values
    "config a list": lambda: _with(good_checkpoint(), config=[1, 2]),
    "no input_shape": lambda: _with(good_checkpoint(), config={"num_classes": 4}),
    "shape of two": lambda: _config(input_shape=[16, 16]),
    "shape of text": lambda: _config(input_shape=["a", "b", "c"]),
    "shape a number": lambda: _config(input_shape=16),
    "negative side": lambda: _config(input_shape=[-16, 16, 3]),
    "float side": lambda: _config(input_shape=[16.5, 16, 3]),
    "side over the bound": lambda: _config(input_shape=[100_000, 8, 3]),
    "shape under the bound, too many parameters": lambda: _config(input_shape=[16384, 16384, 3]),
    "num_classes text": lambda: _config(num_classes="ten"),
    "num_classes huge": lambda: _config(num_classes=10**9),
    "no num_classes": lambda: _with(good_checkpoint(), config={"input_shape": [16, 16, 3]}),
    "dense_units negative": lambda: _config(dense_units=-1),
    "dense_units text": lambda: _config(dense_units="many"),
    "no model": lambda: _without(good_checkpoint(), "model"),
    "model a number": lambda: _with(good_checkpoint(), model=5),
    "model a list": lambda: _with(good_checkpoint(), model=["article-cnn"]),
    "model unknown": lambda: _with(good_checkpoint(), model="resnet-9000"),
    "no state_dict": lambda: _without(good_checkpoint(), "state_dict"),
    "state_dict a list": lambda: _with(good_checkpoint(), state_dict=[1, 2]),
    "state_dict missing keys": lambda: _with(
        good_checkpoint(), state_dict=dict(list(good_checkpoint()["state_dict"].items())[:3])
    ),
    "state_dict of other shapes": lambda: _with(
        good_checkpoint(),
        state_dict={k: v.new_zeros(1) for k, v in good_checkpoint()["state_dict"].items()},
    ),
    "state_dict values not tensors": lambda: _with(
        good_checkpoint(), state_dict={k: 1 for k in good_checkpoint()["state_dict"]}
    ),
    "extra a list": lambda: _with(good_checkpoint(), extra=[1]),
    "class_names a number": lambda: _with(good_checkpoint(), extra={"class_names": 5}),
    "class_names not text": lambda: _with(good_checkpoint(), extra={"class_names": [1, 2, 3, 4]}),
}


@pytest.mark.parametrize("case", list(BAD_CHECKPOINTS))
def test_a_bad_checkpoint_is_one_clear_line(tmp_path, capsys, case):
    import torch

    path = tmp_path / "model.pt"
    torch.save(BAD_CHECKPOINTS[case](), path)
    line = one_clear_line(["-q", "layers", str(path)], capsys)
    assert str(path) in line


def test_an_absurd_checkpoint_shape_states_the_bound(tmp_path, capsys):
    import torch

    path = tmp_path / "model.pt"
    torch.save(_config(input_shape=[10**6, 10**6, 3]), path)
    line = one_clear_line(["-q", "layers", str(path)], capsys)
    assert "16,384" in line
    torch.save(_config(input_shape=[16384, 16384, 3]), path)
    line = one_clear_line(["-q", "layers", str(path)], capsys)
    assert "1,000,000,000" in line


def test_good_checkpoints_still_load(tmp_path):
    import torch

    from latent_atlas.models import load_checkpoint

    path = tmp_path / "model.pt"
    torch.save(good_checkpoint(), path)
    _, extra = load_checkpoint(path)
    assert extra == {"class_names": list("abcd")}
    legacy = _with(good_checkpoint(), model="seed-cnn")  # an earlier name still loads
    torch.save(_without(_without(legacy, "extra"), "version"), path)
    load_checkpoint(path)


def test_checkpoint_errors_from_the_python_api(tmp_path):
    import torch

    from latent_atlas.models import load_checkpoint

    path = tmp_path / "model.pt"
    torch.save(_without(good_checkpoint(), "config"), path)
    with pytest.raises(LatentAtlasError, match="no 'config'"):
        load_checkpoint(path)


# -- item 5: Parquet columns ---------------------------------------------------------------------


def png(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def write_parquet(folder: Path, **columns) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    x, y = make_images(4, size=32, channels=3, n_classes=10)
    good = {
        "img": [{"bytes": png(im), "path": f"{i}.png"} for i, im in enumerate(x)],
        "label": y,
    }
    for split in ("train", "test"):
        cols = {**good, **columns} if split == "test" else good
        pq.write_table(
            pa.table({k: v for k, v in cols.items() if v is not None}), folder / f"{split}.parquet"
        )
    return folder


PARQUET_CASES = {
    "no img": ({"img": None}, "no column 'img'"),
    "no label": ({"label": None}, "no column 'label'"),
    "img renamed": ({"img": None, "image": [b"x"] * 4}, "no column 'img'"),
    "img of numbers": ({"img": [1, 2, 3, 4]}, "'img'"),
    "img without bytes": ({"img": [{"path": "a.png"}] * 4}, "'img'"),
    "label of text": ({"label": ["a", "b", "c", "d"]}, "'label'"),
    "label with nulls": ({"label": [1, None, 2, 3]}, "'label'"),
    "label of floats": ({"label": [0.5, 1.0, 2.0, 3.0]}, "'label'"),
}


@pytest.mark.parametrize("case", list(PARQUET_CASES))
def test_a_parquet_file_missing_a_column_says_which(tmp_path, capsys, case):
    columns, message = PARQUET_CASES[case]
    folder = write_parquet(tmp_path / "cifar", **columns)
    argv = ["-q", "run", "--dataset", "cifar10", "--data-dir", str(folder)]
    line = one_clear_line([*argv, "--out", str(tmp_path / "o")], capsys)
    assert message in line and "test.parquet" in line


def test_a_parquet_file_that_is_not_one_is_one_clear_line(tmp_path, capsys):
    folder = write_parquet(tmp_path / "cifar")
    (folder / "test.parquet").write_bytes(b"PAR1 this is not parquet")
    argv = ["-q", "run", "--dataset", "cifar10", "--data-dir", str(folder)]
    line = one_clear_line([*argv, "--out", str(tmp_path / "o")], capsys)
    assert "not a readable parquet file" in line


def test_load_table_names_missing_columns(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from latent_atlas.fileio import load_table

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"label": [1, 2], "x": [0.5, 1.5]}), path)
    assert load_table(path)["label"].tolist() == [1, 2]
    assert list(load_table(path, columns=["x"])) == ["x"]
    with pytest.raises(LatentAtlasError, match=r"t.parquet has no column 'y' \(it has: label, x\)"):
        load_table(path, columns=["x", "y"])
    path.write_bytes(b"PAR1 nonsense")
    with pytest.raises(LatentAtlasError) as info:
        load_table(path)
    assert "\n" not in str(info.value)
