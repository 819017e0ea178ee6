"""The scores table of the viewer: every numeric per-method score a run holds.

:func:`gather_scores` collects a space's scores as ``{map: {score: value}}`` (what
:class:`~latent_atlas.viewer.data.ViewerData` takes); :func:`scores_table` lays any such dict
out for the page; :func:`metrics_table` is both, for a manifest-shaped dict.

Sources, later ones winning: each method's entry in ``manifest.json`` (plain numbers and its
``scores`` sub-dict; ``params``/``effective`` are settings and left out), the manifest's
``metrics`` (``{"scores": {method: {...}}}``, ``{method: {...}}`` or a list of rows with a
``method``), and ``metrics.csv`` (wide: a ``method`` column, else the first, then one column per
score; or long: ``method, metric, value``).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from latent_atlas.errors import LatentAtlasError

METRICS_CSV = "metrics.csv"
# scores shown first, in this order; then any other score; then times and sample sizes
FIRST_COLUMNS = ("trustworthiness", "continuity", "knn_accuracy", "knn_accuracy_2d")
LAST_COLUMNS = ("seconds", "fit_seconds", "metric_sample", "n_fit", "n_samples", "k")
SCORE_GROUPS = ("scores", "metrics")  # sub-dicts of a method's entry that hold its scores
SKIP_GROUPS = ("params", "effective")  # sub-dicts that hold settings, not scores


Scores = dict[str, dict[str, float | None]]  # map → score name → value (None: no value)


def metrics_table(run_dir: Path, manifest: dict[str, Any], maps: list[str]) -> dict[str, Any]:
    """Every numeric per-method score: the manifest's methods and metrics, then metrics.csv
    (later sources win). Columns: scores first, then times and sample sizes."""
    scores, sources = gather_scores(
        run_dir, manifest.get("methods") or {}, manifest.get("metrics"), maps
    )
    return scores_table(scores, maps, sources)


def gather_scores(
    folder: Path, methods: dict[str, Any], metrics: Any, maps: list[str]
) -> tuple[Scores, list[str]]:
    """The scores of one space, as :class:`~latent_atlas.viewer.data.ViewerData` takes them,
    and where they came from: each map's entry (``methods``), the space's ``metrics``, then
    ``folder/metrics.csv`` (later sources win). Every map lists every column, in the table's
    order; whole-number columns hold ints."""
    table = _Table()
    for method, info in methods.items():
        for column, value in _scores_of(info):
            table.put(method, column, value)
    if table.values:
        table.sources.append("manifest.json (methods)")
    rows = _manifest_metrics(metrics, maps)
    for method, info in rows:
        for column, value in _scores_of(info):
            if column != "method":
                table.put(method, column, value)
    if rows:
        table.sources.append("manifest.json (metrics)")
    csv_file = folder / METRICS_CSV
    if csv_file.is_file():
        triples = _read_metrics_csv(csv_file)
        for method, column, value in triples:
            table.put(method, column, value, parse_text=True)
            if column not in table.csv_order:
                table.csv_order.append(column)
        if triples:
            table.sources.append(METRICS_CSV)
    return table.scores(), table.sources


def scores_table(scores: Scores, maps: list[str], sources: list[str]) -> dict[str, Any]:
    """The page's scores table: a row per map (``maps`` first, in order); columns: the
    first scores (trustworthiness, ...), the others in the order their names first come, then
    times and sample sizes. A column of ``int`` values only is a count."""
    seen: list[str] = []  # every name in the order they first come (None values too)
    for row in scores.values():
        seen += [c for c in row if c not in seen]
    valued = [c for c in seen if any(row.get(c) is not None for row in scores.values())]
    columns = sorted(valued, key=lambda c: _column_order(c, seen))
    if "fit_seconds" in columns and all(
        row.get("seconds") == row.get("fit_seconds") for row in scores.values()
    ):
        columns.remove("seconds")  # the same time twice
    methods = [m for m in maps if m in scores] + [m for m in scores if m not in maps]
    rows = [
        (m, [scores[m].get(c) for c in columns])
        for m in methods
        if any(scores[m].get(c) is not None for c in columns)
    ]
    return {
        "columns": columns,
        "aux": [c for c in columns if c in LAST_COLUMNS],
        "integer": [
            c
            for i, c in enumerate(columns)
            if all(isinstance(values[i], int | None) for _, values in rows)
        ],
        "rows": [
            {"method": m, "values": [None if v is None else float(v) for v in values]}
            for m, values in rows
        ],
        "sources": list(sources),
    }


def _column_order(column: str, middle: list[str]) -> tuple[int, int]:
    if column in LAST_COLUMNS:
        return (2, LAST_COLUMNS.index(column))
    if column in FIRST_COLUMNS:
        return (0, FIRST_COLUMNS.index(column))
    return (1, middle.index(column))


class _Table:
    """The scores gathered so far: values by method and column, and the columns' order."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, float]] = {}
        self.seen: list[str] = []
        self.csv_order: list[str] = []
        self.sources: list[str] = []
        self.integral: dict[str, bool] = {}  # columns whose every value is a whole number

    def put(self, method: Any, column: Any, value: Any, parse_text: bool = False) -> None:
        found = number(value, parse_text)
        if found is not None:
            column = str(column)
            self.values.setdefault(str(method), {})[column] = found
            if column not in self.seen:
                self.seen.append(column)
            whole = isinstance(value, int | np.integer) or (
                isinstance(value, str) and value.strip().lstrip("-").isdigit()
            )
            self.integral[column] = self.integral.get(column, True) and whole

    def scores(self) -> Scores:
        """Every method's value of every column (None: none), columns in the table's order:
        scores first, then the CSV's columns, then any other, then times and sample sizes."""
        middle = self.csv_order + [c for c in self.seen if c not in self.csv_order]
        columns = sorted(self.seen, key=lambda c: _column_order(c, middle))
        return {
            method: {
                c: None if c not in row else int(row[c]) if self.integral[c] else row[c]
                for c in columns
            }
            for method, row in self.values.items()
        }


def _manifest_metrics(extra: Any, maps: list[str]) -> list[tuple[Any, Any]]:
    """(method, entry) pairs of the manifest's ``metrics``, in any of its three shapes."""
    if isinstance(extra, dict) and isinstance(extra.get("scores"), dict):
        return list(extra["scores"].items())
    if isinstance(extra, dict):
        return [(m, info) for m, info in extra.items() if m in maps]
    if isinstance(extra, list):
        return [(r["method"], r) for r in extra if isinstance(r, dict) and "method" in r]
    return []


def _scores_of(info: Any) -> list[tuple[str, Any]]:
    """(column, value) pairs of one method's entry; ``scores``/``metrics`` sub-dicts are read
    as plain columns, ``params``/``effective`` (settings, not scores) are left out, other
    sub-dicts become ``name.key`` columns."""
    if not isinstance(info, dict):
        return []
    out = []
    for key, value in info.items():
        if key in SKIP_GROUPS:
            continue
        if isinstance(value, dict):
            prefix = "" if key in SCORE_GROUPS else f"{key}."
            out += [(f"{prefix}{k}", v) for k, v in value.items() if not isinstance(v, dict)]
        else:
            out.append((str(key), value))
    return out


def _read_metrics_csv(path: Path) -> list[tuple[str, str, str]]:
    """(method, column, value) triples from a wide (method, a, b, ...) or long
    (method, metric, value) CSV; the method column is ``method`` or else the first."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LatentAtlasError(f"{path} cannot be read as UTF-8 text ({exc})") from None
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    if not header:
        return []
    key = "method" if "method" in header else header[0]
    out = []
    for row in reader:
        method = row.get(key)
        if not method:
            continue
        if "metric" in header and "value" in header:
            out.append((method, row.get("metric") or "value", row.get("value") or ""))
        else:
            out += [(method, c, row.get(c) or "") for c in header if c != key]
    return out


def number(value: Any, parse_text: bool = False) -> float | None:
    """A finite float, or None for anything else (bools, text, NaN, nested values)."""
    if isinstance(value, str) and parse_text:
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
