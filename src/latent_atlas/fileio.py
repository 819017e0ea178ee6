"""Writing artifacts so that a file is either complete or absent.

Every writer here writes to a temporary file in the target's directory, flushes it to disk,
renames it into place (``os.replace`` is atomic on POSIX) and flushes the directory, so a run
killed half-way, or a power loss, never leaves a truncated artifact behind. Temporary files are
named ``.<target>.latent-atlas-<pid>-<random>.tmp``: :func:`stale_temporaries` finds those of
processes that are gone, and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from latent_atlas.errors import LatentAtlasError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}.{TMP_TAG}-{os.getpid()}-"
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
        fsync_dir(target.parent)  # the rename itself survives a power loss
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


TMP_TAG = "latent-atlas"
_TMP_NAME = re.compile(rf"^\..+\.{TMP_TAG}-(\d+)-[^/]*\.tmp$")


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Flush a directory's entries (a rename into it) to disk, where the system allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """This project's temporary files in ``folder`` whose writing process is gone.

    Files of a process that still runs (a second run writing here), and files latent-atlas did
    not make, are never listed.
    """
    stale = []
    for path in Path(folder).glob(f".*.{TMP_TAG}-*.tmp"):
        found = _TMP_NAME.match(path.name)
        if found and not _alive(int(found.group(1))):
            stale.append(path)
    return stale


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def is_array_like(values: object) -> bool:
    """Whether ``values`` already behaves like an array that slices (an ndarray, a memory map,
    :class:`~latent_atlas.datasets.lazy.LazyImages`), so it need not be copied into one."""
    return all(hasattr(values, a) for a in ("shape", "dtype", "ndim", "__getitem__"))


def as_array_like(values: object) -> np.ndarray:
    """``values`` itself when :func:`is_array_like`, else ``np.asarray(values)``: memory maps and
    lazily decoded images are sliced where they are used, never copied whole."""
    return values if is_array_like(values) else np.asarray(values)  # type: ignore[return-value]


def save_npy(path: str | os.PathLike[str], array: np.ndarray, chunk: int = 4096) -> Path:
    """Save one array as ``.npy`` (no pickle), atomically.

    An array-like that is not an ndarray (lazily decoded images, say) is written ``chunk`` rows
    at a time into a memory-mapped file, so it is never whole in memory.
    """
    if isinstance(array, np.ndarray) or not is_array_like(array):
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, np.asarray(array), allow_pickle=False)
        return Path(path)
    with npy_writer(path, array.dtype, array.shape) as out:
        for start in range(0, len(out), chunk):
            out[start : start + chunk] = array[start : start + chunk]
    return Path(path)


@contextlib.contextmanager
def npy_writer(
    path: str | os.PathLike[str], dtype: Any, shape: tuple[int, ...]
) -> Iterator[np.ndarray]:
    """A memory-mapped ``.npy`` of ``shape`` to fill in place; ``path`` appears, complete, only
    when the block ends without an error (:func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.dtype(dtype), shape=tuple(shape))
        try:
            yield out
            out.flush()
        finally:
            del out  # the map is closed before the file is renamed


def load_npy(path: str | os.PathLike[str], mmap: bool = False) -> np.ndarray:
    """Load a ``.npy`` file without ever unpickling objects."""
    return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)


def as_json(obj: Any) -> Any:
    """``obj`` as :func:`save_json` writes it and ``json`` reads it back (tuples as lists...)."""
    return json.loads(json.dumps(obj, default=_json_default))


def save_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write JSON (sorted keys, 2-space indent), atomically."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def save_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write raw bytes, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def save_table(
    path: str | os.PathLike[str],
    columns: dict[str, np.ndarray],
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write a dict of equal-length 1-D arrays as a Parquet table, atomically; ``metadata``
    (text keys and values) goes into the file's schema (:func:`table_metadata` reads it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({name: np.asarray(values) for name, values in columns.items()})
    if metadata:
        table = table.replace_schema_metadata({str(k): str(v) for k, v in metadata.items()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def load_table(
    path: str | os.PathLike[str], columns: list[str] | None = None
) -> dict[str, np.ndarray]:
    """Read a Parquet table written by :func:`save_table` into a dict of numpy arrays.

    With ``columns``, only those are read, and one missing is named in one line
    (:class:`~latent_atlas.errors.LatentAtlasError`), as is a file that is not Parquet.
    """
    import pyarrow.parquet as pq

    from latent_atlas.errors import LatentAtlasError

    def first_line(exc: BaseException) -> str:
        lines = str(exc).strip().splitlines()
        return lines[0] if lines else type(exc).__name__

    try:
        names = pq.read_schema(path).names
    except FileNotFoundError:
        raise
    except Exception as exc:  # pyarrow raises several kinds for damaged files
        raise LatentAtlasError(
            f"{path}: not a readable Parquet table ({first_line(exc)})"
        ) from None
    missing = [c for c in columns or [] if c not in names]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise LatentAtlasError(
            f"{path} has no column{plural} {', '.join(repr(c) for c in missing)} "
            f"(it has: {', '.join(names) or 'none'})"
        )
    try:
        table = pq.read_table(path, columns=columns)
        return {name: table.column(name).to_numpy() for name in table.column_names}
    except Exception as exc:
        raise LatentAtlasError(
            f"{path}: not a readable Parquet table ({first_line(exc)})"
        ) from None


def table_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The text metadata :func:`save_table` put into a Parquet file's schema (pyarrow's own
    ``ARROW:schema`` entry left out); empty when there is none."""
    import pyarrow.parquet as pq

    found = pq.read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in found.items() if not k.startswith(b"ARROW:")}


def save_figure(path: str | os.PathLike[str], figure: Any, **kwargs: Any) -> Path:
    """Save a matplotlib figure (PNG or SVG by suffix) without timestamps, atomically."""
    target = Path(path)
    fmt = target.suffix.lstrip(".") or "png"
    metadata = {"Software": None} if fmt == "png" else {"Date": None}
    with atomic_path(target) as tmp:
        figure.savefig(tmp, format=fmt, metadata=metadata, **kwargs)
    return target


def save_image(path: str | os.PathLike[str], pixels: np.ndarray) -> Path:
    """Save a uint8 H×W or H×W×C array as a PNG (no timestamp chunks), atomically."""
    from PIL import Image

    arr = np.asarray(pixels)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    with atomic_path(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")
    return Path(path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


LOCK_FILE = ".latent-atlas.lock"
_HELD: dict[Path, tuple[Any, int]] = {}  # run directories this process writes: (file, users)


def hold_directory(path: Path) -> None:
    """Hold a run directory for this process (``flock`` on its lock file), or refuse with one
    clear error: two processes writing one directory would race. Re-entrant within a process.
    Then sweep the temporary files of killed runs (:func:`stale_temporaries`)."""
    import fcntl

    key = path.resolve()
    if key in _HELD:
        handle, users = _HELD[key]
        _HELD[key] = (handle, users + 1)
        return
    handle = (path / LOCK_FILE).open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise LatentAtlasError(
            f"{path} is in use by another latent-atlas process ({holder}); wait for it to "
            "finish, or choose another --out directory"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    _HELD[key] = (handle, 1)
    for stale in stale_temporaries(path):  # left by a run that was killed mid-write
        stale.unlink(missing_ok=True)


def release_directory(path: Path) -> None:
    key = path.resolve()
    if key not in _HELD:
        return
    handle, users = _HELD[key]
    if users > 1:
        _HELD[key] = (handle, users - 1)
        return
    del _HELD[key]
    handle.close()  # (closing the file releases the lock)
