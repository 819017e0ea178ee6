"""The viewer's data of one latent space of a run directory: :meth:`ViewerData.from_space`.

Everything is read through :class:`~latent_atlas.runs.SpaceDir` (and its run): the projections
table (classes, predictions, confidence, each point's row), the maps, the scores of the
manifest and ``metrics.csv``, the images, the features and the atlases. A file that is missing
or does not fit the points becomes a note on the page, not an error; a space without a
projections table or without any map is one clear error.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from latent_atlas.errors import LatentAtlasError
from latent_atlas.fileio import load_npy, load_table
from latent_atlas.runs import SpaceDir, embedding_file
from latent_atlas.viewer.data import Atlas, ViewerData, feature_problem, image_problem
from latent_atlas.viewer.scores import gather_scores

PROJECTIONS = "projections.parquet"
IMAGES = "images.npy"
TRUST_FILE = "trust.parquet"  # (written by latent_atlas.trust)


def read_space(space: SpaceDir) -> ViewerData:
    """:meth:`ViewerData.from_space`: files that are missing or do not fit become notes."""
    table = _projections(space)
    n, notes = len(table["label"]), []
    labels = _column(space, table, "label")
    predicted = _column(space, table, "predicted") if "predicted" in table else None
    embeddings = _space_maps(space, table, n, notes)
    run = space.run
    scores, sources = gather_scores(space.path, space.maps, space.metrics, list(embeddings))
    # the run's images are every space's; features are the space's own
    images = _space_array(space, IMAGES, n, "points have no thumbnails", notes)
    features = _space_array(
        space, "activations.npy", n, "there are no latent-space neighbours", notes
    )
    return ViewerData(
        embeddings,
        labels,
        class_names=_space_class_names(run.class_names, table, labels),
        images=images,
        predictions=predicted,
        confidence=_confidence(table),
        features=features,
        scores=scores,
        score_sources=sources,
        atlases=_space_atlases(space),
        info={
            "dataset": run.dataset.get("name", ""),
            "n_features": space.summary.get("n_features"),
            "knn_accuracy": space.summary.get("knn_accuracy"),
            "test_accuracy": (run.training or {}).get("test_accuracy"),
            "version": run.version or None,
        },
        index=np.asarray(table["index"]).astype(np.int64) if "index" in table else None,
        title=_space_title(space),
        seed=run.seed,
        notes=notes,
        trust=_space_trust(space, embeddings, n, notes),
    )


def _space_trust(space: SpaceDir, embeddings: dict, n: int, notes: list[str]) -> Any:
    """The space's per-point trust (``trust.parquet``), if it has one that fits its maps."""
    path = space.file(TRUST_FILE)
    if not path.is_file():
        return None
    from latent_atlas.trust import read_trust

    trust = read_trust(path)
    if trust is None or (len(trust.sample) and int(trust.sample.max()) >= n):
        notes.append(f"{TRUST_FILE} does not fit this space's points; left out")
        return None
    return trust


def _projections(space: SpaceDir) -> dict[str, np.ndarray]:
    path = space.file(PROJECTIONS)
    if not path.is_file():
        raise LatentAtlasError(
            f"{space.describe()} has no {PROJECTIONS}; finish the run's map stage before viewing it"
        )
    try:
        table = load_table(path)
    except LatentAtlasError:
        raise  # (load_table names the file and what is wrong with it)
    except Exception as exc:  # pyarrow raises several kinds for damaged files
        raise LatentAtlasError(f"{path} is not a readable Parquet table ({exc})") from None
    if "label" not in table:
        raise LatentAtlasError(f"{path} has no 'label' column")
    if not len(table["label"]):
        raise LatentAtlasError(f"{path} has no rows")
    return table


def _column(space: SpaceDir, table: dict[str, np.ndarray], what: str) -> np.ndarray:
    values = np.asarray(table[what]).astype(np.int64)
    if values.size and values.min() < 0:
        raise LatentAtlasError(f"{space.file(PROJECTIONS)}: negative values in '{what}'")
    return values


def _confidence(table: dict[str, np.ndarray]) -> np.ndarray | None:
    if "confidence" not in table:
        return None
    conf = np.nan_to_num(np.asarray(table["confidence"], dtype=np.float64))
    return np.clip(conf, 0.0, 1.0)


def _space_maps(
    space: SpaceDir, table: dict[str, np.ndarray], n: int, notes: list[str]
) -> dict[str, np.ndarray]:
    """The space's maps (``embedding_<map>.npy``), then any others the projections table holds."""
    maps: dict[str, np.ndarray] = {}
    for name in space.map_names:
        coords = space.embedding(name)
        if coords.ndim != 2 or coords.shape != (n, 2):
            notes.append(
                f"{embedding_file(name)} has shape {coords.shape} for {n} points; left out"
            )
            continue
        maps[name] = coords
    for column in table:
        name = column[:-2]
        if column.endswith("_x") and f"{name}_y" in table and name not in maps:
            maps[name] = np.column_stack([table[column], table[f"{name}_y"]])
    if not maps:
        raise LatentAtlasError(
            f"{space.describe()} holds no map (no embedding_<map>.npy, no <map>_x/_y columns "
            f"in {PROJECTIONS})"
        )
    return maps


def _space_array(
    space: SpaceDir, name: str, n: int, gives: str, notes: list[str]
) -> np.ndarray | None:
    """A space's ``.npy`` file, memory-mapped; the run's images when the space has none."""
    images = name == IMAGES
    path = space.file(name)
    if images and not path.is_file():
        path = space.run.file(name)
    if not path.is_file():
        alone = images or len(space.run.space_names) == 1
        notes.append(f"{'this run' if alone else f'space {space.name}'} has no {name}, so {gives}")
        return None
    try:
        values = load_npy(path, mmap=True)
    except (OSError, ValueError, EOFError) as exc:
        notes.append(f"{name} cannot be read ({exc}), so {gives}")
        return None
    found = (image_problem if images else feature_problem)(values, n)
    if found:
        notes.append(f"{name} is left out ({found}), so {gives}")
        return None
    return values


def _space_class_names(
    names: list[str], table: dict[str, np.ndarray], labels: np.ndarray
) -> list[str]:
    """The run's class names, else the table's label names, else the class numbers."""
    n_classes = int(labels.max()) + 1 if labels.size else 0
    if len(names) >= n_classes:
        return names
    result = [str(i) for i in range(n_classes)]
    if "label_name" in table:
        for lab, name in zip(labels, table["label_name"], strict=True):
            result[int(lab)] = str(name)
    return result


def _space_atlases(space: SpaceDir) -> list[Atlas]:
    """Every ``atlas_*.png`` of the space, with what the manifest says about each."""
    out = []
    for png in sorted(space.path.glob("atlas_*.png")):
        info = space.atlases.get(png.stem) or {}
        details = {
            k: str(info[k])
            for k in ("method", "mode", "grid", "filled", "cells", "mean_distance")
            if k in info
        }
        if isinstance(info.get("grid"), list):
            details["grid"] = "×".join(str(g) for g in info["grid"])
        if isinstance(info.get("mean_distance"), float):
            details["mean_distance"] = f"{info['mean_distance']:.4f}"
        out.append(Atlas(png.stem, png, details, png.name))
    return out


def _space_title(space: SpaceDir) -> str:
    name = space.run.path.resolve().name
    return name if len(space.run.space_names) == 1 else f"{name} · {space.name}"
