"""Running the parallel parts on a Dask cluster: extraction over image shards and ``transform``
of the remaining points over chunks (``--dask SCHEDULER_ADDRESS`` or ``--dask local``).

Both split the work exactly as the single-machine path does — shards of whole extraction
batches, the same chunks of points — so the cluster computes the same numbers. The model
travels to the workers as a checkpoint (weights only, loaded with ``weights_only=True``), the
fitted reducer as a pickle made here.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from latent_atlas.activations import EXTRACT_BATCH
from latent_atlas.errors import ConfigError, require

log = logging.getLogger("latent_atlas")

SHARD_BATCHES = 16  # extraction batches per Dask task


def connect(address: str) -> Any:
    """A Dask client: ``local`` starts a 2-worker cluster on 127.0.0.1, else the scheduler."""
    dd = require("distributed", "distributed", "dask", "--dask")
    if address == "local":
        cluster = dd.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
            processes=True,
        )
        return dd.Client(cluster)
    try:
        return dd.Client(address, timeout="20s")
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"--dask: cannot reach the scheduler at {address}: {exc}") from None


def chunk_mapper(client: Any) -> Any:
    """A :data:`latent_atlas.largedata.ChunkMapper` that runs each chunk on the cluster."""

    def map_chunks(reducer: Any, X: np.ndarray, chunks: Sequence[np.ndarray]) -> list:
        remote = client.scatter(reducer, broadcast=True)
        futures = [client.submit(_transform, remote, np.asarray(X[c]), pure=False) for c in chunks]
        log.info(
            "dask: %d transform chunks on %d workers",
            len(futures),
            len(client.scheduler_info()["workers"]),
        )
        return client.gather(futures)

    return map_chunks


def _transform(reducer: Any, X: np.ndarray) -> np.ndarray:
    return reducer.transform(X)


def extract(
    client: Any,
    model: Any,
    images: np.ndarray,
    layer: str,
    *,
    pool: str = "avg",
    batch_size: int = EXTRACT_BATCH,
) -> Any:
    """:func:`latent_atlas.activations.extract_activations` with the images in shards on Dask."""
    import torch

    from latent_atlas.activations import Activations

    buffer = io.BytesIO()
    torch.save({"config": dict(model.config), "state_dict": model.state_dict()}, buffer)
    weights = client.scatter(buffer.getvalue(), broadcast=True)
    shard = batch_size * SHARD_BATCHES
    futures = [
        client.submit(
            _extract_shard,
            weights,
            np.asarray(images[i : i + shard]),
            layer,
            pool,
            batch_size,
            pure=False,
        )
        for i in range(0, len(images), shard)
    ]
    log.info("dask: extracting %d images in %d shards", len(images), len(futures))
    parts = client.gather(futures)
    return Activations(
        features=np.concatenate([p[0] for p in parts]),
        probabilities=np.concatenate([p[1] for p in parts]),
        layer=layer,
        pool=pool,
        seconds=sum(p[2] for p in parts),
    )


def _extract_shard(
    weights: bytes, images: np.ndarray, layer: str, pool: str, batch_size: int
) -> tuple[np.ndarray, np.ndarray, float]:
    import torch

    from latent_atlas.activations import extract_activations
    from latent_atlas.models import SeedCNN

    payload = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    cfg = payload["config"]
    model = SeedCNN(tuple(cfg["input_shape"]), cfg["num_classes"], cfg.get("dense_units", 128))
    model.load_state_dict(payload["state_dict"])
    acts = extract_activations(
        model, images, layer, pool=pool, batch_size=batch_size, threads=1, progress=False
    )
    return acts.features, acts.probabilities, acts.seconds
