"""The subcommands: for each, ``add_<name>(sub)`` declares it and ``cmd_<name>(args)`` makes
the library's config objects from the options and calls one library function."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from latent_atlas.cli import options, values
from latent_atlas.errors import LatentAtlasError


def add_run(sub: Any) -> None:
    from latent_atlas.config import POOLS, SPLITS
    from latent_atlas.datasets import available_datasets
    from latent_atlas.recipes import ARTICLE_MODEL

    p = sub.add_parser(
        "run",
        help="train (or load) a model, extract a layer, map it (the article's pipeline)",
        description="Train the article's CNN on a data set, or load a model of your own "
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
        default=ARTICLE_MODEL,
        metavar="NAME|FILE|MODULE:FACTORY",
        help=f"{ARTICLE_MODEL} (default: trained on the data set), or a model used as it is, "
        "without training: a TorchScript or latent-atlas .pt file, a .onnx or .keras file, or "
        "package.module:factory with --checkpoint (see docs/MODELS.md)",
    )
    options.add_model_source(p)
    p.add_argument(
        "--fold-batchnorm",
        action="store_true",
        help="run a PyTorch model you bring with BatchNorm folded into its convolutions and "
        "channels-last tensors, as the network trained here runs: about 2x faster on the CPU, "
        "activations within about 1e-5 of the model's own (default: as it is)",
    )
    p.add_argument("--limit", type=int, help="use at most this many images of each split")
    options.add_training(p)
    p.add_argument(
        "--layer",
        default="dense",
        help="layer to extract (default: dense; `latent-atlas layers MODEL` lists them)",
    )
    p.add_argument(
        "--layers",
        type=values.methods,
        metavar="LAYER,...",
        help="map several layers of the same images, extracted in one pass: names as "
        "`latent-atlas layers` prints them, 'all' (every layer), 'pixels' (the input images); "
        "consecutive maps are aligned and compared (frames.csv, cka.csv, frames.png, frames.html)",
    )
    p.add_argument(
        "--snapshots",
        type=values.epochs,
        metavar="EPOCHS",
        help="keep the layers' activations at these training epochs (e.g. 0,1,2,5,10,best; 0: "
        "the untrained network, best: the weights training keeps) and map each, aligned",
    )
    p.add_argument(
        "--snapshot-layers",
        type=values.methods,
        metavar="LAYER,...",
        help="the layers kept at the snapshots (default: --layers, or --layer)",
    )
    p.add_argument(
        "--pool",
        choices=POOLS,
        default="avg",
        help="how to reduce feature maps of conv layers (default: avg)",
    )
    p.add_argument("--threads", type=int, help="torch threads (default: all available cores)")
    options.add_preprocess(p)
    for flag, what in (("--fit-on", "the maps are fitted on"), ("--show", "the maps show")):
        p.add_argument(
            flag,
            choices=SPLITS,
            default="test",
            help=f"split {what} (default: test, as the article); when --show differs from "
            "--fit-on its points are placed into the fitted map with transform",
        )
    options.add_maps(p)
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from latent_atlas.config import RunConfig
    from latent_atlas.pipeline import run_pipeline

    config = RunConfig(
        dataset=args.dataset,
        data_dir=args.data_dir,
        limit=args.limit,
        model=args.model,
        checkpoint=args.checkpoint,
        model_args=args.model_args,
        preprocess=options.preprocess_from(args),
        fold_batchnorm=args.fold_batchnorm,
        training=options.training_from(args),
        layer=args.layer,
        layers=args.layers or (),
        snapshots=args.snapshots or (),
        snapshot_layers=args.snapshot_layers or (),
        pool=args.pool,
        threads=args.threads,
        maps=options.maps_from(args),
    )
    summary = run_pipeline(config, args.out, progress=not args.quiet, dask=args.dask)
    print(summary.format())
    return 0


def add_layers(sub: Any) -> None:
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
        "package.module:factory, or article-cnn",
    )
    options.add_model_source(p)
    p.add_argument(
        "--input-shape",
        type=values.shape,
        metavar="H,W,C",
        help="image size the model takes, for the output shapes (when the model does not say)",
    )
    p.set_defaults(func=cmd_layers)


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


def add_project(sub: Any) -> None:
    p = sub.add_parser(
        "project",
        help="map features you already have (no model)",
        description="Projections, plots, atlases and a run directory for features computed "
        "elsewhere. Several feature files of the same images make one latent space each.",
    )
    p.add_argument("features", type=Path, nargs="+", help="N×D features (.npy), one per space")
    p.add_argument("--labels", type=Path, required=True, help="N integer labels (.npy)")
    p.add_argument("--images", type=Path, help="N×H×W[×C] uint8 images (.npy), for the atlases")
    p.add_argument(
        "--class-names",
        nargs="+",
        help="class names in label order, or one text file with a name per line",
    )
    options.add_maps(p)
    p.set_defaults(func=cmd_project)


def cmd_project(args: argparse.Namespace) -> int:
    from latent_atlas.pipeline import project_features

    files = args.features
    if len({f.stem for f in files}) != len(files):
        raise LatentAtlasError("feature files name their spaces: give files of distinct names")
    named = {f.stem: load_array(f, "features") for f in files}
    features = named if len(files) > 1 else named[files[0].stem]
    labels = load_array(args.labels, "--labels")
    images = load_array(args.images, "--images") if args.images else None
    names = args.class_names
    if names and len(names) == 1 and Path(names[0]).is_file():
        names = [ln.strip() for ln in Path(names[0]).read_text().splitlines() if ln.strip()]
    out = args.out or Path("runs") / f"project-{files[0].stem}"
    summary = project_features(features, labels, out=out, images=images, class_names=names,
                               maps=options.maps_from(args), dask=args.dask)  # fmt: skip
    print(summary.format())
    return 0


def add_atlas(sub: Any) -> None:
    p = sub.add_parser(
        "atlas",
        help="another image atlas for a finished run",
        description="Build an image atlas of one map of a finished run; writes "
        "atlas_<method>[_<mode>].png and a per-cell .parquet into the run.",
    )
    p.add_argument("run_dir", type=Path, help="a run directory")
    p.add_argument("--method", default="umap", help="which map (default: umap)")
    options.add_space(p, "the run's first")
    options.add_atlas(p)
    p.set_defaults(func=cmd_atlas)


def cmd_atlas(args: argparse.Namespace) -> int:
    from latent_atlas.maps import atlas_for_run

    info = atlas_for_run(args.run_dir, args.method, options.atlas_from(args), space=args.space)
    rows, cols = info["grid"]
    print(
        f"{info['path']}: {info['mode']} atlas of the {args.method} map, "
        f"{rows}×{cols} cells, {info['filled']} filled, mean distance "
        f"{info['mean_distance']:.4f}"
    )
    return 0


def add_compare(sub: Any) -> None:
    p = sub.add_parser(
        "compare",
        help="score every map of a finished run",
        description="Trustworthiness, continuity, k-NN accuracy, neighbourhood preservation, "
        "triplet accuracy and class silhouette of every map of a run; writes metrics.csv, "
        "metrics.md, metrics.png and metrics_per_point.parquet (per latent space).",
    )
    p.add_argument("run_dir", type=Path, help="a run directory")
    options.add_space(p, "every one")
    options.add_metrics(p)
    p.add_argument("--seed", type=int, help="seed of the metric sample (default: the run's)")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    from latent_atlas.compare import compare_run

    found = compare_run(args.run_dir, space=args.space, k=args.metrics_k,
                        max_samples=args.metrics_max_samples, seed=args.seed)  # fmt: skip
    for name, info in found.items():
        if len(found) > 1:
            print(f"space {name}:")
        print(Path(info["folder"], "metrics.md").read_text(), end="")
        print(f"written: {', '.join(str(Path(info['folder'], f)) for f in info['outputs'])}")
    return 0


def add_view(sub: Any) -> None:
    p = sub.add_parser(
        "view",
        help="open a run in the interactive viewer",
        description="Build the viewer page of each latent space of RUN_DIR when it is missing "
        "or stale (one self-contained page that also opens offline from disk), then serve the "
        "run directory on 127.0.0.1 and print the URL; Ctrl-C stops the server.",
    )
    p.add_argument("run_dir", type=Path, help="a run directory")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    p.set_defaults(func=cmd_view)


def cmd_view(args: argparse.Namespace) -> int:
    from latent_atlas.viewer import ensure_viewers, serve_forever

    for page, rebuilt in ensure_viewers(args.run_dir):
        print(f"{page}: {'built' if rebuilt else 'up to date'}; it also opens offline from disk")
    serve_forever(args.run_dir, port=args.port, open_browser=args.open)
    return 0


def add_compare_runs(sub: Any) -> None:
    p = sub.add_parser(
        "compare-runs",
        help="map two runs over the same images side by side, aligned",
        description="Map the latent spaces of two runs over the same images (two checkpoints, "
        "two recipes, two architectures) side by side in a new run directory: the second "
        "map aligned to the first, frames.csv, linear CKA, a film strip, an animation and "
        "frames.html (both side by side, hover and selection linked).",
    )
    p.add_argument("run_a", type=Path, help="a run directory")
    p.add_argument("run_b", type=Path, help="another run directory over the same images")
    p.add_argument("--space-a", help="the space of RUN_A (default: its first)")
    p.add_argument("--space-b", help="the space of RUN_B (default: its first)")
    options.add_maps(p)
    p.set_defaults(func=cmd_compare_runs)


def cmd_compare_runs(args: argparse.Namespace) -> int:
    from latent_atlas.runpair import compare_runs

    summary = compare_runs(args.run_a, args.run_b, args.out, space_a=args.space_a,
                           space_b=args.space_b, maps=options.maps_from(args))  # fmt: skip
    print(summary.format())
    return 0


def add_export(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="export a run for other viewers and tools",
        description="Export one latent space of a finished run: --to tensorboard DIR "
        "(TensorBoard's Embedding Projector), --to embedding-atlas FILE.parquet (Apple's "
        "Embedding Atlas), --to parquet FILE or --to csv FILE (one row per image).",
    )
    p.add_argument("run_dir", type=Path, help="a run directory")
    p.add_argument("target", type=Path, help="the folder (tensorboard) or file to write")
    p.add_argument("--to", required=True, metavar="FORMAT",
                   help="tensorboard, embedding-atlas, parquet or csv")  # fmt: skip
    options.add_space(p, "the run's first")
    p.add_argument("--map", help="the map Embedding Atlas shows (default: umap, tsne, the first)")
    p.add_argument("--force", action="store_true", help="replace a target that is not empty")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from latent_atlas.export import export_run

    result = export_run(args.run_dir, args.to, args.target, space=args.space,
                        map_name=args.map, force=args.force)  # fmt: skip
    print(result.describe())
    return 0


COMMANDS = (
    add_run, add_layers, add_project, add_atlas, add_compare, add_compare_runs, add_view,
    add_export,
)  # fmt: skip


def load_array(path: Path, what: str) -> Any:
    import numpy as np

    if not path.is_file():
        raise LatentAtlasError(f"{what}: {path} does not exist")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise LatentAtlasError(f"{what}: {path} is not a readable .npy file ({exc})") from None
