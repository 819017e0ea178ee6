"""Comparing maps: every quality metric of every map of a run, as files a user can open.

``write_comparison`` runs :func:`latent_atlas.metrics.evaluate_maps` on a run's maps and writes
``metrics.csv``, ``metrics.md`` (a Markdown table), ``metrics.png`` (scores, and each map
coloured by per-point neighbourhood preservation) and ``metrics_per_point.parquet``; the
numbers also go into the manifest. ``compare_run`` does it for a finished run directory.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import numpy as np

from latent_atlas.errors import ConfigError
from latent_atlas.fileio import load_npy, save_bytes, save_figure, save_table
from latent_atlas.latent import LatentSpace
from latent_atlas.metrics import SCORES, evaluate_maps
from latent_atlas.plotting import QualityDisplay
from latent_atlas.runs import Run

FILES = ["metrics.csv", "metrics.md", "metrics.png", "metrics_per_point.parquet"]


def write_comparison(
    run: Run,
    latent: LatentSpace,
    embeddings: dict[str, np.ndarray],
    *,
    k: int = 10,
    max_samples: int | None = 10_000,
    seed: int = 0,
    base_key: Any = None,
) -> dict[str, Any]:
    """Evaluate every map; write the comparison files; record the scores in the manifest."""
    key = {
        "base": base_key,
        "embeddings": {m: run.step_info(f"project:{m}").get("key") for m in embeddings},
        "k": k,
        "max_samples": max_samples,
        "seed": seed,
    }
    if not run.is_done("compare", key):
        t0 = time.perf_counter()
        report = evaluate_maps(
            latent.features,
            embeddings,
            latent.labels,
            k=k,
            max_samples=max_samples,
            random_state=seed,
        )
        fit_seconds = {m: run.step_info(f"project:{m}").get("seconds") for m in embeddings}
        save_bytes(run.file("metrics.csv"), _csv(report, fit_seconds).encode())
        save_bytes(run.file("metrics.md"), report.to_markdown().encode())
        save_figure(run.file("metrics.png"), QualityDisplay.from_report(report, embeddings).figure_)
        per_point = {"index": report.sample.astype(np.int64)}
        per_point.update(
            {f"{m}_preservation": v.astype(np.float32) for m, v in report.per_point.items()}
        )
        save_table(run.file("metrics_per_point.parquet"), per_point)
        run.finish(
            "compare",
            key,
            FILES,
            time.perf_counter() - t0,
            scores=report.scores,
            k=report.k,
            n_samples=len(report.sample),
            n_total=report.n_total,
            sampled=report.sampled,
            reference=report.reference,
        )
    info = {k_: v for k_, v in run.step_info("compare").items() if k_ not in ("key", "finished")}
    run.update(metrics=info)
    return info


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
    run_dir: str | Path, *, k: int = 10, max_samples: int | None = 10_000, seed: int = 0
) -> dict[str, Any]:
    """Compare every map of a finished run (``latent-atlas compare RUN_DIR``)."""
    run = Run(run_dir, create=False)
    files = sorted(run.path.glob("embedding_*.npy"))
    if not files:
        raise ConfigError(f"{run.path} has no maps (embedding_*.npy) to compare")
    embeddings = {p.stem.removeprefix("embedding_"): load_npy(p) for p in files}
    latent = LatentSpace.load(run.path, run.manifest.get("dataset", {}).get("class_names"))
    return write_comparison(
        run,
        latent,
        embeddings,
        k=k,
        max_samples=max_samples,
        seed=seed,
        base_key=run.step_info("extract").get("key"),
    )
