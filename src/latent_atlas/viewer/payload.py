"""What the viewer page shows, as one JSON-ready dict made from a :class:`ViewerData`.

Per-point arrays travel as base64 of little-endian typed arrays (map coordinates quantised to
16 bits within each map's bounds, confidences to 16 bits), thumbnails as sprite sheets, atlases
as the run's PNG bytes (lossy WebP when that is far smaller). Nothing here is HTML: every string
stays data and the page shows it as text.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from latent_atlas.errors import ConfigError
from latent_atlas.palette import class_colors_uint8
from latent_atlas.sampling import seeded_sample
from latent_atlas.viewer.data import Atlas, ViewerData
from latent_atlas.viewer.scores import scores_table
from latent_atlas.viewer.sprites import build_sprites

MAX_POINTS = 2_000_000  # points drawn one by one; a larger run shows a seeded sample of this many
MAX_THUMBNAILS = 100_000  # points with a thumbnail and neighbours (a seeded sample above)
THUMB_PIXELS = 100_000 * 16 * 16  # thumbnail pixels in all: 16 px at 100,000, 32 px at 25,000
MAX_THUMB_PX = 64  # the largest thumbnail side
MAX_ATLAS_BYTES = 32 * 2**20  # larger atlas PNGs are left out of the page (with a note)
ATLAS_WEBP_FROM = 256 * 2**10  # larger atlas PNGs are embedded as lossy WebP
ATLAS_WEBP_QUALITY = 90
_JS_TYPES = {
    np.dtype("uint8"): "uint8",
    np.dtype("uint16"): "uint16",
    np.dtype("uint32"): "uint32",
    np.dtype("int32"): "int32",
    np.dtype("float32"): "float32",
}


def encode_array(values: np.ndarray) -> dict[str, Any]:
    """A typed array for the page: ``{"dtype", "length", "b64"}`` (little-endian bytes)."""
    arr = np.ascontiguousarray(values)
    if arr.dtype not in _JS_TYPES:
        raise TypeError(f"no typed array for dtype {arr.dtype}")
    data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
    return {
        "dtype": _JS_TYPES[arr.dtype],
        "length": int(arr.size),
        "b64": base64.b64encode(data).decode(),
    }


def smallest_uint(values: np.ndarray) -> np.ndarray:
    """Non-negative integers in the narrowest of uint8/uint16/uint32 that holds them."""
    top = int(values.max()) if values.size else 0
    dtype = np.uint8 if top < 2**8 else np.uint16 if top < 2**16 else np.uint32
    return np.asarray(values).astype(dtype)


def quantise(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map [lo, hi] onto 0..65535 (uint16); the page maps it back."""
    span = hi - lo if hi > lo else 1.0
    q = np.rint((np.asarray(values, dtype=np.float64) - lo) / span * 65535)
    return np.clip(q, 0, 65535).astype(np.uint16)


def _atlas_url(data: bytes) -> str | None:
    """The atlas as a data URI: its PNG bytes, or lossy WebP when that is much smaller."""
    from PIL import Image, UnidentifiedImageError, features

    kind = "png"
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
        if len(data) > ATLAS_WEBP_FROM and features.check("webp"):
            with Image.open(io.BytesIO(data)) as img:
                if max(img.size) <= 16383:  # WebP's largest side
                    buf = io.BytesIO()
                    rgb = img.convert("L" if img.mode in ("1", "L", "I;16") else "RGB")
                    rgb.save(buf, format="WEBP", quality=ATLAS_WEBP_QUALITY, method=4)
                    if buf.tell() < len(data) // 2:
                        data, kind = buf.getvalue(), "webp"
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return None
    return f"data:image/{kind};base64," + base64.b64encode(data).decode()


def nearest_neighbours(features: np.ndarray, k: int) -> np.ndarray:
    """Indices (S×k) of each row's k nearest other rows (Euclidean), nearest first."""
    from sklearn.neighbors import NearestNeighbors

    n = len(features)
    k = min(k, n - 1)
    if k < 1:
        return np.zeros((n, 0), dtype=np.int64)
    nn = NearestNeighbors(n_neighbors=k + 1).fit(features)
    _, idx = nn.kneighbors(features)
    keep = idx != np.arange(n)[:, None]
    no_self = keep.all(axis=1)  # duplicates can push a point out of its own list
    keep[no_self, -1] = False
    return idx[keep].reshape(n, k)


# -- what the page shows of the data ------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """The points a page draws and the sample of them with thumbnails and neighbours.

    The sample's images and features are read (decoded, for lazy images) once, here: the
    page's key and its payload both use them.
    """

    rows: np.ndarray  # rows of the data that are drawn (all, or a seeded sample)
    sample: np.ndarray  # positions among the drawn points with a thumbnail and neighbours
    seed: int
    images: np.ndarray | None  # the sample's images
    features: np.ndarray | None  # the sample's features, float32


def check_options(k: int, max_thumbnails: int | None, max_points: int | None) -> None:
    if k < 0:
        raise ConfigError(f"k must be at least 0, got {k}")
    if max_thumbnails is not None and max_thumbnails < 0:
        raise ConfigError(f"max_thumbnails must be at least 0, got {max_thumbnails}")
    if max_points is not None and max_points < 1:
        raise ConfigError(f"max_points must be at least 1, got {max_points}")


def page_seed(data: ViewerData, seed: int | None) -> int:
    """``seed``, else the data's own (a run's seed), else 0."""
    if seed is not None:
        return int(seed)
    return int(data.seed) if data.seed is not None else 0


def select(
    data: ViewerData,
    *,
    max_thumbnails: int | None = MAX_THUMBNAILS,
    seed: int | None = None,
    max_points: int | None = MAX_POINTS,
    neighbours: bool = True,
) -> Selection:
    """The drawn points (a seeded sample above ``max_points``) and their thumbnail sample."""
    check_options(0, max_thumbnails, max_points)
    seed = page_seed(data, seed)
    rows = seeded_sample(data.n, max_points, seed)
    sample = seeded_sample(len(rows), max_thumbnails, seed)
    shown = rows[sample]
    images = features = None
    if len(shown) and data.images is not None:
        images = np.asarray(data.images[shown])
    if len(shown) and neighbours and data.features is not None:
        features = np.asarray(data.features[shown], dtype=np.float32)
    return Selection(rows, sample, seed, images, features)


def build_payload(
    data: ViewerData,
    *,
    max_thumbnails: int | None = MAX_THUMBNAILS,
    k: int = 10,
    seed: int | None = None,
    max_points: int | None = MAX_POINTS,
) -> dict[str, Any]:
    """Everything the page shows of ``data``.

    Above ``max_points`` points the page shows a seeded sample of that many (and says so);
    hovering still reports each point's row in the run. ``max_thumbnails`` points (a seeded
    sample of those drawn) get a thumbnail and their ``k`` nearest neighbours in the latent
    space. ``seed=None``: the data's seed (a run's), else 0.
    """
    check_options(k, max_thumbnails, max_points)
    chosen = select(
        data, max_thumbnails=max_thumbnails, seed=seed, max_points=max_points, neighbours=k > 0
    )
    return payload_of(data, chosen, k)


def payload_of(data: ViewerData, chosen: Selection, k: int) -> dict[str, Any]:
    """The page's dict for the points ``chosen`` of ``data`` (see :func:`build_payload`)."""
    notes = list(data.notes)
    rows, sample, seed = chosen.rows, chosen.sample, chosen.seed
    n = len(rows)
    if n < data.n:
        notes.append(
            f"{data.n:,} points are too many to draw one by one: the maps show a seeded "
            f"sample (seed {seed}) of {n:,}"
        )
    payload: dict[str, Any] = {
        "format": 1,
        "run": _run_info(data, n),
        "n": n,
        **_points(data, rows),
        "methods": [_map(name, xy[rows], notes) for name, xy in data.embeddings.items()],
        "metrics": scores_table(data.scores or {}, data.map_names, data.score_sources or []),
        "atlases": _atlases(data.atlases, notes),
        "notes": notes,
    }
    payload["sample"] = {
        "size": len(sample),
        "seed": seed,
        "indices": None if len(sample) == n else encode_array(smallest_uint(sample)),
    }
    if 0 < len(sample) < n:
        notes.append(
            f"thumbnails and neighbours cover a seeded sample (seed {seed}) of {len(sample):,} "
            f"of the {n:,} points drawn"
        )
    payload["thumbs"] = _thumbs(chosen.images, notes)
    payload["neighbours"] = _neighbours(chosen.features, k, notes)
    payload["trust"] = trust_payload(data, rows, notes)
    return payload


def trust_payload(data: ViewerData, rows: np.ndarray, notes: list[str]) -> dict[str, Any] | None:
    """Where each map can be trusted, per scored point (:mod:`latent_atlas.trust`): the share
    of its neighbours kept (0..255 for 0..1) and its reading (a code into ``readings``)."""
    trust = data.trust
    if trust is None:
        return None
    from latent_atlas.trust import READING_HELP, READINGS

    scored = np.asarray(trust.sample, dtype=np.int64)
    pos = np.minimum(np.searchsorted(rows, scored), len(rows) - 1)
    drawn = rows[pos] == scored
    pos, keep = pos[drawn], np.flatnonzero(drawn)
    maps = {}
    for name in data.embeddings:
        if name in trust.kept:
            kept = np.clip(np.nan_to_num(np.asarray(trust.kept[name])[keep]), 0, 1)
            maps[name] = {
                "kept": encode_array(np.round(kept * 255).astype(np.uint8)),
                "reading": encode_array(np.asarray(trust.reading[name])[keep].astype(np.uint8)),
            }
    if not maps:
        return None
    if len(pos) < len(rows):
        notes.append(
            f"where a map can be trusted is scored on a seeded sample of {len(pos):,} of the "
            f"{len(rows):,} points drawn; the others are drawn grey beneath them"
        )
    all_rows = len(pos) == len(rows)
    return {
        "points": None if all_rows else encode_array(smallest_uint(pos)),
        "k": int(trust.k),
        "readings": list(READINGS),
        "about": [READING_HELP[r] for r in READINGS],
        "maps": maps,
    }


def _points(data: ViewerData, rows: np.ndarray) -> dict[str, Any]:
    """Per-point columns of the drawn rows: row index, true and predicted class, confidence."""
    n = len(rows)
    names = list(data.class_names or [])
    predicted = None if data.predictions is None else data.predictions[rows]
    if predicted is not None and predicted.size:  # a predicted class nobody named
        names += [str(c) for c in range(len(names), int(predicted.max()) + 1)]
    index = (data.index if data.index is not None else np.arange(data.n))[rows]
    if np.array_equal(index, np.arange(n)):
        index_data = None
    elif index.min() < 0 or index.max() >= 2**31:
        index_data = encode_array(np.arange(n, dtype=np.int32))  # not a row number: use ours
    else:
        index_data = encode_array(smallest_uint(index))
    confidence = None
    if data.confidence is not None:
        conf = np.nan_to_num(np.asarray(data.confidence[rows], dtype=np.float64))
        confidence = encode_array(quantise(conf, 0.0, 1.0))
    return {
        "classNames": names,
        "colors": class_colors_uint8(len(names)).tolist(),
        "index": index_data,
        "label": encode_array(smallest_uint(data.labels[rows])),
        "predicted": None if predicted is None else encode_array(smallest_uint(predicted)),
        "confidence": confidence,
    }


def _map(name: str, coords: np.ndarray, notes: list[str]) -> dict[str, Any]:
    """One map's coordinates, quantised to 16 bits within its bounds."""
    x = np.asarray(coords[:, 0], dtype=np.float64)
    y = np.asarray(coords[:, 1], dtype=np.float64)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        notes.append(f"the {name} map has non-finite coordinates; they are drawn at 0")
        x, y = np.nan_to_num(x, posinf=0, neginf=0), np.nan_to_num(y, posinf=0, neginf=0)
    bounds = [float(x.min()), float(x.max()), float(y.min()), float(y.max())]
    return {
        "name": name,
        "bounds": bounds,
        "x": encode_array(quantise(x, bounds[0], bounds[1])),
        "y": encode_array(quantise(y, bounds[2], bounds[3])),
    }


def _atlases(atlases: list[Atlas], notes: list[str]) -> list[dict[str, Any]]:
    """The atlases as data URIs (WebP when far smaller), with what is known about each."""
    out = []
    for atlas in atlases:
        size = atlas.size
        if size > MAX_ATLAS_BYTES:
            notes.append(
                f"{atlas.file} ({size / 2**20:.0f} MiB) is too large to embed; open the file"
            )
            continue
        url = _atlas_url(atlas.read())
        if url is None:
            notes.append(f"{atlas.file} is not a readable PNG; left out")
            continue
        if url.startswith("data:image/webp") and not any("WebP" in n for n in notes):
            notes.append(
                f"atlases over {ATLAS_WEBP_FROM // 2**10} KiB are shown as WebP (quality "
                f"{ATLAS_WEBP_QUALITY}) to keep the page small; the PNG files are exact"
            )
        out.append({"name": atlas.name, "file": atlas.file, "details": atlas.details, "url": url})
    return out


def thumb_side(n: int) -> int:
    """The largest thumbnail side for ``n`` thumbnails: all of them hold at most
    :data:`THUMB_PIXELS` pixels (so decoded sheets stay near 100 MiB), in steps of 16 px from
    16 (WebP's macroblock) up to :data:`MAX_THUMB_PX`."""
    side = int((THUMB_PIXELS / max(n, 1)) ** 0.5) // 16 * 16
    return max(16, min(MAX_THUMB_PX, side))


def _thumbs(images: np.ndarray | None, notes: list[str]) -> dict[str, Any] | None:
    if images is None:
        return None
    try:
        return build_sprites(images, max_size=thumb_side(len(images))).to_json()
    except ConfigError as exc:
        notes.append(f"the images cannot be shown: {exc}")
        return None


def _neighbours(features: np.ndarray | None, k: int, notes: list[str]) -> dict[str, Any] | None:
    if features is None or k == 0:
        return None
    if not np.isfinite(features).all():
        notes.append("the features hold NaN or infinite values; no latent-space neighbours")
        return None
    slots = nearest_neighbours(features, k)
    return {"k": int(slots.shape[1]), "slots": encode_array(smallest_uint(slots))}


def _run_info(data: ViewerData, n: int) -> dict[str, Any]:
    info = data.info
    n_features = info.get("n_features")
    if n_features is None and data.features is not None:
        n_features = int(data.features.shape[1])
    return {
        "name": data.title,
        "dataset": info.get("dataset", ""),
        "n": n,
        "nFeatures": n_features,
        "latentKnn": info.get("knn_accuracy"),
        "testAccuracy": info.get("test_accuracy"),
        "version": info.get("version", ""),
    }
