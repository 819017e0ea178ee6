"""Option groups the subcommands share, and the library config objects made from them.

Each ``add_*`` function declares one group of options; each ``*_from(args)`` function turns
the parsed options into the library's object (``TrainingConfig``, ``MapConfig``,
``AtlasConfig``, ``Preprocess``). Training options carry the dataclass field's name as their
``dest``, so :func:`training_from` needs no list of them.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path
from typing import Any

from latent_atlas.cli import values
from latent_atlas.errors import ConfigError


def add_model_source(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="state dict for --model package.module:factory (read with weights_only=True)",
    )
    p.add_argument(
        "--model-args",
        type=values.json_object,
        default={},
        metavar="JSON",
        help="keyword arguments of the factory, e.g. '{\"num_classes\": 10}'",
    )


def add_training(p: argparse.ArgumentParser) -> None:
    """Training options: each ``dest`` is a field of :class:`TrainingConfig`."""
    from latent_atlas.recipes import LR_SCHEDULES, RECIPES, VALIDATIONS, TrainingConfig

    d = TrainingConfig()
    g = p.add_argument_group("training (for the article's network, trained here)")
    g.add_argument(
        "--recipe",
        choices=list(RECIPES),
        default="article",
        help="article: Adam 1e-3, batches of 128, early stopping (default); improved: the same "
        "with random crops and flips and a cosine schedule; the options below override it",
    )
    g.add_argument("--epochs", type=int, help=f"most epochs to train (default: {d.epochs})")
    g.add_argument("--batch-size", type=int, help=f"training batch size (default: {d.batch_size})")
    g.add_argument(
        "--validation",
        choices=VALIDATIONS,
        help="early-stop on 10%% of the train split (default) or, as the article, on the test "
        "split",
    )
    g.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        help="train with random crops (4-pixel padding) and horizontal flips",
    )
    g.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        help="learning rate: constant as the article (default), or cosine decay to zero",
    )


def training_from(args: argparse.Namespace) -> Any:
    from latent_atlas.recipes import TrainingConfig, recipe

    given = {f.name: getattr(args, f.name, None) for f in fields(TrainingConfig)}
    return recipe(args.recipe).with_options(**given)


def add_preprocess(p: argparse.ArgumentParser) -> None:
    from latent_atlas.preprocess import CHANNELS, LAYOUTS

    g = p.add_argument_group(
        "preprocessing (for --model FILE; default: the article's, pixels scaled to [0, 1])"
    )
    g.add_argument(
        "--input-size",
        type=values.size,
        metavar="HxW",
        help="resize images to this size (default: their own, or the size the model declares)",
    )
    g.add_argument(
        "--channels",
        choices=CHANNELS,
        help="channel order the model takes (default: as stored, RGB or grey)",
    )
    g.add_argument(
        "--scale",
        type=values.scale,
        default=1 / 255,
        help="multiply pixel values 0-255 by this (default: 1/255)",
    )
    g.add_argument(
        "--mean",
        type=values.numbers,
        metavar="M[,M,M]",
        help="subtract per channel after scaling, e.g. 0.485,0.456,0.406",
    )
    g.add_argument(
        "--std",
        type=values.numbers,
        metavar="S[,S,S]",
        help="then divide per channel, e.g. 0.229,0.224,0.225",
    )
    g.add_argument(
        "--layout",
        choices=LAYOUTS,
        help="tensor layout (default: the model's; PyTorch nchw, Keras nhwc)",
    )


def preprocess_from(args: argparse.Namespace) -> Any:
    from latent_atlas.preprocess import Preprocess

    return Preprocess(
        size=args.input_size,
        channels=args.channels,
        scale=args.scale,
        mean=args.mean,
        std=args.std,
        layout=args.layout,
    )


def add_maps(p: argparse.ArgumentParser) -> None:
    from latent_atlas.config import DEFAULT_METHODS
    from latent_atlas.reducers import available_reducers

    g = p.add_argument_group("maps")
    g.add_argument("--out", type=Path, help="run directory (default: runs/<dataset>-<config hash>)")
    g.add_argument(
        "--methods",
        type=values.methods,
        default=DEFAULT_METHODS,
        help=f"comma-separated, from: {', '.join(available_reducers())} "
        f"(default: {','.join(DEFAULT_METHODS)})",
    )
    g.add_argument(
        "--param",
        type=values.param,
        action="append",
        default=[],
        metavar="METHOD.NAME=VALUE",
        help="a reducer parameter, e.g. tsne.perplexity=30 (repeatable)",
    )
    g.add_argument("--seed", type=int, default=0, help="seed for everything random (default: 0)")
    g.add_argument(
        "--no-align",
        action="store_true",
        help="with several frames (layers, epochs, models), fit each frame's maps on their own "
        "instead of aligned to the previous frame's",
    )
    g.add_argument(
        "--pca-dims",
        type=int,
        metavar="N",
        help="reduce wide features to N dimensions with PCA before t-SNE, UMAP, "
        "PaCMAP and Isomap (50 is usual)",
    )
    g.add_argument(
        "--large-threshold",
        type=int,
        default=200_000,
        metavar="N",
        help="above N points t-SNE, UMAP and PaCMAP are fitted on a seeded sample and the rest "
        "placed with transform (default: 200000)",
    )
    g.add_argument(
        "--large-sample",
        type=int,
        default=50_000,
        metavar="N",
        help="the size of that sample (default: 50000)",
    )
    g.add_argument(
        "--large-refine-max",
        type=int,
        default=500_000,
        metavar="N",
        help="on large data, refine the t-SNE map on all points up to N points; above, keep "
        "the transform's positions (default: 500000; 0: never refine)",
    )
    g.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run extraction shards and large-data transform chunks on a Dask "
        "cluster: a scheduler address, or 'local' for 2 workers on 127.0.0.1",
    )
    add_metrics(p)
    add_atlas(p)


def maps_from(args: argparse.Namespace) -> Any:
    from latent_atlas.config import MapConfig
    from latent_atlas.largedata import LargeDataRecipe
    from latent_atlas.reducers import REDUCERS

    params: dict[str, dict[str, Any]] = {}
    for method, name, value in args.param:
        if method not in args.methods:
            raise ConfigError(f"--param {method}.{name}: {method} is not among --methods")
        params.setdefault(method, {})[name] = value
    if args.pca_dims is not None:
        for method in args.methods:
            if method in REDUCERS and "pca_dims" in REDUCERS[method]._get_param_names():
                params.setdefault(method, {}).setdefault("pca_dims", args.pca_dims)
    return MapConfig(
        methods=args.methods,
        method_params=params,
        seed=args.seed,
        fit_on=getattr(args, "fit_on", "test"),
        show=getattr(args, "show", "test"),
        metrics_k=args.metrics_k,
        metrics_max_samples=args.metrics_max_samples,
        atlas=atlas_from(args),
        large=LargeDataRecipe(
            threshold=args.large_threshold,
            sample=args.large_sample,
            refine_max=args.large_refine_max,
        ),
        align=not args.no_align,
    )


def add_atlas(p: argparse.ArgumentParser) -> None:
    from latent_atlas.atlas import MODES

    g = p.add_argument_group("atlas")
    g.add_argument(
        "--mode",
        "--atlas-mode",
        dest="atlas_mode",
        choices=MODES,
        default="nearest",
        help="nearest: the article's nearest image per grid point; grid: every cell a "
        "distinct image (optimal assignment); bins: one representative per occupied "
        "bin (default: nearest)",
    )
    g.add_argument(
        "--grid", type=values.grid, default=20, help="G (G×G) or ROWSxCOLS (default: 20)"
    )
    g.add_argument("--tile", type=int, default=32, help="tile size in pixels (default: 32)")
    g.add_argument(
        "--max-distance",
        type=values.distance,
        default="auto",
        help="empty a cell whose image is this far from its grid point; 'auto': 0.05 "
        "for nearest (the article's), no limit otherwise; 'none': no limit",
    )
    g.add_argument(
        "--min-count",
        type=int,
        default=1,
        help="bins: the fewest points a bin needs to show an image (default: 1)",
    )
    g.add_argument(
        "--border",
        type=int,
        default=0,
        help="width in pixels of a class-coloured frame around each tile (default: 0)",
    )
    g.add_argument(
        "--mark-errors", action="store_true", help="mark misclassified samples with a black corner"
    )


def atlas_from(args: argparse.Namespace) -> Any:
    from latent_atlas.config import AtlasConfig

    return AtlasConfig(
        mode=args.atlas_mode,
        grid=args.grid,
        max_distance=args.max_distance,
        min_count=args.min_count,
        tile=args.tile,
        border=args.border,
        mark_errors=args.mark_errors,
    )


def add_metrics(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("metrics")
    g.add_argument(
        "--metrics-k",
        type=int,
        default=10,
        help="neighbours for trustworthiness, continuity, preservation (default: 10)",
    )
    g.add_argument(
        "--metrics-max-samples",
        type=int,
        default=10_000,
        help="above this many points metrics use a seeded sample (default: 10000)",
    )


def add_space(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument(
        "--space", metavar="NAME", help=f"a latent space of the run (default: {default})"
    )
