"""``latent-atlas compare-runs``: two runs over the same images, mapped side by side.

The two runs' latent spaces (two checkpoints, two recipes, two architectures) become the two
frames of a new run directory: each is mapped, the second aligned to the first
(:mod:`latent_atlas.align`), with the frames table, linear CKA, film strip, animation and the
frames viewer (two frames side by side, hover and selection linked) of any sweep.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from latent_atlas.config import MapConfig
from latent_atlas.errors import ConfigError
from latent_atlas.keys import fingerprint
from latent_atlas.latent import LatentSpace
from latent_atlas.pipeline import RunSummary, map_run_frames
from latent_atlas.runs import SPACES_FOLDER, RunDir, SpaceDir, space_name
from latent_atlas.sweep import Frame


def compare_runs(
    run_a: str | Path,
    run_b: str | Path,
    out: str | Path | None = None,
    *,
    space_a: str | None = None,
    space_b: str | None = None,
    maps: MapConfig | None = None,
) -> RunSummary:
    """Map the latent spaces of two runs over the same images side by side, aligned.

    ``space_a``/``space_b`` pick a space of each run (default: each run's first). The new run
    (default ``runs/compare-<A>-<B>``) holds both as frames named after their runs; ``maps``
    defaults to PCA, t-SNE and UMAP with the first run's seed. Runs over different images are
    refused with one error saying how they differ.
    """
    started = time.perf_counter()
    a, b = RunDir.open(run_a), RunDir.open(run_b)
    sa, sb = a.space(space_a), b.space(space_b)
    la, lb = sa.load_latent(), sb.load_latent()
    check_same_images((a, la), (b, lb))
    maps = maps or MapConfig(seed=a.seed)
    names = _frame_names(a, b)
    out = Path(out) if out is not None else Path("runs") / f"compare-{names[0]}-{names[1]}"
    if out.resolve() in (a.path.resolve(), b.path.resolve()):
        raise ConfigError(f"{out} is one of the runs compared; choose another --out directory")
    config = {
        "runs": [str(a.path.resolve()), str(b.path.resolve())],
        "spaces": [sa.name, sb.name],
        "maps": maps.to_dict(),
    }
    with RunDir.create(out, command="compare-runs", config=config, seed=maps.seed) as run:
        run.set(dataset={**a.dataset, "compared": config["runs"]})
        run.keep_spaces(list(names))
        frames = [
            _copy_space(run, name, source, latent)
            for name, source, latent in ((names[0], sa, la), (names[1], sb, lb))
        ]
        return map_run_frames(run, frames, maps, started)


def check_same_images(a: tuple[RunDir, LatentSpace], b: tuple[RunDir, LatentSpace]) -> None:
    """Refuse two runs whose spaces are not of the same images, in the same order."""
    (run_a, la), (run_b, lb) = a, b
    where = f"{run_a.path} and {run_b.path}"
    if len(la.labels) != len(lb.labels):
        raise ConfigError(
            f"runs over different images: {where} hold {len(la.labels)} and {len(lb.labels)}"
        )
    differ = int(np.count_nonzero(np.asarray(la.labels) != np.asarray(lb.labels)))
    if differ:
        raise ConfigError(
            f"runs over different images: the labels of {where} differ at {differ} of "
            f"{len(la.labels)} positions"
        )
    if la.images is not None and lb.images is not None:
        if fingerprint(la.images) != fingerprint(lb.images):
            raise ConfigError(f"runs over different images: the images of {where} differ")
    elif (run_a.dataset.get("name"), run_a.dataset.get("n_test")) != (
        run_b.dataset.get("name"),
        run_b.dataset.get("n_test"),
    ):
        raise ConfigError(f"runs over different images: {where} are of different data sets")


def _frame_names(a: RunDir, b: RunDir) -> tuple[str, str]:
    first, second = space_name(a.path.name), space_name(b.path.name)
    return (first, second) if first != second else (f"A-{first}", f"B-{second}")


def _copy_space(run: RunDir, name: str, source: SpaceDir, latent: LatentSpace) -> Frame:
    """The source space's arrays as a space of the comparison (large ones hard-linked)."""
    origin = {"run": str(source.run.path.resolve()), "space": source.name}
    space = run.add_space(name, source=origin, folder=f"{SPACES_FOLDER}/{name}")
    key = {**origin, "features": source.steps.key("features")}
    if not space.steps.is_done("features", key):
        outputs = latent.save(space.path)
        space.steps.finish("features", key, outputs, 0.0, n_features=int(latent.features.shape[1]))
    layer = str(source.source.get("layer") or source.name)
    return Frame(space, latent, layer, model=name)
