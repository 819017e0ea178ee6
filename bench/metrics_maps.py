"""Every metric of six maps of the article's 10,000 activations, timed, this code against another.

    python bench/metrics_maps.py RUN_DIR [RUN_DIR ...] [--old-src DIR] [--repeat 2]

The maps are the ``embedding_*.npy`` files of the run directories given (for example two
``latent-atlas project`` runs of ../shared/data/seed-latents with different options), six at
most; each side runs ``evaluate_maps`` on all of them in a fresh process, the sides interleaved,
``--repeat`` times. ``--old-src`` is another checkout's ``src`` folder (``git worktree add``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from article_e2e import SHARED

CHILD = r"""
import sys, time
import numpy as np
from latent_atlas.metrics import evaluate_maps
z = np.load(sys.argv[1])
maps = dict(np.load(sys.argv[2]))
t0 = time.perf_counter()
evaluate_maps(z["activations"], maps, z["labels"])
print(f"{time.perf_counter() - t0:.2f}")
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--old-src")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    maps = {}
    for i, run in enumerate(args.runs):
        for f in sorted(run.glob("embedding_*.npy")):
            maps[f"{f.stem.removeprefix('embedding_')}-{i}"] = np.load(f)
    maps = dict(list(maps.items())[:6])
    npz = SHARED / "seed-latents" / "cifar10-test-dense.npz"
    sides = {"this code": None}
    if args.old_src:
        sides["older code"] = args.old_src
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "maps.npz", **maps)
        times: dict[str, list[str]] = {s: [] for s in sides}
        for _ in range(args.repeat):
            for side, src in sides.items():
                env = dict(os.environ, **({"PYTHONPATH": src} if src else {}))
                cmd = [sys.executable, "-c", CHILD, str(npz), str(Path(tmp) / "maps.npz")]
                out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
                times[side].append(out.stdout.strip())
    print(f"maps: {', '.join(maps)}; load average {os.getloadavg()[0]:.2f}\n")
    print("| code | seconds for every metric of the six maps |\n|---|---:|")
    for side, ts in times.items():
        print(f"| {side} | {' / '.join(ts)} |")


if __name__ == "__main__":
    main()
