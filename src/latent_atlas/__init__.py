"""latent-atlas: see what a neural network has learned.

The package's layers, which module owns what and the one diagram of how data flows are in
``docs/ARCHITECTURE.md``. This module is the public API a notebook needs; its names are
loaded when first used (PEP 562), so ``import latent_atlas`` loads nothing else, torch
least of all.
"""

from __future__ import annotations

import importlib
from typing import Any

from latent_atlas._version import __version__

# public name -> the module that defines it
_EXPORTS = {
    "Atlas": "atlas",
    "build_atlas": "atlas",
    "render_atlas": "atlas",
    "LoadedModel": "backends",
    "load_model": "backends",
    "Dataset": "datasets",
    "available_datasets": "datasets",
    "load_dataset": "datasets",
    "LatentAtlasError": "errors",
    "ExportResult": "export",
    "export_run": "export",
    "evaluate_maps": "metrics",
    "knn_accuracy": "metrics",
    "trustworthiness": "metrics",
    "PointTrust": "trust",
    "point_trust": "trust",
    "read_trust": "trust",
    "TrustDisplay": "trust_plot",
    "ComparisonDisplay": "plotting",
    "DensityDisplay": "plotting",
    "QualityDisplay": "plotting",
    "ScatterDisplay": "plotting",
    "Preprocess": "preprocess",
    "Reducer": "reducers",
    "available_reducers": "reducers",
    "get_reducer": "reducers",
    "TrainingConfig": "recipes",
    "AtlasConfig": "config",
    "MapConfig": "config",
    "MapSpec": "config",
    "RunConfig": "config",
    "LatentSpace": "latent",
    "RunDir": "runs",
    "RunSummary": "pipeline",
    "project_features": "pipeline",
    "run_pipeline": "pipeline",
    "ViewerData": "viewer",
    "ViewerPage": "viewer",
    "build_viewer": "viewer",
    "show_viewer": "viewer",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:  # a submodule: la.metrics, la.reducers, ...
        try:
            return importlib.import_module(f"latent_atlas.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"latent_atlas.{name}":
                raise
            raise AttributeError(f"module 'latent_atlas' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"latent_atlas.{module}"), name)
    globals()[name] = value  # found once; later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
