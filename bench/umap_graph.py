"""Why UMAP on exact neighbours kept fewer neighbourhoods than umap-learn on its own graph.

    python bench/umap_graph.py [--seeds 0 1]      # about 3 minutes on 2 cores

On the article's own CIFAR-10 activations (../shared/data/seed-latents, 10,000 × 128), seeded
``umap.UMAP(n_neighbors=30)`` fitted on four k-NN graphs: umap-learn's own (NN-descent), that
same graph handed back as ``precomputed_knn``, scikit-learn's exact graph as it comes, and the
exact graph with each point's distance to itself set to exactly 0 (what
``UMAPReducer`` hands over since 2026-12-08). Prints the graphs' agreement and each map's scores
on all 10,000 points.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from sklearn.neighbors import NearestNeighbors

from article_e2e import SHARED


def main() -> None:
    import umap

    from latent_atlas.metrics import evaluate_maps

    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    z = np.load(SHARED / "seed-latents" / "cifar10-test-dense.npz")
    x, y = z["activations"].astype(np.float32), z["labels"]
    dist, ind = NearestNeighbors().fit(x).kneighbors(x, n_neighbors=30)
    own = ind == np.arange(len(x))[:, None]
    print(
        f"load average {os.getloadavg()[0]:.2f}; exact graph: each point first "
        f"{own[:, 0].mean():.4f}, distance to itself above 0 for {(dist[own] > 0).mean():.4f}"
    )
    zeroed = dist.copy()
    zeroed[own] = 0.0
    rows = []
    for seed in args.seeds:
        reference = umap.UMAP(n_neighbors=30, random_state=seed)
        maps = {"umap-learn's own graph": reference.fit_transform(x)}
        ki, kd = reference._knn_indices, reference._knn_dists
        same = np.mean(ki == ind)
        graphs = {
            "its graph, precomputed": (ki, kd),
            "exact, as scikit-learn gives it": (ind, dist),
            "exact, distance to itself 0": (ind, zeroed),
        }
        for name, (i, d) in graphs.items():
            knn = (i.astype(np.int32), d.astype(np.float32), None)
            maps[name] = umap.UMAP(
                n_neighbors=30, random_state=seed, precomputed_knn=knn
            ).fit_transform(x)
        scores = evaluate_maps(x, maps, y).scores
        print(f"seed {seed}: NN-descent and exact graph agree on {same:.4f} of the entries")
        rows += [(seed, name, s) for name, s in scores.items()]
    print(
        "\n| seed | graph | trustworthiness | continuity | 5-NN accuracy | "
        "neighbourhood preservation |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for seed, name, s in rows:
        print(
            f"| {seed} | {name} | {s['trustworthiness']:.4f} | {s['continuity']:.4f} | "
            f"{s['knn_accuracy_2d']:.4f} | {s['neighbourhood_preservation']:.4f} |"
        )


if __name__ == "__main__":
    main()
