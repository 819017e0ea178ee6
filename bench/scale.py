"""Scale benchmark: a million points through t-SNE and UMAP maps on this machine.

    python bench/scale.py [--sizes 10000 100000 1000000]   # prints a Markdown report

Data: N × 128 synthetic clustered activations (20 Gaussian clusters of varied spread, seeded;
ReLU-like: negative values clipped to 0) with 8×8 RGB "thumbnails" coloured by cluster. For the
largest N every step of a run is timed and its peak memory (resident set size, sampled every
0.1 s) recorded: the t-SNE map and the UMAP map (both by latent-atlas's large-data recipe above
200,000 points: fit on a seeded 50,000-point sample, transform the rest in chunks, refine
t-SNE), metrics on a 10,000-point sample, the aggregated (Datashader-style) scatter plot, and a
100×100 atlas. For every N the map times are reported, to show how time grows.
"""

from __future__ import annotations

import argparse
import os
import platform
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

OUT = Path(__file__).resolve().parent / "out" / "scale"


def clustered(n: int, d: int = 128, k: int = 20, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, size=(k, d))
    spread = rng.uniform(0.5, 2.0, size=k)
    labels = rng.integers(0, k, n)
    x = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, 100_000):  # in blocks: no float64 copy of everything
        lab = labels[start : start + 100_000]
        block = centres[lab] + rng.normal(size=(len(lab), d)) * spread[lab, None]
        x[start : start + 100_000] = np.maximum(block, 0)
    palette = (rng.uniform(40, 215, size=(k, 3))).astype(np.uint8)
    thumbs = np.repeat(np.repeat(palette[labels][:, None, None, :], 8, 1), 8, 2)
    return x, labels % 10, thumbs


class PeakMemory:
    """Samples this process's resident set size; ``peak()`` since the last ``reset()``."""

    def __init__(self) -> None:
        self._peak = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self) -> None:
        while not self._stop:
            self._peak = max(self._peak, self.rss())
            time.sleep(0.1)

    def reset(self) -> None:
        self._peak = self.rss()

    def peak(self) -> int:
        return max(self._peak, self.rss())


def step(name: str, fn: Any, mem: PeakMemory, rows: list) -> Any:
    mem.reset()
    t0 = time.perf_counter()
    out = fn()
    rows.append((name, time.perf_counter() - t0, mem.peak() / 2**30))
    print(f"  {name}: {rows[-1][1]:.1f} s, peak {rows[-1][2]:.2f} GiB", flush=True)
    return out


def measure(n: int, mem: PeakMemory) -> tuple[list, Any]:
    """Every step of one run of N points; returns (step rows, metrics report)."""
    from latent_atlas.atlas import build_atlas, render_atlas
    from latent_atlas.fileio import save_figure, save_image
    from latent_atlas.largedata import LargeDataRecipe, fit_large
    from latent_atlas.metrics import evaluate_maps
    from latent_atlas.plotting import ScatterDisplay
    from latent_atlas.reducers import get_reducer

    recipe = LargeDataRecipe()
    rows: list = []
    x, y, thumbs = step("generate data", lambda: clustered(n), mem, rows)
    maps = {}

    def fit(method: str) -> np.ndarray:
        reducer = get_reducer(method, random_state=0)
        if recipe.applies(len(x), reducer):
            return fit_large(reducer, x, recipe, seed=0)[0]
        return reducer.fit_transform(x)

    for method in ("tsne", "umap"):
        maps[method] = step(f"{method} map", lambda m=method: fit(m), mem, rows)
    report = step(
        "metrics (10,000-point sample)",
        lambda: evaluate_maps(x, maps, y, max_samples=10_000),
        mem,
        rows,
    )

    def scatter() -> None:
        disp = ScatterDisplay.from_embedding(maps["umap"], y, [str(i) for i in range(10)])
        save_figure(OUT / f"scatter_umap_{n}.png", disp.figure_, bbox_inches="tight")

    def atlas() -> None:
        a = build_atlas(maps["umap"], 100, mode="nearest", max_distance=None)
        save_image(OUT / f"atlas_umap_{n}.png", render_atlas(a, thumbs, tile=8))

    step("scatter plot (aggregated above 200,000)", scatter, mem, rows)
    step("100×100 atlas", atlas, mem, rows)
    return rows, report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    mem = PeakMemory()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, 24 GiB; Python "
        f"{platform.python_version()}; load average {os.getloadavg()[0]:.2f}; "
        f"{time.strftime('%Y-%m-%d %H:%M')}\n",
        flush=True,
    )
    growth = []
    detail: list = []
    for n in args.sizes:
        print(f"N = {n:,}", flush=True)
        detail, report = measure(n, mem)
        growth.append((n, detail[1][1], detail[2][1], report))
    print("\n### how time grows\n")
    print(
        "| N | t-SNE map | UMAP map | t-SNE trustworthiness | UMAP trustworthiness | "
        "t-SNE 10-NN kept | UMAP 10-NN kept |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n, t_tsne, t_umap, report in growth:
        s = report.scores
        print(
            f"| {n:,} | {t_tsne:.0f} s | {t_umap:.0f} s | {s['tsne']['trustworthiness']:.4f} | "
            f"{s['umap']['trustworthiness']:.4f} | "
            f"{s['tsne']['neighbourhood_preservation']:.4f} | "
            f"{s['umap']['neighbourhood_preservation']:.4f} |"
        )
    print(f"\n### every step at N = {args.sizes[-1]:,}\n")
    print("| step | wall time | peak memory (RSS) |")
    print("|---|---:|---:|")
    for name, seconds, peak in detail:
        print(f"| {name} | {seconds:.1f} s | {peak:.2f} GiB |")
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
