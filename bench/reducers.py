"""Reducer benchmark: speed and quality of each map, against the article's own calls.

    python bench/reducers.py [--skip-pixels]   # prints a Markdown report (about 10 minutes)

Needs ../shared/data (seed-latents, mnist, fashion-mnist). Parts:

1. the article's CIFAR-10 latent space (10,000 × 128 dense-layer activations of its own Keras
   CNN): latent-atlas's default t-SNE against ``sklearn.manifold.TSNE(perplexity=50)`` (the
   article's call), in the same process, one after the other: time, trustworthiness, 5-NN
   accuracy;
2. UMAP's first call in a fresh process, numba compilation included: plain umap-learn and
   latent-atlas's ``umap``, each with an empty numba cache and again with the cache the first
   process left (``NUMBA_CACHE_DIR`` points at a fresh directory per variant);
3. every metric of every map on those 10,000 points (``evaluate_maps``), timed;
4. MNIST and Fashion-MNIST test sets on raw pixels: trustworthiness and 5-NN accuracy per method.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
METHODS = ("pca", "tsne", "umap", "pacmap", "isomap")

UMAP_SNIPPET = """
import json, sys, time, warnings
warnings.filterwarnings("ignore")
t0 = time.perf_counter()
import numpy as np
x = np.load(sys.argv[1])["activations"]
if sys.argv[2] == "umap-learn":
    import umap
    emb = umap.UMAP(n_neighbors=30, random_state=0).fit_transform(x)
else:
    from latent_atlas import get_reducer
    emb = get_reducer("umap", random_state=0).fit_transform(x)
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


def header() -> None:
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, load average {os.getloadavg()[0]:.2f}\n"
    )


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def tsne_against_article(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    from sklearn.manifold import TSNE

    from latent_atlas import get_reducer, knn_accuracy, trustworthiness

    print("### t-SNE on the article's CIFAR-10 activations (10,000 × 128)\n")
    print("| t-SNE | seconds | trustworthiness (k=10) | 5-NN accuracy |")
    print("|---|---:|---:|---:|")
    t_ours, ours = timed(lambda: get_reducer("tsne", random_state=0).fit_transform(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_article, article = timed(lambda: TSNE(perplexity=50, random_state=0).fit_transform(x))
    rows = {}
    for name, t, emb in (
        ("latent-atlas `tsne` (openTSNE, FFT)", t_ours, ours),
        ("`sklearn.manifold.TSNE(perplexity=50)` (the article's)", t_article, article),
    ):
        tw, acc = trustworthiness(x, emb, 10), knn_accuracy(emb, y, 5)
        rows[name] = (t, tw, acc)
        print(f"| {name} | {t:.1f} | {tw:.4f} | {acc:.4f} |")
    (t1, tw1, a1), (t2, tw2, a2) = rows.values()
    print(
        f"\nspeed-up {t2 / t1:.1f}×; trustworthiness {tw1 - tw2:+.4f}; "
        f"5-NN accuracy {100 * (a1 - a2):+.2f} points\n"
    )
    return {"tsne": ours, "tsne-sklearn": article}


def umap_first_call(npz: Path) -> None:
    print("### UMAP's first call in a fresh process (10,000 × 128, n_neighbors=30)\n")
    print("| implementation | empty numba cache | cache left by a previous process |")
    print("|---|---:|---:|")
    for impl in ("umap-learn", "latent-atlas"):
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "NUMBA_CACHE_DIR": cache}
            times = []
            for _ in range(2):
                t0 = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-c", UMAP_SNIPPET, str(npz), impl],
                    env=env,
                    check=True,
                    capture_output=True,
                    text=True,
                )
                times.append(time.perf_counter() - t0)
        label = (
            "plain `umap.UMAP(n_neighbors=30)`"
            if impl == "umap-learn"
            else "latent-atlas `umap` (exact k-NN + numba disk cache)"
        )
        print(f"| {label} | {times[0]:.1f} s | {times[1]:.1f} s |")
    print("\n(wall time of the whole process: interpreter start, imports, data, fit)\n")


def all_metrics(x: np.ndarray, y: np.ndarray, maps: dict[str, np.ndarray]) -> None:
    from latent_atlas.metrics import evaluate_maps

    t, report = timed(lambda: evaluate_maps(x, maps, y))
    print(f"### every metric of {len(maps)} maps on the article's 10,000 activations: {t:.1f} s\n")
    print(report.to_markdown())


def fit_all(x: np.ndarray, methods: tuple[str, ...], pca_dims: int | None) -> tuple[dict, dict]:
    from latent_atlas import get_reducer

    maps, seconds = {}, {}
    for m in methods:
        params = {"random_state": 0}
        if pca_dims and m != "pca":
            params["pca_dims"] = pca_dims
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seconds[m], maps[m] = timed(lambda m=m, p=params: get_reducer(m, **p).fit_transform(x))
    return maps, seconds


def pixels() -> None:
    from latent_atlas import knn_accuracy, load_dataset, trustworthiness

    print("### raw pixels of the MNIST and Fashion-MNIST test sets (10,000 × 784)\n")
    print(
        "t-SNE, UMAP, PaCMAP and Isomap first reduce the pixels to 50 dimensions with PCA "
        "(`pca_dims=50`); the scores compare each map with the full 784-d pixel space.\n"
    )
    print("| data | method | seconds | trustworthiness (k=10) | 5-NN accuracy (2-D) |")
    print("|---|---|---:|---:|---:|")
    for name in ("mnist", "fashion-mnist"):
        ds = load_dataset(name, SHARED / name)
        x = ds.x_test.reshape(len(ds.x_test), -1).astype(np.float32) / 255.0
        maps, seconds = fit_all(x, METHODS, pca_dims=50)
        base = knn_accuracy(x, ds.y_test, 5)
        for m, emb in maps.items():
            print(
                f"| {name} | {m} | {seconds[m]:.1f} | {trustworthiness(x, emb, 10):.4f} | "
                f"{knn_accuracy(emb, ds.y_test, 5):.4f} |"
            )
        print(f"| {name} | (784-d pixels) | | 1 | {base:.4f} |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-pixels", action="store_true")
    args = parser.parse_args()
    npz = SHARED / "seed-latents" / "cifar10-test-dense.npz"
    if not npz.is_file():
        sys.exit("needs ../shared/data/seed-latents")
    z = np.load(npz)
    x, y = z["activations"], z["labels"]
    header()
    tsne_maps = tsne_against_article(x, y)
    umap_first_call(npz)
    others, seconds = fit_all(x, ("pca", "umap", "pacmap", "isomap"), pca_dims=None)
    print(
        "fit times on the article's activations: "
        + ", ".join(f"{m} {s:.1f} s" for m, s in seconds.items())
        + "\n"
    )
    all_metrics(x, y, {**others, **tsne_maps})
    if not args.skip_pixels:
        pixels()
    print(json.dumps({"load_average_end": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
