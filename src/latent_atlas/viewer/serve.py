"""A tiny local web server for a run directory (the viewer also opens straight from disk).

It binds to 127.0.0.1 only, serves the files of one run directory (no directory listings, no
caching) and logs nothing; ``open_browser`` opens the page with :mod:`webbrowser` only when
asked. A run of several latent spaces has one page per space (``spaces/<name>/viewer.html``
beside the first space's ``viewer.html``): the URL is the first one's, and ``serve_forever``
prints every page's.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import urllib.parse
import webbrowser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from latent_atlas.errors import ConfigError, LatentAtlasError
from latent_atlas.runs import MANIFEST, RunDir
from latent_atlas.viewer.build import VIEWER_FILE

HOST = "127.0.0.1"


class _RunHandler(SimpleHTTPRequestHandler):
    """Files of one directory; no listings, no caching, no log lines."""

    def list_directory(self, path: Any) -> None:
        self.send_error(404, "no directory listings")
        return None

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def pages(run_dir: str | Path) -> list[Path]:
    """The viewer pages of a run directory that are built, one per space, first space first."""
    root = Path(run_dir)
    found = [root / VIEWER_FILE]
    if (root / MANIFEST).is_file():
        with contextlib.suppress(LatentAtlasError):  # a damaged manifest: the page there
            found = [sp.file(VIEWER_FILE) for sp in RunDir.open(root).spaces()] or found
    return [p for p in found if p.is_file()]


def serve(
    run_dir: str | Path, port: int = 0, open_browser: bool = False
) -> tuple[ThreadingHTTPServer, str]:
    """Serve ``run_dir`` on 127.0.0.1 from a background thread; return ``(server, url)``.

    ``url`` is the page of the run's first space. ``port=0`` picks a free port. Stop the
    server with ``server.shutdown(); server.server_close()``.

    Raises:
        LatentAtlasError: the directory has no ``viewer.html`` or the port cannot be bound
            (``ConfigError`` for a port outside 0..65535).
    """
    server, urls = _serve(run_dir, port)
    if open_browser:
        webbrowser.open(urls[0])
    return server, urls[0]


def _serve(run_dir: str | Path, port: int) -> tuple[ThreadingHTTPServer, list[str]]:
    root = Path(run_dir)
    if not 0 <= port <= 65535:
        raise ConfigError(f"port must lie in 0..65535 (0: any free port), got {port}")
    found = pages(root)
    if not found:
        raise LatentAtlasError(f"{root} has no {VIEWER_FILE}; build it first (build_viewer)")
    handler = functools.partial(_RunHandler, directory=str(root.resolve()))
    try:
        server = ThreadingHTTPServer((HOST, port), handler)
    except OSError as exc:
        raise LatentAtlasError(f"cannot serve on {HOST}:{port}: {exc.strerror}") from None
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="latent-atlas-viewer", daemon=True)
    thread.start()
    base = f"http://{HOST}:{server.server_address[1]}/"
    urls = [base + urllib.parse.quote(p.relative_to(root).as_posix()) for p in found]
    return server, urls


def serve_forever(run_dir: str | Path, port: int = 0, open_browser: bool = False) -> None:
    """Serve ``run_dir`` until Ctrl-C, after printing the URL of each space's page."""
    server, urls = _serve(run_dir, port)
    print(f"viewer at {urls[0]} (Ctrl-C to stop)", flush=True)
    for url in urls[1:]:
        print(f"  another space: {url}", flush=True)
    if open_browser:
        webbrowser.open(urls[0])
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
