"""Running the parallel parts on a Dask cluster: extraction over image shards and ``transform``
of the remaining points over chunks (``--dask SCHEDULER_ADDRESS`` or ``--dask local``).

Both split the work exactly as the single-machine path does — shards of whole extraction
batches, the same chunks of points — so the cluster computes the same numbers. Any model
travels to the workers as a :class:`~latent_atlas.backends.base.PortableModel` (its file's
bytes, or a checkpoint of its weights: tensors only, read with ``weights_only=True``) and is
loaded once per worker; the fitted reducer travels as a pickle made here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from latent_atlas.activations import EXTRACT_BATCH, Activations
from latent_atlas.backends.base import LoadedModel, PortableModel
from latent_atlas.errors import ConfigError, require
from latent_atlas.fileio import load_npy, npy_writer
from latent_atlas.keys import fingerprint
from latent_atlas.preprocess import Preprocess

log = logging.getLogger("latent_atlas")

SHARD_BATCHES = 16  # extraction batches per Dask task
_WORKER_MODELS: dict[str, LoadedModel] = {}  # on a worker: the models it has loaded, by digest


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
    model: LoadedModel,
    images: Any,
    layer: str,
    *,
    pool: str = "avg",
    preprocess: Preprocess | None = None,
    batch_size: int = EXTRACT_BATCH,
    features_out: str | Path | None = None,
) -> Activations:
    """:meth:`LoadedModel.extract` with the images in shards on the workers of ``client``.

    Every shard holds whole batches, so each image meets the same batch as on one machine.
    With ``features_out`` the shards' features are written into that ``.npy`` file as they
    arrive.
    """
    outs = {layer: features_out} if features_out else None
    return extract_layers(
        client, model, images, [layer], pool=pool, preprocess=preprocess,
        batch_size=batch_size, features_out=outs,
    )[layer]  # fmt: skip


def extract_layers(
    client: Any,
    model: LoadedModel,
    images: Any,
    layers: Sequence[str],
    *,
    pool: str = "avg",
    preprocess: Preprocess | None = None,
    batch_size: int = EXTRACT_BATCH,
    features_out: Mapping[str, str | Path] | None = None,
) -> dict[str, Activations]:
    """:meth:`LoadedModel.extract_layers` in shards on the workers of ``client`` (one pass of
    each shard captures every layer)."""
    wanted = [model.check_layer(layer) for layer in dict.fromkeys(layers)]
    pre = model.resolve_preprocess(preprocess, tuple(images.shape[1:]))
    portable = model.portable()
    digest = fingerprint({"model": portable.data, "fold": portable.fold})
    remote = client.scatter(portable, broadcast=True)
    shard = batch_size * SHARD_BATCHES
    starts = list(range(0, len(images), shard))
    futures = [
        client.submit(
            _extract_shard,
            remote,
            digest,
            np.asarray(images[i : i + shard]),
            wanted,
            pool,
            pre,
            batch_size,
            pure=False,
        )
        for i in starts
    ]
    log.info("dask: extracting %d images in %d shards", len(images), len(futures))
    parts = client.gather(futures)
    files = dict(features_out or {})
    return {
        layer: _assemble(
            [p[layer] for p in parts], starts, len(images), layer, pool, files.get(layer)
        )
        for layer in wanted
    }


def _assemble(
    parts: list[Activations],
    starts: list[int],
    n: int,
    layer: str,
    pool: str,
    features_out: str | Path | None,
) -> Activations:
    if features_out:
        with npy_writer(features_out, np.float32, (n, parts[0].features.shape[1])) as out:
            for start, part in zip(starts, parts, strict=True):
                out[start : start + len(part.features)] = part.features
        features = load_npy(features_out, mmap=True)
    else:
        features = np.concatenate([p.features for p in parts])
    probs = [p.probabilities for p in parts]
    return Activations(
        features=features,
        probabilities=None if any(p is None for p in probs) else np.concatenate(probs),
        layer=layer,
        pool=pool,
        seconds=sum(p.seconds for p in parts),
    )


def _extract_shard(
    portable: PortableModel,
    digest: str,
    images: np.ndarray,
    layers: list[str],
    pool: str,
    preprocess: Preprocess,
    batch_size: int,
) -> dict[str, Activations]:
    model = _WORKER_MODELS.get(digest)
    if model is None:
        _WORKER_MODELS.clear()  # one model at a time: a worker keeps the latest it was sent
        model = _WORKER_MODELS[digest] = portable.load()
    return model.extract_layers(
        images,
        layers,
        pool=pool,
        preprocess=preprocess,
        batch_size=batch_size,
        threads=1,
        progress=False,
    )
