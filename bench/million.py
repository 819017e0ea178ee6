"""A million points through ``latent-atlas project``, end to end, as a user runs it.

    python bench/million.py [--sizes 100000 1000000] [--kinds clusters cifar manifold]

For each kind of data and size: write N × 128 float32 features, labels and 8×8 thumbnails, then
time ``latent-atlas -q project FEATURES --labels --images --methods pca,umap,tsne`` in a fresh
process, from start to exit (maps, metrics, per-point trust, aggregated scatter plots, atlases
and the viewer), with the peak resident memory of the process and its children (sampled every
0.5 s). The scores (trustworthiness and 5-NN accuracy on the metrics' 10,000-point sample) and
each step's time come from the run's manifest.

Kinds of data:

* ``clusters``: bench/scale.py's data (20 Gaussian clusters of varied spread, ReLU-clipped);
* ``cifar``: the article's own CIFAR-10 dense-layer activations (../shared/data/seed-latents,
  10,000 × 128), each row repeated N/10,000 times with Gaussian noise of 10% of each unit's
  spread: real structure, at the size of a large data set;
* ``manifold``: a smooth 6-dimensional manifold curled into 128 dimensions (random Fourier
  features of 6 latent coordinates, ReLU-clipped), labelled by deciles of its first coordinate:
  no clusters, only continuous structure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

from scale import clustered

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
OUT = Path(__file__).resolve().parent / "out" / "million.json"


def cifar(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z = np.load(SHARED / "seed-latents" / "cifar10-test-dense.npz")
    base, labels = z["activations"].astype(np.float32), z["labels"]
    rng = np.random.default_rng(seed)
    rows = np.arange(n) % len(base)
    spread = base.std(axis=0) * 0.1
    x = np.empty((n, base.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):
        r = rows[start : start + 100_000]
        x[start : start + 100_000] = base[r] + rng.normal(size=(len(r), base.shape[1])) * spread
    return x, labels[rows], _thumbs(labels[rows], rng)


def manifold(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 1.0, size=(6, 128))
    phase = rng.uniform(0, 2 * np.pi, size=128)
    t = rng.uniform(-1, 1, size=(n, 6)).astype(np.float32)
    x = np.empty((n, 128), dtype=np.float32)
    for start in range(0, n, 100_000):
        x[start : start + 100_000] = np.maximum(np.cos(t[start : start + 100_000] @ w + phase), 0)
    labels = np.digitize(t[:, 0], np.quantile(t[:, 0], np.linspace(0.1, 0.9, 9)))
    return x, labels, _thumbs(labels, rng)


def _thumbs(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    palette = rng.uniform(40, 215, size=(int(labels.max()) + 1, 3)).astype(np.uint8)
    return np.repeat(np.repeat(palette[labels][:, None, None, :], 8, 1), 8, 2)


KINDS = {"clusters": lambda n: clustered(n), "cifar": cifar, "manifold": manifold}


class TreeMemory:
    """Peak resident memory of a process and all its children, sampled every 0.5 s."""

    def __init__(self, pid: int) -> None:
        self.peak = 0
        self._proc = psutil.Process(pid)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                procs = [self._proc, *self._proc.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs))
            except psutil.Error:
                return
            time.sleep(0.5)


def run_project(tmp: Path, kind: str, n: int) -> dict:
    x, y, thumbs = KINDS[kind](n)
    for name, arr in (("features", x), ("labels", y), ("images", thumbs)):
        np.save(tmp / f"{name}.npy", arr)
    del x, y, thumbs
    out = tmp / f"run-{kind}-{n}"
    cmd = [sys.executable, "-m", "latent_atlas", "-q", "project", str(tmp / "features.npy")]
    cmd += ["--labels", str(tmp / "labels.npy"), "--images", str(tmp / "images.npy")]
    cmd += ["--methods", "pca,umap,tsne", "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    mem = TreeMemory(proc.pid)
    _, err = proc.communicate()
    seconds = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"{kind} {n}: project failed:\n{err[-3000:]}")
    manifest = json.loads((out / "manifest.json").read_text())
    space = next(iter(manifest["spaces"].values()))
    steps = {k: v.get("seconds") for k, v in {**manifest["steps"], **space["steps"]}.items()}
    large = {  # the large-data recipe's own steps: fit on the sample, transform, refine
        m: (space["steps"].get(f"embedding:{m}", {}).get("large_data") or {}).get("seconds")
        for m in ("tsne", "umap")
    }
    scores = space["metrics"]["scores"]
    return {
        "kind": kind,
        "n": n,
        "seconds": round(seconds, 1),
        "peak_gib": round(mem.peak / 2**30, 2),
        "steps": steps,
        "large_data_seconds": large,
        "total_seconds": manifest.get("total_seconds"),
        "scores": {
            m: {c: scores[m][c] for c in ("trustworthiness", "knn_accuracy_2d")}
            for m in ("tsne", "umap")
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores; Python "
        f"{platform.python_version()}; load average {os.getloadavg()[0]:.2f}; "
        f"{time.strftime('%Y-%m-%d %H:%M')}\n",
        flush=True,
    )
    results = json.loads(OUT.read_text()) if OUT.is_file() else []
    for kind in args.kinds:
        for n in args.sizes:
            with tempfile.TemporaryDirectory() as tmp:
                r = run_project(Path(tmp), kind, n)
            slow = sorted(r["steps"].items(), key=lambda kv: -(kv[1] or 0))[:6]
            print(json.dumps({k: r[k] for k in ("kind", "n", "seconds", "peak_gib", "scores")}))
            print("  slowest steps: " + ", ".join(f"{k} {v:.0f} s" for k, v in slow), flush=True)
            print(f"  large-data steps: {r['large_data_seconds']}", flush=True)
            results = [o for o in results if (o["kind"], o["n"]) != (kind, n)] + [r]
            OUT.parent.mkdir(parents=True, exist_ok=True)
            OUT.write_text(json.dumps(results, indent=1))
    print(
        "\n| data | N | wall time | peak memory | t-SNE trust | t-SNE 5-NN | UMAP trust | "
        "UMAP 5-NN |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in sorted(results, key=lambda r: (r["kind"], r["n"])):
        t, u = r["scores"]["tsne"], r["scores"]["umap"]
        print(
            f"| {r['kind']} | {r['n']:,} | {r['seconds']:.0f} s | {r['peak_gib']:.2f} GiB | "
            f"{t['trustworthiness']:.4f} | {t['knn_accuracy_2d']:.4f} | "
            f"{u['trustworthiness']:.4f} | {u['knn_accuracy_2d']:.4f} |"
        )
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
