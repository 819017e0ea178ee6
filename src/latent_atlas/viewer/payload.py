"""What the viewer page needs from a run directory, as one JSON-ready dict.

Per-point arrays travel as base64 of little-endian typed arrays (map coordinates quantised to
16 bits within each map's bounds, confidences to 16 bits), thumbnails as sprite sheets, atlases
as the run's PNG bytes (lossy WebP when that is far smaller). Nothing here is HTML: every string
stays data and the page shows it as text.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from latent_atlas.errors import ConfigError, LatentAtlasError
from latent_atlas.fileio import load_npy, load_table
from latent_atlas.palette import class_colors_uint8
from latent_atlas.sampling import seeded_sample
from latent_atlas.viewer.scores import metrics_table, number
from latent_atlas.viewer.sprites import build_sprites

MANIFEST = "manifest.json"
PROJECTIONS = "projections.parquet"
MAX_POINTS = 200_000  # points drawn one by one; a larger run shows a seeded sample of this many
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


def check_run(run_dir: Path) -> None:
    """Raise one clear error unless ``run_dir`` has a manifest and a projections table."""
    if not run_dir.is_dir():
        raise LatentAtlasError(f"{run_dir} is not a directory")
    if not (run_dir / MANIFEST).is_file():
        raise LatentAtlasError(f"{run_dir} is not a latent-atlas run directory (no {MANIFEST})")
    if not (run_dir / PROJECTIONS).is_file():
        raise LatentAtlasError(
            f"{run_dir} has no {PROJECTIONS}; finish the run's map stage before viewing it"
        )


def read_run(run_dir: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The manifest and the projections table of a run, or one clear error."""
    check_run(run_dir)
    manifest_file, table_file = run_dir / MANIFEST, run_dir / PROJECTIONS
    try:
        manifest = json.loads(manifest_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LatentAtlasError(f"{manifest_file} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise LatentAtlasError(f"{manifest_file} does not hold a JSON object")
    try:
        table = load_table(table_file)
    except Exception as exc:  # pyarrow raises several kinds for damaged files
        raise LatentAtlasError(f"{table_file} is not a readable Parquet table ({exc})") from None
    if "label" not in table:
        raise LatentAtlasError(f"{table_file} has no 'label' column")
    return manifest, table


def map_methods(table: dict[str, np.ndarray], manifest: dict[str, Any]) -> list[str]:
    """Methods with ``<m>_x``/``<m>_y`` columns, in the manifest's order, then the rest."""
    found = [c[:-2] for c in table if c.endswith("_x") and f"{c[:-2]}_y" in table]
    listed = [m for m in (manifest.get("methods") or {}) if m in found]
    methods = listed + [m for m in found if m not in listed]
    if not methods:
        raise LatentAtlasError("projections.parquet holds no map (no <method>_x/_y columns)")
    return methods


def class_names_of(manifest: dict[str, Any], table: dict[str, np.ndarray]) -> list[str]:
    labels = np.asarray(table["label"]).astype(np.int64)
    n_classes = int(labels.max()) + 1 if labels.size else 0
    names = (manifest.get("dataset") or {}).get("class_names")
    if isinstance(names, list) and len(names) >= n_classes:
        return [str(x) for x in names]
    result = [str(i) for i in range(n_classes)]
    if "label_name" in table:
        for lab, name in zip(labels, table["label_name"], strict=True):
            result[int(lab)] = str(name)
    return result


def atlases_of(run_dir: Path, manifest: dict[str, Any], notes: list[str]) -> list[dict[str, Any]]:
    """The run's atlas PNGs as data URIs, with what the manifest says about each."""
    info_by_stem = manifest.get("atlases") or {}
    out = []
    for png in sorted(run_dir.glob("atlas_*.png")):
        size = png.stat().st_size
        if size > MAX_ATLAS_BYTES:
            notes.append(
                f"{png.name} ({size / 2**20:.0f} MiB) is too large to embed; open the file"
            )
            continue
        info = info_by_stem.get(png.stem) or {}
        details = {
            k: str(info[k])
            for k in ("method", "mode", "grid", "filled", "cells", "mean_distance")
            if k in info
        }
        if "grid" in info and isinstance(info["grid"], list):
            details["grid"] = "×".join(str(g) for g in info["grid"])
        if isinstance(info.get("mean_distance"), float):
            details["mean_distance"] = f"{info['mean_distance']:.4f}"
        url = _atlas_url(png)
        if url is None:
            notes.append(f"{png.name} is not a readable PNG; left out")
            continue
        if url.startswith("data:image/webp") and not any("WebP" in n for n in notes):
            notes.append(
                f"atlases over {ATLAS_WEBP_FROM // 2**10} KiB are shown as WebP (quality "
                f"{ATLAS_WEBP_QUALITY}) to keep the page small; the PNG files are exact"
            )
        out.append({"name": png.stem, "file": png.name, "details": details, "url": url})
    return out


def _atlas_url(png: Path) -> str | None:
    """The atlas as a data URI: its PNG bytes, or lossy WebP when that is much smaller."""
    from PIL import Image, UnidentifiedImageError, features

    data, kind = png.read_bytes(), "png"
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


def build_payload(
    run_dir: Path,
    *,
    max_thumbnails: int | None = 10_000,
    k: int = 10,
    seed: int = 0,
    max_points: int | None = MAX_POINTS,
) -> dict[str, Any]:
    """Everything the page shows, read from ``run_dir``.

    Above ``max_points`` points the page shows a seeded sample of that many (and says so);
    hovering still reports each point's row in the run.
    """
    if k < 0:
        raise ConfigError(f"k must be at least 0, got {k}")
    if max_thumbnails is not None and max_thumbnails < 0:
        raise ConfigError(f"max_thumbnails must be at least 0, got {max_thumbnails}")
    if max_points is not None and max_points < 1:
        raise ConfigError(f"max_points must be at least 1, got {max_points}")
    manifest, table = read_run(run_dir)
    notes: list[str] = []
    n_total = len(table["label"])
    if n_total == 0:
        raise LatentAtlasError(f"{run_dir / PROJECTIONS} has no rows")
    rows = seeded_sample(n_total, max_points, seed)  # the rows of the run that are drawn
    if len(rows) < n_total:
        table = {name: np.asarray(col)[rows] for name, col in table.items()}
        table.setdefault("index", rows)
        notes.append(
            f"{n_total:,} points are too many to draw one by one: the maps show a seeded "
            f"sample (seed {seed}) of {len(rows):,}"
        )
    n = len(rows)
    maps = map_methods(table, manifest)
    payload: dict[str, Any] = {
        "format": 1,
        "run": _run_info(run_dir, manifest, n),
        "n": n,
        **_points(run_dir, manifest, table),
        "methods": [_map(table, m, notes) for m in maps],
        "metrics": metrics_table(run_dir, manifest, maps),
        "atlases": atlases_of(run_dir, manifest, notes),
        "notes": notes,
    }
    sample = seeded_sample(n, max_thumbnails, seed)
    payload["sample"] = {
        "size": len(sample),
        "seed": seed,
        "indices": None if len(sample) == n else encode_array(smallest_uint(sample)),
    }
    if len(sample) < n:
        notes.append(
            f"thumbnails and neighbours cover a seeded sample (seed {seed}) of {len(sample):,} "
            f"of the {n:,} points drawn"
        )
    payload["thumbs"] = _thumbs(run_dir / "images.npy", rows[sample], n_total, notes)
    payload["neighbours"] = _neighbours(
        run_dir / "activations.npy", rows[sample], n_total, k, notes
    )
    return payload


def _points(run_dir: Path, manifest: dict[str, Any], table: dict[str, np.ndarray]) -> dict:
    """Per-point columns: row index, true and predicted class, confidence; class names."""
    n = len(table["label"])
    labels = np.asarray(table["label"]).astype(np.int64)
    predicted = np.asarray(table["predicted"]).astype(np.int64) if "predicted" in table else None
    for what, values in (("label", labels), ("predicted", predicted)):
        if values is not None and values.size and values.min() < 0:
            raise LatentAtlasError(f"{run_dir / PROJECTIONS}: negative values in '{what}'")
    names = class_names_of(manifest, table)
    if predicted is not None and predicted.size:  # a predicted class nobody named
        names += [str(c) for c in range(len(names), int(predicted.max()) + 1)]
    index = np.asarray(table.get("index", np.arange(n))).astype(np.int64)
    if np.array_equal(index, np.arange(n)):
        index_data = None
    elif index.min() < 0 or index.max() >= 2**31:
        index_data = encode_array(np.arange(n, dtype=np.int32))  # not a row number: use ours
    else:
        index_data = encode_array(smallest_uint(index))
    confidence = None
    if "confidence" in table:
        conf = np.nan_to_num(np.asarray(table["confidence"], dtype=np.float64))
        confidence = encode_array(quantise(conf, 0.0, 1.0))
    return {
        "classNames": names,
        "colors": class_colors_uint8(len(names)).tolist(),
        "index": index_data,
        "label": encode_array(smallest_uint(labels)),
        "predicted": None if predicted is None else encode_array(smallest_uint(predicted)),
        "confidence": confidence,
    }


def _map(table: dict[str, np.ndarray], method: str, notes: list[str]) -> dict[str, Any]:
    """One map's coordinates, quantised to 16 bits within its bounds."""
    x = np.asarray(table[f"{method}_x"], dtype=np.float64)
    y = np.asarray(table[f"{method}_y"], dtype=np.float64)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        notes.append(f"the {method} map has non-finite coordinates; they are drawn at 0")
        x, y = np.nan_to_num(x, posinf=0, neginf=0), np.nan_to_num(y, posinf=0, neginf=0)
    bounds = [float(x.min()), float(x.max()), float(y.min()), float(y.max())]
    return {
        "name": method,
        "bounds": bounds,
        "x": encode_array(quantise(x, bounds[0], bounds[1])),
        "y": encode_array(quantise(y, bounds[2], bounds[3])),
    }


def _thumbs(path: Path, sample: np.ndarray, n: int, notes: list[str]) -> dict[str, Any] | None:
    if not len(sample):
        return None
    if not path.is_file():
        notes.append("this run has no images.npy, so points have no thumbnails")
        return None
    images = load_npy(path, mmap=True)
    if len(images) != n:
        notes.append(f"images.npy has {len(images)} images for {n} points; thumbnails left out")
        return None
    try:
        return build_sprites(np.asarray(images[sample])).to_json()
    except ConfigError as exc:
        notes.append(f"images.npy cannot be shown: {exc}")
        return None


def _neighbours(
    path: Path, sample: np.ndarray, n: int, k: int, notes: list[str]
) -> dict[str, Any] | None:
    if not len(sample) or k == 0:
        return None
    if not path.is_file():
        notes.append("this run has no activations.npy, so there are no latent-space neighbours")
        return None
    features = load_npy(path, mmap=True)
    if features.ndim != 2 or len(features) != n:
        notes.append(f"activations.npy has shape {features.shape} for {n} points; no neighbours")
        return None
    x = np.asarray(features[sample], dtype=np.float32)
    if not np.isfinite(x).all():
        notes.append("activations.npy holds NaN or infinite values; no neighbours")
        return None
    slots = nearest_neighbours(x, k)
    return {"k": int(slots.shape[1]), "slots": encode_array(smallest_uint(slots))}


def _run_info(run_dir: Path, manifest: dict[str, Any], n: int) -> dict[str, Any]:
    dataset = manifest.get("dataset") or {}
    latent = manifest.get("latent") or {}
    training = manifest.get("training") or {}
    info: dict[str, Any] = {
        "name": run_dir.resolve().name,
        "dataset": str(dataset.get("name", "")),
        "n": n,
        "nFeatures": latent.get("n_features"),
        "latentKnn": number(latent.get("knn_accuracy")),
        "testAccuracy": number(training.get("test_accuracy")),
        "version": str(manifest.get("latent_atlas_version", "")),
    }
    return info
