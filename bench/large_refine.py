"""Is t-SNE's refinement of all points worth its time at a million points?

    python bench/large_refine.py [--n 1000000] [--kind clusters|cifar|manifold]

The large-data recipe's t-SNE step by step on ``bench/million.py``'s data: fit on the seeded
50,000-point sample, ``transform`` the rest in chunks of 100,000, score on the metrics'
10,000-point sample; then refine all points (``largedata.refine_tsne``) and score again.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from latent_atlas.largedata import chunk_indices, refine_tsne
from latent_atlas.metrics import evaluate_maps
from latent_atlas.reducers.tsne import TSNEReducer
from latent_atlas.sampling import seeded_sample
from million import KINDS

SCORES = ("trustworthiness", "continuity", "knn_accuracy_2d", "neighbourhood_preservation")


def timed(label: str, t0: float) -> None:
    print(f"{label}: {time.perf_counter() - t0:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--kind", default="clusters", choices=list(KINDS))
    args = parser.parse_args()
    x, y, _ = KINDS[args.kind](args.n)
    reducer = TSNEReducer(random_state=0)
    sample = seeded_sample(args.n, 50_000, 0)
    t0 = time.perf_counter()
    reducer.fit(x[sample])
    timed("fit on the sample", t0)
    emb = np.empty((args.n, 2), np.float32)
    emb[sample] = reducer.embedding_
    t0 = time.perf_counter()
    for chunk in chunk_indices(np.setdiff1d(np.arange(args.n), sample), 100_000):
        emb[chunk] = reducer.transform(x[chunk])
    timed("transform the rest", t0)
    for label in ("not refined", "refined"):
        if label == "refined":
            t0 = time.perf_counter()
            emb = refine_tsne(reducer, x, emb, 250)
            timed("refine all points", t0)
        scores = evaluate_maps(x, {"tsne": emb}, y).scores["tsne"]
        print(label, {s: round(scores[s], 4) for s in SCORES}, flush=True)


if __name__ == "__main__":
    main()
