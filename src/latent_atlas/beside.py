"""A second process for work that uses one core, started as soon as a run knows it needs one.

A seeded UMAP fit is single-threaded (umap-learn's design, for reproducibility), so on a
machine with two cores or more :mod:`latent_atlas.mapfit` fits it here, in a second process,
while this one fits the other maps. A new interpreter takes seconds to import what the fit needs
(umap-learn, numba, scikit-learn); :func:`start` begins that as early as the run knows it will
detach a fit (``project``, which knows its number of points from the start), so the imports
overlap with the run's own start-up, and :func:`submit` then hands the work to the process
already waiting. Warnings raised in the second process are shown in this one
(:func:`result`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

_STARTED: list[ProcessPoolExecutor] = []  # the second process, started and not used yet


def start(prepare: Callable[[], Any] | None = None) -> None:
    """Start the second process now (once), running ``prepare`` there (its imports)."""
    if _STARTED:
        return
    pool = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))
    if prepare is not None:
        pool.submit(prepare)
    _STARTED.append(pool)


def submit(fn: Callable[..., Any], *args: Any) -> Future:
    """Run ``fn(*args)`` in the second process (the one started early, else a new one)."""
    start()
    pool = _STARTED.pop()
    future = pool.submit(_recording_warnings, fn, *args)
    pool.shutdown(wait=False)  # (the process ends once this work is done)
    return future


def result(future: Future) -> Any:
    """What the work returned; the warnings it raised are raised here again."""
    value, caught = future.result()
    for w in caught:  # (such as an adapted parameter)
        warnings.warn_explicit(w["message"], w["category"], w["filename"], w["lineno"])
    return value


def stop() -> None:
    """End a second process that was started but is not needed after all."""
    while _STARTED:
        _STARTED.pop().shutdown(wait=False, cancel_futures=True)


def _recording_warnings(fn: Callable[..., Any], *args: Any) -> tuple[Any, list[dict[str, Any]]]:
    """The second process's side: run ``fn``, keep its warnings to raise in the first."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = fn(*args)
    shown = [
        {
            "message": str(w.message),
            "category": w.category,
            "filename": w.filename,
            "lineno": w.lineno,
        }
        for w in caught
    ]
    return value, shown
