"""Shared fixtures: small data made on the fly; the real data in ../shared only when present."""

from __future__ import annotations

import http.server
import os
import threading
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CHROMIUM = Path("/usr/bin/chromium")  # Debian's (apt-get install chromium)
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def shared_data(name: str) -> Path:
    """Path of a data set in ../shared/data, or skip the test when it is not there."""
    path = SHARED / name
    if not path.is_dir():
        pytest.skip(f"../shared/data/{name} is not available")
    return path


def make_images(n: int, size: int = 12, channels: int = 3, n_classes: int = 4, seed: int = 0):
    """Images whose class decides which quadrant is bright: easy to learn, quick to train."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % n_classes
    images = rng.integers(0, 60, size=(n, size, size, channels), dtype=np.uint8)
    h = size // 2
    for i, lab in enumerate(labels):
        r, c = divmod(int(lab) % 4, 2)
        images[i, r * h : (r + 1) * h, c * h : (c + 1) * h, :] += 180
    return images, labels.astype(np.int64)


@pytest.fixture
def tiny_npz(tmp_path: Path) -> Path:
    """A 4-class .npz data set of 12×12 RGB images (160 train, 80 test)."""
    x_train, y_train = make_images(160, seed=1)
    x_test, y_test = make_images(80, seed=2)
    path = tmp_path / "tiny.npz"
    np.savez(
        path,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        class_names=np.array(["north-west", "north-east", "south-west", "south-east"]),
    )
    return path


@pytest.fixture
def digits_features():
    """Features of the digits data set: 64-d pixel vectors and labels (no model needed)."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return x.astype(np.float32), y.astype(np.int64)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Never read or write the user's real cache in tests."""
    monkeypatch.setenv("LATENT_ATLAS_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("MPLBACKEND", os.environ.get("MPLBACKEND", "Agg"))


class LoopbackServer:
    """An HTTP server on 127.0.0.1 for the length of a ``with`` block (no network).

    ``reply(handler)`` answers each GET; ``url`` ends in ``name``.
    """

    def __init__(self, reply, name: str = "a.tar.gz", protocol: str = "HTTP/1.0"):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = protocol

            def do_GET(self):
                reply(self)

            def log_message(self, *args):
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def serving(payload: bytes, name: str = "a.tar.gz") -> LoopbackServer:
    """A loopback server that answers every GET with ``payload``."""

    def reply(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    return LoopbackServer(reply, name)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's) through Playwright; skips when either is missing."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.is_file():
        pytest.skip("/usr/bin/chromium is not installed (apt-get install chromium)")
    pw = sync_api.sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    except Exception as exc:  # pragma: no cover - depends on the machine
        pw.stop()
        pytest.skip(f"headless Chromium does not start: {exc}")
    yield b
    b.close()
    pw.stop()


def wait_js(page, expression: str, timeout: float = 60.0) -> None:
    """Poll ``expression`` in ``page`` until it is truthy (the viewer's Content-Security-Policy
    forbids the eval that Playwright's ``wait_for_function`` uses while polling)."""
    import time

    end = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > end:
            raise TimeoutError(f"still false after {timeout} s: {expression}")
        page.wait_for_timeout(15)
