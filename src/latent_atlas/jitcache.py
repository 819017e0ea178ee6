"""Keep numba-compiled code of umap-learn and pynndescent across processes.

umap-learn compiles most of its numba functions without ``cache=True``, so every new process
spends tens of seconds compiling them again. :func:`enable_numba_caching` switches on numba's
on-disk cache for every such function of the given packages before their first call (numba
stores the machine code beside the package's sources, or in ``NUMBA_CACHE_DIR``). Functions
numba cannot cache (pynndescent's ``nn_descent`` uses dynamic globals) stay as they were;
:class:`latent_atlas.reducers.UMAPReducer` avoids calling them for data sets that fit an exact
neighbour search.

Importing umap-learn imports pynndescent, and importing pynndescent compiles its search trees
(20-30 s on a new machine, an empty cache) although a UMAP fit on exact neighbours never uses
them. :func:`defer_pynndescent` lets umap-learn import without them: pynndescent's package stands
in ``sys.modules`` with only the submodules umap-learn reads at import (its distance tables), and
:func:`load_pynndescent` runs the rest of it when a fit needs NN-descent (large data).

A new machine still compiles umap-learn's own code on its first fit. :func:`warm_up_in_background`
starts that compilation in a child process at the start of a run, while this process trains,
extracts and fits other maps; the UMAP step calls :func:`wait_for_warm_up` and then loads the
compiled code from the cache. With a warm cache it starts nothing.
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
from typing import Any

_DONE: set[str] = set()
_SKIP = ("tests", "plot", "parametric", "aligned")
#: one compiled module per package whose cached index files mean "this package is cached"
_MARKERS = {"pynndescent": "rp_trees", "umap": "layouts"}
_DEFERRED = "_latent_atlas_deferred"  # set on pynndescent's package while its body has not run
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
        if getattr(package, _DEFERRED, False):
            _DONE.discard(name)  # (again once it is loaded; now only what umap-learn read)
        for module in _modules(package):
            for obj in list(vars(module).values()):
                if isinstance(obj, CPUDispatcher) and type(obj._cache).__name__ == "NullCache":
                    try:
                        obj.enable_caching()
                        count += 1
                    except Exception:
                        continue
    return count


def _modules(package: Any) -> list[Any]:
    """``package`` and its submodules (those already imported, while it is deferred)."""
    name = package.__name__
    if getattr(package, _DEFERRED, False):
        return [m for k, m in list(sys.modules.items()) if k == name or k.startswith(f"{name}.")]
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
    return modules


def defer_pynndescent() -> bool:
    """Let umap-learn be imported without compiling pynndescent's trees: put pynndescent's
    package in ``sys.modules`` without running its body, which imports the trees; umap-learn
    then imports only the distance tables it reads. True when deferred now. Nothing happens
    once umap-learn or pynndescent is loaded."""
    if "umap" in sys.modules or "pynndescent" in sys.modules:
        return False
    spec = importlib.util.find_spec("pynndescent")
    if spec is None or spec.loader is None or not spec.submodule_search_locations:
        return False
    package = importlib.util.module_from_spec(spec)
    setattr(package, _DEFERRED, True)
    package.NNDescent = _DeferredNNDescent  # type: ignore[attr-defined]
    package.__getattr__ = _deferred_attribute  # type: ignore[attr-defined]  # (PEP 562)
    sys.modules["pynndescent"] = package
    return True


def _deferred_attribute(name: str) -> Any:
    """Any other name of the deferred package (``pynndescent.PyNNDescentTransformer`` in a
    user's own code) loads it whole."""
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(load_pynndescent(), name)


def load_pynndescent() -> Any:
    """pynndescent, whole: runs the deferred package's body (compiling its trees into the cache)
    and hands its real ``NNDescent`` to umap-learn. Fits that use NN-descent call this first."""
    package = sys.modules.get("pynndescent")
    if package is None or not getattr(package, _DEFERRED, False):
        return importlib.import_module("pynndescent")
    try:
        package.__spec__.loader.exec_module(package)
    except BaseException:
        del sys.modules["pynndescent"]  # (a later import starts from scratch)
        raise
    delattr(package, _DEFERRED)
    vars(package).pop("__getattr__", None)
    umap_module = sys.modules.get("umap.umap_")
    if umap_module is not None and hasattr(umap_module, "NNDescent"):
        umap_module.NNDescent = package.NNDescent
    return package


class _DeferredNNDescent:
    """Stands for pynndescent's ``NNDescent`` until it is needed: making one loads pynndescent."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        return load_pynndescent().NNDescent(*args, **kwargs)


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


def cache_is_warm(packages: tuple[str, ...] = ("umap",)) -> bool:
    """Whether numba's disk cache holds compiled code of every one of ``packages`` (without
    importing them)."""
    for package in packages:
        marker = _MARKERS.get(package, "")
        if not any(any(d.glob(f"{marker}.*.nbi")) for d in _cache_dirs(package)):
            return False
    return True


def warm_up_in_background() -> bool:
    """Compile umap-learn's numba code (what a fit on exact neighbours runs) into the disk cache
    in a child process while this one does other work; True when a child was started (the cache
    was cold)."""
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
