"""Comparing maps: every quality metric of every map of a run, as files a user can open.

``write_metrics`` runs :func:`latent_atlas.metrics.evaluate_maps` on the maps of one latent space
and writes ``metrics.csv``, ``metrics.md`` (a Markdown table), ``metrics.png`` (scores, and each map
coloured by per-point neighbourhood preservation) and ``metrics_per_point.parquet``; then
``write_trust`` scores where each map can be trusted, point by point
(:func:`latent_atlas.trust.point_trust`: ``trust.parquet``, ``trust.png``), and the shares of
its readings (``latent_confusion``, ``projection_artefact``, ``misplaced``) join each map's
scores. The numbers also go into the space's manifest entry. ``compare_run`` does it for every
space of a finished run directory.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from latent_atlas.errors import ConfigError
from latent_atlas.fileio import save_bytes, save_figure, save_table
from latent_atlas.latent import LatentSpace
from latent_atlas.metrics import SCORES, LatentSide, MetricsReport, evaluate_maps, latent_side
from latent_atlas.plotting import QualityDisplay
from latent_atlas.runs import RunDir, SpaceDir
from latent_atlas.trust import FILE as TRUST_FILE
from latent_atlas.trust import MAX_POINTS as TRUST_MAX_POINTS
from latent_atlas.trust import (
    PURE,
    SHARE_COLUMNS,
    SUPPORTED,
    PointTrust,
    TrustSide,
    point_trust,
    save_trust,
    trust_side,
)
from latent_atlas.trust_plot import TrustDisplay

log = logging.getLogger("latent_atlas")

FILES = ["metrics.csv", "metrics.md", "metrics.png", "metrics_per_point.parquet"]


class SpaceScoring:
    """The map metrics and per-point trust of one space's maps, scored as the maps arrive:
    the latent side of each once, then each map when it is ready (:meth:`add`, e.g. while
    another map is still being fitted). :func:`write_metrics` takes what was scored and scores
    the rest; the numbers are those of scoring every map at once."""

    def __init__(
        self,
        latent: LatentSpace,
        *,
        k: int = 10,
        max_samples: int | None = 10_000,
        seed: int = 0,
        trust_max_points: int | None = TRUST_MAX_POINTS,
    ):
        self.latent = latent
        self.k, self.max_samples, self.seed = k, max_samples, seed
        self.trust_max_points = trust_max_points
        self._metrics_side: LatentSide | None = None  # the latent sides, made when first needed
        self._trust_side: TrustSide | None = None
        self._report: MetricsReport | None = None
        self._trust: PointTrust | None = None

    def _metrics_latent(self) -> LatentSide:
        if self._metrics_side is None:
            self._metrics_side = latent_side(
                self.latent.features,
                self.latent.labels,
                k=self.k,
                max_samples=self.max_samples,
                random_state=self.seed,
            )
        return self._metrics_side

    def _trust_latent(self) -> TrustSide:
        if self._trust_side is None:
            latent = self.latent
            self._trust_side = trust_side(
                latent.features,
                latent.labels,
                latent.predictions,
                k=self._metrics_latent().k,  # (the metrics' k, lowered for few points)
                max_points=self.trust_max_points,
                random_state=self.seed,
            )
        return self._trust_side

    def add(self, embeddings: dict[str, np.ndarray]) -> None:
        """Score these maps now (those not scored yet): metrics and per-point trust."""
        self._add_metrics(embeddings)
        self._add_trust(embeddings)

    def _add_metrics(self, embeddings: dict[str, np.ndarray]) -> None:
        done = self._report.scores if self._report is not None else {}
        new = {m: e for m, e in embeddings.items() if m not in done}
        if new:
            x, labels = self.latent.features, self.latent.labels
            report = evaluate_maps(x, new, labels, latent=self._metrics_latent())
            self._report = report if self._report is None else self._report.merged(report)

    def _add_trust(self, embeddings: dict[str, np.ndarray]) -> None:
        done = self._trust.kept if self._trust is not None else {}
        new = {m: e for m, e in embeddings.items() if m not in done}
        if new:
            latent = self.latent
            trust = point_trust(
                latent.features, new, latent.labels, latent.predictions, latent=self._trust_latent()
            )
            self._trust = trust if self._trust is None else self._trust.merged(trust)

    def fits(self, k: int, max_samples: int | None, seed: int) -> bool:
        """Whether this scores the metrics with these options (else the caller scores)."""
        return (self.k, self.max_samples, self.seed) == (k, max_samples, seed)

    def fits_trust(self, seed: int, max_points: int | None) -> bool:
        """Whether this scores per-point trust with these options (its k is the metrics')."""
        return (self.seed, self.trust_max_points) == (seed, max_points)

    def report(self, embeddings: dict[str, np.ndarray]) -> MetricsReport:
        """The metrics of ``embeddings`` (scoring those not scored yet), in their order."""
        self._add_metrics(embeddings)
        assert self._report is not None
        return self._report.merged(order=list(embeddings))

    def trust(self, embeddings: dict[str, np.ndarray]) -> PointTrust:
        """The per-point trust of ``embeddings`` (scoring those not scored yet), in order."""
        self._add_trust(embeddings)
        assert self._trust is not None
        return self._trust.merged(order=list(embeddings))


def write_metrics(
    space: SpaceDir,
    latent: LatentSpace,
    embeddings: dict[str, np.ndarray],
    *,
    k: int = 10,
    max_samples: int | None = 10_000,
    seed: int = 0,
    scoring: SpaceScoring | None = None,
) -> dict[str, Any]:
    """Evaluate every map of ``space`` and score where each can be trusted; write the metrics
    and trust files; record the scores (with the shares of each reading) in the manifest.
    ``scoring``: maps scored before with the same options (:class:`SpaceScoring`)."""
    if scoring is not None and not scoring.fits(k, max_samples, seed):
        scoring = None
    if ran := _metrics_step(space, latent, embeddings, k, max_samples, seed, scoring):
        _save_csv(space, space.steps.info("metrics"), embeddings)  # (should the trust step fail)
    info = space.steps.info("metrics")
    ran = write_trust(space, latent, embeddings, k=info["k"], seed=seed, scoring=scoring) or ran
    shares = space.steps.info("trust").get("shares") or {}
    info["scores"] = {m: {**s, **shares.get(m, {})} for m, s in info["scores"].items()}
    if ran or not space.file("metrics.csv").is_file():
        _save_csv(space, info, embeddings)
    space.set(metrics=info)
    return info


def _metrics_step(
    space: SpaceDir,
    latent: LatentSpace,
    embeddings: dict[str, np.ndarray],
    k: int,
    max_samples: int | None,
    seed: int,
    scoring: SpaceScoring | None = None,
) -> bool:
    """The ``metrics`` step (metrics.md, metrics.png, metrics_per_point.parquet; metrics.csv
    follows in :func:`write_metrics`); whether it ran now."""
    steps = space.steps
    key = {
        "features": steps.key("features"),
        "embeddings": {m: steps.key(f"embedding:{m}") for m in embeddings},
        "k": k,
        "max_samples": max_samples,
        "seed": seed,
    }
    if steps.is_done("metrics", key):
        return False
    log.info("scoring %d maps on %s points", len(embeddings), f"{len(latent.labels):,}")
    t0 = time.perf_counter()
    if scoring is not None:
        report = scoring.report(embeddings)
    else:
        x, labels = latent.features, latent.labels
        report = evaluate_maps(
            x, embeddings, labels, k=k, max_samples=max_samples, random_state=seed
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
    return True


def write_trust(
    space: SpaceDir,
    latent: LatentSpace,
    embeddings: dict[str, np.ndarray],
    *,
    k: int = 10,
    seed: int = 0,
    max_points: int | None = TRUST_MAX_POINTS,
    scoring: SpaceScoring | None = None,
) -> bool:
    """The ``trust`` step: where each map of ``space`` can be trusted, per point
    (:func:`latent_atlas.trust.point_trust`) → ``trust.parquet`` and ``trust.png``, the shares
    of each reading recorded. Returns whether it ran now (False: reused)."""
    steps = space.steps
    key = {
        "features": steps.key("features"),
        "embeddings": {m: steps.key(f"embedding:{m}") for m in embeddings},
        "k": k,
        "max_points": max_points,
        "seed": seed,
        "rule": {"pure": PURE, "supported": SUPPORTED},
    }
    if steps.is_done("trust", key):
        return False
    t0 = time.perf_counter()
    n = len(latent.labels)
    log.info(
        "per-point trust of %d maps on %s points", len(embeddings), f"{min(n, max_points or n):,}"
    )
    if scoring is not None and scoring.fits_trust(seed, max_points):
        trust = scoring.trust(embeddings)  # (its k is the metrics' k, as ``k`` here)
    else:
        trust = point_trust(
            latent.features,
            embeddings,
            latent.labels,
            latent.predictions,
            k=k,
            max_points=max_points,
            random_state=seed,
        )
    save_trust(space.file(TRUST_FILE), trust)
    save_figure(space.file("trust.png"), TrustDisplay.from_trust(trust, embeddings).figure_)
    steps.finish(
        "trust",
        key,
        [TRUST_FILE, "trust.png"],
        time.perf_counter() - t0,
        shares=trust.share_scores(),
        k=trust.k,
        n_samples=len(trust.sample),
        n_total=trust.n_total,
        sampled=trust.sampled,
        predictions=latent.predictions is not None,
        seed=seed,
    )
    log.info("per-point trust done in %.1f s", time.perf_counter() - t0)
    return True


def _write_report(space: SpaceDir, report: Any, embeddings: dict[str, np.ndarray]) -> None:
    save_bytes(space.file("metrics.md"), report.to_markdown().encode())
    save_figure(space.file("metrics.png"), QualityDisplay.from_report(report, embeddings).figure_)
    per_point = {"index": report.sample.astype(np.int64)}
    per_point.update(
        {f"{m}_preservation": v.astype(np.float32) for m, v in report.per_point.items()}
    )
    save_table(space.file("metrics_per_point.parquet"), per_point)


def _save_csv(space: SpaceDir, info: dict[str, Any], embeddings: dict[str, np.ndarray]) -> None:
    """metrics.csv: a row per map, its scores, the shares of the trust readings, times."""
    fit_seconds = {m: space.steps.info(f"embedding:{m}").get("seconds") for m in embeddings}
    save_bytes(space.file("metrics.csv"), _csv(info, fit_seconds).encode())


def _csv(info: dict[str, Any], fit_seconds: dict[str, float | None]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    columns = [*SCORES, *SHARE_COLUMNS.values()]
    writer.writerow(["method", *columns, "fit_seconds", "n_samples", "k"])
    for m, s in info["scores"].items():
        values = [f"{s[c]:.6f}" if s.get(c) is not None else "" for c in columns]
        writer.writerow([m, *values, fit_seconds.get(m), info["n_samples"], info["k"]])
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
