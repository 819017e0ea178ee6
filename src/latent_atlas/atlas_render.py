"""Drawing an :class:`~latent_atlas.atlas.Atlas`: one uint8 image of its cells' tiles.

Each shown sample's image is scaled to a square tile; with labels a tile can get a frame of its
class's colour and, with predictions, a corner mark when the sample is misclassified.
:mod:`latent_atlas.atlas` re-exports everything here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from latent_atlas.errors import ConfigError
from latent_atlas.fileio import as_array_like
from latent_atlas.palette import class_colors_uint8

if TYPE_CHECKING:
    from latent_atlas.atlas import Atlas

ERROR_MARK = (0, 0, 0)  # fill of the corner mark on misclassified tiles


def render_atlas(
    atlas: Atlas,
    images: np.ndarray,
    *,
    tile: int = 32,
    background: int = 255,
    labels: np.ndarray | None = None,
    border: int = 0,
    predictions: np.ndarray | None = None,
) -> np.ndarray:
    """Draw the atlas as one uint8 image of exactly rows×tile by cols×tile pixels.

    ``images`` are the N×H×W×C (or N×H×W) uint8 images the indices refer to; each is scaled to
    ``tile``×``tile`` (nearest-neighbour for integer upscales, else bilinear). Empty cells are
    ``background``. With ``labels`` and ``border`` > 0 each tile gets a frame of its class's
    colour; with ``labels`` and ``predictions``, misclassified samples get a black corner mark.
    Grey images stay grey unless a frame or mark needs colour.
    """
    images = _check_render_inputs(atlas, images, tile, border, labels, predictions)
    rows, cols = atlas.shape
    filled = atlas.indices >= 0
    chosen = atlas.indices[filled]
    tiles = resize_tiles(images[chosen], tile)
    colour = border > 0 or predictions is not None
    if colour and tiles.shape[3] == 1:
        tiles = np.repeat(tiles, 3, axis=3)
    channels = tiles.shape[3]
    if border and len(chosen):
        _draw_frames(tiles, np.asarray(labels), chosen, border)
    if predictions is not None and len(chosen):
        wrong = np.asarray(predictions)[chosen] != np.asarray(labels)[chosen]
        _mark_errors(tiles, wrong)
    canvas = np.full((rows, cols, tile, tile, channels), background, dtype=np.uint8)
    canvas[filled] = tiles
    out = canvas.transpose(0, 2, 1, 3, 4).reshape(rows * tile, cols * tile, channels)
    return out[:, :, 0] if channels == 1 else out


def _check_render_inputs(
    atlas: Atlas,
    images: np.ndarray,
    tile: int,
    border: int,
    labels: np.ndarray | None,
    predictions: np.ndarray | None,
) -> np.ndarray:
    """The images as N×H×W×C uint8 (sliced lazily), after checking every option."""
    images = as_array_like(images)  # (memory maps and lazy images are sliced, not copied)
    if images.ndim == 3:
        images = images[:, :, :, None]
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ConfigError(f"images must be uint8 N×H×W[×C], got {images.dtype} {images.shape}")
    if tile < 1:
        raise ConfigError(f"tile must be at least 1 pixel, got {tile}")
    if border < 0 or 2 * border >= tile:
        raise ConfigError(f"border must lie in 0..{(tile - 1) // 2} pixels, got {border}")
    if (border or predictions is not None) and labels is None:
        raise ConfigError("class borders and error marks need the labels")
    if atlas.indices.max(initial=-1) >= len(images):
        raise ConfigError(
            f"the atlas refers to sample {int(atlas.indices.max())} but only {len(images)} "
            "images were given"
        )
    return images


def _draw_frames(tiles: np.ndarray, labels: np.ndarray, chosen: np.ndarray, border: int) -> None:
    """Frame each tile (in place) in the colour of its sample's class."""
    tile = tiles.shape[1]
    lab = labels[chosen]
    palette = class_colors_uint8(int(labels.max()) + 1)
    frame = np.zeros((tile, tile), dtype=bool)
    frame[:border], frame[-border:], frame[:, :border], frame[:, -border:] = (True,) * 4
    tiles[:, frame] = palette[lab][:, None, :]


def _mark_errors(tiles: np.ndarray, wrong: np.ndarray) -> None:
    """Mark (in place) the tiles of misclassified samples in their top-right corner."""
    tile = tiles.shape[1]
    # a black top-right corner triangle edged in white: unlike any class colour
    size = max(3, tile // 4)
    inside = np.triu(np.ones((size, size), dtype=bool), k=1)
    edge = np.eye(size, dtype=bool)
    corner = tiles[:, :size, tile - size :]
    corner[wrong[:, None, None] & inside[None]] = ERROR_MARK
    corner[wrong[:, None, None] & edge[None]] = 255


def resize_tiles(images: np.ndarray, tile: int) -> np.ndarray:
    """Resize M×H×W×C uint8 images to M×tile×tile×C."""
    m, h, w, c = images.shape
    if h == tile and w == tile:
        return images.copy()
    if tile % h == 0 and tile % w == 0:
        return images.repeat(tile // h, axis=1).repeat(tile // w, axis=2)
    from PIL import Image

    out = np.empty((m, tile, tile, c), dtype=np.uint8)
    for i, img in enumerate(images):
        pil = Image.fromarray(img[:, :, 0] if c == 1 else img)
        resized = pil.resize((tile, tile), Image.Resampling.BILINEAR)
        out[i] = np.asarray(resized).reshape(tile, tile, c)
    return out
