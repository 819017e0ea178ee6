"""Run directories: the one object that reads and writes a run's files and its manifest.

A run directory holds plain files a user can open elsewhere (``.npy``, Parquet, PNG, JSON) and
``manifest.json``, which records how the run was made (command, configuration, seed, package
versions), what it found (data set, training, model) and one entry per *latent space*: the
features of one layer of one model on the run's images, with its maps, metrics and atlases. A
run of one layer holds one space, whose files lie in the run directory itself; each further
space has its own folder ``spaces/<name>/``.

Every step records a key (a :func:`fingerprint` of all it depended on), the files it wrote
and its time; a step whose key and files are unchanged is skipped when repeated, so running
the same command into the same directory reuses finished work. Later commands on a finished
run (``atlas``, ``compare``) append to its ``history`` and leave its provenance as it was.

Older run directories (manifest without ``format``) are read as one space.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from latent_atlas._version import __version__
from latent_atlas.errors import ConfigError, LatentAtlasError, describe_os_error
from latent_atlas.fileio import (
    LOCK_FILE,
    as_json,
    hold_directory,
    load_npy,
    release_directory,
    save_json,
)
from latent_atlas.keys import array_digest, file_digest, fingerprint
from latent_atlas.latent import LatentSpace
from latent_atlas.manifest import (
    FORMAT,
    MANIFEST,
    check_space_name,
    package_versions,
    provenance,
    read_manifest,
    space_name,
)

SPACES_FOLDER = "spaces"

__all__ = [
    "FORMAT",
    "LOCK_FILE",
    "MANIFEST",
    "SPACES_FOLDER",
    "RunDir",
    "SpaceDir",
    "Steps",
    "array_digest",
    "check_space_name",
    "embedding_file",
    "file_digest",
    "fingerprint",
    "package_versions",
    "space_name",
]


# -- steps ----------------------------------------------------------------------------------------


@dataclass
class Steps:
    """The finished steps of a run or of one space: key, files, time and what each found."""

    entries: dict[str, dict[str, Any]]
    folder: Path
    save: Callable[[], None]

    def is_done(self, step: str, key: Any) -> bool:
        """Whether ``step`` finished with this ``key`` and all its files are still there."""
        entry = self.entries.get(step)
        return bool(
            entry
            and entry.get("finished")
            and entry.get("key") == fingerprint(key)
            and all((self.folder / f).is_file() for f in entry.get("outputs", []))
        )

    def finish(self, step: str, key: Any, outputs: list[str], seconds: float, **info: Any) -> None:
        """Record that ``step`` finished and wrote ``outputs``; saves the manifest."""
        self.entries[step] = {
            "finished": True,
            "key": fingerprint(key),
            "outputs": list(outputs),
            "seconds": round(float(seconds), 4),
            **info,
        }
        self.save()

    def info(self, step: str) -> dict[str, Any]:
        """What ``step`` recorded, without its bookkeeping (key, finished)."""
        entry = self.entries.get(step, {})
        return {k: v for k, v in entry.items() if k not in ("key", "finished")}

    def key(self, step: str) -> str | None:
        """The fingerprint ``step`` finished with (None when it has not)."""
        return self.entries.get(step, {}).get("key")

    def drop(self, step: str) -> None:
        self.entries.pop(step, None)


# -- one latent space -----------------------------------------------------------------------------


class SpaceDir:
    """One latent space of a run: its features, maps, metrics and atlases, in its folder."""

    def __init__(self, run: RunDir, name: str):
        self.run = run
        self.name = name
        self.entry: dict[str, Any] = run.manifest["spaces"][name]
        self.entry.setdefault("steps", {})
        self.path = run.path / self.entry.get("folder", ".")
        self.steps = Steps(self.entry["steps"], self.path, run.save)

    def __repr__(self) -> str:
        return f"SpaceDir({self.name!r} in {self.run.path})"

    def file(self, name: str) -> Path:
        return self.path / name

    def set(self, **fields: Any) -> None:
        """Set fields of this space's manifest entry and save."""
        self.entry.update(fields)
        self.run.save()

    @property
    def source(self) -> dict[str, Any]:
        """Where the features came from (layer, pooling, model, file, ...)."""
        return self.entry.get("source") or {}

    @property
    def maps(self) -> dict[str, dict[str, Any]]:
        """Every map of this space by name: method, parameters, times and scores."""
        return self.entry.get("maps") or {}

    @property
    def map_names(self) -> list[str]:
        """The maps of this space whose coordinates are on disk: those its record lists (files
        another run left in the folder do not count), or, without a record, every one there."""
        if self.maps:
            return [m for m in self.maps if self.file(embedding_file(m)).is_file()]
        return sorted(p.stem.removeprefix("embedding_") for p in self.path.glob("embedding_*.npy"))

    def embedding(self, name: str) -> np.ndarray:
        """The N×2 coordinates of map ``name``, or one error naming the maps there are."""
        path = self.file(embedding_file(name))
        if not path.is_file():
            have = ", ".join(self.map_names) or "none"
            raise ConfigError(f"{self.describe()} has no {name!r} map; it has: {have}")
        return load_npy(path)

    def embeddings(self) -> dict[str, np.ndarray]:
        return {m: self.embedding(m) for m in self.map_names}

    @property
    def metrics(self) -> dict[str, Any]:
        return self.entry.get("metrics") or {}

    @property
    def atlases(self) -> dict[str, dict[str, Any]]:
        return self.entry.get("atlases") or {}

    @property
    def summary(self) -> dict[str, Any]:
        """Size of the space, active units, k-NN accuracy in it."""
        return self.entry.get("latent") or {}

    def load_latent(self) -> LatentSpace:
        """The features, labels, images and predictions of this space."""
        return LatentSpace.load(self.path, self.run.class_names or None)

    def describe(self) -> str:
        alone = len(self.run.space_names) == 1
        return str(self.run.path) if alone else f"{self.run.path} (space {self.name!r})"


def embedding_file(name: str) -> str:
    return f"embedding_{name}.npy"


# -- the run --------------------------------------------------------------------------------------


class RunDir:
    """A run directory and its manifest. Make one with :meth:`create` or :meth:`open`."""

    def __init__(self, path: Path, manifest: dict[str, Any]):
        self.path = path
        self.manifest = manifest
        manifest.setdefault("steps", {})
        manifest.setdefault("spaces", {})
        manifest.setdefault("history", [])
        self.steps = Steps(manifest["steps"], path, self.save)
        self._made_here = False  # the directory did not exist before this object
        self._locked = False

    def close(self) -> None:
        """Let other processes write this run directory again."""
        if self._locked:
            release_directory(self.path)
            self._locked = False

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        if error is not None and self._made_here and not self._anything_finished():
            self._remove()  # a run that could not start leaves nothing behind
        self.close()

    def _anything_finished(self) -> bool:
        return bool(self.manifest["steps"]) or any(
            entry.get("steps") for entry in self.manifest["spaces"].values()
        )

    def _remove(self) -> None:
        import shutil

        self.close()
        shutil.rmtree(self.path, ignore_errors=True)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r}, spaces={self.space_names})"

    def _repr_html_(self) -> str:
        """Jupyter: each space's scores table and comparison figure."""
        from latent_atlas.richdisplay import run_html

        def note(s: dict[str, Any]) -> str:
            return f"{s.get('n_samples', '?')} samples × {s.get('n_features', '?')} features"

        spaces = [(sp.name, note(sp.summary), sp.maps, sp.path) for sp in self.spaces()]
        return run_html(f"run directory: {self.path}", [], spaces)

    @classmethod
    def create(cls, path: str | Path, *, command: str, config: dict[str, Any], seed: int) -> RunDir:
        """A run directory for ``command`` with ``config``: new, or the one already there.

        An existing directory made with the same configuration keeps its finished steps; one
        made with another configuration keeps the steps whose keys still match.
        """
        path = Path(path)
        new = not path.exists()
        _writable_dir(path)
        hold_directory(path)
        manifest = read_manifest(path, missing_ok=True)
        config = as_json(config)  # as the manifest will hold it (tuples are lists there)
        if manifest.get("config") != config or manifest.get("command") != command:
            manifest.update(command=command, config=config, seed=seed, created=provenance())
        run = cls(path, manifest)
        run._made_here, run._locked = new, True
        run.record(command)
        return run

    @classmethod
    def open(cls, path: str | Path, *, command: str | None = None) -> RunDir:
        """An existing run directory; ``command`` (e.g. ``"atlas"``) is added to its history."""
        path = Path(path)
        if not path.is_dir():
            raise LatentAtlasError(
                f"{path} is not a directory, so not a latent-atlas run directory"
            )
        if not (path / MANIFEST).is_file():
            raise LatentAtlasError(f"{path} is not a latent-atlas run directory (no {MANIFEST})")
        run = cls(path, read_manifest(path))
        if command is not None:
            run.record(command)
        return run

    def record(self, command: str) -> None:
        """Add ``command`` to the run's history (what was done to it after it was made); the
        directory is held for this process until :meth:`close`."""
        _writable_dir(self.path)
        if not self._locked:
            hold_directory(self.path)
            self._locked = True
        self.manifest["history"].append(
            {
                "command": command,
                "argv": sys.argv[1:],
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "latent_atlas_version": __version__,
            }
        )
        self.save()

    # -- what the run is about --------------------------------------------------------------

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def seed(self) -> int:
        return int(self.manifest.get("seed", 0))

    @property
    def command(self) -> str | None:
        return self.manifest.get("command")

    @property
    def dataset(self) -> dict[str, Any]:
        return self.manifest.get("dataset") or {}

    @property
    def class_names(self) -> list[str]:
        return [str(c) for c in self.dataset.get("class_names") or []]

    @property
    def training(self) -> dict[str, Any] | None:
        return self.manifest.get("training")

    @property
    def model(self) -> dict[str, Any] | None:
        return self.manifest.get("model")

    @property
    def versions(self) -> dict[str, str]:
        return (self.manifest.get("created") or {}).get("versions", {})

    @property
    def version(self) -> str:
        """The latent-atlas version that made the run."""
        created = self.manifest.get("created") or {}
        return str(created.get("latent_atlas_version") or "")

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.manifest["history"]

    def set(self, **fields: Any) -> None:
        """Set run-level fields (dataset, training, model, ...); ``None`` removes one."""
        for key, value in fields.items():
            if value is None:
                self.manifest.pop(key, None)
            else:
                self.manifest[key] = value
        self.save()

    # -- latent spaces ------------------------------------------------------------------------

    @property
    def space_names(self) -> list[str]:
        """The run's latent spaces in the order they were added (the manifest sorts its keys)."""
        spaces = self.manifest["spaces"]
        return sorted(spaces, key=lambda n: spaces[n].get("order", 0))

    def space(self, name: str | None = None) -> SpaceDir:
        """The space called ``name``; without a name, the run's only (or first) space."""
        names = self.space_names
        if not names:
            raise LatentAtlasError(f"{self.path} holds no latent space yet; finish the run first")
        if name is None:
            return SpaceDir(self, names[0])
        if name not in names:
            raise ConfigError(f"{self.path} has no space {name!r}; it has: {', '.join(names)}")
        return SpaceDir(self, name)

    def spaces(self) -> list[SpaceDir]:
        return [SpaceDir(self, n) for n in self.space_names]

    def add_space(
        self, name: str, *, source: dict[str, Any], folder: str | None = None
    ) -> SpaceDir:
        """Add (or find again) the space ``name``; the first one lives in the run's folder.

        ``folder`` overrides where its files go (``"."`` or ``spaces/<name>``).
        """
        check_space_name(name)
        spaces = self.manifest["spaces"]
        if name not in spaces:
            used = {entry.get("folder", ".") for entry in spaces.values()}
            if folder is None or folder in used:
                folder = "." if "." not in used else f"{SPACES_FOLDER}/{name}"
            spaces[name] = {"folder": folder, "source": source, "steps": {}, "order": len(spaces)}
            (self.path / folder).mkdir(parents=True, exist_ok=True)
        else:
            spaces[name]["source"] = source
        self.save()
        return SpaceDir(self, name)

    def keep_spaces(self, names: list[str]) -> None:
        """Forget the spaces a command no longer makes (an earlier run's layer, say); their
        files are left where they are, and a space added later may reuse their folder."""
        spaces = self.manifest["spaces"]
        for name in [n for n in spaces if n not in names]:
            del spaces[name]
        self.save()

    def save(self) -> None:
        try:
            save_json(self.path / MANIFEST, self.manifest)
        except OSError as exc:
            raise LatentAtlasError(describe_os_error(exc)) from None


def _writable_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LatentAtlasError(f"cannot create the run directory {path}: {exc.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise LatentAtlasError(
            f"the run directory {path} is not writable; choose another --out directory"
        )
    return path
