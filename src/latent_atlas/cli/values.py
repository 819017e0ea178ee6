"""Argument types of the command line: text to values, or one usage error saying what was meant."""

from __future__ import annotations

import argparse
import json
from typing import Any


def methods(text: str) -> tuple[str, ...]:
    return tuple(m.strip() for m in text.split(",") if m.strip())


def epochs(text: str) -> tuple[int | str, ...]:
    """``0,1,2,5,10,best`` → snapshot epochs (whole numbers from 0, and ``best``)."""
    out: list[int | str] = []
    for part in (p.strip() for p in text.split(",")):
        if part == "best":
            out.append(part)
        elif part.isdigit():
            out.append(int(part))
        elif part:
            raise argparse.ArgumentTypeError(
                f"expected epochs such as 0,1,2,5,10,best (whole numbers, best), got {part!r}"
            )
    if not out:
        raise argparse.ArgumentTypeError("expected at least one epoch, e.g. 0,1,5,best")
    return tuple(out)


def param(text: str) -> tuple[str, str, Any]:
    """``method.name=value`` with value parsed as JSON when it can be (numbers, true, null)."""
    try:
        lhs, value = text.split("=", 1)
        method, name = lhs.split(".", 1)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected METHOD.PARAM=VALUE (e.g. tsne.perplexity=30), got {text!r}"
        ) from None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return method.strip(), name.strip(), parsed


def size(text: str) -> tuple[int, int]:
    """``HxW`` (or one number for a square) → (height, width)."""
    try:
        parts = [int(v) for v in text.lower().replace(",", "x").split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH (e.g. 224x224), got {text!r}")
    return parts[0], parts[1]


def shape(text: str) -> tuple[int, int, int]:
    """``H,W,C`` → (height, width, channels)."""
    try:
        parts = [int(v) for v in text.lower().replace("x", ",").split(",")]
    except ValueError:
        parts = []
    if len(parts) != 3 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected H,W,C (e.g. 32,32,3), got {text!r}")
    return parts[0], parts[1], parts[2]


def numbers(text: str) -> tuple[float, ...]:
    """``0.485,0.456,0.406`` → a tuple of floats."""
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers (e.g. 0.485,0.456,0.406), got {text!r}"
        ) from None


def scale(text: str) -> float:
    """A number or a fraction such as ``1/255`` or ``1/127.5``."""
    try:
        num, _, den = text.partition("/")
        return float(num) / float(den) if den else float(num)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(
            f"expected a number or a fraction (e.g. 1/255), got {text!r}"
        ) from None


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r} ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f'expected a JSON object such as {{"num_classes": 10}}, got {text!r}'
        )
    return value


def grid(text: str) -> int | tuple[int, int]:
    try:
        if "x" in text.lower():
            rows, cols = (int(v) for v in text.lower().split("x"))
            return rows, cols
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected G or ROWSxCOLS, got {text!r}") from None


def distance(text: str) -> float | str | None:
    if text in ("auto", "none"):
        return None if text == "none" else "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number, 'auto' or 'none', got {text!r}"
        ) from None
