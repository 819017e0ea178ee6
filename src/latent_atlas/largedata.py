"""Maps of large data: fit on a seeded sample, place the rest with ``transform``, refine.

Above ``LargeDataRecipe.threshold`` points, fitting t-SNE or UMAP on every point costs more time
and memory than it gives. The published recipe for large data (openTSNE's "embedding large data
sets"; UMAP's ``transform``) is used instead:

1. fit the method on a seeded random sample of ``sample`` points;
2. place every other point into that map with ``transform``, in chunks of ``chunk`` points (the
   chunks are what a Dask cluster spreads over its workers, see :mod:`latent_atlas.distributed`);
3. for t-SNE of at most ``refine_max`` points, refine: optimise the whole embedding, started
   from those positions, on the affinities of all points (first with exaggeration 4, as advised
   for large data by Kobak & Berens, then without), each phase stopping once the KL divergence
   no longer improves. Above ``refine_max`` the refinement is left out: at a million points it
   took about 1,000 s, three quarters of the whole map, and moved trustworthiness and 5-NN
   accuracy on the metrics' sample by less than 0.001 (bench/RESULTS.md, "a million points").

The threshold, sample size, chunking and the steps run are recorded in the manifest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from latent_atlas.errors import ConfigError
from latent_atlas.reducers import Reducer, TSNEReducer
from latent_atlas.sampling import seeded_sample

log = logging.getLogger("latent_atlas")

#: maps chunks (index arrays into X) through a fitted reducer's transform; the default runs
#: them here one after the other, a Dask client runs them on its workers
ChunkMapper = Callable[[Reducer, np.ndarray, Sequence[np.ndarray]], list[np.ndarray]]


@dataclass(frozen=True)
class LargeDataRecipe:
    """When and how large inputs are mapped (see the module's description)."""

    threshold: int = 200_000
    sample: int = 50_000
    chunk: int = 100_000
    refine: bool = True
    refine_iter: int = 250
    refine_max: int = 500_000

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        if self.sample < 10 or self.chunk < 1 or self.threshold < self.sample:
            raise ConfigError(
                "large-data recipe: need sample ≥ 10, chunk ≥ 1 and threshold ≥ sample, got "
                f"{asdict(self)}"
            )
        if self.refine_max < 0 or self.refine_iter < 0:
            raise ConfigError(
                f"large-data recipe: refine_max and refine_iter must be ≥ 0, got {asdict(self)}"
            )

    def refines(self, n: int, reducer: Any) -> bool:
        """Whether the t-SNE map of ``n`` points is refined on all points (step 3)."""
        return self.refine and n <= self.refine_max and isinstance(reducer, TSNEReducer)

    def applies(self, n: int, reducer: Any) -> bool:
        """Whether a map of ``n`` points by ``reducer`` follows this recipe: above the
        threshold, for latent-atlas reducers that can ``transform`` (an estimator of your own
        is fitted on every point)."""
        return n > self.threshold and isinstance(reducer, Reducer) and reducer.supports_transform


def map_chunks_here(reducer: Reducer, X: np.ndarray, chunks: Sequence[np.ndarray]) -> list:
    """Transform the chunks in this process, one after the other."""
    return [reducer.transform(X[c]) for c in chunks]


def chunk_indices(rest: np.ndarray, chunk: int) -> list[np.ndarray]:
    """``rest`` cut into consecutive pieces of at most ``chunk`` indices."""
    return [rest[i : i + chunk] for i in range(0, len(rest), chunk)]


def fit_large(
    reducer: Reducer,
    X: np.ndarray,
    recipe: LargeDataRecipe,
    seed: int,
    *,
    map_chunks: ChunkMapper | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The map of all of ``X`` by the large-data recipe; returns it and what was done."""
    recipe.check()
    map_chunks = map_chunks or map_chunks_here
    n = len(X)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    sample = seeded_sample(n, recipe.sample, seed)
    log.info("large data: fitting on a seeded sample of %d of %d points", len(sample), n)
    reducer.fit(np.asarray(X[sample]))
    timings["fit_sample"] = time.perf_counter() - t0
    embedding = np.empty((n, reducer.embedding_.shape[1]), dtype=np.float32)
    embedding[sample] = reducer.embedding_
    rest = np.setdiff1d(np.arange(n), sample, assume_unique=True)
    chunks = chunk_indices(rest, recipe.chunk)
    t1 = time.perf_counter()
    log.info("large data: placing %d points in %d chunks", len(rest), len(chunks))
    for idx, placed in zip(chunks, map_chunks(reducer, X, chunks), strict=True):
        embedding[idx] = placed
    timings["transform"] = time.perf_counter() - t1
    steps = ["fit on sample", "transform the rest"]
    if recipe.refines(n, reducer):
        t2 = time.perf_counter()
        embedding = refine_tsne(reducer, X, embedding, recipe.refine_iter)
        timings["refine"] = time.perf_counter() - t2
        steps.append("refine all points")
    elif recipe.refine and isinstance(reducer, TSNEReducer):
        log.info("large data: %d points > refine_max %d, t-SNE not refined", n, recipe.refine_max)
    info = {
        "recipe": " → ".join(steps),
        **asdict(recipe),
        "n": n,
        "n_sample": len(sample),
        "n_chunks": len(chunks),
        "seconds": {k: round(v, 2) for k, v in timings.items()},
    }
    return embedding, info


def refine_tsne(reducer: TSNEReducer, X: np.ndarray, start: np.ndarray, n_iter: int) -> np.ndarray:
    """openTSNE's last step for large data: optimise every point from ``start``."""
    from openTSNE import TSNEEmbedding
    from openTSNE.affinity import PerplexityBasedNN

    from latent_atlas.reducers import _KLPlateau

    log.info("large data: t-SNE affinities of all %d points", len(X))
    data = reducer._pre_reduce(np.asarray(X, dtype=np.float32), fit=False)
    affinities = PerplexityBasedNN(
        data,
        perplexity=min(reducer.perplexity_, 30.0),
        method="annoy",
        metric=reducer.metric,
        n_jobs=reducer.n_jobs,
        random_state=reducer.random_state,
    )
    embedding = TSNEEmbedding(
        np.ascontiguousarray(start, dtype=np.float64),
        affinities,
        negative_gradient_method="fft",
        n_jobs=reducer.n_jobs,
        random_state=reducer.random_state,
    )
    log.info("large data: refining the t-SNE map of all %d points", len(X))
    for exaggeration in (4.0, 1.0):
        plateau = _KLPlateau(reducer.tol)
        embedding.optimize(
            n_iter=n_iter,
            exaggeration=exaggeration,
            momentum=0.8,
            inplace=True,
            callbacks=plateau if reducer.tol > 0 else None,
            callbacks_every_iters=plateau.every,
        )
    return np.asarray(embedding, dtype=np.float32)
