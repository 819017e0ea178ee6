"""Thread settings for PyTorch's CPU kernels, chosen by the project rather than the defaults.

On a shared machine OpenMP threads that busy-wait for each other slow training several-fold
when another process uses the cores. latent-atlas therefore

* sets ``OMP_WAIT_POLICY=PASSIVE`` (unless the user set it) before torch loads its OpenMP
  runtime, so idle threads sleep instead of spinning, and
* uses as many intra-op threads as there are cores this process may run on.

Both can be overridden: the environment variable by the user, the thread count by
``--threads`` / ``configure_threads(n)``.

Why passive (measured on the 2-core machine, the article's CNN, bench/RESULTS.md): with both cores
loaded by another process, passive waiting trains 1.6-2.5x and extracts 1.5-2x faster than
OpenMP's default spinning (which drops to a few hundred images per second when a spinning
thread holds a core the other needs); on an idle machine it costs 7-20%. Bounded spinning
(``GOMP_SPINCOUNT``) lands in between and swings from run to run under load, so the project
takes the policy that does not collapse on a shared machine.
"""

from __future__ import annotations

import os
import sys


def prefer_passive_waiting() -> None:
    """Ask OpenMP to let idle threads sleep; effective only before torch is first imported."""
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def available_cores() -> int:
    """Cores this process may run on (respects CPU affinity and cgroup-style pinning)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def configure_threads(num_threads: int | None = None) -> int:
    """Set torch's intra-op thread count (default: all available cores); return it."""
    prefer_passive_waiting()
    import torch

    n = int(num_threads) if num_threads else available_cores()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
