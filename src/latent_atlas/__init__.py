"""latent-atlas: see what a neural network has learned.

The package is layered (see ``docs/ARCHITECTURE.md``)::

    datasets -> models/training/activations (torch) -> reducers -> plotting, atlas, metrics
             -> runs (artifacts) -> pipeline -> cli

Importing ``latent_atlas`` does not import torch; the torch-backed steps live in
:mod:`latent_atlas.models`, :mod:`latent_atlas.training` and :mod:`latent_atlas.activations`,
and models of every framework load through :func:`latent_atlas.load_model` (its backends are
imported with the model they run).
"""

from __future__ import annotations

__version__ = "0.1.0"

from latent_atlas.atlas import Atlas, build_atlas, render_atlas
from latent_atlas.backends import LoadedModel, load_model
from latent_atlas.datasets import Dataset, available_datasets, load_dataset
from latent_atlas.errors import LatentAtlasError
from latent_atlas.metrics import evaluate_maps, knn_accuracy, trustworthiness
from latent_atlas.plotting import ComparisonDisplay, ScatterDisplay
from latent_atlas.preprocess import Preprocess
from latent_atlas.reducers import available_reducers, get_reducer

__all__ = [
    "Atlas",
    "ComparisonDisplay",
    "Dataset",
    "LatentAtlasError",
    "LoadedModel",
    "Preprocess",
    "ScatterDisplay",
    "__version__",
    "available_datasets",
    "available_reducers",
    "build_atlas",
    "evaluate_maps",
    "get_reducer",
    "knn_accuracy",
    "load_dataset",
    "load_model",
    "render_atlas",
    "trustworthiness",
]
