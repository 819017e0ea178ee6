"""The article's reading of its maps, turned into numbers.

    python bench/article_claims.py [RUN_DIR ...]

The article says of its PCA map: "ships with airplanes, automobiles with trucks, with the animal
classes all grouped to one side". For the article's own CIFAR-10 activations
(../shared/data/seed-latents) and for each run directory given (latent-atlas's own model), and
for every map and the 128-d latent space itself, this reports

* the class whose centroid is nearest to ship's, and to automobile's;
* whether the six animal classes lie nearer each other than to the four vehicle classes: the
  mean centroid distance animal–animal against animal–vehicle (with all distances divided by
  the mean distance of the points to their overall centroid, so spaces compare), and the
  two-group silhouette (animals against vehicles, −1..1; > 0 means the groups separate);
* how many of the 128 units are ever active (non-zero) on the test set.

Maps are computed with latent-atlas's defaults (seeded) when they are not in the run directory.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
VEHICLES = {"airplane", "automobile", "ship", "truck"}


def claims(x: np.ndarray, y: np.ndarray) -> dict[str, object]:
    from latent_atlas.metrics import class_silhouette

    centroids = np.stack([x[y == k].mean(0) for k in range(10)])
    scale = np.linalg.norm(x - x.mean(0), axis=1).mean()
    d = np.linalg.norm(centroids[:, None] - centroids[None], axis=2) / scale
    np.fill_diagonal(d, np.inf)
    animal = np.array([n not in VEHICLES for n in NAMES])
    aa = d[np.ix_(animal, animal)][np.isfinite(d[np.ix_(animal, animal)])].mean()
    av = d[np.ix_(animal, ~animal)].mean()
    rng = np.random.default_rng(0)
    sample = rng.choice(len(x), min(len(x), 5000), replace=False)
    group = animal[y[sample]].astype(int)
    return {
        "nearest_to_ship": NAMES[int(np.argmin(d[8]))],
        "nearest_to_automobile": NAMES[int(np.argmin(d[1]))],
        "animal_animal": float(aa),
        "animal_vehicle": float(av),
        "animals_together": bool(aa < av),
        "two_group_silhouette": class_silhouette(x[sample], group),
    }


def maps_of(x: np.ndarray, run: Path | None) -> dict[str, np.ndarray]:
    from latent_atlas import get_reducer

    out = {}
    for m in ("pca", "tsne", "umap"):
        f = run / f"embedding_{m}.npy" if run else None
        out[m] = (
            np.load(f) if f and f.is_file() else get_reducer(m, random_state=0).fit_transform(x)
        )
    return out


def report(title: str, x: np.ndarray, y: np.ndarray, run: Path | None) -> None:
    active = int(np.count_nonzero(np.any(x != 0, axis=0)))
    print(f"### {title}\n")
    print(
        f"{active} of {x.shape[1]} units are active on at least one test image; "
        f"{100 * np.mean(x == 0):.0f}% of all values are zero.\n"
    )
    print(
        "| space | nearest to ship | nearest to automobile | animal–animal | animal–vehicle | "
        "animals together | two-group silhouette |"
    )
    print("|---|---|---|---:|---:|---|---:|")
    for name, z in {"128-d latent": x, **maps_of(x, run)}.items():
        c = claims(z, y)
        print(
            f"| {name} | {c['nearest_to_ship']} | {c['nearest_to_automobile']} | "
            f"{c['animal_animal']:.3f} | {c['animal_vehicle']:.3f} | "
            f"{'yes' if c['animals_together'] else 'no'} | {c['two_group_silhouette']:.3f} |"
        )
    print()


def main() -> None:
    z = np.load(SHARED / "seed-latents" / "cifar10-test-dense.npz")
    report(
        "the article's own activations (Keras, 0.7375 test accuracy)",
        z["activations"],
        z["labels"],
        None,
    )
    for arg in sys.argv[1:]:
        run = Path(arg)
        x, y = np.load(run / "activations.npy"), np.load(run / "labels.npy")
        report(f"latent-atlas run {run.name}", x, y, run)


if __name__ == "__main__":
    main()
