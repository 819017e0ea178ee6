"""A space as TensorBoard's Embedding Projector reads it (``--to tensorboard DIR``).

The folder holds ``features.tsv`` (the space's features, one row per point), one
``map_<name>.tsv`` per 2-D map (extra embeddings of the same points), ``metadata.tsv``
(``class``, and ``predicted``, ``correct``, ``confidence`` when a model made the features;
a header row when there is more than one column, as the projector expects), ``sprite.png``
(the thumbnails in a square grid, at most :data:`SPRITE_MAX` pixels a side) and
``projector_config.pbtxt`` (relative paths, an explicit ``tensor_name`` for every embedding).
``tensorboard --logdir DIR`` shows it in the Projector tab; TensorFlow is not needed.

Numbers are written with 9 significant digits, which give every float32 back exactly. When the
thumbnails do not fit one sprite, a seeded sample of the points (the run's seed) is exported,
and ``metadata.tsv`` gains an ``index`` column naming each point's row.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from latent_atlas.fileio import save_image
from latent_atlas.sampling import seeded_sample

if TYPE_CHECKING:
    from latent_atlas.export import Points

SPRITE_MAX = 8192  # pixels a side: the largest sprite the projector takes
THUMB_MAX = 64  # larger thumbnails are scaled down to this many pixels a side
CONFIG = "projector_config.pbtxt"
FEATURES = "features.tsv"
METADATA = "metadata.tsv"
SPRITE = "sprite.png"
CHUNK = 4096  # rows written at a time

__all__ = ["CONFIG", "SPRITE_MAX", "sprite_capacity", "write_projector"]


def write_projector(points: Points, folder: Path, *, seed: int) -> tuple[tuple[str, ...], int]:
    """Write the projector's files for ``points`` into ``folder``; return the file names and
    the number of points exported (a seeded sample when the sprite cannot hold them all)."""
    features = points.array("features", "the tensorboard export")
    images = points.array("images", "the sprite") if _has(points, "images") else None
    rows = np.arange(len(points))
    tile: tuple[int, int] | None = None
    if images is None:
        points.notes.append("the run has no images.npy: the projector gets no sprite")
    else:
        tile = thumbnail_size(images.shape[1], images.shape[2])
        capacity = sprite_capacity(tile)
        rows = seeded_sample(len(points), capacity, seed)
        if len(rows) < len(points):
            points.notes.append(
                f"one {SPRITE_MAX}×{SPRITE_MAX} sprite holds {capacity} thumbnails of "
                f"{tile[1]}×{tile[0]} pixels: exported a seeded sample of {len(rows)} of "
                f"{len(points)} points (seed {seed}); metadata.tsv's 'index' names their rows"
            )
    names = _tensor_names(points)
    embeddings = [(names[0], FEATURES, features, points.index[rows])]
    for (name, xy), tensor in zip(points.maps.items(), names[1:], strict=True):
        embeddings.append((tensor, f"map_{_slug(name)}.tsv", xy, rows))
    for _, file, values, which in embeddings:
        write_tsv(folder / file, values, which)
    write_metadata(folder / METADATA, points, rows, sampled=len(rows) < len(points))
    files = [file for _, file, _, _ in embeddings] + [METADATA]
    if images is not None and tile is not None:
        save_image(folder / SPRITE, sprite_sheet(images, points.index[rows], tile))
        files.append(SPRITE)
    shapes = [(tensor, file, (len(rows), v.shape[1])) for tensor, file, v, _ in embeddings]
    (folder / CONFIG).write_text(projector_config(shapes, tile), encoding="utf-8")
    return (*files, CONFIG), len(rows)


def _has(points: Points, kind: str) -> bool:
    from latent_atlas.latent import FILES

    return points.space.file(FILES[kind]).is_file()


def _tensor_names(points: Points) -> list[str]:
    """The features' tensor name (the space's name), then ``<space>/<map>`` for each map."""
    space = points.space.name
    return [space, *(f"{space}/{name}".replace(":", "_") for name in points.maps)]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "map"


def thumbnail_size(height: int, width: int) -> tuple[int, int]:
    """(height, width) of a sprite thumbnail: the image's, scaled down to :data:`THUMB_MAX`."""
    scale = min(1.0, THUMB_MAX / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def sprite_capacity(tile: tuple[int, int]) -> int:
    """How many thumbnails of ``tile`` (height, width) a square grid within the limit holds."""
    side = SPRITE_MAX // max(tile)
    return side * side


def write_tsv(path: Path, values: np.ndarray, rows: np.ndarray) -> None:
    """``values[rows]`` as tab-separated numbers, 9 significant digits (float32 exact)."""
    with open(path, "w", encoding="ascii", newline="\n") as fh:
        for start in range(0, len(rows), CHUNK):
            block = np.asarray(values[rows[start : start + CHUNK]], dtype=np.float32)
            np.savetxt(fh, block.reshape(len(block), -1), fmt="%.9g", delimiter="\t")


def metadata_columns(points: Points, rows: np.ndarray, *, sampled: bool) -> dict[str, list[str]]:
    """The metadata columns as text: class, then the prediction when there is one."""
    columns = {"class": list(points.class_of(points.labels[rows]))}
    if points.predictions is not None:
        predicted = points.predictions[rows]
        columns["predicted"] = list(points.class_of(predicted))
        columns["correct"] = ["yes" if ok else "no" for ok in predicted == points.labels[rows]]
        if points.confidence is not None:
            columns["confidence"] = [f"{c:.4f}" for c in points.confidence[rows].tolist()]
    if sampled:
        columns["index"] = [str(i) for i in points.index[rows].tolist()]
    return columns


def write_metadata(path: Path, points: Points, rows: np.ndarray, *, sampled: bool) -> None:
    """``metadata.tsv``: a header row only when there is more than one column (the projector
    reads a single column without one)."""
    columns = metadata_columns(points, rows, sampled=sampled)
    lines = ["\t".join(columns)] if len(columns) > 1 else []
    lines += ["\t".join(_cell(v) for v in row) for row in zip(*columns.values(), strict=True)]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _cell(value: str) -> str:
    """A value on one line, without tabs (the projector's separators)."""
    return re.sub(r"[\t\r\n]+", " ", value).strip() or "-"


def sprite_sheet(images: np.ndarray, rows: np.ndarray, tile: tuple[int, int]) -> np.ndarray:
    """The thumbnails of ``rows`` in a square grid of ⌈√n⌉ columns, row by row."""
    from PIL import Image

    side = max(1, math.ceil(math.sqrt(len(rows))))
    h, w = tile
    channels = images.shape[3] if images.ndim == 4 else 1
    sheet = np.zeros((side * h, side * w, channels), dtype=np.uint8)
    for k, row in enumerate(rows.tolist()):
        pixels = np.asarray(images[row]).reshape(images.shape[1], images.shape[2], channels)
        if pixels.shape[:2] != (h, w):
            im = Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels)
            pixels = np.asarray(im.resize((w, h), Image.Resampling.LANCZOS)).reshape(h, w, -1)
        r, c = divmod(k, side)
        sheet[r * h : (r + 1) * h, c * w : (c + 1) * w] = pixels
    return sheet


Shape = tuple[str, str, tuple[int, int]]  # tensor name, file, (rows, columns)


def projector_config(shapes: list[Shape], tile: tuple[int, int] | None) -> str:
    """``projector_config.pbtxt``: one embedding per tensor file, all sharing the metadata and
    the sprite (``single_image_dim`` is width, then height)."""
    blocks = []
    for name, file, (n, d) in shapes:
        lines = [f"  tensor_name: {_quote(name)}", f"  tensor_path: {_quote(file)}",
                 f"  tensor_shape: {n}", f"  tensor_shape: {d}",
                 f"  metadata_path: {_quote(METADATA)}"]  # fmt: skip
        if tile is not None:
            lines += ["  sprite {", f"    image_path: {_quote(SPRITE)}",
                      f"    single_image_dim: {tile[1]}", f"    single_image_dim: {tile[0]}",
                      "  }"]  # fmt: skip
        blocks.append("embeddings {\n" + "\n".join(lines) + "\n}\n")
    return "".join(blocks)


def _quote(text: str) -> str:
    """A protobuf text-format string."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'
