"""Animations of a sweep of frames: the same points travelling from one map to the next.

Each frame is normalised (:func:`normalise_frame`) and drawn in one view box shared by all
frames. Points are splatted with numpy straight into palette images (no matplotlib figure per
image, no colour quantisation), so 10 frames of 10,000 points take a few seconds. A real frame
is one GIF image lasting ``hold`` image times; the ``steps`` eased in-between images last one
each (:func:`animation_schedule`). The MP4, written only when ``imageio`` and
``imageio_ffmpeg`` are installed, repeats each held image instead.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from latent_atlas.errors import ConfigError
from latent_atlas.fileio import atomic_path, save_bytes
from latent_atlas.palette import class_colors_uint8
from latent_atlas.sampling import seeded_sample

log = logging.getLogger("latent_atlas")

INK = (34, 34, 34)  # text colour
GREYS = 8  # palette entries 1..GREYS: text ink blended onto white, for smooth text
FIRST_CLASS = GREYS + 1  # palette index of class 0
MAX_CLASSES = 256 - FIRST_CLASS


def normalise_frame(embedding: np.ndarray) -> np.ndarray:
    """``embedding`` (N×2) minus its mean, divided by its RMS radius (the square root of the
    mean squared distance to the centre); float64. All points at one place give zeros."""
    emb = np.asarray(embedding, dtype=np.float64)
    if emb.ndim != 2 or emb.shape[1] != 2:
        raise ConfigError(f"a frame needs an N×2 embedding, got shape {emb.shape}")
    centred = emb - emb.mean(axis=0)
    radius = float(np.sqrt(np.mean(np.sum(centred**2, axis=1)))) if len(emb) else 0.0
    return centred / radius if radius > 0 else centred


def ease(t: float | np.ndarray) -> float | np.ndarray:
    """Smoothstep easing of ``t`` in [0, 1]: 0 → 0, 1 → 1, increasing, flat at both ends."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def tween(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Positions at fraction ``t`` of the way from frame ``a`` to frame ``b`` (eased)."""
    e = float(ease(t))
    return (1.0 - e) * a + e * b


def animation_schedule(n_frames: int, steps: int, hold: int) -> list[tuple[int, int, float, int]]:
    """The distinct images of an animation, in order: ``(from, to, t, images)``.

    Each real frame ``i`` is ``(i, i, 0.0, hold)``; between frames ``i`` and ``i + 1`` come
    ``steps`` images ``(i, i + 1, k / (steps + 1), 1)``. So ``n_frames + (n_frames - 1) * steps``
    images lasting ``n_frames * hold + (n_frames - 1) * steps`` image times in all.
    """
    out: list[tuple[int, int, float, int]] = []
    for i in range(n_frames):
        out.append((i, i, 0.0, hold))
        if i + 1 < n_frames:
            out += [(i, i + 1, k / (steps + 1), 1) for k in range(1, steps + 1)]
    return out


def check_frames(
    embeddings: Sequence[np.ndarray], labels: np.ndarray, titles: Sequence[str] | None = None
) -> tuple[list[np.ndarray], np.ndarray]:
    """The frames as N×2 float arrays of finite values and the labels as int64, or a
    :class:`~latent_atlas.errors.ConfigError` naming what does not fit."""
    frames = [np.asarray(e, dtype=np.float64) for e in embeddings]
    if not frames:
        raise ConfigError("no frames given")
    lab = np.asarray(labels).astype(np.int64)
    for k, emb in enumerate(frames):
        if emb.ndim != 2 or emb.shape[1] != 2:
            raise ConfigError(f"frame {k} needs an N×2 embedding, got shape {emb.shape}")
        if len(emb) != len(lab):
            raise ConfigError(f"frame {k} has {len(emb)} points but there are {len(lab)} labels")
        if not np.isfinite(emb).all():
            raise ConfigError(f"frame {k} has coordinates that are NaN or infinite")
    if titles is not None and len(titles) != len(frames):
        raise ConfigError(f"{len(frames)} frames but {len(titles)} titles")
    if len(lab) and lab.min() < 0:
        raise ConfigError(f"labels must be class numbers from 0, got {int(lab.min())}")
    return frames, lab


@lru_cache(maxsize=8)
def _font(px: int) -> Any:
    """DejaVu Sans (shipped with matplotlib, has the arrow) at ``px`` pixels."""
    import matplotlib
    from PIL import ImageFont

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    try:
        return ImageFont.truetype(str(path), px)
    except OSError:  # pragma: no cover - matplotlib always ships it
        return ImageFont.load_default()


def _text(draw_on: np.ndarray, text: str, px: int, xy: tuple[int, int], anchor: str) -> int:
    """Draw ``text`` into the index image ``draw_on`` (grey palette entries for smooth edges),
    shrinking the font until it fits the width; returns the width drawn."""
    from PIL import Image, ImageDraw

    h, w = draw_on.shape
    text = " ".join(str(text).split())  # (one line: Pillow cannot lay out control characters)
    font = _font(px)
    while px > 8 and font.getlength(text) > w - 8:
        px -= 1
        font = _font(px)
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).text(xy, text, fill=255, font=font, anchor=anchor)
    level = (np.asarray(mask, dtype=np.int32) * GREYS + 127) // 255
    np.copyto(draw_on, level.astype(np.uint8), where=level > 0)
    return int(font.getlength(text))


class _Canvas:
    """The fixed parts of every image: palette, title band, legend band, view box, marker."""

    def __init__(
        self, frames: list[np.ndarray], class_names: Sequence[str], size: int, legend: bool
    ):
        self.size = size
        self.font_px = max(10, round(size / 30))
        self.top = round(self.font_px * 2.2)
        self.legend = self._legend(class_names) if legend else np.zeros((0, size), np.uint8)
        n = max(len(frames[0]), 1)
        self.radius = max(1.0, size / 320) * float(np.clip((10_000 / n) ** 0.25, 1.0, 3.0))
        r = int(np.ceil(self.radius))
        dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
        keep = dx**2 + dy**2 <= self.radius**2 + 0.25
        self.stencil = np.stack([dy[keep], dx[keep]], axis=1)
        stacked = np.concatenate(frames)
        lo, hi = stacked.min(axis=0), stacked.max(axis=0)
        self.centre = (lo + hi) / 2
        margin = r + 4
        width, height = size - 2 * margin, size - self.top - len(self.legend) - 2 * margin
        if height < 16:
            raise ConfigError(f"an animation of {size} pixels has no room for the map")
        self.scale = min(width, height) / max(float((hi - lo).max()), 1e-12)
        self.mid = np.array([self.top + margin + height / 2, size / 2])  # (row, col)
        greys = [tuple(round(255 + (c - 255) * k / GREYS) for c in INK) for k in range(GREYS + 1)]
        colours = [tuple(int(v) for v in c) for c in class_colors_uint8(len(class_names))]
        self.rgb = np.array(greys + colours, dtype=np.uint8)

    def _legend(self, class_names: Sequence[str]) -> np.ndarray:
        """A band of class swatches and names below the map (empty when they need > 3 lines)."""
        px, size = max(9, round(self.font_px * 0.8)), self.size
        line = round(px * 1.6)
        font = _font(px)
        x, row, places = 8, 0, []
        for name in class_names:
            width = px + 4 + int(font.getlength(str(name))) + 12
            if x + width > size - 8 and x > 8:
                x, row = 8, row + 1
            places.append((x, row))
            x += width
        if row >= 3:
            return np.zeros((0, size), np.uint8)
        band = np.zeros((line * (row + 1) + 6, size), np.uint8)
        for k, (name, (x, row)) in enumerate(zip(class_names, places, strict=True)):
            y = 3 + row * line + line // 2
            band[y - px // 2 : y + px // 2, x : x + px] = FIRST_CLASS + k
            sub = band[:, x + px + 4 :]
            _text(sub, str(name), px, (0, y), "lm")
        return band

    def render(self, points: np.ndarray, labels: np.ndarray, title: str) -> np.ndarray:
        """One image (palette indices) of ``points`` (normalised frame coordinates)."""
        size = self.size
        image = np.zeros((size, size), np.uint8)
        _text(image[: self.top], title, self.font_px, (size // 2, self.top // 2), "mm")
        if len(self.legend):
            image[size - len(self.legend) :] = self.legend
        rows = np.rint(self.mid[0] - (points[:, 1] - self.centre[1]) * self.scale).astype(int)
        cols = np.rint(self.mid[1] + (points[:, 0] - self.centre[0]) * self.scale).astype(int)
        rr = np.clip(rows[:, None] + self.stencil[None, :, 0], 0, size - 1).ravel()
        cc = np.clip(cols[:, None] + self.stencil[None, :, 1], 0, size - 1).ravel()
        ink = np.repeat((labels + FIRST_CLASS).astype(np.uint8), len(self.stencil))
        image[rr, cc] = ink  # later points paint over earlier ones
        return image


def _gif(path: Path, images: list[np.ndarray], durations: list[int], rgb: np.ndarray) -> Path:
    from PIL import Image

    palette = rgb.ravel().tolist()
    pictures = []
    for image in images:
        picture = Image.fromarray(image)
        picture.putpalette(palette)
        pictures.append(picture)
    buffer = io.BytesIO()
    pictures[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=pictures[1:],
        duration=durations,
        loop=0,
        optimize=True,
    )
    return save_bytes(path, buffer.getvalue())


def _mp4(
    path: Path, images: list[np.ndarray], repeats: list[int], rgb: np.ndarray, frame_ms: int
) -> Path | None:
    """The animation as H.264 MP4 (constant frame rate, held images repeated) through the
    encoder imageio-ffmpeg ships, or None when imageio or imageio-ffmpeg is not installed."""
    try:
        import imageio  # noqa: F401  (the video extra: both or nothing)
        import imageio_ffmpeg
    except ImportError:
        log.info("no %s: imageio and imageio-ffmpeg are not installed", path.name)
        return None
    pad = (-images[0].shape[0]) % 16, (-images[0].shape[1]) % 16  # whole macro blocks
    height, width = images[0].shape[0] + pad[0], images[0].shape[1] + pad[1]
    with atomic_path(path) as tmp:
        writer = imageio_ffmpeg.write_frames(
            str(tmp),
            (width, height),
            fps=1000 / frame_ms,
            codec="libx264",
            pix_fmt_out="yuv420p",
            macro_block_size=16,
            ffmpeg_log_level="error",
            output_params=["-f", "mp4"],  # the temporary name has no .mp4 suffix
        )
        writer.send(None)
        try:
            for image, count in zip(images, repeats, strict=True):
                frame = np.ascontiguousarray(rgb[np.pad(image, ((0, pad[0]), (0, pad[1])))])
                for _ in range(count):
                    writer.send(frame)
        finally:
            writer.close()
    return path


def write_animation(
    embeddings: Sequence[np.ndarray],
    labels: np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    *,
    titles: Sequence[str],
    steps: int = 12,
    hold: int = 6,
    size: int = 480,
    max_points: int = 10_000,
    seed: int = 0,
    frame_ms: int = 80,
    legend: bool = True,
) -> list[Path]:
    """Write a looping GIF of points travelling from frame to frame (the same seeded sample of
    at most ``max_points`` rows in every frame), the frame's title on top (``a → b`` while
    moving), class colours and names below; also an MP4 beside it when imageio-ffmpeg is
    installed. Returns the paths written (the GIF first)."""
    frames, lab = check_frames(embeddings, labels, titles)
    if steps < 0 or hold < 1 or size < 64 or frame_ms < 10 or max_points < 1:
        raise ConfigError(
            f"an animation needs steps >= 0, hold >= 1, size >= 64, frame_ms >= 10 and "
            f"max_points >= 1 (got {steps}, {hold}, {size}, {frame_ms}, {max_points})"
        )
    if len(class_names) > MAX_CLASSES or (len(lab) and lab.max() >= len(class_names)):
        raise ConfigError(f"labels need 1 to {MAX_CLASSES} class names, got {len(class_names)}")
    rows = seeded_sample(len(lab), max_points, seed)
    rows = rows[np.random.default_rng(seed).permutation(len(rows))]  # no class always on top
    norm = [normalise_frame(f)[rows] for f in frames]
    canvas = _Canvas(norm, class_names, size, legend)
    images, repeats = [], []
    for i, j, t, count in animation_schedule(len(norm), steps, hold):
        title = str(titles[i]) if i == j else f"{titles[i]} → {titles[j]}"
        images.append(canvas.render(tween(norm[i], norm[j], t), lab[rows], title))
        repeats.append(count)
    target = Path(path)
    written = [_gif(target, images, [count * frame_ms for count in repeats], canvas.rgb)]
    mp4 = _mp4(target.with_suffix(".mp4"), images, repeats, canvas.rgb, frame_ms)
    return [*written, mp4] if mp4 else written
