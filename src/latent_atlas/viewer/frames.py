"""Write ``frames.html``: several latent spaces of the same images as one animated map.

A run can hold several spaces of the same N images — layers of one network, training
snapshots, two models. Given an ordered list of them ("frames"), the page shows one map whose
points travel from frame to frame (a slider and a play button), coloured by class, with
thumbnails on hover, a selection that stays on the same images in every frame, and a side by
side mode with two linked maps.

Each frame's coordinates are normalised (centred on their mean, divided by their RMS radius)
so frames share one scale; the drawn points (a seeded sample above ``MAX_POINTS``) and the
thumbnail sample follow the viewer's rule (:func:`latent_atlas.viewer.payload.select`) and are
the same rows in every frame. The page is one self-contained file, built like ``viewer.html``:
the data in a ``<script type="application/json">`` block, a Content-Security-Policy that
allows only its own inlined script and style, every string shown with ``textContent``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from latent_atlas.errors import ConfigError
from latent_atlas.fileio import save_bytes
from latent_atlas.latent import LatentSpace
from latent_atlas.palette import class_colors_uint8
from latent_atlas.runs import RunDir, SpaceDir
from latent_atlas.viewer.build import _PLACEHOLDER, _csp_hash, script_json, template
from latent_atlas.viewer.data import ViewerData
from latent_atlas.viewer.payload import (
    MAX_POINTS,
    Selection,
    _map,
    _points,
    _thumbs,
    check_options,
    encode_array,
    select,
    smallest_uint,
)

FRAMES_FILE = "frames.html"
FRAME_TEMPLATES = ("frames.html", "frames.css", "frames.js")


@dataclass(frozen=True)
class PageFrame:
    """One frame of the page: a space of the run and the label the page shows for it."""

    space: SpaceDir
    label: str
    latent: LatentSpace


def build_frames_viewer(
    run: RunDir | str | os.PathLike[str],
    frames: Sequence[tuple[str, str]],
    out: str | Path | None = None,
    *,
    max_points: int | None = None,
    seed: int | None = None,
    thumbnails: int | None = 10_000,
) -> Path:
    """Write a page that animates the points of several spaces of one run; return its path.

    Args:
        run: a run directory (path or :class:`~latent_atlas.runs.RunDir`).
        frames: ``(space name, label)`` pairs in the order the page plays them (at least
            two), e.g. ``[("conv1", "conv1"), ("dense", "dense")]``.
        out: where to write the page, atomically (default ``run.path / "frames.html"``).
        max_points: points drawn (a seeded sample of that many when there are more; the same
            rows in every frame); ``None``: the viewer's ``MAX_POINTS``.
        seed: seed of the samples and of the drawing order; ``None``: the run's seed.
        thumbnails: at most this many of the drawn points (a seeded sample) get a thumbnail;
            ``None``: all.

    Raises:
        ConfigError: fewer than two frames, an unknown space, frames of different images
            (another number of points, other labels), or no map every frame has.
    """
    run = run if isinstance(run, RunDir) else RunDir.open(run)
    max_points = MAX_POINTS if max_points is None else max_points
    check_options(0, thumbnails, max_points)
    chosen = open_frames(run, frames)
    methods = common_methods(chosen)
    seed = run.seed if seed is None else int(seed)
    payload = frames_payload(
        run, chosen, methods, max_points=max_points, seed=seed, thumbnails=thumbnails
    )
    target = Path(out) if out is not None else run.path / FRAMES_FILE
    return save_bytes(target, render_frames_html(payload).encode("utf-8"))


# -- the frames -------------------------------------------------------------------------------


def open_frames(run: RunDir, frames: Sequence[tuple[str, str]]) -> list[PageFrame]:
    """The frames' spaces and their data, checked: known spaces, the same images."""
    pairs = _check_pairs(frames)
    known = run.space_names
    unknown = [name for name, _ in pairs if name not in known]
    if unknown:
        raise ConfigError(
            f"{run.path} has no space {', '.join(map(repr, unknown))}; "
            f"it has: {', '.join(known) or 'none'}"
        )
    chosen = []
    for name, label in pairs:
        space = run.space(name)
        chosen.append(PageFrame(space, label, space.load_latent()))
    first = chosen[0]
    for frame in chosen[1:]:
        n, n0 = len(frame.latent.labels), len(first.latent.labels)
        if n != n0:
            raise ConfigError(
                f"frames must show the same images: space {frame.space.name!r} has {n:,} "
                f"points, space {first.space.name!r} has {n0:,}"
            )
        if not np.array_equal(frame.latent.labels, first.latent.labels):
            wrong = int(np.count_nonzero(frame.latent.labels != first.latent.labels))
            raise ConfigError(
                f"frames must show the same images: the labels of space {frame.space.name!r} "
                f"differ from those of space {first.space.name!r} ({wrong:,} of {n:,} points)"
            )
    return chosen


def _check_pairs(frames: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    if isinstance(frames, str | bytes) or not isinstance(frames, Sequence):
        raise ConfigError("frames must be a list of (space name, label) pairs")
    pairs = []
    for item in frames:
        if (
            not isinstance(item, tuple | list)
            or len(item) != 2
            or not all(isinstance(s, str) for s in item)
        ):
            raise ConfigError(f"each frame is a (space name, label) pair of strings, not {item!r}")
        pairs.append((item[0], item[1]))
    if len(pairs) < 2:
        raise ConfigError(f"a frames page needs at least 2 frames, got {len(pairs)}")
    return pairs


def common_methods(frames: Sequence[PageFrame]) -> list[str]:
    """The maps every frame has, in the first frame's order; an error when there is none."""
    names = [f.space.map_names for f in frames]
    common = [m for m in names[0] if all(m in other for other in names[1:])]
    if not common:
        have = "; ".join(
            f"{f.space.name}: {', '.join(n) or 'no maps'}"
            for f, n in zip(frames, names, strict=True)
        )
        raise ConfigError(f"no map is common to every frame ({have})")
    return common


def normalise(coords: np.ndarray) -> np.ndarray:
    """N×2 coordinates centred on their mean and divided by their RMS radius (the square root
    of the mean squared distance to the centre); non-finite rows stay as they are."""
    xy = np.asarray(coords, dtype=np.float64)
    finite = np.isfinite(xy).all(axis=1)
    if not finite.any():
        return xy
    centre = xy[finite].mean(axis=0)
    rms = float(np.sqrt(((xy[finite] - centre) ** 2).sum(axis=1).mean()))
    return (xy - centre) / (rms if rms > 0 else 1.0)


# -- the page's data --------------------------------------------------------------------------


def frames_payload(
    run: RunDir,
    frames: Sequence[PageFrame],
    methods: Sequence[str],
    *,
    max_points: int | None,
    seed: int,
    thumbnails: int | None,
) -> dict[str, Any]:
    """Everything the page shows: the drawn points' classes, each frame's predictions, each
    method's normalised coordinates per frame, the thumbnails."""
    images = next((f.latent.images for f in frames if f.latent.images is not None), None)
    datas = [
        _frame_data(f, methods, seed, images if i == 0 else None) for i, f in enumerate(frames)
    ]
    chosen = select(
        datas[0], max_thumbnails=thumbnails, seed=seed, max_points=max_points, neighbours=False
    )
    rows, n = chosen.rows, len(chosen.rows)
    notes: list[str] = []
    if n < datas[0].n:
        notes.append(
            f"{datas[0].n:,} points are too many to draw one by one: the maps show a seeded "
            f"sample (seed {seed}) of {n:,}, the same images in every frame"
        )
    points = [_points(d, rows) for d in datas]
    names = max((p["classNames"] for p in points), key=len)
    per_method = [
        {
            "name": m,
            "frames": [
                _map(f"{m} ({f.label})", normalise(d.embeddings[m][rows]), notes)
                for f, d in zip(frames, datas, strict=True)
            ],
        }
        for m in methods
    ]
    return {
        "format": 1,
        "kind": "frames",
        "run": _run_info(run, n),
        "n": n,
        "classNames": names,
        "colors": class_colors_uint8(len(names)).tolist(),
        "index": points[0]["index"],
        "label": points[0]["label"],
        "frames": [_frame_json(f, p) for f, p in zip(frames, points, strict=True)],
        "methods": per_method,
        **_thumbnails(chosen, notes),
        "notes": notes,
    }


def _frame_data(frame: PageFrame, methods: Sequence[str], seed: int, images: Any) -> ViewerData:
    """What the page shows of one frame, in the viewer's checked container (the images, the
    same in every frame, go with the first frame only: the thumbnails are read from it)."""
    latent = frame.latent
    return ViewerData(
        embeddings={m: frame.space.embedding(m) for m in methods},
        labels=latent.labels,
        class_names=list(latent.class_names),
        images=images,
        probabilities=latent.probabilities,
        seed=seed,
    )


def _frame_json(frame: PageFrame, points: dict[str, Any]) -> dict[str, Any]:
    return {
        "space": frame.space.name,
        "label": frame.label,
        "predicted": points["predicted"],
        "confidence": points["confidence"],
    }


def _thumbnails(chosen: Selection, notes: list[str]) -> dict[str, Any]:
    """The thumbnail sample (positions among the drawn points) and its sprite sheets."""
    n, sample = len(chosen.rows), chosen.sample
    if chosen.images is not None and len(sample) < n:
        notes.append(
            f"thumbnails cover a seeded sample (seed {chosen.seed}) of {len(sample):,} of the "
            f"{n:,} points drawn"
        )
    return {
        "sample": {
            "size": len(sample),
            "seed": chosen.seed,
            "indices": None if len(sample) == n else encode_array(smallest_uint(sample)),
        },
        "thumbs": _thumbs(chosen.images, notes),
    }


def _run_info(run: RunDir, n: int) -> dict[str, Any]:
    return {"name": run.path.name, "dataset": str(run.dataset.get("name", "")), "n": n}


# -- the page ---------------------------------------------------------------------------------


def render_frames_html(payload: dict[str, Any]) -> str:
    """The frames page for ``payload`` (see :func:`frames_payload`), with the viewer's CSP."""
    css, js = template("frames.css"), template("frames.js")
    for name, text, end in (("frames.css", css, "</style"), ("frames.js", js, "</script")):
        if end in text.lower():  # would end the inline block early
            raise RuntimeError(f"template {name} must not contain {end}")
    csp = (
        "default-src 'none'; img-src data: blob:; "
        f"style-src {_csp_hash(css)}; script-src {_csp_hash(js)}; "
        "base-uri 'none'; form-action 'none'"
    )
    parts = {"CSP": csp, "KEY": "", "CSS": css, "JS": js, "DATA": script_json(payload)}
    # one pass: text put in is never searched for placeholders again
    return _PLACEHOLDER.sub(lambda m: parts[m.group(1)], template("frames.html"))
