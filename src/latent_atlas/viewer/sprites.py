"""Thumbnail sprite sheets: many small images packed into a few WebP or PNG data URIs.

One data URI per point would make the page large and slow to parse; a sheet holds thousands of
thumbnails in one compressed image and the viewer draws a cell of it. Images of 16 px and up
are stored as lossy WebP (cells padded to WebP's 16-pixel macroblocks so that compression
never blends two thumbnails); smaller ones, and any image when Pillow lacks WebP, as lossless
PNG.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from latent_atlas.errors import ConfigError

MAX_SHEET_PX = 2048  # sheet side; keeps each decoded sheet at most 16 MiB of RGBA
LOSSY_FROM_PX = 16  # thumbnails at least this large go lossy (WebP)


@dataclass(frozen=True)
class SpriteSheets:
    """Thumbnails packed into sheets; thumbnail ``s`` sits in sheet ``s // per_sheet``."""

    width: int  # thumbnail size in pixels
    height: int
    cell_width: int  # cell pitch in the sheet (the thumbnail sits at the cell's top-left)
    cell_height: int
    columns: int  # cells per sheet row
    per_sheet: int
    count: int
    format: str  # "webp" or "png"
    urls: tuple[str, ...]

    @property
    def nbytes(self) -> int:
        """Characters of all data URIs together (what they add to the page)."""
        return sum(len(u) for u in self.urls)

    def to_json(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "cellWidth": self.cell_width,
            "cellHeight": self.cell_height,
            "columns": self.columns,
            "perSheet": self.per_sheet,
            "count": self.count,
            "format": self.format,
            "urls": list(self.urls),
        }


def thumbnails(images: np.ndarray, max_size: int = 64) -> np.ndarray:
    """uint8 N×h×w×C thumbnails: images larger than ``max_size`` on a side are shrunk."""
    imgs = np.asarray(images)
    if imgs.ndim == 3:
        imgs = imgs[:, :, :, None]
    if imgs.ndim != 4 or imgs.dtype != np.uint8 or imgs.shape[3] not in (1, 3, 4):
        raise ConfigError(
            f"images must be uint8 N×H×W[×C] with C in (1, 3, 4), got {imgs.dtype} {imgs.shape}"
        )
    if imgs.shape[3] == 4:
        imgs = imgs[:, :, :, :3]
    n, h, w, c = imgs.shape
    scale = max_size / max(h, w)
    if scale >= 1:
        return imgs
    from PIL import Image

    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    out = np.empty((n, size[1], size[0], c), dtype=np.uint8)
    for i in range(n):
        img = Image.fromarray(imgs[i, :, :, 0] if c == 1 else imgs[i])
        small = np.asarray(img.resize(size, Image.Resampling.LANCZOS))
        out[i] = small[:, :, None] if c == 1 else small
    return out


def build_sprites(
    images: np.ndarray, *, max_size: int = 64, quality: int = 85, fmt: str = "auto"
) -> SpriteSheets:
    """Pack ``images`` (N×H×W[×C] uint8, in thumbnail order) into sprite sheets.

    ``fmt`` is ``"webp"``, ``"png"`` or ``"auto"`` (WebP for thumbnails of 16 px and up when
    Pillow can write it, else PNG).
    """
    from PIL import Image, features

    thumbs = thumbnails(images, max_size)
    n, h, w, c = thumbs.shape
    if fmt == "auto":
        lossy = max(h, w) >= LOSSY_FROM_PX and bool(features.check("webp"))
        fmt = "webp" if lossy else "png"
    if fmt not in ("webp", "png"):
        raise ConfigError(f"sprite format must be 'webp', 'png' or 'auto', got {fmt!r}")
    pad = 16 if fmt == "webp" else 1
    cell_h, cell_w = math.ceil(h / pad) * pad, math.ceil(w / pad) * pad
    max_cols, max_rows = MAX_SHEET_PX // cell_w, MAX_SHEET_PX // cell_h
    columns = max(1, min(max_cols, math.ceil(math.sqrt(max(n, 1)))))
    per_sheet = columns * max_rows
    urls = []
    for start in range(0, n, per_sheet):
        chunk = thumbs[start : start + per_sheet]
        rows = math.ceil(len(chunk) / columns)
        sheet = np.zeros((rows * cell_h, columns * cell_w, c), dtype=np.uint8)
        for j, thumb in enumerate(chunk):
            r, col = divmod(j, columns)
            sheet[r * cell_h : r * cell_h + h, col * cell_w : col * cell_w + w] = thumb
        img = Image.fromarray(sheet[:, :, 0] if c == 1 else sheet)
        buf = io.BytesIO()
        if fmt == "webp":
            img.save(buf, format="WEBP", quality=quality, method=4)
        else:
            img.save(buf, format="PNG", optimize=True)
        urls.append(f"data:image/{fmt};base64," + base64.b64encode(buf.getvalue()).decode())
    return SpriteSheets(w, h, cell_w, cell_h, columns, per_sheet, n, fmt, tuple(urls))
