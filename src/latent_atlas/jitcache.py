"""Keep numba-compiled code of umap-learn and pynndescent across processes.

umap-learn compiles most of its numba functions without ``cache=True``, so every new process
spends tens of seconds compiling them again. :func:`enable_numba_caching` switches on numba's
on-disk cache for every such function of the given packages before their first call (numba
stores the machine code beside the package's sources, or in ``NUMBA_CACHE_DIR``). Functions
numba cannot cache (pynndescent's ``nn_descent`` uses dynamic globals) stay as they were;
:class:`latent_atlas.reducers.UMAPReducer` avoids calling them for data sets that fit an exact
neighbour search.

A new machine (an empty cache) still compiles: importing pynndescent alone compiles its trees
for 20-30 s. :func:`warm_up_in_background` starts that compilation in a child process at the
start of a run, while this process trains, extracts and fits other maps; the UMAP step calls
:func:`wait_for_warm_up` and then loads the compiled code from the cache. With a warm cache it
starts nothing.
"""

from __future__ import annotations

import atexit
import importlib
import importlib.util
import os
import pkgutil
import subprocess
import sys
import warnings
from pathlib import Path

_DONE: set[str] = set()
_SKIP = ("tests", "plot", "parametric", "aligned")
#: one compiled module per package whose cached index files mean "this package is cached"
_MARKERS = {"pynndescent": "rp_trees", "umap": "layouts"}
_WARMING: list[subprocess.Popen] = []  # the child compiling into the cache, while it runs


def enable_numba_caching(*packages: str) -> int:
    """Turn on numba's disk cache for uncached functions of ``packages``; return how many."""
    try:
        from numba.core.registry import CPUDispatcher
    except ImportError:  # pragma: no cover - numba comes with umap-learn
        return 0
    count = 0
    for name in packages:
        if name in _DONE:
            continue
        _DONE.add(name)
        try:
            package = importlib.import_module(name)
        except ImportError:
            continue
        modules = [package]
        for info in pkgutil.walk_packages(package.__path__, f"{name}."):
            if any(part in info.name for part in _SKIP):
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    modules.append(importlib.import_module(info.name))
            except Exception:
                continue
        for module in modules:
            for obj in list(vars(module).values()):
                if isinstance(obj, CPUDispatcher) and type(obj._cache).__name__ == "NullCache":
                    try:
                        obj.enable_caching()
                        count += 1
                    except Exception:
                        continue
    return count


def _cache_dirs(package: str) -> list[Path]:
    """Where numba keeps ``package``'s cache: ``NUMBA_CACHE_DIR``, beside its sources, or the
    user-wide cache directory (numba's own order)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return []
    source = Path(next(iter(spec.submodule_search_locations)))
    user = os.environ.get("NUMBA_CACHE_DIR")
    if user:
        return list(Path(user).glob(f"{package}_*"))
    home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "numba"
    return [source / "__pycache__", *home.glob(f"{package}_*")]


def cache_is_warm(packages: tuple[str, ...] = ("pynndescent", "umap")) -> bool:
    """Whether numba's disk cache holds compiled code of every one of ``packages`` (without
    importing them)."""
    for package in packages:
        marker = _MARKERS.get(package, "")
        if not any(any(d.glob(f"{marker}.*.nbi")) for d in _cache_dirs(package)):
            return False
    return True


def warm_up_in_background() -> bool:
    """Compile umap-learn's and pynndescent's numba code into the disk cache in a child process
    while this one does other work; True when a child was started (the cache was cold)."""
    if _WARMING or "umap" in sys.modules or importlib.util.find_spec("umap") is None:
        return False
    if cache_is_warm():
        return False
    code = "from latent_atlas.reducers.umap import compile_umap; compile_umap()"
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _WARMING.append(child)
    atexit.register(_stop, child)
    return True


def wait_for_warm_up() -> None:
    """Wait for the compiling child (if any), so this process loads its code from the cache."""
    while _WARMING:
        _WARMING.pop().wait()


def stop_warm_up() -> None:
    """Stop the compiling child (if any): for a process that is about to compile the same code
    itself, such as a UMAP fit started in a second process (numba writes each cache file whole,
    so a stopped child leaves no broken entry)."""
    while _WARMING:
        _stop(_WARMING.pop())


def _stop(child: subprocess.Popen) -> None:
    if child.poll() is None:
        child.terminate()
