"""What happens to uint8 images before an external model sees them.

:class:`Preprocess` resizes, orders the channels, scales, normalises (per-channel mean and
standard deviation) and lays the pixels out as the model expects (N×C×H×W or N×H×W×C). The
default is the article's preprocessing: pixels scaled to [0, 1], nothing else. Options left open
(``size``, ``channels``, ``layout``) are filled in by :meth:`Preprocess.resolve` from the
images and the model, and the resolved object is what a run records in its manifest.

Pure numpy and Pillow: no torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from latent_atlas.errors import ConfigError

CHANNELS = ("rgb", "bgr", "grey")
LAYOUTS = ("nchw", "nhwc")
ARTICLE_SCALE = 1 / 255
# ITU-R 601-2 luma, as Pillow's "L" conversion
_LUMA = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class Preprocess:
    """Resize, channel order, scaling, mean/std normalisation and layout, in that order.

    ``size``: (height, width) to resize to (bilinear), or None for the images' own size (or the
    model's, when it declares a fixed one). ``channels``: ``"rgb"``, ``"bgr"`` or ``"grey"``;
    None keeps the images as stored (RGB, or grey for one-channel data sets) unless the model
    declares another channel count. ``scale`` multiplies the uint8 pixel values (the article:
    1/255). ``mean`` and ``std`` (one value, or one per channel in the order the model receives
    them) are applied after scaling: ``(x * scale - mean) / std``. ``layout``: ``"nchw"``
    (PyTorch, most ONNX models) or ``"nhwc"`` (Keras); None lets the model decide.
    """

    size: tuple[int, int] | None = None
    channels: str | None = None
    scale: float = ARTICLE_SCALE
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    layout: str | None = None

    def __post_init__(self) -> None:
        if self.size is not None:
            size = self.size
            pair = (size, size) if isinstance(size, int) else tuple(size)
            object.__setattr__(self, "size", tuple(int(v) for v in pair))
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None:
                seq = (value,) if isinstance(value, int | float) else tuple(value)
                object.__setattr__(self, name, tuple(float(v) for v in seq))
        object.__setattr__(self, "scale", float(self.scale))
        self.check()

    def check(self) -> None:
        """Refuse values that cannot work, before any model is loaded."""
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise ConfigError(
                f"input size must be HEIGHTxWIDTH of at least 1 pixel, got {self.size}"
            )
        if self.channels is not None and self.channels not in CHANNELS:
            raise ConfigError(
                f"unknown channel order {self.channels!r}; choose one of {', '.join(CHANNELS)}"
            )
        if self.layout is not None and self.layout not in LAYOUTS:
            raise ConfigError(f"unknown layout {self.layout!r}; choose one of {', '.join(LAYOUTS)}")
        if not np.isfinite(self.scale) or self.scale == 0:
            raise ConfigError(f"scale must be a finite non-zero number, got {self.scale}")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None and (len(value) == 0 or not np.all(np.isfinite(value))):
                raise ConfigError(f"{name} must be finite numbers, got {value}")
        if self.std is not None and any(v == 0 for v in self.std):
            raise ConfigError(f"std must not contain zeros, got {self.std}")

    @property
    def is_default(self) -> bool:
        """True when nothing but the article's scaling to [0, 1] was asked for."""
        return self == Preprocess()

    @property
    def out_channels(self) -> int | None:
        """Channels the model receives (None until ``channels`` is resolved)."""
        if self.channels is None:
            return None
        return 1 if self.channels == "grey" else 3

    def resolve(
        self,
        image_shape: tuple[int, ...],
        *,
        model_input: tuple[int | None, int | None, int | None] | None = None,
        layout: str = "nchw",
    ) -> Preprocess:
        """Fill in what was left open, from the images' H×W×C and the model's declared input.

        ``model_input`` is the model's (height, width, channels), with None where the model
        accepts any value; ``layout`` is the model's own layout, used unless one was given.
        """
        self.check()
        h, w = int(image_shape[0]), int(image_shape[1])
        c = int(image_shape[2]) if len(image_shape) > 2 else 1
        mh, mw, mc = model_input or (None, None, None)
        size = self.size or ((int(mh), int(mw)) if mh and mw else (h, w))
        if mh and mw and tuple(size) != (mh, mw):
            raise ConfigError(
                f"the model takes {mh}×{mw} images; --input-size gives {size[0]}×{size[1]}"
            )
        if self.channels is not None:
            channels = self.channels
        elif mc in (1, 3) and mc != c:
            channels = "rgb" if mc == 3 else "grey"
        else:
            channels = "grey" if c == 1 else "rgb"
        out_c = 1 if channels == "grey" else 3
        if mc and mc != out_c:
            raise ConfigError(
                f"the model takes {mc} input channels; channels {channels!r} gives {out_c}"
            )
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None and len(value) not in (1, out_c):
                raise ConfigError(
                    f"{name} has {len(value)} values; the model receives {out_c} channels "
                    f"({channels}): give 1 or {out_c}"
                )
        return replace(self, size=tuple(size), channels=channels, layout=self.layout or layout)

    def apply(self, images: np.ndarray) -> np.ndarray:
        """uint8 N×H×W×C (or N×H×W) images to float32 model input (a resolved object only)."""
        if self.size is None or self.channels is None or self.layout is None:
            raise ConfigError("preprocessing is not resolved; call resolve() first")
        x = np.asarray(images)
        if x.ndim == 3:
            x = x[..., None]
        if x.ndim != 4 or x.dtype != np.uint8:
            raise ConfigError(f"images must be uint8 N×H×W×C, got {x.dtype} {x.shape}")
        if x.shape[1:3] != tuple(self.size):
            x = np.stack([_resize(im, self.size) for im in x]) if len(x) else x
        x = _convert_channels(x, self.channels)
        table = self._table(x.shape[3])
        n, h, w, c = x.shape
        if self.layout == "nchw":
            out = np.empty((n, c, h, w), np.float32)
            for ch in range(c):
                out[:, ch] = table[x[..., ch], ch]
        else:
            out = np.empty((n, h, w, c), np.float32)
            for ch in range(c):
                out[..., ch] = table[x[..., ch], ch]
        return out

    def _table(self, channels: int) -> np.ndarray:
        """Every uint8 value's result per channel, computed in float64 and rounded once."""
        values = np.arange(256, dtype=np.float64)[:, None] * self.scale
        values = np.repeat(values, channels, axis=1)
        if self.mean is not None:
            values = values - np.asarray(self.mean, np.float64)
        if self.std is not None:
            values = values / np.asarray(self.std, np.float64)
        return values.astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("size", "mean", "std"):
            if d[key] is not None:
                d[key] = list(d[key])
        return d

    def describe(self) -> str:
        """One line, e.g. ``32×32 rgb, ×0.00392, mean (0.485, …), nchw``."""
        parts = []
        if self.size is not None:
            parts.append(f"{self.size[0]}×{self.size[1]}")
        parts.append(self.channels or "channels as stored")
        parts.append("pixels / 255" if self.scale == ARTICLE_SCALE else f"pixels × {self.scale:g}")
        if self.mean is not None:
            parts.append("− mean " + ",".join(f"{v:g}" for v in self.mean))
        if self.std is not None:
            parts.append("/ std " + ",".join(f"{v:g}" for v in self.std))
        parts.append(self.layout or "model's layout")
        return ", ".join(parts)


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    c = image.shape[2]
    pil = Image.fromarray(image[:, :, 0] if c == 1 else image)
    pil = pil.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(pil).reshape(size[0], size[1], c)


def _convert_channels(x: np.ndarray, channels: str) -> np.ndarray:
    c = x.shape[3]
    if channels == "grey":
        if c == 1:
            return x
        luma = x[..., :3].astype(np.float64) @ _LUMA
        return np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]
    if c == 1:
        x = np.repeat(x, 3, axis=3)
    elif c != 3:
        raise ConfigError(f"images have {c} channels; expected 1 (grey) or 3 (RGB)")
    return x[..., ::-1] if channels == "bgr" else x
