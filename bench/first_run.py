"""The first run on a new machine against the same command warm (issue 19, item 1).

    python bench/first_run.py [--repeat 2]      # prints a Markdown table (about 5 minutes)

Two commands, each in a fresh process timed from start to exit, into a new run directory:

* **quick start**: the README's ``latent-atlas run`` (digits, 50 epochs, PCA, t-SNE, UMAP);
* **project 10k**: ``latent-atlas project`` on the article's 10,000 CIFAR-10 activations
  (../shared/data/seed-latents) with labels, images and class names, PCA, t-SNE and UMAP.

"cold" is what a new machine pays: ``NUMBA_CACHE_DIR`` points at a new, empty directory (no
compiled code of umap-learn or pynndescent; Python's own bytecode caches are kept, as a new
virtual environment writes them at install). "warm" is the same command again with that cache
directory now filled, into another new run directory. With ``--repeat`` the pair is run again
(a new empty cache each time) and the median of each is reported.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from article_e2e import NAMES, SHARED, timed_process  # the same inputs and timing


def project_inputs(tmp: Path) -> list[str] | None:
    npz = SHARED / "seed-latents" / "cifar10-test-dense.npz"
    if not npz.is_file():
        return None
    from latent_atlas.datasets import load_dataset

    z = np.load(npz)
    np.save(tmp / "features.npy", z["activations"])
    np.save(tmp / "labels.npy", z["labels"])
    np.save(tmp / "images.npy", load_dataset("cifar10", SHARED / "cifar10", progress=False).x_test)
    (tmp / "names.txt").write_text("\n".join(NAMES) + "\n")
    return [
        "project", str(tmp / "features.npy"), "--labels", str(tmp / "labels.npy"),
        "--images", str(tmp / "images.npy"), "--class-names", str(tmp / "names.txt"),
        "--methods", "pca,tsne,umap",
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        jobs = {"quick start (`latent-atlas run`)": ["run"]}
        project = project_inputs(tmp)
        if project:
            jobs["project 10k (`latent-atlas project`)"] = project
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, load average {os.getloadavg()[0]:.2f}\n"
        )
        print("| command | cold (empty numba cache) | warm | cold / warm |")
        print("|---|---:|---:|---:|")
        run_no = 0
        for label, argv in jobs.items():
            cold, warm = [], []
            for _ in range(args.repeat):
                env = dict(os.environ, NUMBA_CACHE_DIR=tempfile.mkdtemp(dir=tmp))
                for times in (cold, warm):
                    run_no += 1
                    cmd = [sys.executable, "-m", "latent_atlas", "-q", *argv]
                    times.append(timed_process([*cmd, "--out", str(tmp / f"run{run_no}")], env))
            c, w = statistics.median(cold), statistics.median(warm)
            each = ", ".join(f"{a:.1f}/{b:.1f}" for a, b in zip(cold, warm, strict=True))
            print(f"| {label} | {c:.1f} s | {w:.1f} s | **{c / w:.2f}×** ({each}) |")
        print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
