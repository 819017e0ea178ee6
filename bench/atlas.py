"""Atlas benchmark: the article's loop against ``build_atlas``, and the three modes at scale.

    python bench/atlas.py            # prints a Markdown report

1. nearest mode against the article's pure-Python loop (normalisation fixed), 10,000
   points, 20×20 grid: identical cells, speed-up;
2. nearest mode on 1,000,000 points, 100×100 grid (target: under 5 s);
3. grid mode, 10,000 points into 20×20 and 50×50: time and mean assignment distance;
4. bins mode on 1,000,000 points, 100×100.

Points are a seeded mixture of Gaussian clusters (what t-SNE and UMAP maps look like); when
../shared/data/seed-latents is present, step 1 is repeated on the PCA map of the article's own
CIFAR-10 activations.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np

from latent_atlas.atlas import build_atlas, render_atlas

ARTICLE_LATENTS = (
    Path(__file__).resolve().parents[2] / "shared/data/seed-latents/cifar10-test-dense.npz"
)


def clustered(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-30, 30, size=(10, 2))
    which = rng.integers(0, 10, n)
    return (centres[which] + rng.normal(0, 2.5, size=(n, 2))).astype(np.float32)


def article_loop(embedding: np.ndarray, grid: int = 20, max_distance: float = 0.05) -> np.ndarray:
    """The article's atlas loop verbatim, with its normalisation bug fixed
    (column 1 → column 1)."""
    embedding = embedding.astype(np.float64).copy()
    embedding[:, 0] = (embedding[:, 0] - np.min(embedding[:, 0])) / np.ptp(embedding[:, 0])
    embedding[:, 1] = (embedding[:, 1] - np.min(embedding[:, 1])) / np.ptp(embedding[:, 1])
    grid_x = np.linspace(0, 1, grid)
    grid_y = np.linspace(1, 0, grid)
    out = np.full((grid, grid), -1)
    for i, y in enumerate(grid_y):
        for j, x in enumerate(grid_x):
            closest = min(enumerate(embedding), key=lambda e: np.linalg.norm(e[1] - (x, y)))
            distance = np.linalg.norm(closest[1] - (x, y))
            if distance < max_distance:
                out[i, j] = closest[0]
    return out


def best_of(fn, repeats: int = 5) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def compare_with_article(name: str, emb: np.ndarray) -> str:
    t0 = time.perf_counter()
    ref = article_loop(emb)
    t_article = time.perf_counter() - t0
    t_ours, atlas = best_of(lambda: build_atlas(emb, 20, max_distance=0.05), repeats=20)
    same = np.array_equal(atlas.indices, ref)
    return (
        f"| {name} | {len(emb):,} | {t_article:.2f} s | {t_ours * 1e3:.2f} ms | "
        f"{t_article / t_ours:,.0f}× | {'yes' if same else 'NO'} | {atlas.n_filled} |"
    )


def main() -> None:
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, load average {os.getloadavg()[0]:.2f}\n"
    )
    print("### nearest mode against the article's loop (20×20, max distance 0.05)\n")
    print(
        "| points | N | article loop | build_atlas (best of 20) | speed-up | same cells | filled |"
    )
    print("|---|---:|---:|---:|---:|---|---:|")
    print(compare_with_article("clustered (synthetic, seeded)", clustered(10_000)))
    if ARTICLE_LATENTS.is_file():
        from sklearn.decomposition import PCA

        acts = np.load(ARTICLE_LATENTS)["activations"]
        print(
            compare_with_article(
                "PCA of the article's CIFAR-10 activations",
                PCA(2, random_state=0).fit_transform(acts),
            )
        )

    print("\n### one million points\n")
    print("| mode | N | grid | time (best of 3) | filled cells | mean distance |")
    print("|---|---:|---|---:|---:|---:|")
    big = clustered(1_000_000, seed=1)
    for mode in ("nearest", "bins"):
        t, atlas = best_of(lambda m=mode: build_atlas(big, 100, mode=m), repeats=3)
        print(
            f"| {mode} | 1,000,000 | 100×100 | {t:.2f} s | {atlas.n_filled:,} | "
            f"{atlas.mean_distance:.4f} |"
        )
    images = np.random.default_rng(0).integers(0, 255, (1_000_000, 32, 32, 3), dtype=np.uint8)
    t, pixels = best_of(lambda: render_atlas(atlas, images, tile=32), repeats=3)
    print(
        f"\nrender_atlas of the last atlas with 32 px RGB tiles: {t:.2f} s, "
        f"{pixels.shape[1]}×{pixels.shape[0]} pixels"
    )

    print("\n### grid mode (optimal assignment)\n")
    print(
        "| N | grid | time (best of 3) | filled | mean assignment distance | provably optimal | "
        "nearest-mode mean distance |"
    )
    print("|---:|---|---:|---:|---:|---|---:|")
    emb = clustered(10_000, seed=2)
    for g in (20, 50):
        t, atlas = best_of(lambda g=g: build_atlas(emb, g, mode="grid"), repeats=3)
        near = build_atlas(emb, g, max_distance=None)
        print(
            f"| 10,000 | {g}×{g} | {t:.2f} s | {atlas.n_filled:,} | {atlas.mean_distance:.4f} | "
            f"{atlas.params['exact']} | {near.mean_distance:.4f} |"
        )


if __name__ == "__main__":
    main()
