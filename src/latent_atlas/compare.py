"""Comparing maps: every quality metric of every map of a run, as files a user can open.

``write_metrics`` runs :func:`latent_atlas.metrics.evaluate_maps` on the maps of one latent space
and writes ``metrics.csv``, ``metrics.md`` (a Markdown table), ``metrics.png`` (scores, and each map
coloured by per-point neighbourhood preservation) and ``metrics_per_point.parquet``; the
numbers also go into the space's manifest entry. ``compare_run`` does it for every space of a
finished run directory.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import numpy as np

from latent_atlas.errors import ConfigError
from latent_atlas.fileio import save_bytes, save_figure, save_table
from latent_atlas.latent import LatentSpace
from latent_atlas.metrics import SCORES, evaluate_maps
from latent_atlas.plotting import QualityDisplay
from latent_atlas.runs import RunDir, SpaceDir

FILES = ["metrics.csv", "metrics.md", "metrics.png", "metrics_per_point.parquet"]


def write_metrics(
    space: SpaceDir,
    latent: LatentSpace,
    embeddings: dict[str, np.ndarray],
    *,
    k: int = 10,
    max_samples: int | None = 10_000,
    seed: int = 0,
) -> dict[str, Any]:
    """Evaluate every map of ``space``; write the metrics files; record the scores."""
    steps = space.steps
    key = {
        "features": steps.key("features"),
        "embeddings": {m: steps.key(f"embedding:{m}") for m in embeddings},
        "k": k,
        "max_samples": max_samples,
        "seed": seed,
    }
    if not steps.is_done("metrics", key):
        t0 = time.perf_counter()
        report = evaluate_maps(
            latent.features,
            embeddings,
            latent.labels,
            k=k,
            max_samples=max_samples,
            random_state=seed,
        )
        _write_report(space, report, embeddings)
        steps.finish(
            "metrics",
            key,
            FILES,
            time.perf_counter() - t0,
            scores=report.scores,
            k=report.k,
            n_samples=len(report.sample),
            n_total=report.n_total,
            sampled=report.sampled,
            reference=report.reference,
            seed=seed,
        )
    info = steps.info("metrics")
    space.set(metrics=info)
    return info


def _write_report(space: SpaceDir, report: Any, embeddings: dict[str, np.ndarray]) -> None:
    fit_seconds = {m: space.steps.info(f"embedding:{m}").get("seconds") for m in embeddings}
    save_bytes(space.file("metrics.csv"), _csv(report, fit_seconds).encode())
    save_bytes(space.file("metrics.md"), report.to_markdown().encode())
    save_figure(space.file("metrics.png"), QualityDisplay.from_report(report, embeddings).figure_)
    per_point = {"index": report.sample.astype(np.int64)}
    per_point.update(
        {f"{m}_preservation": v.astype(np.float32) for m, v in report.per_point.items()}
    )
    save_table(space.file("metrics_per_point.parquet"), per_point)


def _csv(report: Any, fit_seconds: dict[str, float | None]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["method", *SCORES, "fit_seconds", "n_samples", "k"])
    for m, s in report.scores.items():
        writer.writerow(
            [m, *(f"{s[c]:.6f}" for c in SCORES), fit_seconds.get(m), len(report.sample), report.k]
        )
    return buf.getvalue()


def compare_run(
    run_dir: str | Path,
    *,
    space: str | None = None,
    k: int = 10,
    max_samples: int | None = 10_000,
    seed: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Compare every map of each latent space of a finished run (``latent-atlas compare``).

    ``space`` limits it to one space; ``seed`` (default: the run's) draws the metric sample.
    Returns each space's metrics record by space name. The run's history records the
    command; its provenance stays as it was.
    """
    with RunDir.open(run_dir) as run:
        return _compare_spaces(run, space, k, max_samples, seed)


def _compare_spaces(
    run: RunDir, space: str | None, k: int, max_samples: int | None, seed: int | None
) -> dict[str, dict[str, Any]]:
    spaces = [run.space(space)] if space is not None else run.spaces()
    if not spaces:
        raise ConfigError(f"{run.path} holds no latent space to compare")
    run.record("compare")
    out = {}
    for found in spaces:
        embeddings = found.embeddings()
        if not embeddings:
            raise ConfigError(f"{found.describe()} has no maps (embedding_*.npy) to compare")
        out[found.name] = {"folder": found.path} | write_metrics(
            found,
            found.load_latent(),
            embeddings,
            k=k,
            max_samples=max_samples,
            seed=run.seed if seed is None else seed,
        )
    return out
