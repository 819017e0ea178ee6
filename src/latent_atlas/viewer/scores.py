"""The scores table of the viewer: every numeric per-method score a run holds.

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


def metrics_table(run_dir: Path, manifest: dict[str, Any], maps: list[str]) -> dict[str, Any]:
    """Every numeric per-method score: the manifest's methods and metrics, then metrics.csv
    (later sources win). Columns: scores first, then times and sample sizes."""
    values: dict[str, dict[str, float]] = {}
    seen: list[str] = []
    csv_order: list[str] = []
    sources = []
    integral: dict[str, bool] = {}  # columns whose every value is a whole number (counts)

    def put(method: Any, column: Any, value: Any, parse_text: bool = False) -> None:
        found = number(value, parse_text)
        if found is not None:
            column = str(column)
            values.setdefault(str(method), {})[column] = found
            if column not in seen:
                seen.append(column)
            whole = isinstance(value, int | np.integer) or (
                isinstance(value, str) and value.strip().lstrip("-").isdigit()
            )
            integral[column] = integral.get(column, True) and whole

    for method, info in (manifest.get("methods") or {}).items():
        for column, value in _scores_of(info):
            put(method, column, value)
    if values:
        sources.append("manifest.json (methods)")
    extra = manifest.get("metrics")
    rows: list[tuple[Any, Any]] = []
    if isinstance(extra, dict) and isinstance(extra.get("scores"), dict):
        rows = list(extra["scores"].items())
    elif isinstance(extra, dict):
        rows = [(m, info) for m, info in extra.items() if m in maps]
    elif isinstance(extra, list):
        rows = [(r["method"], r) for r in extra if isinstance(r, dict) and "method" in r]
    for method, info in rows:
        for column, value in _scores_of(info):
            if column != "method":
                put(method, column, value)
    if rows:
        sources.append("manifest.json (metrics)")
    csv_file = run_dir / METRICS_CSV
    if csv_file.is_file():
        triples = _read_metrics_csv(csv_file)
        for method, column, value in triples:
            put(method, column, value, parse_text=True)
            if column not in csv_order:
                csv_order.append(column)
        if triples:
            sources.append(METRICS_CSV)

    def order(column: str) -> tuple[int, int]:
        if column in LAST_COLUMNS:
            return (2, LAST_COLUMNS.index(column))
        if column in FIRST_COLUMNS:
            return (0, FIRST_COLUMNS.index(column))
        if column in csv_order:
            return (1, csv_order.index(column))
        return (1, len(csv_order) + seen.index(column))

    columns = sorted(seen, key=order)
    if "fit_seconds" in columns and all(
        row.get("seconds") == row.get("fit_seconds") for row in values.values()
    ):
        columns.remove("seconds")  # the same time twice
    methods = [m for m in maps if m in values] + [m for m in values if m not in maps]
    table = [{"method": m, "values": [values[m].get(c) for c in columns]} for m in methods]
    return {
        "columns": columns,
        "aux": [c for c in columns if c in LAST_COLUMNS],
        "integer": [c for c in columns if integral[c]],
        "rows": table,
        "sources": sources,
    }


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
