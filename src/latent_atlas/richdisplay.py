"""Jupyter's rich-display protocol for the objects a notebook gets back.

``FigureRepr`` gives every Display its ``_repr_png_`` (the PNG bytes of its ``figure_``);
``run_html`` is the summary table (maps × scores) and comparison figure of a run that
``RunSummary`` and ``RunDir`` show as ``_repr_html_``; ``srcdoc_iframe`` puts a whole
self-contained page (the viewer) into an ``<iframe srcdoc>``, where the page's own
Content-Security-Policy still applies and nothing is fetched. Only the standard library: the
figure draws itself.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

COMPARISON_FILE = "comparison.png"  # every map of a space side by side
#: the scores a run's summary shows: (column heading, key in a map's ``scores``)
SCORE_COLUMNS = (
    ("trust", "trustworthiness"),
    ("contin.", "continuity"),
    ("5-NN acc", "knn_accuracy_2d"),
    ("NN kept", "neighbourhood_preservation"),
    ("triplets", "triplet_accuracy"),
)


def figure_png(figure: Any, dpi: float | None = None) -> bytes:
    """The PNG bytes of a Matplotlib figure (its own dpi unless ``dpi`` is given)."""
    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=dpi if dpi is not None else "figure")
    return buf.getvalue()


class FigureRepr:
    """Mixin: a Display with a ``figure_`` shows as that figure in Jupyter."""

    figure_: Any

    def _repr_png_(self) -> bytes | None:
        figure = getattr(self, "figure_", None)
        return None if figure is None else figure_png(figure)


def png_img(png: bytes, alt: str = "", width: int | None = None) -> str:
    """An ``<img>`` tag with the PNG inline as a ``data:`` URI (no file, no request)."""
    size = f' width="{width}"' if width else ""
    uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return f'<img src="{uri}" alt="{html.escape(alt)}"{size}>'


def _number(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "" if math.isnan(value) else f"{value:.4f}"
    return ""


def scores_table(maps: Mapping[str, Mapping[str, Any]]) -> str:
    """One row per map (its seconds and scores), one column per score in ``SCORE_COLUMNS``."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c, _ in SCORE_COLUMNS)
    rows = []
    for name, record in maps.items():
        scores = record.get("scores") or {}
        seconds = record.get("seconds")
        cells = "".join(f"<td>{_number(scores.get(key))}</td>" for _, key in SCORE_COLUMNS)
        took = f"{seconds:.2f}" if isinstance(seconds, int | float) else ""
        rows.append(f"<tr><th>{html.escape(name)}</th><td>{took}</td>{cells}</tr>")
    return (
        '<table class="latent-atlas-scores"><thead><tr><th>map</th><th>seconds</th>'
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def run_html(
    title: str,
    lines: Sequence[str],
    spaces: Sequence[tuple[str, str, Mapping[str, Mapping[str, Any]], Path]],
    *,
    width: int = 900,
) -> str:
    """A run as HTML: ``title`` and ``lines`` of text, then per space ``(name, note, maps,
    folder)`` its note, scores table and ``comparison.png`` (inlined, when the folder has it)."""
    parts = [f"<div><strong>{html.escape(title)}</strong>"]
    parts += [f"<br>{html.escape(line)}" for line in lines]
    for name, note, maps, folder in spaces:
        if len(spaces) > 1:
            parts.append(f"<h4>space {html.escape(name)}</h4>")
        parts.append(f"<p>{html.escape(note)}</p>" + scores_table(maps))
        figure = Path(folder) / COMPARISON_FILE
        if figure.is_file():
            parts.append(png_img(figure.read_bytes(), f"maps of {name}", width))
    return "\n".join([*parts, "</div>"])


def srcdoc_iframe(page: str, height: int = 640, title: str = "latent-atlas viewer") -> str:
    """``page`` (a whole HTML document) inside an ``<iframe srcdoc>``: scripts run, in an
    opaque origin (``sandbox="allow-scripts"``, no same-origin), under the page's own
    Content-Security-Policy; the notebook's own page is out of its reach."""
    return (
        f'<iframe srcdoc="{html.escape(page, quote=True)}" sandbox="allow-scripts" '
        f'title="{html.escape(title)}" width="100%" height="{int(height)}" '
        'style="border: 1px solid #ddd; border-radius: 4px;"></iframe>'
    )
