"""The local viewer server against hostile and broken requests (issue 18, items 2 and 4).

Every server here binds to 127.0.0.1; every client socket has a timeout and reads a bounded
number of bytes, so no test can hang.
"""

from __future__ import annotations

import functools
import importlib
import os
import socket
import struct
import threading
import time
import urllib.parse
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from latent_atlas.viewer import serve

PAGE = b"<!doctype html><title>page</title>the page"
SECRET = b"SECRET-OUTSIDE-THE-RUN"
EVIL_FILE = "atlas_<svg onload=alert(4)> é.png"
TIMEOUT = 5.0
MAX_READ = 1 << 22  # no response here is longer than this


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A run directory with a page, a second space, odd names and links in and out of it."""
    tmp_path = tmp_path_factory.mktemp("serve")
    root = tmp_path / "run <img src=y>"
    root.mkdir()
    (root / "viewer.html").write_bytes(PAGE)
    (root / "metrics.csv").write_text("method,custom_score\npca,0.875\n")
    (root / EVIL_FILE).write_bytes(b"\x89PNG fake")
    (root / "spaces" / "two").mkdir(parents=True)
    (root / "spaces" / "two" / "viewer.html").write_bytes(b"second page")
    (root / "sub").mkdir()
    (root / "sub" / "index.html").write_bytes(b"an index page")
    (root / "sub" / "f.txt").write_bytes(b"sub file")
    (root / "big.bin").write_bytes(b"x" * (8 << 20))
    if hasattr(os, "mkfifo"):
        os.mkfifo(root / "fifo")
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_bytes(SECRET)
    links = hasattr(os, "symlink")
    if links:
        os.symlink(tmp_path / "secret.txt", root / "link.txt")
        os.symlink(tmp_path / "outside", root / "linkdir")
        os.symlink(root / "link.txt", root / "chain.txt")  # a link to a link that leaves
        os.symlink("../../secret.txt", root / "sub" / "rel.txt")
        os.symlink("/etc/passwd", root / "passwd")
        os.symlink(root / "metrics.csv", root / "inside.csv")  # stays inside: served
    server, url = serve(root)
    port = server.server_address[1]
    try:
        yield {"root": root, "tmp": tmp_path, "port": port, "url": url, "links": links}
    finally:
        server.shutdown()
        server.server_close()


def _raw(port: int, data: bytes, linger_reset: bool = False) -> bytes:
    """Send ``data`` to 127.0.0.1:port and read the whole answer (bounded in time and size)."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(data)
        chunks, size = [], 0
        deadline = time.monotonic() + TIMEOUT
        while size < MAX_READ and time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                break
            except TimeoutError:
                raise AssertionError(f"no answer within {TIMEOUT}s to {data[:80]!r}") from None
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)


def _request(
    port: int,
    target: bytes | str,
    method: bytes = b"GET",
    host: bytes | str | None = "",
    extra: bytes = b"",
    version: bytes = b"HTTP/1.1",
) -> bytes:
    if isinstance(target, str):
        target = target.encode("latin-1")
    if host == "":
        host = f"127.0.0.1:{port}"
    if isinstance(host, str):
        host = host.encode("latin-1")
    head = method + b" " + target + b" " + version + b"\r\n"
    if host is not None:
        head += b"Host: " + host + b"\r\n"
    return _raw(port, head + extra + b"Connection: close\r\n\r\n")


def _parse(response: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names, last one wins) and body of an HTTP/1.x response."""
    assert response.startswith(b"HTTP/1."), f"no status line: {response[:120]!r}"
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def _no_traceback(capfd) -> None:
    time.sleep(0.05)  # let the handler thread finish writing, if it writes at all
    out, err = capfd.readouterr()
    assert err == "", err[-2000:]
    assert out == "", out[-2000:]


# -- legitimate requests: exactly as the plain file server answered them ------------------------


class _Before(SimpleHTTPRequestHandler):
    """What serve.py answered before (the stdlib file server with two extra headers)."""

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def log_message(self, format, *args) -> None:
        pass


@pytest.fixture(scope="module")
def before(site):
    handler = functools.partial(_Before, directory=str(site["root"].resolve()))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


LEGIT = [
    ("GET", "/viewer.html", "127.0.0.1:{port}", b""),
    ("GET", "/viewer.html?lang=en&x=%00#frag", "127.0.0.1:{port}", b""),
    ("GET", "/metrics.csv", "localhost:{port}", b""),
    ("GET", "/spaces/two/viewer.html", "LOCALHOST:{port}", b""),
    ("GET", "/spaces/two/viewer.html", "[::1]:{port}", b""),
    ("GET", "/sub/f.txt", "127.0.0.1:{port}", b""),
    ("GET", "/" + urllib.parse.quote(EVIL_FILE), "127.0.0.1:{port}", b""),
    ("HEAD", "/viewer.html", "127.0.0.1:{port}", b""),
    ("GET", "/viewer.html", "127.0.0.1:{port}", b"Range: bytes=0-3\r\n"),
    ("GET", "/viewer.html", "127.0.0.1:{port}", b"If-Modified-Since: garbage\r\n"),
    (
        "GET",
        "/viewer.html",
        "127.0.0.1:{port}",
        b"If-Modified-Since: Sun, 01 Jan 2090 00:00:00 GMT\r\n",
    ),
    ("GET", "/missing.html", "127.0.0.1:{port}", b""),
]


@pytest.mark.parametrize(("method", "target", "host", "extra"), LEGIT)
def test_legitimate_requests_are_answered_as_before(site, before, method, target, host, extra):
    def answer(port):
        status, headers, body = _parse(
            _request(port, target, method.encode(), host.format(port=port), extra)
        )
        headers.pop("date", None)
        return status, headers, body

    assert answer(site["port"]) == answer(before)


def test_the_served_page_is_the_file(site):
    status, headers, body = _parse(_request(site["port"], "/viewer.html"))
    assert (status, body) == (200, PAGE)
    assert headers["content-type"] == "text/html"
    assert headers["content-length"] == str(len(PAGE))
    assert headers["cache-control"] == "no-store"
    assert site["url"] == f"http://127.0.0.1:{site['port']}/viewer.html"


def test_head_sends_the_headers_only(site):
    status, headers, body = _parse(_request(site["port"], "/viewer.html", b"HEAD"))
    assert (status, body) == (200, b"")
    assert headers["content-length"] == str(len(PAGE))


def test_a_range_request_gets_the_whole_file(site):
    """Ranges are not supported; the whole file with 200 is a correct answer to one."""
    for spec in (b"bytes=0-3", b"bytes=9-1", b"bytes=-99999999999999999999", b"nonsense"):
        status, _, body = _parse(
            _request(site["port"], "/viewer.html", extra=b"Range: " + spec + b"\r\n")
        )
        assert (status, body) == (200, PAGE)


# -- item 2: the Host header (DNS rebinding) --------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:{port}",
        "evil.example",
        "127.0.0.1:{other}",
        "localhost:{other}",
        "127.0.0.1",
        "localhost",
        "127.0.0.2:{port}",
        "0.0.0.0:{port}",
        "localhost.:{port}",
        "localhost.evil.example:{port}",
        "127.0.0.1.evil.example:{port}",
        "user@127.0.0.1:{port}",
        "127.0.0.1:{port}@evil.example",
        "127.0.0.1:{port}:{port}",
        "127.0.0.1:0{port}",
        "[::1]:{other}",
        "::1:{port}",
        "[::ffff:127.0.0.1]:{port}",
        "2130706433:{port}",
        "127.0.0.1:{port} evil.example",
        "",
    ],
)
def test_a_foreign_host_header_is_refused(site, host, capfd):
    port = site["port"]
    other = 1 if port != 1 else 2
    response = _request(port, "/viewer.html", host=host.format(port=port, other=other).encode())
    status, _, body = _parse(response)
    assert status in (400, 403, 421), (host, status)
    assert PAGE not in body
    _no_traceback(capfd)


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}",
                                  "LocalHost:{port}", " 127.0.0.1:{port} "])  # fmt: skip
def test_the_loopback_names_of_the_port_are_answered(site, host):
    status, _, body = _parse(
        _request(site["port"], "/viewer.html", host=host.format(port=site["port"]))
    )
    assert (status, body) == (200, PAGE)


@pytest.mark.parametrize("version", [b"HTTP/1.1", b"HTTP/1.0"])
def test_a_request_without_a_host_header_is_refused(site, version):
    status, _, body = _parse(_request(site["port"], "/viewer.html", host=None, version=version))
    assert status in (400, 403, 421) and PAGE not in body


def test_a_second_host_header_is_refused(site):
    extra = b"Host: evil.example\r\n"
    status, _, body = _parse(_request(site["port"], "/viewer.html", extra=extra))
    assert status in (400, 403, 421) and PAGE not in body


def test_an_http09_request_without_headers_gets_no_page(site):
    """HTTP/0.9 has no Host header at all: it must not be a way round the Host check."""
    for data in (b"GET /viewer.html\r\n\r\n", b"GET /viewer.html\r\n"):
        response = _raw(site["port"], data)
        assert PAGE not in response
        assert _parse(response)[0] == 400


# -- item 2: symlinks and directories ---------------------------------------------------------


@pytest.mark.parametrize(
    "target", ["/link.txt", "/linkdir/secret.txt", "/chain.txt", "/sub/rel.txt", "/passwd"]
)
def test_links_that_leave_the_run_directory_are_not_followed(site, target, capfd):
    if not site["links"]:
        pytest.skip("no symlinks here")
    status, _, body = _parse(_request(site["port"], target))
    assert status == 404 and SECRET not in body and b"root:" not in body
    _no_traceback(capfd)


def test_a_link_that_stays_inside_is_served(site):
    if not site["links"]:
        pytest.skip("no symlinks here")
    status, _, body = _parse(_request(site["port"], "/inside.csv"))
    assert status == 200 and body.startswith(b"method,custom_score")


@pytest.mark.parametrize("target", ["/", "/sub", "/sub/", "/spaces", "/spaces/", "/spaces/two/"])
def test_directories_are_never_listed_nor_their_index_served(site, target):
    status, headers, body = _parse(_request(site["port"], target))
    assert status == 404 and "location" not in headers
    assert b"an index page" not in body and b"viewer.html" not in body


def test_a_fifo_in_the_run_directory_does_not_hang_the_server(site):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    assert _parse(_request(site["port"], "/fifo"))[0] == 404


# -- item 4: malformed request targets --------------------------------------------------------


BAD_TARGETS = [
    "/%00",
    "/viewer.html%00",
    "/viewer.html%00.png",
    "/%00/../viewer.html",
    "/%zz",
    "/viewer%2",
    "/viewer.html%",
    "/%ff",
    "/%c0%ae%c0%ae/secret.txt",  # overlong UTF-8 for ".."
    "/%ed%a0%80",  # a lone surrogate
    "/" + "a" * 10000,
    "/" + "a/" * 3000 + "viewer.html",
    "/" + "%41" * 5000,
    "/../secret.txt",
    "/../viewer.html",
    "/sub/../viewer.html",
    "/./viewer.html",
    "/sub/./f.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E/%2e%2e/secret.txt",
    "/.%2e/secret.txt",
    "/sub/%2e%2e/viewer.html",
    "/..%2fsecret.txt",
    "/..%2Fsecret.txt",
    "/sub%2f..%2f..%2fsecret.txt",
    "//etc/passwd",
    "///etc/passwd",
    "/%2fetc%2fpasswd",
    "/sub//f.txt",
    "/..\\secret.txt",
    "/sub\\f.txt",
    "/..%5csecret.txt",
    "/%5c..%5csecret.txt",
    "viewer.html",
    "../secret.txt",
    "*",
    "http://127.0.0.1:{port}/viewer.html",
    "http://evil.example/viewer.html",
    "/sub%0d%0aSet-Cookie:%20x=1",
    "/vie%01wer.html",
    "/viewer.html%7f",
    "/viewer\x01.html",
    "/\xe9",
]


@pytest.mark.parametrize("target", BAD_TARGETS, ids=[ascii(t)[:60] for t in BAD_TARGETS])
def test_a_malformed_target_gets_a_client_error_and_no_traceback(site, target, capfd):
    target = target.replace("{port}", str(site["port"]))
    response = _request(site["port"], target)
    status, headers, body = _parse(response)
    assert status in (400, 404, 414), (target, status)
    assert SECRET not in body and PAGE not in body and b"root:" not in body
    assert "set-cookie" not in headers and "location" not in headers
    _no_traceback(capfd)


def test_nul_byte_is_answered_with_a_status_line(site, capfd):
    """The issue's example: the connection used to drop with a traceback on the server."""
    status, _, _ = _parse(_request(site["port"], "/%00"))
    assert status in (400, 404)
    _no_traceback(capfd)


# -- methods, versions, headers ---------------------------------------------------------------


@pytest.mark.parametrize(
    "method",
    [b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"TRACE", b"CONNECT", b"PROPFIND",
     b"get", b"FOO", b"G\x00T"],
)  # fmt: skip
def test_other_methods_are_not_allowed(site, method, capfd):
    extra = b"Content-Length: 4\r\n" if method in (b"POST", b"PUT", b"PATCH") else b""
    status, headers, body = _parse(_request(site["port"], "/viewer.html", method, extra=extra))
    assert status == 405 and PAGE not in body
    assert headers["allow"] == "GET, HEAD"
    _no_traceback(capfd)


def test_a_foreign_host_is_refused_whatever_the_method(site):
    for method in (b"POST", b"HEAD", b"OPTIONS"):
        status, _, _ = _parse(_request(site["port"], "/viewer.html", method, host="evil.example"))
        assert status in (403, 421)


@pytest.mark.parametrize(
    "data",
    [
        b"GET /viewer.html HTTP/9.9\r\nHost: 127.0.0.1:{port}\r\n\r\n",
        b"GET /viewer.html HTTP/1.x\r\nHost: 127.0.0.1:{port}\r\n\r\n",
        b"GET /viewer.html FTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n",
        b"\x00\x01\x02\x03\r\n\r\n",
        b"\r\n\r\n",
        b"GET / viewer.html HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 tls hello\r\n\r\n",
    ],
)
def test_a_malformed_request_line_gets_a_status_line(site, data, capfd):
    response = _raw(site["port"], data.replace(b"{port}", str(site["port"]).encode()))
    status, _, body = _parse(response)
    assert status in (400, 505) and PAGE not in body
    _no_traceback(capfd)


@pytest.mark.parametrize(
    "extra",
    [
        b"X-Long: " + b"a" * 70000 + b"\r\n",
        b"".join(b"X-%d: 1\r\n" % i for i in range(150)),
        b"".join(b"X-%d: " % i + b"b" * 40000 + b"\r\n" for i in range(20)),  # 800 kB in all
    ],
    ids=["one-line-over-64k", "150-headers", "20-headers-of-40k"],
)
def test_oversized_headers_are_refused(site, extra, capfd):
    status, _, body = _parse(_request(site["port"], "/viewer.html", extra=extra))
    assert status in (400, 431) and PAGE not in body
    _no_traceback(capfd)


def test_a_long_but_bounded_cookie_is_still_answered(site):
    extra = b"Cookie: " + b"c" * 30000 + b"\r\n"
    assert _parse(_request(site["port"], "/viewer.html", extra=extra))[:3:2] == (200, PAGE)


def test_a_very_long_request_line_is_refused(site, capfd):
    status, _, _ = _parse(_request(site["port"], "/" + "a" * 70000))
    assert status in (400, 414)
    _no_traceback(capfd)


def test_a_client_that_hangs_up_mid_download_leaves_no_traceback(site, capfd):
    request = f"GET /big.bin HTTP/1.0\r\nHost: 127.0.0.1:{site['port']}\r\n\r\n".encode()
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", site["port"]), timeout=TIMEOUT) as s:
            s.sendall(request)
            s.recv(16)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    time.sleep(0.5)  # the server notices the reset on its next write
    assert _parse(_request(site["port"], "/viewer.html"))[0] == 200  # still serving
    _no_traceback(capfd)


def test_an_unexpected_error_is_a_500_and_prints_nothing(site, monkeypatch, capfd):
    serve_module = importlib.import_module("latent_atlas.viewer.serve")  # not the function

    def broken(self, target):
        raise RuntimeError("a bug")

    monkeypatch.setattr(serve_module._RunHandler, "_resolve", broken)
    assert _parse(_request(site["port"], "/viewer.html"))[0] == 500
    _no_traceback(capfd)
