"""A sweep of frames: the same images' latent spaces at several layers, epochs or models,
mapped so that consecutive maps line up, and what is measured and drawn about them.

:func:`sweep_order` says which frame each one is aligned to (its *previous* frame): the
previous epoch of the same layer, else the previous layer at the same epoch; the first
frame of a chain is fitted on its own. :func:`map_frames` fits every frame's maps in that
order, each aligned to its previous frame's (:mod:`latent_atlas.align`, unless
``MapConfig.align`` is off). :func:`write_frames` writes into the run's folder:

- ``frames.csv``: one row per frame — layer, epoch, model, dimensions, active units, 5-NN
  accuracy in the frame's own space, a linear probe's accuracy, class silhouette in the
  frame's own space, each map's trustworthiness and continuity, and each map's disparity to
  the previous frame (as drawn, and scipy's Procrustes disparity);
- ``cka.csv`` (and ``cka.npy``): linear CKA between every pair of frames;
- ``frames_<map>.png`` film strips (``frames.png``: the first nonlinear map's), the score
  curves ``frames_scores.png``, the CKA heatmap ``cka.png``, an animation of the aligned maps
  ``frames_<map>.gif`` (and ``.mp4`` where a package-shipped encoder is installed);
- ``frames.html``: the frames viewer (a frame slider, two frames side by side).
"""

from __future__ import annotations

import csv
import io
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from latent_atlas.align import disparity, procrustes_disparity
from latent_atlas.config import BEST, MapConfig
from latent_atlas.fileio import save_bytes, save_npy
from latent_atlas.mapfit import Reference
from latent_atlas.maps import map_space
from latent_atlas.metrics import MAX_SAMPLES, class_silhouette, knn_accuracy
from latent_atlas.runs import RunDir
from latent_atlas.sampling import seeded_sample
from latent_atlas.similarity import CKA_SAMPLE, cka_matrix, linear_probe_accuracy
from latent_atlas.sweep import Frame

log = logging.getLogger("latent_atlas")

FRAMES_TABLE = "frames.csv"
CKA_TABLE = "cka.csv"


def _epoch_rank(epoch: int | str | None) -> float:
    if epoch is None:
        return -1.0
    return math.inf if epoch == BEST else float(epoch)


def frame_grid(frames: list[Frame]) -> tuple[list[str], list[Any]]:
    """The sweep's axes: its layers (in the order given) and its epochs (in time order)."""
    layers = list(dict.fromkeys(f.layer if f.model is None else f"{f.model}" for f in frames))
    epochs = sorted({f.epoch for f in frames}, key=_epoch_rank)
    return layers, epochs


def sweep_order(frames: list[Frame]) -> tuple[list[int], list[int | None]]:
    """The order frames are mapped in, and each frame's previous frame (None: a first one).

    Epochs go in time order and, within one, layers (or models) in the order given; a frame's
    previous frame is its layer's previous epoch, else the previous layer at its epoch.
    """
    layers, epochs = frame_grid(frames)
    axis = [layers.index(f.layer if f.model is None else f.model) for f in frames]
    when = [epochs.index(f.epoch) for f in frames]
    at = {(axis[i], when[i]): i for i in range(len(frames))}
    order = sorted(range(len(frames)), key=lambda i: (when[i], axis[i]))
    parents: list[int | None] = []
    for i in range(len(frames)):
        earlier = [at[(axis[i], e)] for e in range(when[i] - 1, -1, -1) if (axis[i], e) in at]
        before = [at[(a, when[i])] for a in range(axis[i] - 1, -1, -1) if (a, when[i]) in at]
        parents.append(earlier[0] if earlier else before[0] if before else None)
    return order, parents


@dataclass
class SweepMaps:
    """Every frame's map records and maps, by frame name, and each frame's previous frame."""

    records: dict[str, dict[str, dict[str, Any]]]
    embeddings: dict[str, dict[str, np.ndarray]]
    parents: list[int | None]


def map_frames(frames: list[Frame], maps: MapConfig, map_chunks: Any = None) -> SweepMaps:
    """Fit every frame's maps, each aligned to its previous frame's (``maps.align``)."""
    order, parents = sweep_order(frames)
    records: dict[str, dict[str, dict[str, Any]]] = {}
    embeddings: dict[str, dict[str, np.ndarray]] = {}
    for i in order:
        frame, parent = frames[i], parents[i]
        refs = None
        if parent is not None and maps.align:
            before = frames[parent]
            refs = {
                m: Reference(emb, before.space.steps.key(f"embedding:{m}") or "", before.name)
                for m, emb in embeddings[before.name].items()
            }
        log.info("frame %s (%d of %d)", frame.label, len(records) + 1, len(frames))
        embeddings[frame.name] = {}
        records[frame.name] = map_space(
            frame.space,
            frame.latent,
            maps,
            map_chunks=map_chunks,
            references=refs,
            embeddings_out=embeddings[frame.name],
        )
    return SweepMaps(records, embeddings, parents)


def frame_scores(frame: Frame, seed: int) -> dict[str, float]:
    """5-NN accuracy, a linear probe and class silhouette in the frame's own space (seeded
    samples); kept in the space's manifest entry and reused while its features are unchanged."""
    space, latent = frame.space, frame.latent
    key = {"features": space.steps.key("features"), "seed": seed, "cka_sample": CKA_SAMPLE}
    if space.steps.is_done("frame_scores", key):
        return dict(space.steps.info("frame_scores")["scores"])
    x, y = latent.features, latent.labels
    knn_rows = seeded_sample(len(y), MAX_SAMPLES, seed)
    sil_rows = seeded_sample(len(y), CKA_SAMPLE, seed)
    scores = {
        "dims": int(x.shape[1]),
        "active_units": int(np.count_nonzero(np.any(np.asarray(x) != 0, axis=0))),
        "knn_accuracy": knn_accuracy(np.asarray(x[knn_rows]), y[knn_rows], k=5),
        "linear_probe": linear_probe_accuracy(x, y, seed=seed),
        "silhouette": class_silhouette(np.asarray(x[sil_rows]), y[sil_rows]),
    }
    space.steps.finish("frame_scores", key, [], 0.0, scores=scores)
    return scores


def frames_table(frames: list[Frame], sweep: SweepMaps, seed: int) -> list[dict[str, Any]]:
    """The rows of ``frames.csv``, in the frames' order."""
    rows = []
    for i, frame in enumerate(frames):
        parent = sweep.parents[i]
        row: dict[str, Any] = {
            "frame": frame.label,
            "space": frame.name,
            "layer": frame.layer,
            "epoch": "" if frame.epoch is None else frame.epoch,
            "model": frame.model or "",
            **frame_scores(frame, seed),
            "previous": "" if parent is None else frames[parent].label,
        }
        for m, record in sweep.records[frame.name].items():
            scores = record.get("scores", {})
            row[f"trust_{m}"] = scores.get("trustworthiness", float("nan"))
            row[f"continuity_{m}"] = scores.get("continuity", float("nan"))
            emb = sweep.embeddings[frame.name][m]
            before = None if parent is None else sweep.embeddings[frames[parent].name].get(m)
            row[f"disparity_{m}"] = float("nan") if before is None else disparity(before, emb)
            row[f"procrustes_{m}"] = (
                float("nan") if before is None else procrustes_disparity(before, emb)
            )
        rows.append(row)
    return rows


def _csv_text(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: f"{v:.4f}" if isinstance(v, float) else v for k, v in row.items()})
    return buf.getvalue()


def write_frames(
    run: RunDir, frames: list[Frame], sweep: SweepMaps, maps: MapConfig
) -> dict[str, Any]:
    """``frames.csv``, the CKA matrix, the pictures and the frames viewer; the run records
    them under ``frames``."""
    rows = frames_table(frames, sweep, maps.seed)
    save_bytes(run.file(FRAMES_TABLE), _csv_text(rows).encode())
    labels = [f.label for f in frames]
    cka = cka_matrix([f.latent.features for f in frames], seed=maps.seed)
    save_npy(run.file("cka.npy"), cka)
    cka_rows = [
        {"frame": a, **{b: float(cka[i, j]) for j, b in enumerate(labels)}}
        for i, a in enumerate(labels)
    ]
    save_bytes(run.file(CKA_TABLE), _csv_text(cka_rows).encode())
    from latent_atlas.frames_draw import draw_frames

    pictures = draw_frames(run, frames, sweep, rows, cka, maps)
    outputs = [FRAMES_TABLE, CKA_TABLE, "cka.npy", *pictures]
    run.set(
        frames={
            "frames": [f.name for f in frames],
            "labels": labels,
            "outputs": outputs,
            "previous": [None if p is None else frames[p].name for p in sweep.parents],
        }
    )
    return {"rows": rows, "cka": cka, "outputs": outputs}
