"""Write ``viewer.html``: the page template with its CSS, JavaScript and the run's data inlined.

The page is one self-contained file: no network, no server, no external library. The run's data
sits in a ``<script type="application/json">`` block with ``<``, ``>``, ``&`` and the JavaScript
line separators escaped, so no string in it (a class name, a file name) can close the block or
become markup; the script reads it with ``JSON.parse`` and shows every string with
``textContent``. A Content-Security-Policy allows only the page's own script and style (by hash)
and ``data:`` images, so the page can make no request at all.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

from latent_atlas.fileio import save_bytes
from latent_atlas.viewer.payload import PROJECTIONS, build_payload, check_run
from latent_atlas.viewer.scores import METRICS_CSV

VIEWER_FILE = "viewer.html"
KEY_META = "latent-atlas-viewer"
TEMPLATE_FILES = ("viewer.html", "viewer.css", "viewer.js")
_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_PLACEHOLDER = re.compile(r"\{\{(CSP|KEY|CSS|JS|DATA)\}\}")


def script_json(obj: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">`` (and in JavaScript)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return re.sub("[<>&\u2028\u2029]", lambda m: _ESCAPES[m.group(0)], text)


def template(name: str) -> str:
    """One of the page templates shipped as package data."""
    return (resources.files("latent_atlas.viewer") / "templates" / name).read_text("utf-8")


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def render_html(payload: dict[str, Any], key: str = "") -> str:
    """The page for ``payload`` (see :func:`latent_atlas.viewer.payload.build_payload`)."""
    css, js = template("viewer.css"), template("viewer.js")
    for name, text, end in (("viewer.css", css, "</style"), ("viewer.js", js, "</script")):
        if end in text.lower():  # would end the inline block early
            raise RuntimeError(f"template {name} must not contain {end}")
    csp = (
        "default-src 'none'; img-src data: blob:; "
        f"style-src {_csp_hash(css)}; script-src {_csp_hash(js)}; "
        "base-uri 'none'; form-action 'none'"
    )
    parts = {"CSP": csp, "KEY": key, "CSS": css, "JS": js, "DATA": script_json(payload)}
    # one pass: text put in is never searched for placeholders again
    return _PLACEHOLDER.sub(lambda m: parts[m.group(1)], template("viewer.html"))


def viewer_key(
    run_dir: str | Path, *, max_thumbnails: int | None = 10_000, k: int = 10, seed: int = 0
) -> str:
    """A fingerprint of everything the page of ``run_dir`` is made from.

    It covers the projections table and metrics.csv (contents), the parts of the manifest the
    page shows, the size and time of the images, activations and atlas files, the build
    options, the package version and the templates.
    """
    from latent_atlas._version import __version__

    run = Path(run_dir)
    h = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        h.update(f"{label}:{len(data)}:".encode())
        h.update(data)

    for name in (PROJECTIONS, METRICS_CSV):
        path = run / name
        add(name, path.read_bytes() if path.is_file() else b"-")
    try:
        manifest = json.loads((run / "manifest.json").read_text())
    except (OSError, ValueError):
        manifest = {}
    if not isinstance(manifest, dict):
        manifest = {}
    shown = {k_: manifest.get(k_) for k_ in ("dataset", "methods", "metrics", "atlases", "latent")}
    shown["training"] = (manifest.get("training") or {}).get("test_accuracy")
    add("manifest", json.dumps(shown, sort_keys=True, default=str).encode())
    files = [run / "images.npy", run / "activations.npy", *sorted(run.glob("atlas_*.png"))]
    for path in files:
        st = path.stat() if path.is_file() else None
        add(path.name, f"{st.st_size}:{st.st_mtime_ns}".encode() if st else b"-")
    options = {"max_thumbnails": max_thumbnails, "k": k, "seed": seed, "version": __version__}
    add("options", json.dumps(options, sort_keys=True).encode())
    for name in TEMPLATE_FILES:
        add(name, template(name).encode())
    return h.hexdigest()[:20]


def build_viewer(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    max_thumbnails: int | None = 10_000,
    k: int = 10,
    seed: int = 0,
) -> Path:
    """Write the interactive viewer of a run directory; return its path.

    Args:
        run_dir: a run directory with ``manifest.json`` and ``projections.parquet``.
        out: where to write the page (default ``run_dir/viewer.html``); written atomically.
        max_thumbnails: at most this many points (a seeded sample when there are more) get a
            thumbnail and latent-space neighbours; every point is drawn (above
            ``payload.MAX_POINTS`` points, a seeded sample of that many). ``None``: all.
        k: neighbours per point, found in the original latent space (``activations.npy``).
        seed: seed of the thumbnail sample and of the drawing order.

    Raises:
        LatentAtlasError: ``run_dir`` is not a run directory (no manifest or projections).
    """
    run = Path(run_dir)
    payload = build_payload(run, max_thumbnails=max_thumbnails, k=k, seed=seed)
    key = viewer_key(run, max_thumbnails=max_thumbnails, k=k, seed=seed)
    target = Path(out) if out is not None else run / VIEWER_FILE
    return save_bytes(target, render_html(payload, key).encode("utf-8"))


def stored_key(page: str | Path) -> str | None:
    """The fingerprint a viewer page was built with, or None (no page, or not ours)."""
    try:
        with open(page, encoding="utf-8", errors="replace") as fh:
            head = fh.read(4096)
    except OSError:
        return None
    found = re.search(rf'<meta name="{KEY_META}" content="([0-9a-f]*)"', head)
    return found.group(1) if found else None


def ensure_viewer(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    max_thumbnails: int | None = 10_000,
    k: int = 10,
    seed: int = 0,
) -> tuple[Path, bool]:
    """Build the viewer when it is missing or stale; return ``(path, rebuilt)``."""
    run = Path(run_dir)
    check_run(run)  # a clear error for a directory that is not a run
    target = Path(out) if out is not None else run / VIEWER_FILE
    key = viewer_key(run, max_thumbnails=max_thumbnails, k=k, seed=seed)
    if target.is_file() and stored_key(target) == key:
        return target, False
    options = {"max_thumbnails": max_thumbnails, "k": k, "seed": seed}
    return build_viewer(run, target, **options), True
