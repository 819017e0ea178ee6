"""CIFAR-10 from any of the layouts users have.

* the official python batches (``cifar-10-batches-py``), read with a restricted unpickler;
* the official binary batches (``data_batch_N.bin``, ``test_batch.bin``, optionally ``.gz``);
* Hugging Face parquet (``train*.parquet`` / ``test*.parquet`` with ``img`` {bytes, path} and
  ``label``), as in ``../shared/data/cifar10``.

With no directory, the official python archive is looked for in the user cache and downloaded
there (checksum verified) when missing.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

from latent_atlas.datasets.base import Dataset, decode_image, read_class_names
from latent_atlas.datasets.download import cache_dir, download, safe_extract
from latent_atlas.datasets.safe_pickle import safe_load
from latent_atlas.errors import DatasetError
from latent_atlas.progress import progress_bar

CLASS_NAMES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"  # published on the CIFAR-10 page
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
RECORD = 1 + 32 * 32 * 3


def load_cifar10(
    data_dir: str | Path | None = None,
    *,
    download_if_missing: bool = True,
    url: str = URL,
    md5: str = MD5,
    progress: bool = True,
) -> Dataset:
    """Load CIFAR-10 (50,000 train / 10,000 test 32×32 RGB images)."""
    if data_dir is None:
        root = cache_dir() / "cifar10"
        found = _find_layout(root) if root.is_dir() else None
        if found is None:
            if not download_if_missing:
                raise DatasetError(
                    f"cifar10: no data directory given and nothing in the cache at {root}"
                )
            archive = download(url, root / "cifar-10-python.tar.gz", md5=md5, progress=progress)
            safe_extract(archive, root)
            archive.unlink()
            found = _find_layout(root)
            if found is None:
                raise DatasetError(f"cifar10: the downloaded archive at {url} holds no batches")
    else:
        root = Path(data_dir).expanduser()
        if not root.is_dir():
            raise DatasetError(f"cifar10: data directory {root} does not exist")
        found = _find_layout(root)
        if found is None:
            raise DatasetError(
                f"cifar10: {root} holds no CIFAR-10 files; expected the python batches "
                "(data_batch_1..5, test_batch), the binary batches (data_batch_1.bin .. "
                "test_batch.bin, optionally .gz) or parquet (train.parquet, test.parquet)"
            )
    layout, where = found
    reader = {"python": _read_python, "binary": _read_binary, "parquet": _read_parquet}[layout]
    x_train, y_train, x_test, y_test, names = reader(where, progress)
    return Dataset(
        name="cifar10",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        class_names=names,
        source=f"{where} ({layout})",
        info={"layout": layout},
    )


def _find_layout(root: Path) -> tuple[str, Path] | None:
    for folder in (root, root / "cifar-10-batches-py", root / "cifar-10-batches-bin"):
        if not folder.is_dir():
            continue
        if (folder / "data_batch_1").is_file() or (folder / "test_batch").is_file():
            return "python", folder
        if any((folder / f"test_batch.bin{gz}").is_file() for gz in ("", ".gz")):
            return "binary", folder
        if _parquet_files(folder, "test"):
            return "parquet", folder
    return None


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from None


def _require(folder: Path, names: list[str]) -> list[Path]:
    paths = []
    for name in names:
        candidates = [folder / name, folder / f"{name}.gz"]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise DatasetError(f"cifar10: missing file {folder / name}")
        paths.append(path)
    return paths


def _read_python(folder: Path, progress: bool) -> tuple:
    def batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
        obj = safe_load(_read_bytes(path), str(path))
        if not isinstance(obj, dict):
            raise DatasetError(f"{path}: expected a dict, got {type(obj).__name__}")
        obj = {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}
        if "data" not in obj or "labels" not in obj:
            raise DatasetError(f"{path}: missing 'data' or 'labels'")
        data = np.asarray(obj["data"], dtype=np.uint8)
        labels = np.asarray(obj["labels"], dtype=np.int64)
        if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
            raise DatasetError(
                f"{path}: data has shape {data.shape} for {len(labels)} labels; "
                "expected N×3072 (truncated or not CIFAR-10)"
            )
        return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels

    names = CLASS_NAMES
    meta = folder / "batches.meta"
    if meta.is_file():
        obj = safe_load(_read_bytes(meta), str(meta))
        if isinstance(obj, dict):
            obj = {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}
            raw = obj.get("label_names")
            if raw:
                names = [n.decode() if isinstance(n, bytes) else str(n) for n in raw]
    train = [
        batch(p)
        for p in progress_bar(
            _require(folder, TRAIN_BATCHES), enabled=progress, desc="cifar10 train", leave=False
        )
    ]
    x_test, y_test = batch(_require(folder, ["test_batch"])[0])
    x_train = np.concatenate([b[0] for b in train])
    y_train = np.concatenate([b[1] for b in train])
    return np.ascontiguousarray(x_train), y_train, np.ascontiguousarray(x_test), y_test, names


def _read_binary(folder: Path, progress: bool) -> tuple:
    def batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
        raw = np.frombuffer(_read_bytes(path), dtype=np.uint8)
        if raw.size == 0 or raw.size % RECORD:
            raise DatasetError(
                f"{path}: {raw.size} bytes is not a whole number of {RECORD}-byte records "
                "(truncated?)"
            )
        records = raw.reshape(-1, RECORD)
        images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return np.ascontiguousarray(images), records[:, 0].astype(np.int64)

    names = CLASS_NAMES
    meta = folder / "batches.meta.txt"
    if meta.is_file():
        names = read_class_names(meta) or CLASS_NAMES
    train = [batch(p) for p in _require(folder, [f"{b}.bin" for b in TRAIN_BATCHES])]
    x_test, y_test = batch(_require(folder, ["test_batch.bin"])[0])
    x_train = np.concatenate([b[0] for b in train])
    y_train = np.concatenate([b[1] for b in train])
    return x_train, y_train, x_test, y_test, names


def _parquet_files(folder: Path, split: str) -> list[Path]:
    return sorted(p for p in folder.glob(f"{split}*.parquet") if p.is_file())


def _read_parquet(folder: Path, progress: bool) -> tuple:
    import pyarrow.parquet as pq

    names: list[str] | None = None
    classes_txt = folder / "classes.txt"
    if classes_txt.is_file():
        names = read_class_names(classes_txt)

    def split(name: str) -> tuple[np.ndarray, np.ndarray]:
        nonlocal names
        files = _parquet_files(folder, name)
        if not files:
            raise DatasetError(f"cifar10: missing {folder / (name + '.parquet')}")
        images, labels = [], []
        for path in files:
            try:
                table = pq.read_table(path, columns=["img", "label"])
                meta = table.schema.metadata or {}
            except Exception as exc:  # pyarrow raises many types for corrupt files
                raise DatasetError(f"{path}: not a readable parquet file ({exc})") from None
            if names is None:
                names = _hf_class_names(meta)
            blobs = table.column("img").combine_chunks().field("bytes").to_pylist()
            for i, blob in enumerate(
                progress_bar(
                    blobs, desc=f"decode {path.name}", unit="img", enabled=progress, leave=False
                )
            ):
                if blob is None:
                    raise DatasetError(f"{path}: row {i} has no image bytes")
                images.append(decode_image(blob, f"{path} row {i}"))
            labels.append(table.column("label").to_numpy().astype(np.int64))
        sizes = {im.shape for im in images}
        if len(sizes) != 1:
            raise DatasetError(f"{folder}: images of different sizes {sorted(sizes)[:3]}")
        return np.stack(images), np.concatenate(labels)

    x_train, y_train = split("train")
    x_test, y_test = split("test")
    return x_train, y_train, x_test, y_test, names or CLASS_NAMES


def _hf_class_names(meta: dict[bytes, bytes]) -> list[str] | None:
    try:
        info = json.loads(meta[b"huggingface"])
        return list(info["info"]["features"]["label"]["names"])
    except (KeyError, ValueError, TypeError):
        return None
