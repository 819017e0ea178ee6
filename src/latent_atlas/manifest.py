"""The manifest file of a run directory: reading it, upgrading older formats, provenance.

Format 2 (this version) keeps one entry per latent space under ``spaces``; format 1 (every
latent-atlas before runs held several spaces) kept one space's steps and results at the top
level and is upgraded in memory when read, so older run directories still open.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

from latent_atlas._version import __version__
from latent_atlas.errors import ConfigError, LatentAtlasError

MANIFEST = "manifest.json"
FORMAT = 2
TRACKED_PACKAGES = (
    "latent-atlas", "numpy", "scipy", "scikit-learn", "matplotlib", "pillow", "pyarrow",
    "torch", "openTSNE", "umap-learn", "numba", "pynndescent", "onnx", "onnxruntime", "keras",
)  # fmt: skip
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages that shape a run's results."""
    out = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def provenance() -> dict[str, Any]:
    return {
        "latent_atlas_version": __version__,
        "versions": package_versions(),
        "platform": {"machine": platform.machine(), "system": platform.system()},
        "argv": sys.argv[1:],
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def read_manifest(path: Path, *, missing_ok: bool = False) -> dict[str, Any]:
    file = path / MANIFEST
    if not file.is_file() and missing_ok:
        return {"format": FORMAT}
    try:
        manifest = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        if missing_ok:  # a damaged manifest of an interrupted run: start it again
            return {"format": FORMAT}
        raise LatentAtlasError(f"{file} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        if missing_ok:
            return {"format": FORMAT}
        raise LatentAtlasError(f"{file} does not hold a JSON object")
    if manifest.get("format", 1) == 1:
        manifest = upgrade_v1(manifest)
    elif manifest.get("format") != FORMAT:
        raise LatentAtlasError(
            f"{file} was written by a newer latent-atlas (format {manifest.get('format')}); "
            "upgrade latent-atlas to open it"
        )
    return manifest


# step names of format 1 and what they are called now (they say what they write)
_V1_STEPS = {"extract": "features", "compare": "metrics"}


def upgrade_v1(old: dict[str, Any]) -> dict[str, Any]:
    """A format-1 manifest (one latent space, every file in the run folder) as format 2."""
    steps = dict(old.get("steps") or {})
    run_steps = {"model": steps.pop("train")} if "train" in steps else {}
    space_steps = {}
    for step, entry in steps.items():
        kind, _, rest = step.partition(":")
        if kind == "project":
            space_steps[f"embedding:{rest}"] = entry
        else:
            space_steps[_V1_STEPS.get(step, step)] = entry
    extract = steps.get("extract") or {}
    layer = extract.get("layer") or (old.get("config") or {}).get("layer") or "features"
    space = {
        "folder": ".",
        "source": {"layer": extract.get("layer"), "split": extract.get("split")},
        "steps": space_steps,
        "maps": old.get("methods") or {},
        "metrics": old.get("metrics") or {},
        "atlases": old.get("atlases") or {},
        "latent": old.get("latent") or {},
    }
    keep = ("command", "config", "seed", "dataset", "training", "model", "preprocess")
    new = {k: old[k] for k in keep if k in old}
    new.update(
        format=FORMAT,
        created={
            "latent_atlas_version": old.get("latent_atlas_version"),
            "versions": old.get("versions") or {},
            "platform": old.get("platform") or {},
            "upgraded_from": 1,
        },
        steps=run_steps,
        spaces={space_name(str(layer)): space},
        history=[],
    )
    return new


def check_space_name(name: str) -> str:
    """A space's name becomes a folder name: letters, digits, '.', '_' and '-'."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", ".."):
        raise ConfigError(
            f"space name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def space_name(text: str) -> str:
    """A readable space name made from a layer or file name (``features.3`` stays as it is)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "features"
    return check_space_name(cleaned[:64])
