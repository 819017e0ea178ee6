"""End to end against the article: its post-training steps versus ``latent-atlas project``.

    python bench/article_e2e.py          # prints a Markdown report (about 10 minutes)

On the article's own CIFAR-10 activations (../shared/data/seed-latents) and the CIFAR-10 test
images, each side runs in a fresh process, timed from start to exit:

* **article**: the article's code after training, unchanged but for saving figures instead of
  showing them: scikit-learn ``PCA(n_components=2)``, ``TSNE(perplexity=50)``,
  ``umap.UMAP(n_neighbors=30)``, its scatter plot for each, and its Python-loop 20×20 atlas of
  the UMAP map (normalisation bug fixed, so that both atlases show the same thing);
* **latent-atlas**: ``latent-atlas project FEATURES --labels --images --class-names --methods
  pca,tsne,umap`` with its defaults, which writes the same outputs and more (the comparison
  figure, metrics, three atlases instead of one, the viewer).

Both run twice: with numba's cache as the machine has it ("warm") and with an empty one
(``NUMBA_CACHE_DIR`` pointing at a new directory: what a first run on a new machine pays).
The maps of both sides are then scored with the same metrics. ``--old-src DIR`` also times
``project`` from another checkout's ``src`` (``git worktree add /tmp/old COMMIT``), in the same
run, so that a change is measured against the code before it on the same baseline.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

ARTICLE_SCRIPT = r"""
import sys
import numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from umap import UMAP

work = sys.argv[1]
z = np.load(sys.argv[2])
denseout, y_test = z["activations"], z["labels"]
X_test = np.load(sys.argv[3])
class_labels = ['airplane','automobile','bird','cat','deer',
    'dog','frog','horse','ship','truck']

def plot(embedding, name):
    fig = plt.figure(figsize=(6,5),dpi=120)
    ax = fig.add_subplot(1,1,1)
    sc = ax.scatter(embedding[:,0], embedding[:,1], s=3, c=y_test, cmap='jet')
    ax.legend(handles=sc.legend_elements()[0],labels=class_labels,
        loc='lower center',ncol=5,columnspacing=1,bbox_to_anchor=(0.5,1))
    fig.savefig(f"{work}/scatter_{name}.png")
    plt.close(fig)
    np.save(f"{work}/embedding_{name}.npy", embedding)

embedding = PCA(n_components=2).fit_transform(denseout)
plot(embedding, "pca")
embedding = TSNE(perplexity=50).fit_transform(denseout)
plot(embedding, "tsne")
embedding = UMAP(n_neighbors=30).fit_transform(denseout)
plot(embedding, "umap")

embedding[:,0] = (embedding[:,0] - np.min(embedding[:,0])) / np.ptp(embedding[:,0])
embedding[:,1] = (embedding[:,1] - np.min(embedding[:,1])) / np.ptp(embedding[:,1])
grid_x = np.linspace(0,1,20)
grid_y = np.linspace(1,0,20)
fig = plt.figure(figsize=(10,10))
ax = fig.subplots(nrows=20, ncols=20)
fig.subplots_adjust(wspace=0,hspace=0)
max_distance = 0.05
for i,y in enumerate(grid_y):
    for j,x in enumerate(grid_x):
        closest = min(enumerate(embedding),key=lambda e: np.linalg.norm(e[1]-(x,y)))
        distance = np.linalg.norm(closest[1]-(x,y))
        if distance < max_distance:
            ax[i,j].imshow(X_test[closest[0],...])
        ax[i,j].axis('off')
fig.savefig(f"{work}/atlas_umap.png")
"""


def timed_process(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{cmd[:3]} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - t0


def main() -> None:
    import argparse

    from latent_atlas.datasets import load_dataset

    parser = argparse.ArgumentParser()
    parser.add_argument("--old-src", help="another checkout's src folder, timed in the same run")
    args = parser.parse_args()
    from latent_atlas.metrics import evaluate_maps

    npz = SHARED / "seed-latents" / "cifar10-test-dense.npz"
    z = np.load(npz)
    x, y = z["activations"], z["labels"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        images = load_dataset("cifar10", SHARED / "cifar10", progress=False).x_test
        np.save(tmp / "images.npy", images)
        np.save(tmp / "features.npy", x)
        np.save(tmp / "labels.npy", y)
        (tmp / "names.txt").write_text("\n".join(NAMES) + "\n")
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, load average {os.getloadavg()[0]:.2f}\n"
        )
        old = " | older code | ratio" if args.old_src else ""
        print(f"| cache | the article's steps | latent-atlas project | ratio{old} |")
        print("|---|---:|---:|---:" + ("|---:|---:|" if args.old_src else "|"))
        for cache in ("warm", "cold"):
            env = dict(os.environ)
            cold = tempfile.mkdtemp(dir=tmp) if cache == "cold" else None
            if cold:
                env["NUMBA_CACHE_DIR"] = cold
            article_dir, ours_dir = tmp / f"article-{cache}", tmp / f"ours-{cache}"
            article_dir.mkdir()
            t_article = timed_process(
                [
                    sys.executable,
                    "-c",
                    ARTICLE_SCRIPT,
                    str(article_dir),
                    str(npz),
                    str(tmp / "images.npy"),
                ],
                env,
            )
            project = [
                sys.executable, "-m", "latent_atlas", "-q", "project", str(tmp / "features.npy"),
                "--labels", str(tmp / "labels.npy"), "--images", str(tmp / "images.npy"),
                "--class-names", str(tmp / "names.txt"), "--methods", "pca,tsne,umap",
            ]  # fmt: skip
            t_ours = timed_process([*project, "--out", str(ours_dir)], env)
            row = f"| {cache} | {t_article:.1f} s | {t_ours:.1f} s | {t_article / t_ours:.1f}× |"
            if args.old_src:
                old_env = dict(env, PYTHONPATH=args.old_src)
                t_old = timed_process([*project, "--out", str(tmp / f"old-{cache}")], old_env)
                row += f" {t_old:.1f} s | {t_article / t_old:.1f}× |"
            print(row)
        print(
            "\n(wall time of each whole process: interpreter start, imports, data, maps, "
            "figures, atlases; the images were decoded beforehand for both)\n"
        )
        article_maps = {
            m: np.load(tmp / "article-warm" / f"embedding_{m}.npy") for m in ("pca", "tsne", "umap")
        }
        our_maps = {
            m: np.load(tmp / "ours-warm" / f"embedding_{m}.npy") for m in ("pca", "tsne", "umap")
        }
        maps = {f"article {m}": e for m, e in article_maps.items()}
        maps.update({f"latent-atlas {m}": e for m, e in our_maps.items()})
        print("Quality of each side's maps (same metrics, all 10,000 points):\n")
        print(evaluate_maps(x, maps, y).to_markdown())
        print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
