"""Keep numba-compiled code of umap-learn and pynndescent across processes.

umap-learn compiles most of its numba functions without ``cache=True``, so every new process
spends tens of seconds compiling them again. :func:`enable_numba_caching` switches on numba's
on-disk cache for every such function of the given packages before their first call (numba
stores the machine code beside the package's sources, or in ``NUMBA_CACHE_DIR``). Functions
numba cannot cache (pynndescent's ``nn_descent`` uses dynamic globals) stay as they were;
:class:`latent_atlas.reducers.UMAPReducer` avoids calling them for data sets that fit an exact
neighbour search.
"""

from __future__ import annotations

import importlib
import pkgutil
import warnings

_DONE: set[str] = set()
_SKIP = ("tests", "plot", "parametric", "aligned")


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
