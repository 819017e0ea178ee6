"""A tiny local web server for a run directory (the viewer also opens straight from disk).

It binds to 127.0.0.1 only, serves the files of one run directory (no directory listings, no
caching) and logs nothing. It answers only requests addressed to its own loopback name and port
(a defence against DNS rebinding), serves only regular files whose real path lies inside the run
directory, and gives every malformed request a 4xx status line. ``open_browser`` opens the page
with :mod:`webbrowser` only when asked. A run of several latent spaces has one page per space
(``spaces/<name>/viewer.html`` beside the first space's ``viewer.html``): the URL is the first
one's, and ``serve_forever`` prints every page's.
"""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import functools
import os
import re
import stat
import threading
import urllib.parse
import webbrowser
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from latent_atlas.errors import ConfigError, LatentAtlasError
from latent_atlas.runs import MANIFEST, RunDir
from latent_atlas.viewer.build import VIEWER_FILE

HOST = "127.0.0.1"


MAX_TARGET = 8192  # characters of a request target; longer ones get 414
MAX_HEADER_BYTES = 65536  # all header lines of a request together; more gets 431
ALLOWED_METHODS = ("GET", "HEAD")
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
_TARGET_CHARS = re.compile(r"[!-~]*")  # printable ASCII: the rest must come percent-encoded
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")  # control characters and path separators
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)


class _Refused(Exception):
    """A request that gets an error status instead of a file."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class _RunHandler(SimpleHTTPRequestHandler):
    """Regular files of one directory, to loopback clients only; no listings, caching or logs.

    A request is answered only when its ``Host`` header names this server on the loopback
    interface (``127.0.0.1``, ``localhost`` or ``[::1]`` with the served port; 421 otherwise),
    a defence against DNS rebinding. Only GET and HEAD are served (405 otherwise). The path
    must be a plain percent-encoded UTF-8 path: no ``.`` or ``..`` segments, empty segments,
    NUL or control characters, backslashes or encoded slashes (400); it names a regular file
    whose real path, after following symlinks, lies inside the served directory (404
    otherwise, directories included). Every malformed request gets a status line, never a
    dropped connection, and nothing is printed.
    """

    default_request_version = "HTTP/1.0"  # errors found before the version still get a status line
    timeout = 30  # seconds a silent client may hold its connection (and thread)

    def handle_one_request(self) -> None:
        self.command, self.requestline, self.request_version = None, "", "HTTP/1.0"
        self._allow = self._responded = False
        self._file: tuple[str, str] | None = None
        try:
            super().handle_one_request()
        except OSError:  # the client hung up or timed out: nobody to answer
            self.close_connection = True
        except Exception:
            self.close_connection = True
            if not self._responded:
                with contextlib.suppress(Exception):
                    self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR)

    def parse_request(self) -> bool:
        words = len(str(self.raw_requestline, "iso-8859-1").split())
        if words in (0, 2):  # HTTP/0.9 has no headers, so no Host header to check
            self.close_connection = True
            message = "HTTP/0.9 requests are not served" if words else "empty request line"
            self.send_error(HTTPStatus.BAD_REQUEST, message)
            return False
        if not super().parse_request():
            return False
        try:
            self._check_headers()
            if self.command not in ALLOWED_METHODS:
                self._allow = True
                raise _Refused(HTTPStatus.METHOD_NOT_ALLOWED, "only GET and HEAD are served")
            self._file = self._resolve(self.path)
        except _Refused as refused:
            self.close_connection = True
            self.send_error(refused.code, refused.message)
            return False
        return True

    def _check_headers(self) -> None:
        if sum(len(k) + len(v) + 4 for k, v in self.headers.items()) > MAX_HEADER_BYTES:
            raise _Refused(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "headers too large")
        hosts = self.headers.get_all("Host") or []
        if len(hosts) != 1:
            raise _Refused(HTTPStatus.BAD_REQUEST, "one Host header is required")
        port = self.server.server_address[1]
        allowed = {f"{name}:{port}" for name in _LOOPBACK_NAMES}
        if port == 80:
            allowed.update(_LOOPBACK_NAMES)
        if hosts[0].strip().lower() not in allowed:
            raise _Refused(HTTPStatus.MISDIRECTED_REQUEST, "not addressed to this server")

    def _resolve(self, target: str) -> tuple[str, str]:
        """``(real path, path as asked)`` of the file a request target names, or _Refused."""
        if len(target) > MAX_TARGET:
            raise _Refused(HTTPStatus.REQUEST_URI_TOO_LONG, "request target too long")
        if not target.startswith("/") or not _TARGET_CHARS.fullmatch(target):
            raise _Refused(HTTPStatus.BAD_REQUEST, "not a percent-encoded path")
        path = target.split("?", 1)[0].split("#", 1)[0]
        if _BAD_PERCENT.search(path):
            raise _Refused(HTTPStatus.BAD_REQUEST, "malformed percent-encoding")
        segments = path[1:].split("/")
        names = []
        for i, segment in enumerate(segments):
            try:
                name = urllib.parse.unquote(segment, errors="strict")
            except UnicodeDecodeError:
                raise _Refused(HTTPStatus.BAD_REQUEST, "the path is not UTF-8") from None
            if name == "" and i == len(segments) - 1:
                raise _Refused(HTTPStatus.NOT_FOUND, "no directory listings")
            if name in ("", ".", "..") or _BAD_NAME.search(name):
                raise _Refused(HTTPStatus.BAD_REQUEST, "not a plain path")
            names.append(name)
        asked = os.path.join(self.directory, *names)
        try:
            real = os.path.realpath(asked)
            inside = os.path.commonpath([self.directory, real]) == self.directory
            mode = os.stat(real).st_mode if inside else 0
        except (OSError, ValueError):
            raise _Refused(HTTPStatus.NOT_FOUND, "File not found") from None
        if stat.S_ISDIR(mode) and inside:
            raise _Refused(HTTPStatus.NOT_FOUND, "no directory listings")
        if not stat.S_ISREG(mode):  # outside the directory, a FIFO, a device ...
            raise _Refused(HTTPStatus.NOT_FOUND, "File not found")
        return real, asked

    def send_head(self) -> Any:
        assert self._file is not None  # parse_request refused the request otherwise
        real, asked = self._file
        try:
            f = os.fdopen(os.open(real, _OPEN_FLAGS), "rb")
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        try:
            fs = os.fstat(f.fileno())
            if not stat.S_ISREG(fs.st_mode):  # swapped since it was checked
                f.close()
                self.send_error(HTTPStatus.NOT_FOUND, "File not found")
                return None
            if self._not_modified(fs.st_mtime):
                f.close()
                self.send_response(HTTPStatus.NOT_MODIFIED)
                self.end_headers()
                return None
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-type", self.guess_type(asked))
            self.send_header("Content-Length", str(fs.st_size))
            self.send_header("Last-Modified", self.date_time_string(fs.st_mtime))
            self.end_headers()
            return f
        except BaseException:
            f.close()
            raise

    def _not_modified(self, mtime: float) -> bool:
        """Whether an ``If-Modified-Since`` header allows a 304 (as the stdlib server does)."""
        if "If-Modified-Since" not in self.headers or "If-None-Match" in self.headers:
            return False
        try:
            ims = email.utils.parsedate_to_datetime(self.headers["If-Modified-Since"])
        except (TypeError, IndexError, OverflowError, ValueError):
            return False
        if ims.tzinfo is None:
            ims = ims.replace(tzinfo=datetime.UTC)
        if ims.tzinfo is not datetime.UTC:
            return False
        modified = datetime.datetime.fromtimestamp(mtime, datetime.UTC)
        return modified.replace(microsecond=0) <= ims

    def do_GET(self) -> None:
        f = self.send_head()
        if f:
            try:
                self.copyfile(f, self.wfile)
            except OSError:  # the client hung up
                self.close_connection = True
            finally:
                f.close()

    def list_directory(self, path: Any) -> None:
        self.send_error(HTTPStatus.NOT_FOUND, "no directory listings")
        return None

    def send_response_only(self, code: int, message: str | None = None) -> None:
        self._responded = True
        super().send_response_only(code, message)

    def end_headers(self) -> None:
        if self._allow:
            self.send_header("Allow", ", ".join(ALLOWED_METHODS))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # log nothing, tracebacks included (a client that hangs up is no news)


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
    handler = functools.partial(_RunHandler, directory=os.path.realpath(root))
    try:
        server = _Server((HOST, port), handler)
    except OSError as exc:
        raise LatentAtlasError(f"cannot serve on {HOST}:{port}: {exc.strerror}") from None
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
