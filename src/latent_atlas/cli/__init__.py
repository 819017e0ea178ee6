"""The ``latent-atlas`` command: a thin layer over the library.

Each subcommand (:mod:`latent_atlas.cli.commands`) parses its options into the library's config
objects (:mod:`latent_atlas.cli.options`) and calls one library function. ``main(argv)``
returns the exit status, so tests can call it directly.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence

from latent_atlas._version import __version__
from latent_atlas.cli.commands import COMMANDS
from latent_atlas.cli.options import preprocess_from as _preprocess
from latent_atlas.errors import LatentAtlasError, RenamedWarning, describe_os_error

PROG = "latent-atlas"

__all__ = ["PROG", "_preprocess", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="See what a neural network has learned: train or load an image "
        "model, map a layer's activations to 2-D, draw class maps and image atlases.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or log lines")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


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

    if issubclass(category, AdaptedParameterWarning | RenamedWarning):
        print(f"{PROG}: note: {message}", file=sys.stderr)
    elif not issubclass(category, DeprecationWarning | FutureWarning):
        logging.getLogger("latent_atlas").debug("%s: %s", category.__name__, message)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes (tests and notebooks swap it)."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _setup_logging(quiet: bool) -> None:
    logger = logging.getLogger("latent_atlas")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
