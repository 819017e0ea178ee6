"""Image folders: ``root/<split>/<class>/*.png|jpg``."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np

from latent_atlas.datasets.base import Dataset, require_dir
from latent_atlas.datasets.lazy import LazyImages, conform, read_header, read_image
from latent_atlas.errors import DatasetError
from latent_atlas.progress import progress_bar

LAZY_ABOVE = 50_000  # images: larger folders are read lazily
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def load_folder(
    data_dir: str | Path | None,
    *,
    image_size: tuple[int, int] | None = None,
    progress: bool = True,
    lazy: bool | None = None,
) -> Dataset:
    """Load ``root/train/<class>/*`` and ``root/test/<class>/*``.

    Classes are the union of the class folders of both splits, sorted by name. Images of
    mixed sizes are resized (bilinear) to ``image_size`` (H, W), or when it is None to the most
    common size; a mix of grey and colour images is loaded as colour.

    With ``lazy`` (the default above ``LAZY_ABOVE`` images) only the files' headers are read
    now: the images are :class:`~latent_atlas.datasets.lazy.LazyImages`, decoded batch by batch
    when a step slices them, so memory does not grow with the number of images.
    """
    root = require_dir(data_dir, "folder", "pass --data-dir ROOT with ROOT/train/<class>/*.png")
    splits = {s: root / s for s in ("train", "test")}
    if not splits["test"].is_dir():
        raise DatasetError(f"folder: {root} has no 'test' folder (expected {root}/test/<class>/)")
    classes = sorted(
        {p.name for d in splits.values() if d.is_dir() for p in d.iterdir() if p.is_dir()}
    )
    if not classes:
        raise DatasetError(f"folder: {root}/test holds no class folders")
    files = _list_files(splits, classes)
    if not files["test"]:
        raise DatasetError(f"folder: {root}/test holds no images")

    n_images = sum(len(items) for items in files.values())
    if lazy is None:
        lazy = n_images > LAZY_ABOVE
    if lazy:
        return _lazy_dataset(root, classes, files, image_size, progress)
    return _eager_dataset(root, classes, files, image_size, progress)


def _list_files(splits: dict[str, Path], classes: list[str]) -> dict[str, list[tuple[Path, int]]]:
    """Per split, its image files and their labels, class by class in name order."""
    files: dict[str, list[tuple[Path, int]]] = {}
    for split, folder in splits.items():
        files[split] = []
        if not folder.is_dir():
            continue
        for label, cls in enumerate(classes):
            cdir = folder / cls
            if not cdir.is_dir():
                continue
            found = sorted(p for p in cdir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise DatasetError(f"folder: class folder {cdir} holds no images")
            files[split].extend((p, label) for p in found)
    return files


def _eager_dataset(
    root: Path,
    classes: list[str],
    files: dict[str, list[tuple[Path, int]]],
    image_size: tuple[int, int] | None,
    progress: bool,
) -> Dataset:
    """The folder read into memory now, every image conformed to one size and channel count."""
    loaded: dict[str, list[np.ndarray]] = {}
    for split, items in files.items():
        loaded[split] = []
        for path, _ in progress_bar(
            items, desc=f"read {split}", unit="img", enabled=progress, leave=False
        ):
            loaded[split].append(read_image(path))

    all_images = [im for ims in loaded.values() for im in ims]
    sizes = Counter(im.shape[:2] for im in all_images)
    target = tuple(image_size) if image_size else sizes.most_common(1)[0][0]
    channels = 3 if any(im.shape[2] == 3 for im in all_images) else 1
    parts: dict[str, np.ndarray] = {}
    for split, images in loaded.items():
        arr = [conform(im, target, channels) for im in images]
        h, w = target
        parts[f"x_{split}"] = np.stack(arr) if arr else np.zeros((0, h, w, channels), np.uint8)
        parts[f"y_{split}"] = np.array([lab for _, lab in files[split]], dtype=np.int64)
    info = _size_info(sizes, target, image_size)
    return Dataset(name="folder", class_names=classes, source=str(root), info=info, **parts)


def _lazy_dataset(
    root: Path,
    classes: list[str],
    files: dict[str, list[tuple[Path, int]]],
    image_size: tuple[int, int] | None,
    progress: bool,
) -> Dataset:
    """The folder as :class:`LazyImages`: headers are read now, pixels when sliced."""
    sizes: Counter = Counter()
    channels = 1
    for split, items in files.items():
        for path, _ in progress_bar(
            items, desc=f"scan {split}", unit="img", enabled=progress, leave=False
        ):
            size, c = read_header(path)
            sizes[size] += 1
            channels = max(channels, c)
    target = tuple(image_size) if image_size else sizes.most_common(1)[0][0]
    parts: dict[str, object] = {}
    for split, items in files.items():
        parts[f"x_{split}"] = LazyImages([p for p, _ in items], target, channels)
        parts[f"y_{split}"] = np.array([lab for _, lab in items], dtype=np.int64)
    info = {**_size_info(sizes, target, image_size), "lazy": True}
    return Dataset(name="folder", class_names=classes, source=str(root), info=info, **parts)


def _size_info(
    sizes: Counter, target: tuple[int, int], image_size: tuple[int, int] | None
) -> dict[str, object]:
    info: dict[str, object] = {"image_size": list(target)}
    if len(sizes) > 1 or (image_size is not None and target not in sizes):
        info["resized_from"] = sorted(f"{h}x{w}" for h, w in sizes)
        n_resized = sum(n for size, n in sizes.items() if size != tuple(target))
        logging.getLogger("latent_atlas").warning(
            "folder: %d of %d images resized to %dx%d (sizes found: %s)",
            n_resized,
            sum(sizes.values()),
            target[0],
            target[1],
            ", ".join(info["resized_from"]),  # type: ignore[arg-type]
        )
    return info
