"""Downloading archives with a verified checksum and extracting them safely.

Both are all or nothing: a download is written to a temporary file and renamed into place once
its checksum is right; an archive is unpacked into a temporary folder beside the target and its
entries renamed into place once every member is out, so an interruption (Ctrl-C, a full disk,
``kill -9``) never leaves a half-written file where the next run would take it for the whole.
Temporary names are this project's (``.<name>.latent-atlas-<pid>-<random>.tmp``), and
:func:`sweep_stale` removes those whose process is gone.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Any

from latent_atlas.errors import DatasetError
from latent_atlas.fileio import TMP_TAG, atomic_path, fsync_dir, stale_temporaries
from latent_atlas.progress import progress_bar

_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


class BadArchiveError(DatasetError):
    """The archive itself is unreadable (truncated, corrupt) or unsafe to extract."""


def cache_dir() -> Path:
    """Where downloaded data sets live: ``$LATENT_ATLAS_CACHE``, else the XDG cache directory."""
    env = os.environ.get("LATENT_ATLAS_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "latent-atlas"


def download(
    url: str,
    dest: Path,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Stream ``url`` to ``dest`` with a progress bar; verify the checksum before keeping it."""
    if md5 is None and sha256 is None:
        raise ValueError("download needs a checksum (md5 or sha256)")
    hasher = hashlib.md5() if md5 is not None else hashlib.sha256()
    expected = (md5 or sha256 or "").lower()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, atomic_path(dest) as tmp:
            total = int(response.headers.get("Content-Length") or 0) or None
            received = _stream(response, tmp, hasher, total, Path(dest).name, progress)
            if total is not None and received < total:
                raise DatasetError(
                    f"download of {url} was cut off after {received:,} of {total:,} bytes; "
                    "nothing was kept, try again"
                )
            digest = hasher.hexdigest()
            if digest != expected:
                raise DatasetError(
                    f"download of {url} is corrupt: checksum {digest} != expected {expected}; "
                    "nothing was kept, try again"
                )
    except (
        urllib.error.URLError,
        http.client.HTTPException,  # e.g. IncompleteRead: the connection dropped half-way
        TimeoutError,
        ConnectionError,
    ) as exc:
        raise DatasetError(
            f"could not download {url}: {exc}. Download it by hand and pass its folder "
            "with --data-dir"
        ) from None
    except OSError as exc:
        if exc.errno not in _FULL:
            raise
        raise DatasetError(
            f"cannot download {url} to {dest}: the disk is full; free some space and run again "
            "(nothing was kept)"
        ) from None
    return dest


def _stream(
    response: Any, tmp: Path, hasher: Any, total: int | None, name: str, progress: bool
) -> int:
    """Copy the response into ``tmp`` in 1 MiB blocks, hashing them; return the bytes read."""
    received = 0
    with (
        open(tmp, "wb") as fh,
        progress_bar(
            total=total, unit="B", unit_scale=True, desc=f"download {name}", enabled=progress
        ) as bar,
    ):
        while chunk := response.read(1 << 20):
            fh.write(chunk)
            hasher.update(chunk)
            bar.update(len(chunk))
            received += len(chunk)
    return received


def verified(path: Path, *, md5: str | None = None, sha256: str | None = None) -> bool:
    """Whether ``path`` is a file whose checksum is the one given (an archive kept from an
    earlier, interrupted unpack can then be unpacked again without downloading it again)."""
    if (md5 is None and sha256 is None) or not Path(path).is_file():
        return False
    hasher = hashlib.md5() if md5 is not None else hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                hasher.update(chunk)
    except OSError:
        return False
    return hasher.hexdigest() == (md5 or sha256 or "").lower()


def sweep_stale(folder: Path) -> None:
    """Remove this project's temporary files and folders in ``folder`` whose process is gone
    (what a killed download or unpack left); anything else is left alone."""
    for path in stale_temporaries(folder):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def safe_extract(archive: Path, target: Path) -> list[Path]:
    """Extract a tar archive into ``target``, all or nothing; return the top-level paths made.

    Members that would land outside ``target``, links and devices are refused. Everything is
    unpacked into a temporary folder inside ``target`` and each top-level entry then renamed
    into place (replacing what an earlier, interrupted unpack left there), so on any failure,
    or an interruption, nothing half-unpacked is left. A full disk is reported as such
    (:class:`DatasetError`); an unreadable or unsafe archive raises :class:`BadArchiveError`.
    """
    archive = Path(archive)
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    target = target.resolve()
    tmp = Path(
        tempfile.mkdtemp(
            prefix=f".{archive.name}.{TMP_TAG}-{os.getpid()}-", suffix=".tmp", dir=target
        )
    )
    try:
        _extract_all(archive, tmp, target)
        made = []
        for entry in sorted(tmp.iterdir()):
            _replace(entry, target / entry.name)
            made.append(target / entry.name)
        fsync_dir(target)
        return made
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _extract_all(archive: Path, into: Path, target: Path) -> None:
    needed = 0
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()  # reads the whole archive: a truncated one fails here
            for member in members:
                dest = (into / member.name).resolve()
                if not dest.is_relative_to(into):
                    raise BadArchiveError(
                        f"{archive}: member {member.name!r} would be written outside {target}; "
                        "refusing to extract"
                    )
                if not (member.isfile() or member.isdir()):
                    raise BadArchiveError(
                        f"{archive}: member {member.name!r} is a link or device; "
                        "refusing to extract"
                    )
                needed += member.size
            tar.extractall(into, members=members, filter="data")
    except BadArchiveError:
        raise
    except OSError as exc:
        if exc.errno is None:  # gzip.BadGzipFile and the like: the archive is corrupt
            raise BadArchiveError(f"{archive}: not a readable tar archive ({exc})") from None
        if exc.errno in _FULL:
            raise DatasetError(
                f"cannot unpack {archive} into {target}: the disk is full (the archive needs "
                f"{max(needed, 1) / 2**20:,.0f} MB); free some space and run again (nothing "
                "half-unpacked was kept)"
            ) from None
        where = f" ({exc.filename})" if exc.filename else ""
        raise DatasetError(
            f"cannot unpack {archive} into {target}: {exc.strerror or exc}{where}"
        ) from None
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise BadArchiveError(f"{archive}: not a readable tar archive ({exc})") from None


def _replace(source: Path, dest: Path) -> None:
    """Rename ``source`` onto ``dest``; a ``dest`` already there (a partial unpack) is moved
    aside first and removed after, so ``dest`` is only ever the old or the new entry."""
    if not dest.exists() and not dest.is_symlink():
        os.replace(source, dest)
        return
    aside = Path(
        tempfile.mkdtemp(
            prefix=f".{dest.name}.{TMP_TAG}-{os.getpid()}-", suffix=".tmp", dir=dest.parent
        )
    )
    old = aside / dest.name
    os.replace(dest, old)
    try:
        os.replace(source, dest)
    except BaseException:
        os.replace(old, dest)  # put the old entry back rather than leave nothing
        raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)
