"""Out-of-core extraction: peak memory of reading an image folder and extracting features.

    python bench/stream.py [--sizes 10000 100000]      # prints a Markdown table

Writes N synthetic 32×32 PNG images (10 class folders, seeded) under bench/out/stream/, then,
each in a fresh process, loads the folder and extracts the ``dense`` features of the article's
CNN from every image: eagerly (all images decoded into one array, features gathered in memory) and
out of core (``load_folder(lazy=True)``: headers only, pixels decoded batch by batch;
features streamed into a memory-mapped ``.npy``). Reports wall time and the process's peak
resident memory (``ru_maxrss``), to show that out of core the peak does not grow with N.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "out" / "stream"

CHILD = r"""
import resource, sys, time
from latent_atlas.activations import extract_activations
from latent_atlas.datasets import load_dataset
from latent_atlas.models import build_model

root, mode, out = sys.argv[1], sys.argv[2], sys.argv[3]
t0 = time.perf_counter()
ds = load_dataset("folder", root, progress=False, lazy=(mode == "lazy"))
model = build_model("article-cnn", ds.image_shape, ds.num_classes, seed=0)
acts = extract_activations(
    model, ds.x_test, progress=False, features_out=out if mode == "lazy" else None
)
assert acts.features.shape == (len(ds.x_test), 128)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(f"{time.perf_counter() - t0:.1f} {peak:.3f}")
"""


def write_folder(n: int) -> Path:
    from PIL import Image

    root = OUT / f"folder-{n}"
    done = root / ".complete"
    if done.is_file():
        return root
    rng = np.random.default_rng(0)
    for cls in range(10):
        (root / "test" / f"class{cls}").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cls = i % 10
        base = np.array([25 * cls, 255 - 25 * cls, 128], dtype=np.int16)
        pixels = np.clip(base + rng.integers(-60, 61, (32, 32, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / "test" / f"class{cls}" / f"{i:07d}.png")
    done.touch()
    return root


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores; Python "
        f"{platform.python_version()}; load average {os.getloadavg()[0]:.2f}; "
        f"{time.strftime('%Y-%m-%d %H:%M')}\n"
    )
    print("| images | mode | wall time | peak memory (RSS) |")
    print("|---:|---|---:|---:|")
    for n in args.sizes:
        root = write_folder(n)
        for mode in ("eager", "lazy"):
            feats = OUT / f"features-{n}.npy"
            done = subprocess.run(
                [sys.executable, "-c", CHILD, str(root), mode, str(feats)],
                capture_output=True,
                text=True,
            )
            if done.returncode:
                sys.exit(done.stderr[-3000:])
            seconds, peak = done.stdout.split()
            row = f"| {n:,} | {mode} | {float(seconds):.1f} s | {float(peak):.2f} GiB |"
            print(row, flush=True)
            feats.unlink(missing_ok=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
