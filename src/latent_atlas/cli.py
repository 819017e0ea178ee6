"""The ``latent-atlas`` command: a thin layer over the library.

Each subcommand parses its options into the library's config objects and calls one library
function (see :mod:`latent_atlas.pipeline` and :mod:`latent_atlas.backends`). ``main(argv)``
returns the exit status, so tests can call it directly.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from latent_atlas.errors import ConfigError, LatentAtlasError, describe_os_error

PROG = "latent-atlas"


def _methods(text: str) -> tuple[str, ...]:
    return tuple(m.strip() for m in text.split(",") if m.strip())


def _param(text: str) -> tuple[str, str, Any]:
    """``method.name=value`` with value parsed as JSON when it can be (numbers, true, null)."""
    import json

    try:
        lhs, value = text.split("=", 1)
        method, name = lhs.split(".", 1)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected METHOD.PARAM=VALUE (e.g. tsne.perplexity=30), got {text!r}"
        ) from None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return method.strip(), name.strip(), parsed


def _size(text: str) -> tuple[int, int]:
    """``HxW`` (or one number for a square) → (height, width)."""
    try:
        parts = [int(v) for v in text.lower().replace(",", "x").split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH (e.g. 224x224), got {text!r}")
    return parts[0], parts[1]


def _shape(text: str) -> tuple[int, int, int]:
    """``H,W,C`` → (height, width, channels)."""
    try:
        parts = [int(v) for v in text.lower().replace("x", ",").split(",")]
    except ValueError:
        parts = []
    if len(parts) != 3 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected H,W,C (e.g. 32,32,3), got {text!r}")
    return parts[0], parts[1], parts[2]


def _numbers(text: str) -> tuple[float, ...]:
    """``0.485,0.456,0.406`` → a tuple of floats."""
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers (e.g. 0.485,0.456,0.406), got {text!r}"
        ) from None


def _scale(text: str) -> float:
    """A number or a fraction such as ``1/255`` or ``1/127.5``."""
    try:
        num, _, den = text.partition("/")
        return float(num) / float(den) if den else float(num)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(
            f"expected a number or a fraction (e.g. 1/255), got {text!r}"
        ) from None


def _json_object(text: str) -> dict[str, Any]:
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r} ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f'expected a JSON object such as {{"num_classes": 10}}, got {text!r}'
        )
    return value


def _add_model_source_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="state dict for --model package.module:factory (read with weights_only=True)",
    )
    p.add_argument(
        "--model-args",
        type=_json_object,
        default={},
        metavar="JSON",
        help="keyword arguments of the factory, e.g. '{\"num_classes\": 10}'",
    )


def _add_preprocess_options(p: argparse.ArgumentParser) -> None:
    from latent_atlas.preprocess import CHANNELS, LAYOUTS

    g = p.add_argument_group(
        "preprocessing (for --model FILE; default: the seed's, pixels scaled to [0, 1])"
    )
    g.add_argument(
        "--input-size",
        type=_size,
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
        type=_scale,
        default=1 / 255,
        help="multiply pixel values 0-255 by this (default: 1/255)",
    )
    g.add_argument(
        "--mean",
        type=_numbers,
        metavar="M[,M,M]",
        help="subtract per channel after scaling, e.g. 0.485,0.456,0.406",
    )
    g.add_argument(
        "--std",
        type=_numbers,
        metavar="S[,S,S]",
        help="then divide per channel, e.g. 0.229,0.224,0.225",
    )
    g.add_argument(
        "--layout",
        choices=LAYOUTS,
        help="tensor layout (default: the model's; PyTorch nchw, Keras nhwc)",
    )


def _preprocess(args: argparse.Namespace) -> Any:
    from latent_atlas.preprocess import Preprocess

    return Preprocess(
        size=args.input_size,
        channels=args.channels,
        scale=args.scale,
        mean=args.mean,
        std=args.std,
        layout=args.layout,
    )


def _add_map_options(p: argparse.ArgumentParser) -> None:
    from latent_atlas.pipeline import DEFAULT_METHODS
    from latent_atlas.reducers import available_reducers

    g = p.add_argument_group("maps")
    g.add_argument("--out", type=Path, help="run directory (default: runs/<dataset>-<config hash>)")
    g.add_argument(
        "--methods",
        type=_methods,
        default=DEFAULT_METHODS,
        help=f"comma-separated, from: {', '.join(available_reducers())} "
        f"(default: {','.join(DEFAULT_METHODS)})",
    )
    g.add_argument(
        "--param",
        type=_param,
        action="append",
        default=[],
        metavar="METHOD.NAME=VALUE",
        help="a reducer parameter, e.g. tsne.perplexity=30 (repeatable)",
    )
    g.add_argument("--seed", type=int, default=0, help="seed for everything random (default: 0)")
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
        "--dask",
        metavar="ADDRESS",
        help="run extraction shards and large-data transform chunks on a Dask "
        "cluster: a scheduler address, or 'local' for 2 workers on 127.0.0.1",
    )
    _add_metric_options(p)
    _add_atlas_options(p)


def _grid(text: str) -> int | tuple[int, int]:
    try:
        if "x" in text.lower():
            rows, cols = (int(v) for v in text.lower().split("x"))
            return rows, cols
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected G or ROWSxCOLS, got {text!r}") from None


def _distance(text: str) -> float | str | None:
    if text in ("auto", "none"):
        return None if text == "none" else "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number, 'auto' or 'none', got {text!r}"
        ) from None


def _add_atlas_options(p: argparse.ArgumentParser) -> None:
    from latent_atlas.atlas import MODES

    g = p.add_argument_group("atlas")
    g.add_argument(
        "--mode",
        "--atlas-mode",
        dest="atlas_mode",
        choices=MODES,
        default="nearest",
        help="nearest: the seed's nearest image per grid point; grid: every cell a "
        "distinct image (optimal assignment); bins: one representative per occupied "
        "bin (default: nearest)",
    )
    g.add_argument("--grid", type=_grid, default=20, help="G (G×G) or ROWSxCOLS (default: 20)")
    g.add_argument("--tile", type=int, default=32, help="tile size in pixels (default: 32)")
    g.add_argument(
        "--max-distance",
        type=_distance,
        default="auto",
        help="empty a cell whose image is this far from its grid point; 'auto': 0.05 "
        "for nearest (the seed's), no limit otherwise; 'none': no limit",
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


def _atlas_config(args: argparse.Namespace) -> Any:
    from latent_atlas.pipeline import AtlasConfig

    return AtlasConfig(
        mode=args.atlas_mode,
        grid=args.grid,
        max_distance=args.max_distance,
        min_count=args.min_count,
        tile=args.tile,
        border=args.border,
        mark_errors=args.mark_errors,
    )


def _add_metric_options(p: argparse.ArgumentParser) -> None:
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


def _map_config(args: argparse.Namespace) -> Any:
    from latent_atlas.largedata import LargeDataRecipe
    from latent_atlas.pipeline import MapConfig
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
        atlas=_atlas_config(args),
        large=LargeDataRecipe(threshold=args.large_threshold, sample=args.large_sample),
    )


def build_parser() -> argparse.ArgumentParser:
    from latent_atlas._version import __version__
    from latent_atlas.config import LR_SCHEDULES, VALIDATIONS
    from latent_atlas.datasets import available_datasets

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="See what a neural network has learned: train or load an image "
        "model, map a layer's activations to 2-D, draw class maps and image atlases.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or log lines")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "run",
        help="train (or load) a model, extract a layer, map it (the seed pipeline)",
        description="Train the seed CNN on a data set, or load a model of your own "
        "(--model FILE: no training), extract a layer's activations of the test split and "
        "map them with every method.",
    )
    p.add_argument(
        "--dataset",
        default="digits",
        choices=available_datasets(),
        help="data set (default: digits, bundled with scikit-learn)",
    )
    p.add_argument("--data-dir", help="where the data set's files are")
    p.add_argument(
        "--model",
        default="seed-cnn",
        metavar="NAME|FILE|MODULE:FACTORY",
        help="seed-cnn (default: trained on the data set), or a model used as it is, without "
        "training: a TorchScript or latent-atlas .pt file, a .onnx or .keras file, or "
        "package.module:factory with --checkpoint (see docs/MODELS.md)",
    )
    _add_model_source_options(p)
    p.add_argument("--limit", type=int, help="use at most this many images of each split")
    p.add_argument("--epochs", type=int, default=50, help="most epochs to train (default: 50)")
    p.add_argument("--batch-size", type=int, default=128, help="training batch size (default: 128)")
    p.add_argument(
        "--validation",
        choices=VALIDATIONS,
        default="split",
        help="early-stop on 10%% of the train split (default) or, as the seed, on the test split",
    )
    p.add_argument(
        "--augment",
        action="store_true",
        help="train with random crops (4-pixel padding) and horizontal flips (not the seed's)",
    )
    p.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        default="constant",
        help="learning rate: constant as the seed (default), or cosine decay to zero",
    )
    p.add_argument(
        "--layer",
        default="dense",
        help="layer to extract (default: dense; `latent-atlas layers MODEL` lists them)",
    )
    p.add_argument(
        "--pool",
        choices=("avg", "max", "flatten"),
        default="avg",
        help="how to reduce feature maps of conv layers (default: avg)",
    )
    p.add_argument("--threads", type=int, help="torch threads (default: all available cores)")
    _add_preprocess_options(p)
    p.add_argument(
        "--fit-on",
        choices=("test", "train"),
        default="test",
        help="split the maps are fitted on (default: test, as the seed)",
    )
    p.add_argument(
        "--show",
        choices=("test", "train"),
        default="test",
        help="split the maps show; when it differs from --fit-on its points are "
        "placed into the fitted map with transform (default: test)",
    )
    _add_map_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "layers",
        help="list a model's layers and their output shapes",
        description="List every layer of a model (what --layer takes) with the shape of its "
        "output for one image and how many features --pool avg/max and --pool flatten make "
        "of it. Loading a model runs it: load only models you trust.",
    )
    p.add_argument(
        "model",
        metavar="MODEL",
        help="a TorchScript or latent-atlas .pt file, a .onnx or .keras file, "
        "package.module:factory, or seed-cnn",
    )
    _add_model_source_options(p)
    p.add_argument(
        "--input-shape",
        type=_shape,
        metavar="H,W,C",
        help="image size the model takes, for the output shapes (when the model does not say)",
    )
    p.set_defaults(func=cmd_layers)

    p = sub.add_parser(
        "project",
        help="map features you already have (no model)",
        description="Projections, plots, atlases and a run directory for "
        "features computed elsewhere.",
    )
    p.add_argument("features", type=Path, help="N×D features (.npy)")
    p.add_argument("--labels", type=Path, required=True, help="N integer labels (.npy)")
    p.add_argument("--images", type=Path, help="N×H×W[×C] uint8 images (.npy), for the atlases")
    p.add_argument(
        "--class-names",
        nargs="+",
        help="class names in label order, or one text file with a name per line",
    )
    _add_map_options(p)
    p.set_defaults(func=cmd_project)

    p = sub.add_parser(
        "atlas",
        help="another image atlas for a finished run",
        description="Build an image atlas of one map of a finished run; writes "
        "atlas_<method>[_<mode>].png and a per-cell .parquet into the run.",
    )
    p.add_argument("run_dir", type=Path, help="a run directory")
    p.add_argument("--method", default="umap", help="which map (default: umap)")
    _add_atlas_options(p)
    p.set_defaults(func=cmd_atlas)

    p = sub.add_parser(
        "compare",
        help="score every map of a finished run",
        description="Trustworthiness, continuity, k-NN accuracy, neighbourhood preservation, "
        "triplet accuracy and class silhouette of every map of a run; writes metrics.csv, "
        "metrics.md, metrics.png and metrics_per_point.parquet.",
    )
    p.add_argument("run_dir", type=Path, help="a run directory")
    _add_metric_options(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the metric sample (default: 0)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "view",
        help="open a run in the interactive viewer",
        description="Build RUN_DIR/viewer.html when it is missing or stale (one self-contained "
        "page that also opens offline from disk), then serve the run directory on 127.0.0.1 "
        "and print the URL; Ctrl-C stops the server.",
    )
    p.add_argument("run_dir", type=Path, help="a run directory")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    p.set_defaults(func=cmd_view)
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from latent_atlas.pipeline import RunConfig, run_pipeline

    config = RunConfig(
        dataset=args.dataset,
        data_dir=args.data_dir,
        limit=args.limit,
        model=args.model,
        checkpoint=args.checkpoint,
        model_args=args.model_args,
        preprocess=_preprocess(args),
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation=args.validation,
        augment=args.augment,
        lr_schedule=args.lr_schedule,
        layer=args.layer,
        pool=args.pool,
        threads=args.threads,
        maps=_map_config(args),
    )
    summary = run_pipeline(config, args.out, progress=not args.quiet, dask=args.dask)
    print(summary.format())
    return 0


def cmd_layers(args: argparse.Namespace) -> int:
    from latent_atlas.backends import format_layers, load_model

    model = load_model(
        args.model,
        checkpoint=args.checkpoint,
        input_shape=args.input_shape,
        model_args=args.model_args,
    )
    shape = model.input_shape
    size = "any size" if shape is None else "×".join("?" if d is None else str(d) for d in shape)
    print(f"{args.model}: {model.kind}, input {size} (H×W×C), layout {model.layout}")
    print(format_layers(model))
    if shape is None or None in shape:
        print("(pass --input-shape H,W,C to see every output shape)")
    return 0


def cmd_project(args: argparse.Namespace) -> int:
    from latent_atlas.pipeline import project_features

    features = _load_array(args.features, "features")
    labels = _load_array(args.labels, "--labels")
    images = _load_array(args.images, "--images") if args.images else None
    names = args.class_names
    if names and len(names) == 1 and Path(names[0]).is_file():
        names = [ln.strip() for ln in Path(names[0]).read_text().splitlines() if ln.strip()]
    out = args.out or Path("runs") / f"project-{args.features.stem}"
    summary = project_features(
        features,
        labels,
        out=out,
        images=images,
        class_names=names,
        maps=_map_config(args),
        dask=args.dask,
    )
    print(summary.format())
    return 0


def cmd_atlas(args: argparse.Namespace) -> int:
    from latent_atlas.pipeline import atlas_for_run

    info = atlas_for_run(args.run_dir, args.method, _atlas_config(args))
    rows, cols = info["grid"]
    print(
        f"{args.run_dir / info['outputs'][0]}: {info['mode']} atlas of the {args.method} map, "
        f"{rows}×{cols} cells, {info['filled']} filled, mean distance "
        f"{info['mean_distance']:.4f}"
    )
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from latent_atlas.compare import compare_run

    info = compare_run(
        args.run_dir, k=args.metrics_k, max_samples=args.metrics_max_samples, seed=args.seed
    )
    print((args.run_dir / "metrics.md").read_text(), end="")
    print(f"written: {', '.join(str(args.run_dir / f) for f in info['outputs'])}")
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    from latent_atlas.viewer import ensure_viewer, serve_forever

    page, rebuilt = ensure_viewer(args.run_dir)
    print(f"{page}: {'built' if rebuilt else 'up to date'}; it also opens offline from disk")
    serve_forever(args.run_dir, port=args.port, open_browser=args.open)
    return 0


def _load_array(path: Path, what: str) -> Any:
    import numpy as np

    if not path.is_file():
        raise LatentAtlasError(f"{what}: {path} does not exist")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise LatentAtlasError(f"{what}: {path} is not a readable .npy file ({exc})") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 error, 2 usage)."""
    from latent_atlas.threads import prefer_passive_waiting

    prefer_passive_waiting()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    _setup_logging(quiet=args.quiet)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = _show_warning
            return int(args.func(args) or 0)
    except LatentAtlasError as exc:
        if args.debug:
            raise
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # disk full, permissions, a vanished file: say which and why
        if args.debug:
            raise
        print(f"{PROG}: error: {describe_os_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    from latent_atlas.reducers import AdaptedParameterWarning

    if issubclass(category, AdaptedParameterWarning):
        print(f"{PROG}: note: {message}", file=sys.stderr)
    elif not issubclass(category, DeprecationWarning | FutureWarning):
        logging.getLogger("latent_atlas").debug("%s: %s", category.__name__, message)


def _setup_logging(quiet: bool) -> None:
    logger = logging.getLogger("latent_atlas")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
