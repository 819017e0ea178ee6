"""Time the README's main job (``latent-atlas run`` on the default data set) in a fresh process.

    python bench/quickstart.py [--dataset cifar10 --data-dir ../shared/data/cifar10 ...]

Runs the command into a temporary directory (nothing reused), then again (everything reused),
and prints wall times plus the run's summary; extra arguments are passed to ``run``.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time


def main() -> None:
    extra = sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "latent_atlas", "run", "--out", f"{tmp}/run", *extra]
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            times.append(time.perf_counter() - t0)
    py = platform.python_version()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {py}")
    print(f"load average: {os.getloadavg()[0]:.2f}")
    print(f"command: latent-atlas run {' '.join(extra)}")
    print(f"fresh run: {times[0]:.1f} s; repeated run (all steps reused): {times[1]:.1f} s")
    print(out.stdout)


if __name__ == "__main__":
    main()
