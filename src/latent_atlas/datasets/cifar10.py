"""CIFAR-10 from any of the layouts users have.

* the official python batches (``cifar-10-batches-py``), read with a restricted unpickler;
* the official binary batches (``data_batch_N.bin``, ``test_batch.bin``, optionally ``.gz``);
* Hugging Face parquet (``train*.parquet`` / ``test*.parquet`` with ``img`` {bytes, path} and
  ``label``), as in ``../shared/data/cifar10``.

With no directory, the official python archive is looked for in the user cache and downloaded
there (checksum verified) when missing. The cache counts only when every batch is there, the
archive is unpacked all or nothing (:func:`~latent_atlas.datasets.download.safe_extract`), and
a cached batch that does not read (left truncated by an older version's interrupted unpack) is
unpacked again, so an interrupted download or unpack repairs itself on the next run.
"""

from __future__ import annotations

import gzip
import json
import logging
import shutil
from pathlib import Path

import numpy as np

from latent_atlas.datasets.base import Dataset, decode_image, read_class_names
from latent_atlas.datasets.download import (
    BadArchiveError,
    cache_dir,
    download,
    safe_extract,
    sweep_stale,
    verified,
)
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
ARCHIVE = "cifar-10-python.tar.gz"

log = logging.getLogger(__name__)


def load_cifar10(
    data_dir: str | Path | None = None,
    *,
    download_if_missing: bool = True,
    url: str = URL,
    md5: str = MD5,
    progress: bool = True,
) -> Dataset:
    """Load CIFAR-10 (50,000 train / 10,000 test 32×32 RGB images)."""
    fetched = False
    if data_dir is None:
        root = cache_dir() / "cifar10"
        found = _find_layout(root, complete=True) if root.is_dir() else None
        if found is not None:  # an archive left by a run stopped after its unpack
            (root / ARCHIVE).unlink(missing_ok=True)
        if found is None:
            if not download_if_missing:
                raise DatasetError(
                    f"cifar10: no data directory given and nothing complete in the cache at {root}"
                )
            found = _fill_cache(root, url, md5, progress)
            fetched = True
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
    try:
        x_train, y_train, x_test, y_test, names = _READERS[layout](where, progress)
    except DatasetError as exc:
        if data_dir is not None or fetched or not download_if_missing:
            raise
        # a damaged cache: a batch truncated by an older version's interrupted unpack, say
        log.warning("cifar10: the cached data set does not read (%s); unpacking it again", exc)
        _remove(where, root)
        layout, where = _fill_cache(root, url, md5, progress)
        x_train, y_train, x_test, y_test, names = _READERS[layout](where, progress)
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


def _fill_cache(root: Path, url: str, md5: str, progress: bool) -> tuple[str, Path]:
    """Download (unless a verified archive is already there) and unpack into the cache."""
    root.mkdir(parents=True, exist_ok=True)
    sweep_stale(root)  # what a killed download or unpack left
    archive = root / ARCHIVE
    if verified(archive, md5=md5):
        log.info("cifar10: unpacking %s, kept from an earlier try", archive)
    else:
        download(url, archive, md5=md5, progress=progress)
    try:
        safe_extract(archive, root)
    except BadArchiveError:
        archive.unlink(missing_ok=True)  # download it again next time
        raise
    # (on any other failure, a full disk say, the verified archive is kept for the next try)
    archive.unlink(missing_ok=True)
    found = _find_layout(root, complete=True)
    if found is None:
        raise DatasetError(
            f"cifar10: the downloaded archive at {url} holds no complete set of batches"
        )
    return found


def _remove(where: Path, root: Path) -> None:
    """Remove a damaged cached folder, only if it is the one the archive unpacks."""
    if where != root and where.parent == root and where.name == "cifar-10-batches-py":
        shutil.rmtree(where, ignore_errors=True)


def _find_layout(root: Path, complete: bool = False) -> tuple[str, Path] | None:
    """The first layout found under ``root``; with ``complete``, only one with every file
    (what the cache needs: a partial unpack must not pass for the data set)."""
    for folder in (root, root / "cifar-10-batches-py", root / "cifar-10-batches-bin"):
        if not folder.is_dir():
            continue
        python = [*TRAIN_BATCHES, "test_batch"]
        if any((folder / name).is_file() for name in ("data_batch_1", "test_batch")) and (
            not complete or _has_all(folder, python)
        ):
            return "python", folder
        if any((folder / f"test_batch.bin{gz}").is_file() for gz in ("", ".gz")) and (
            not complete or _has_all(folder, [f"{name}.bin" for name in python])
        ):
            return "binary", folder
        if _parquet_files(folder, "test") and (not complete or _parquet_files(folder, "train")):
            return "parquet", folder
    return None


def _has_all(folder: Path, names: list[str]) -> bool:
    return all((folder / n).is_file() or (folder / f"{n}.gz").is_file() for n in names)


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
            table = _read_table(pq, path)
            meta = table.schema.metadata or {}
            if names is None:
                names = _hf_class_names(meta)
            blobs = _image_bytes(path, table.column("img"))
            for i, blob in enumerate(
                progress_bar(
                    blobs, desc=f"decode {path.name}", unit="img", enabled=progress, leave=False
                )
            ):
                if blob is None:
                    raise DatasetError(f"{path}: row {i} has no image bytes")
                images.append(decode_image(blob, f"{path} row {i}"))
            labels.append(_labels(path, table.column("label")))
        sizes = {im.shape for im in images}
        if len(sizes) != 1:
            raise DatasetError(f"{folder}: images of different sizes {sorted(sizes)[:3]}")
        return np.stack(images), np.concatenate(labels)

    x_train, y_train = split("train")
    x_test, y_test = split("test")
    return x_train, y_train, x_test, y_test, names or CLASS_NAMES


_COLUMNS = {"img": "the images", "label": "the class labels"}


def _read_table(pq, path: Path):
    """The ``img`` and ``label`` columns of one file; a missing one is named, in one line."""
    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # pyarrow raises many types for corrupt files
        raise DatasetError(f"{path}: not a readable parquet file ({_first_line(exc)})") from None
    for column, what in _COLUMNS.items():
        if column not in schema.names:
            has = ", ".join(schema.names[:8]) + (", ..." if len(schema.names) > 8 else "")
            raise DatasetError(
                f"{path}: no column {column!r} ({what}); it has: {has or 'no columns'}. "
                "CIFAR-10 parquet needs 'img' ({bytes, path} or image bytes) and 'label'"
            )
    try:
        return pq.read_table(path, columns=list(_COLUMNS))
    except Exception as exc:
        raise DatasetError(f"{path}: not a readable parquet file ({_first_line(exc)})") from None


def _image_bytes(path: Path, column) -> list:
    """The encoded images of an ``img`` column: a struct with ``bytes`` (Hugging Face's image
    feature) or the bytes themselves."""
    import pyarrow as pa

    kind = column.type
    if pa.types.is_struct(kind) and kind.get_field_index("bytes") >= 0:
        field = kind.field(kind.get_field_index("bytes")).type
        if pa.types.is_binary(field) or pa.types.is_large_binary(field):
            return column.combine_chunks().field("bytes").to_pylist()
    elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return column.to_pylist()
    raise DatasetError(
        f"{path}: column 'img' holds {kind}, not images (encoded image bytes, or a struct with "
        "'bytes' as Hugging Face writes it)"
    )


def _labels(path: Path, column) -> np.ndarray:
    import pyarrow as pa

    if not pa.types.is_integer(column.type):
        raise DatasetError(f"{path}: column 'label' holds {column.type}, not whole-number labels")
    if column.null_count:
        first = next(i for i, v in enumerate(column.is_null().to_pylist()) if v)
        raise DatasetError(
            f"{path}: column 'label' has {column.null_count} empty row(s) (the first: row {first})"
        )
    return column.to_numpy().astype(np.int64)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _hf_class_names(meta: dict[bytes, bytes]) -> list[str] | None:
    try:
        info = json.loads(meta[b"huggingface"])
        return list(info["info"]["features"]["label"]["names"])
    except (KeyError, ValueError, TypeError):
        return None


_READERS = {"python": _read_python, "binary": _read_binary, "parquet": _read_parquet}
