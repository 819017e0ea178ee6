"""Run directories: the artifacts of one run and the manifest that describes them.

A run directory holds plain files a user can open elsewhere (``.npy``, Parquet, PNG, JSON).
``manifest.json`` records the resolved configuration, the seed, package versions, results
and, for every step, a key of the inputs it depended on, the files it wrote and how long it
took. A step whose key and files are unchanged is skipped when the run is repeated, so
re-running the same command into the same directory reuses finished work.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from latent_atlas.errors import LatentAtlasError, describe_os_error
from latent_atlas.fileio import save_json

MANIFEST = "manifest.json"
TRACKED_PACKAGES = (
    "latent-atlas", "numpy", "scipy", "scikit-learn", "matplotlib", "pillow", "pyarrow",
    "torch", "openTSNE", "umap-learn", "numba", "pynndescent", "onnx", "onnxruntime", "keras",
)  # fmt: skip


def fingerprint(obj: Any) -> str:
    """A short stable hash of a JSON-serialisable object."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages that shape a run's results."""
    out = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


class Run:
    """A run directory and its manifest."""

    def __init__(self, path: str | Path, *, create: bool = True):
        self.path = Path(path)
        if not create and not (self.path / MANIFEST).is_file():
            raise LatentAtlasError(
                f"{self.path} is not a latent-atlas run directory (no {MANIFEST})"
            )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LatentAtlasError(
                f"cannot create the run directory {self.path}: {exc.strerror}"
            ) from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise LatentAtlasError(
                f"the run directory {self.path} is not writable; choose another --out directory"
            )
        for stale in self.path.glob(".*.tmp"):  # left by a run that was killed mid-write
            stale.unlink(missing_ok=True)
        manifest = self.path / MANIFEST
        if manifest.is_file():
            try:
                self.manifest: dict[str, Any] = json.loads(manifest.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                self.manifest = {}
        else:
            self.manifest = {}
        self.manifest.setdefault("steps", {})
        self.manifest["latent_atlas_version"] = _version()
        self.manifest["versions"] = package_versions()
        self.manifest["platform"] = {
            "machine": platform.machine(),
            "system": platform.system(),
            "argv": sys.argv[1:],
        }

    def file(self, name: str) -> Path:
        return self.path / name

    def is_done(self, step: str, key: Any) -> bool:
        """Whether ``step`` finished with this ``key`` and all its files are still there."""
        entry = self.manifest["steps"].get(step)
        return bool(
            entry
            and entry.get("finished")
            and entry.get("key") == fingerprint(key)
            and all((self.path / f).is_file() for f in entry.get("outputs", []))
        )

    def finish(self, step: str, key: Any, outputs: list[str], seconds: float, **info: Any) -> None:
        """Record that ``step`` finished and wrote ``outputs``; saves the manifest."""
        self.manifest["steps"][step] = {
            "finished": True,
            "key": fingerprint(key),
            "outputs": list(outputs),
            "seconds": round(float(seconds), 4),
            **info,
        }
        self.save()

    def step_info(self, step: str) -> dict[str, Any]:
        return self.manifest["steps"].get(step, {})

    def update(self, **fields: Any) -> None:
        """Set top-level manifest fields and save."""
        self.manifest.update(fields)
        self.save()

    def save(self) -> None:
        try:
            save_json(self.path / MANIFEST, self.manifest)
        except OSError as exc:
            raise LatentAtlasError(describe_os_error(exc)) from None


def _version() -> str:
    from latent_atlas._version import __version__

    return __version__
