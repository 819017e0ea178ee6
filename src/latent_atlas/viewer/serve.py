"""A tiny local web server for a run directory (the viewer also opens straight from disk).

It binds to 127.0.0.1 only, serves the files of one run directory (no directory listings, no
caching) and logs nothing; ``open_browser`` opens the page with :mod:`webbrowser` only when
asked.
"""

from __future__ import annotations

import functools
import threading
import webbrowser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from latent_atlas.errors import ConfigError, LatentAtlasError
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


def serve(
    run_dir: str | Path, port: int = 0, open_browser: bool = False
) -> tuple[ThreadingHTTPServer, str]:
    """Serve ``run_dir`` on 127.0.0.1 from a background thread; return ``(server, url)``.

    ``port=0`` picks a free port. Stop it with ``server.shutdown(); server.server_close()``.

    Raises:
        LatentAtlasError: the directory has no ``viewer.html`` or the port cannot be bound
            (``ConfigError`` for a port outside 0..65535).
    """
    root = Path(run_dir)
    if not 0 <= port <= 65535:
        raise ConfigError(f"port must lie in 0..65535 (0: any free port), got {port}")
    if not (root / VIEWER_FILE).is_file():
        raise LatentAtlasError(f"{root} has no {VIEWER_FILE}; build it first (build_viewer)")
    handler = functools.partial(_RunHandler, directory=str(root.resolve()))
    try:
        server = ThreadingHTTPServer((HOST, port), handler)
    except OSError as exc:
        raise LatentAtlasError(f"cannot serve on {HOST}:{port}: {exc.strerror}") from None
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="latent-atlas-viewer", daemon=True)
    thread.start()
    url = f"http://{HOST}:{server.server_address[1]}/{VIEWER_FILE}"
    if open_browser:
        webbrowser.open(url)
    return server, url


def serve_forever(run_dir: str | Path, port: int = 0, open_browser: bool = False) -> None:
    """Serve ``run_dir`` until Ctrl-C, after printing the page's URL."""
    server, url = serve(run_dir, port, open_browser)
    print(f"viewer at {url} (Ctrl-C to stop)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
