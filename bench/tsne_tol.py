"""t-SNE's plateau tolerance: time against neighbourhoods kept, beside the article's t-SNE.

    python bench/tsne_tol.py [--tols 5e-3 2e-3 1e-3 0]      # about 2 minutes on 2 cores

On the article's own CIFAR-10 activations (../shared/data/seed-latents, 10,000 × 128),
``TSNEReducer(random_state=0, tol=...)`` alone in this process (all cores): its iterations,
seconds and scores on all 10,000 points. The article's scikit-learn t-SNE scores 0.9789
trustworthiness and 0.1966 neighbourhood preservation there (bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from article_e2e import SHARED


def main() -> None:
    from latent_atlas.metrics import evaluate_maps
    from latent_atlas.reducers import TSNEReducer

    parser = argparse.ArgumentParser()
    parser.add_argument("--tols", type=float, nargs="+", default=[5e-3, 2e-3, 1e-3, 0.0])
    args = parser.parse_args()
    z = np.load(SHARED / "seed-latents" / "cifar10-test-dense.npz")
    x, y = z["activations"].astype(np.float32), z["labels"]
    print(f"load average {os.getloadavg()[0]:.2f}\n")
    print(
        "| tol | iterations | seconds | trustworthiness | continuity | 5-NN accuracy | "
        "neighbourhood preservation | silhouette |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for tol in args.tols:
        t0 = time.perf_counter()
        fitted = TSNEReducer(random_state=0, tol=tol).fit(x)
        seconds = time.perf_counter() - t0
        s = evaluate_maps(x, {"t": fitted.embedding_}, y).scores["t"]
        print(
            f"| {tol:g} | {fitted.n_iter_} | {seconds:.1f} | {s['trustworthiness']:.4f} | "
            f"{s['continuity']:.4f} | {s['knn_accuracy_2d']:.4f} | "
            f"{s['neighbourhood_preservation']:.4f} | {s['silhouette']:.4f} |",
            flush=True,
        )
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
