"""Exports of a finished run for other tools: ``latent-atlas export RUN_DIR --to FORMAT TARGET``.

One latent space of a run (its first by default) goes out as

* ``tensorboard``: a folder TensorBoard's Embedding Projector reads (``export_tensorboard``);
* ``embedding-atlas``: one Parquet file for Apple's Embedding Atlas (the map's ``x``/``y``,
  ``class``, a ``description`` text column, the thumbnails as PNG bytes in ``image``);
* ``parquet`` and ``csv``: one row per image with the columns of :data:`TABLE_COLUMNS`.

Everything comes from the space's ``projections.parquet`` (index, labels, predictions, each
map's coordinates) and, where present, its ``images.npy``, ``activations.npy`` and per-point
scores (``metrics_per_point.parquet``, ``trust.parquet``). An export is written into a
temporary sibling of the target and renamed into place when whole, so a failed export leaves
nothing behind; an existing non-empty target is replaced only with ``force``, and never when it
is part of a run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latent_atlas.errors import ConfigError, LatentAtlasError
from latent_atlas.fileio import TMP_TAG, _umask, atomic_path, fsync_dir, load_npy, load_table
from latent_atlas.latent import FILES
from latent_atlas.manifest import MANIFEST
from latent_atlas.runs import RunDir, SpaceDir

FORMATS = ("tensorboard", "embedding-atlas", "parquet", "csv")
FOLDER_FORMATS = ("tensorboard",)
PROJECTIONS = "projections.parquet"
SCORE_FILES = ("metrics_per_point.parquet", "trust.parquet")  # index + per-point columns
PREFERRED_MAPS = ("umap", "tsne")  # the map Embedding Atlas shows unless told
MIN_IMAGE = 32  # pixels a side below which Embedding Atlas gets images enlarged (8×8 digits)
# the documented columns of --to parquet/csv, in order ({map}: one per map of the space)
TABLE_COLUMNS = (
    "index", "label", "class", "predicted", "predicted_class", "confidence", "correct",
    "{map}_x", "{map}_y", "{map}_preservation", "{map}_kept", "{map}_reading",
)  # fmt: skip

__all__ = ["FORMATS", "TABLE_COLUMNS", "ExportResult", "Points", "export_run", "read_points"]


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: the format, the target, the space, its rows and columns or files."""

    format: str
    target: Path
    space: str
    rows: int
    columns: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    open_with: str = ""

    def describe(self) -> str:
        """A few lines for the command line: what was written, notes, how to open it."""
        what = f"{len(self.columns)} columns" if self.columns else ", ".join(self.files)
        lines = [f"{self.target}: {self.format} export of space {self.space!r}, "
                 f"{self.rows} rows ({what})"]  # fmt: skip
        lines += [f"note: {note}" for note in self.notes]
        if self.open_with:
            lines.append(f"open it with: {self.open_with}")
        return "\n".join(lines)


@dataclass
class Points:
    """The per-point table of one space: rows in ``index`` order, each map's coordinates."""

    space: SpaceDir
    index: np.ndarray  # row of the space's arrays (images.npy, activations.npy)
    labels: np.ndarray
    class_names: list[str]
    predictions: np.ndarray | None
    confidence: np.ndarray | None
    maps: dict[str, np.ndarray]  # name -> N×2 float32
    scores: dict[str, Any] = field(default_factory=dict)  # column -> pyarrow array (nulls)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.index)

    def class_of(self, values: np.ndarray) -> np.ndarray:
        names = np.asarray([*self.class_names, ""], dtype=object)
        return names[np.where(values < len(self.class_names), values, -1)].astype(str)

    def array(self, kind: str, needed_by: str) -> np.ndarray:
        """The space's ``features`` or ``images`` rows for these points, or one clear error."""
        path = self.space.file(FILES[kind])
        if not path.is_file():
            raise LatentAtlasError(
                f"{self.space.describe()} has no {path.name}, which {needed_by} needs"
            )
        values = load_npy(path, mmap=True)
        if len(self) and (values.ndim < 2 or int(self.index.max()) >= len(values)):
            raise LatentAtlasError(f"{path} has {len(values)} rows, fewer than {PROJECTIONS}")
        return values


def export_run(
    run_dir: str | os.PathLike[str],
    to: str,
    target: str | os.PathLike[str],
    *,
    space: str | None = None,
    map_name: str | None = None,
    force: bool = False,
) -> ExportResult:
    """Export one latent space of the run at ``run_dir`` as ``to`` (one of :data:`FORMATS`)
    into ``target``; ``map_name`` is the map Embedding Atlas shows (default: umap, t-SNE, else
    the first).

    Refuses, with one clear line each, an unknown format, a target that exists and is not
    empty (unless ``force``), a target that is part of a run, and a run without what the
    format needs. The export is built in a temporary sibling and renamed into place.
    """
    if to not in FORMATS:
        raise ConfigError(f"unknown export format {to!r}; choose one of: {', '.join(FORMATS)}")
    run = RunDir.open(run_dir)
    points = read_points(run.space(space))
    chosen = pick_map(points, map_name)
    dest = check_target(Path(target), to, run, force=force)
    files: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    with staged(dest, folder=to in FOLDER_FORMATS) as tmp:
        if to == "tensorboard":
            from latent_atlas.export_tensorboard import write_projector

            files, rows = write_projector(points, tmp, seed=run.seed)
        else:
            table = build_table(points, chosen if to == "embedding-atlas" else None)
            write_table(table, tmp, to)
            columns, rows = tuple(table.column_names), table.num_rows
    return ExportResult(format=to, target=dest, space=points.space.name, rows=rows,
                        columns=columns, files=files, notes=tuple(points.notes),
                        open_with=open_command(to, dest))  # fmt: skip


def open_command(to: str, target: Path) -> str:
    """The one command that opens an export (empty for the plain tables)."""
    if to == "tensorboard":
        return f"tensorboard --logdir {target} (the Projector tab)"
    if to == "embedding-atlas":
        return f"embedding-atlas {target} --x x --y y --text description --image image"
    return ""


# -- reading a space ------------------------------------------------------------------------------


def read_points(space: SpaceDir) -> Points:
    """The space's ``projections.parquet`` and per-point scores as :class:`Points`."""
    path = space.file(PROJECTIONS)
    if not path.is_file():
        raise LatentAtlasError(
            f"{space.describe()} has no {PROJECTIONS}; finish the run's map stage first"
        )
    table = load_table(path)
    for needed in ("index", "label"):
        if needed not in table:
            raise LatentAtlasError(f"{path} has no {needed!r} column")
    index = np.asarray(table["index"], dtype=np.int64)
    if len(index) == 0:
        raise LatentAtlasError(f"{path} has no rows")
    if index.min() < 0 or len(np.unique(index)) != len(index):
        raise LatentAtlasError(f"{path}: 'index' must hold distinct row numbers")
    labels = np.asarray(table["label"], dtype=np.int64)
    maps = {
        name[:-2]: np.stack([table[name], table[name[:-2] + "_y"]], axis=1).astype(np.float32)
        for name in table
        if name.endswith("_x") and name[:-2] + "_y" in table
    }
    if not maps:
        raise LatentAtlasError(f"{space.describe()} has no map yet; finish the run first")
    predicted = table.get("predicted")
    confidence = table.get("confidence")
    points = Points(space=space, index=index, labels=labels,
                    class_names=_class_names(space, table, labels),
                    predictions=None if predicted is None else np.asarray(predicted, np.int64),
                    confidence=None if confidence is None else np.asarray(confidence, np.float32),
                    maps=maps)  # fmt: skip
    for name in SCORE_FILES:
        _add_scores(points, space.file(name))
    return points


def _class_names(space: SpaceDir, table: dict[str, np.ndarray], labels: np.ndarray) -> list[str]:
    names = list(space.run.class_names)
    if len(names) > int(labels.max()):
        return names
    if "label_name" in table:  # (a run without class names in its manifest)
        found = dict(zip(labels.tolist(), np.asarray(table["label_name"]).tolist(), strict=True))
        return [str(found.get(i, i)) for i in range(int(labels.max()) + 1)]
    return [str(i) for i in range(int(labels.max()) + 1)]


def _add_scores(points: Points, path: Path) -> None:
    """Add the per-point columns of ``path`` (``index`` + columns), aligned to the points;
    points the file does not score get nulls. A file that does not fit is left out, noted."""
    import pyarrow as pa

    if not path.is_file():
        return
    try:
        table = load_table(path)
    except LatentAtlasError as exc:
        points.notes.append(f"{path.name} left out: {exc}")
        return
    rows = np.asarray(table.pop("index", []), dtype=np.int64)
    where = {int(i): k for k, i in enumerate(points.index)}
    if len(rows) == 0 or any(int(i) not in where for i in rows):
        points.notes.append(f"{path.name} left out: its rows do not fit {PROJECTIONS}")
        return
    position = np.full(len(points), -1, dtype=np.int64)
    position[[where[int(i)] for i in rows]] = np.arange(len(rows))
    take = pa.array(position, mask=position < 0)
    names = _reading_names()
    for name, values in table.items():
        if name not in points.scores and not name.endswith(("_x", "_y")):
            if name.endswith("_reading") and names and np.asarray(values).dtype.kind in "iu":
                values = [names[v] if 0 <= v < len(names) else None for v in values.tolist()]
            points.scores[name] = pa.array(values).take(take)


def _reading_names() -> tuple[str, ...] | None:
    """The names of trust.parquet's reading codes, where latent_atlas.trust is there."""
    try:
        from latent_atlas.trust import READINGS
    except ImportError:
        return None
    return tuple(READINGS)


def pick_map(points: Points, name: str | None) -> str:
    """The map called ``name``, or the preferred one there is (umap, tsne, else the first)."""
    if name is not None:
        if name not in points.maps:
            have = ", ".join(points.maps)
            raise ConfigError(f"{points.space.describe()} has no {name!r} map; it has: {have}")
        return name
    return next((m for m in PREFERRED_MAPS if m in points.maps), next(iter(points.maps)))


# -- tables ---------------------------------------------------------------------------------------


def build_table(points: Points, atlas_map: str | None = None) -> Any:
    """The per-point pyarrow table (:data:`TABLE_COLUMNS`); with ``atlas_map``, also what
    Embedding Atlas needs: ``x``, ``y`` of that map, ``description`` and ``image`` (PNG)."""
    import pyarrow as pa

    columns: dict[str, Any] = {
        "index": points.index,
        "label": points.labels,
        "class": points.class_of(points.labels),
    }
    if points.predictions is not None:
        columns["predicted"] = points.predictions
        columns["predicted_class"] = points.class_of(points.predictions)
        if points.confidence is not None:
            columns["confidence"] = points.confidence
        columns["correct"] = points.predictions == points.labels
    for name, xy in points.maps.items():
        columns[f"{name}_x"], columns[f"{name}_y"] = xy[:, 0], xy[:, 1]
    columns.update(points.scores)
    if atlas_map is not None:
        columns["x"], columns["y"] = points.maps[atlas_map][:, 0], points.maps[atlas_map][:, 1]
        columns["description"] = describe_points(points)
        images = points.array("images", "the embedding-atlas export")
        columns["image"] = pa.array(png_bytes(images, points.index), type=pa.binary())
    return pa.table(columns)


def describe_points(points: Points) -> list[str]:
    """One line of text per point: its index, class and, when known, the prediction."""
    classes = points.class_of(points.labels)
    if points.predictions is None:
        return [f"#{i}: {c}" for i, c in zip(points.index.tolist(), classes, strict=True)]
    predicted = points.class_of(points.predictions)
    confidence = points.confidence
    if confidence is None:
        confidence = np.full(len(points), np.nan, dtype=np.float32)
    return [
        f"#{i}: {c}, predicted {p} ({q:.2f}, {'right' if c == p else 'wrong'})"
        for i, c, p, q in zip(points.index.tolist(), classes, predicted, confidence, strict=True)
    ]


def png_bytes(images: np.ndarray, rows: np.ndarray) -> list[bytes]:
    """Each image of ``rows`` as PNG bytes (grey images stay grey); images smaller than
    :data:`MIN_IMAGE` pixels a side are enlarged by a whole factor (each pixel a block)."""
    import io

    from PIL import Image

    factor = max(1, -(-MIN_IMAGE // max(images.shape[1], images.shape[2])))
    out = []
    for row in rows.tolist():
        pixels = np.asarray(images[row])
        if pixels.ndim == 3 and pixels.shape[2] == 1:
            pixels = pixels[:, :, 0]
        if factor > 1:
            pixels = np.repeat(np.repeat(pixels, factor, axis=0), factor, axis=1)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def write_table(table: Any, path: Path, to: str) -> None:
    """Write ``table`` as Parquet (``parquet``, ``embedding-atlas``) or CSV to ``path``."""
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    if to == "csv":
        pa_csv.write_csv(table, path)
    else:
        pq.write_table(table, path)


# -- the target -----------------------------------------------------------------------------------


def check_target(target: Path, to: str, run: RunDir, *, force: bool) -> Path:
    """``target`` when an export may go there, or one clear error why not."""
    folder = to in FOLDER_FORMATS
    if target.is_dir() and not folder:
        raise ConfigError(f"{target} is a folder; --to {to} writes one file: give a file name")
    if target.exists() and not target.is_dir() and folder:
        raise ConfigError(f"{target} is a file; --to {to} writes a folder: give a folder name")
    if _part_of_run(target, run):
        raise ConfigError(f"{target} is part of a run directory; export somewhere else")
    full = target.is_dir() and any(target.iterdir())
    full = full or (target.is_file() and target.stat().st_size > 0)
    if full and not force:
        raise ConfigError(f"{target} exists and is not empty; give --force to replace it")
    return target


def _part_of_run(target: Path, run: RunDir) -> bool:
    """Whether replacing ``target`` would touch a run: a run's folder (or one above it), or one
    of the files a run's folders hold (its manifest, arrays, tables)."""
    here, run_path = target.resolve(), run.path.resolve()
    if here == run_path or here in run_path.parents:
        return True
    if target.is_dir():
        return (target / MANIFEST).exists()
    folders = {s.path.resolve() for s in run.spaces()} | {run_path}
    known = {MANIFEST, PROJECTIONS, *SCORE_FILES, *FILES.values(), "model.pt"}
    in_run = here.parent in folders or (here.parent / MANIFEST).exists()
    in_run = in_run or (
        here.parent.parent.name == "spaces" and (here.parents[2] / MANIFEST).exists()
    )
    return in_run and (here.name in known or here.name.startswith("embedding_"))


@contextlib.contextmanager
def staged(target: Path, *, folder: bool) -> Iterator[Path]:
    """A temporary sibling of ``target`` to build the export in; renamed onto ``target`` when
    the block succeeds, removed when it fails."""
    if not folder:
        with atomic_path(target) as tmp:
            yield tmp
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}.{TMP_TAG}-{os.getpid()}-"
    tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=target.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; give the usual permissions
        yield tmp
        for path in tmp.rglob("*"):
            if path.is_file():
                with open(path, "rb+") as fh:
                    os.fsync(fh.fileno())
        _swap_in(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(tmp: Path, target: Path) -> None:
    """Rename the folder ``tmp`` onto ``target``, replacing what was there."""
    if not target.exists():
        os.rename(tmp, target)
    else:
        old = tmp.with_name(tmp.name.removesuffix(".tmp") + "-old.tmp")
        os.rename(target, old)
        try:
            os.rename(tmp, target)
        except OSError:
            os.rename(old, target)  # the old export stays as it was
            raise
        shutil.rmtree(old, ignore_errors=True)
    fsync_dir(target.parent)
