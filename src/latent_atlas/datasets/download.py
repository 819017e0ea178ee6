"""Downloading archives with a verified checksum and extracting them safely."""

from __future__ import annotations

import hashlib
import os
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from latent_atlas.errors import DatasetError
from latent_atlas.fileio import atomic_path
from latent_atlas.progress import progress_bar


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
            with (
                open(tmp, "wb") as fh,
                progress_bar(
                    total=total,
                    unit="B",
                    unit_scale=True,
                    desc=f"download {Path(dest).name}",
                    enabled=progress,
                ) as bar,
            ):
                while chunk := response.read(1 << 20):
                    fh.write(chunk)
                    hasher.update(chunk)
                    bar.update(len(chunk))
            digest = hasher.hexdigest()
            if digest != expected:
                raise DatasetError(
                    f"download of {url} is corrupt: checksum {digest} != expected {expected}; "
                    "nothing was kept, try again"
                )
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise DatasetError(
            f"could not download {url}: {exc}. Download it by hand and pass its folder "
            "with --data-dir"
        ) from None
    return dest


def safe_extract(archive: Path, target: Path) -> None:
    """Extract a tar archive, refusing members that would land outside ``target``."""
    target = target.resolve()
    try:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                dest = (target / member.name).resolve()
                if not dest.is_relative_to(target):
                    raise DatasetError(
                        f"{archive}: member {member.name!r} would be written outside {target}; "
                        "refusing to extract"
                    )
                if not (member.isfile() or member.isdir()):
                    raise DatasetError(
                        f"{archive}: member {member.name!r} is a link or device; "
                        "refusing to extract"
                    )
            tar.extractall(target, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DatasetError(f"{archive}: not a readable tar archive ({exc})") from None
