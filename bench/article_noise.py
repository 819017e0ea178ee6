"""Run-to-run noise of the map-quality scores, the article's maps against latent-atlas's.

    python bench/article_noise.py [--runs 5]      # about 10 minutes on 2 cores

On the article's own CIFAR-10 activations (../shared/data/seed-latents, 10,000 × 128): the
article's t-SNE (scikit-learn ``TSNE(perplexity=50)``) and UMAP (``umap.UMAP(n_neighbors=30)``),
unseeded as in the article, fitted ``--runs`` times; latent-atlas's ``tsne`` and ``umap`` with
their defaults and seeds 0, 1, ... Every map is scored with the same metrics on all 10,000
points. Prints each score's mean and standard deviation per side and the difference of the
means in units of the article's standard deviation; writes bench/out/article-noise.json.
This is what "no worse than the article's beyond run-to-run noise" is measured against in
bench/article_e2e.py.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from article_e2e import SHARED

OUT = Path(__file__).resolve().parent / "out" / "article-noise.json"


def article_maps(x: np.ndarray, run: int) -> dict[str, np.ndarray]:
    from sklearn.manifold import TSNE
    from umap import UMAP

    return {
        "tsne": TSNE(perplexity=50).fit_transform(x),
        "umap": UMAP(n_neighbors=30).fit_transform(x),
    }


def our_maps(x: np.ndarray, run: int) -> dict[str, np.ndarray]:
    from latent_atlas.reducers import get_reducer

    return {m: get_reducer(m, random_state=run).fit_transform(x) for m in ("tsne", "umap")}


def main() -> None:
    from latent_atlas.metrics import SCORES, evaluate_maps

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    z = np.load(SHARED / "seed-latents" / "cifar10-test-dense.npz")
    x, y = z["activations"], z["labels"]
    scores: dict[str, dict[str, list[float]]] = {}
    for side, fit in (("article", article_maps), ("latent-atlas", our_maps)):
        for run in range(args.runs):
            t0 = time.perf_counter()
            maps = fit(x, run)
            report = evaluate_maps(x, maps, y)
            for m, s in report.scores.items():
                for c in SCORES:
                    scores.setdefault(f"{side} {m}", {}).setdefault(c, []).append(s[c])
            print(f"{side} run {run}: {time.perf_counter() - t0:.1f} s", flush=True)
    shown = [c for c in SCORES if c != "knn_accuracy_original"]
    print(f"\nload average {os.getloadavg()[0]:.2f}; mean ± standard deviation over {args.runs}\n")
    print("| maps | " + " | ".join(shown) + " |")
    print("|---" + "|---:" * len(shown) + "|")
    for name, s in scores.items():
        cells = [f"{statistics.mean(s[c]):.4f} ± {statistics.stdev(s[c]):.4f}" for c in shown]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\nlatent-atlas − article, in the article's standard deviations:\n")
    print("| map | " + " | ".join(shown) + " |")
    print("|---" + "|---:" * len(shown) + "|")
    for m in ("tsne", "umap"):
        a, o = scores[f"article {m}"], scores[f"latent-atlas {m}"]
        cells = []
        for c in shown:
            d = statistics.mean(o[c]) - statistics.mean(a[c])
            sd = statistics.stdev(a[c]) or float("nan")
            cells.append(f"{d:+.4f} ({d / sd:+.1f} sd)")
        print(f"| {m} | " + " | ".join(cells) + " |")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(scores, indent=1))


if __name__ == "__main__":
    main()
