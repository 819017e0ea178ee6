"""Write ``viewer.html``: the page template with its CSS, JavaScript and the data inlined.

A page shows one :class:`~latent_atlas.viewer.data.ViewerData`: one latent space of a run
directory (written into that space's folder) or arrays given in memory (written where asked).
Its ``<meta>`` key is a :func:`~latent_atlas.runs.fingerprint` of what the page is made from
(the data's arrays by content, the options, the package version and the templates), so
:func:`ensure_viewer` rebuilds a page exactly when it would come out different.

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
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

from latent_atlas._version import __version__
from latent_atlas.errors import ConfigError
from latent_atlas.fileio import save_bytes
from latent_atlas.runs import RunDir, SpaceDir, fingerprint
from latent_atlas.viewer.data import ViewerData
from latent_atlas.viewer.payload import (
    MAX_POINTS,
    MAX_THUMBNAILS,
    Selection,
    check_options,
    payload_of,
    select,
)

VIEWER_FILE = "viewer.html"
KEY_META = "latent-atlas-viewer"
SCRIPT_FILES = ("render.js", "viewer.js")  # one inline script, in this order
TEMPLATE_FILES = ("viewer.html", "viewer.css", *SCRIPT_FILES)
_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_PLACEHOLDER = re.compile(r"\{\{(CSP|KEY|CSS|JS|DATA|EXTRA)\}\}")
#: what the page reads after its first render (a block after the script: parsing the large
#: thumbnail data never delays the map)
EXTRA_KEYS = ("thumbs", "neighbours", "atlases")


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
    css, js = template("viewer.css"), "\n".join(template(name) for name in SCRIPT_FILES)
    for name, text, end in (("viewer.css", css, "</style"), ("viewer.js", js, "</script")):
        if end in text.lower():  # would end the inline block early
            raise RuntimeError(f"template {name} must not contain {end}")
    csp = (
        "default-src 'none'; img-src data: blob:; "
        f"style-src {_csp_hash(css)}; script-src {_csp_hash(js)}; "
        "base-uri 'none'; form-action 'none'"
    )
    data = {k: v for k, v in payload.items() if k not in EXTRA_KEYS}
    extra = {k: payload.get(k) for k in EXTRA_KEYS}
    parts = {
        "CSP": csp,
        "KEY": key,
        "CSS": css,
        "JS": js,
        "DATA": script_json(data),
        "EXTRA": script_json(extra),
    }
    # one pass: text put in is never searched for placeholders again
    return _PLACEHOLDER.sub(lambda m: parts[m.group(1)], template("viewer.html"))


def page_data(page: str | Path) -> dict[str, Any]:
    """The data a built page carries (both its JSON blocks, as one dict): for tests, benchmarks
    and anyone who wants a page's numbers back."""
    html = Path(page).read_text("utf-8")
    out: dict[str, Any] = {}
    for block in ("la-data", "la-extra"):
        found = re.search(
            rf'<script type="application/json" id="{block}">(.*?)</script>', html, re.S
        )
        if found:
            out.update(json.loads(found.group(1)))
    return out


def stored_key(page: str | Path) -> str | None:
    """The fingerprint a viewer page was built with, or None (no page, or not ours)."""
    try:
        with open(page, encoding="utf-8", errors="replace") as fh:
            head = fh.read(4096)
    except OSError:
        return None
    found = re.search(rf'<meta name="{KEY_META}" content="([0-9a-f]*)"', head)
    return found.group(1) if found else None


# -- what a page is made from ---------------------------------------------------------------------


def viewer_key(
    data: ViewerData,
    *,
    max_thumbnails: int | None = MAX_THUMBNAILS,
    k: int = 10,
    seed: int | None = None,
    max_points: int | None = MAX_POINTS,
) -> str:
    """A fingerprint of everything the page of ``data`` is made from (see :func:`_key`)."""
    check_options(k, max_thumbnails, max_points)
    chosen = select(
        data, max_thumbnails=max_thumbnails, seed=seed, max_points=max_points, neighbours=k > 0
    )
    return _key(data, chosen, {"max_thumbnails": max_thumbnails, "k": k, "max_points": max_points})


def _key(data: ViewerData, chosen: Selection, options: dict[str, Any]) -> str:
    """The data's arrays by content (of images and features only the rows the page shows),
    its names, scores, atlases (their files' bytes) and notes; the options with the seed, the
    package version and the templates."""
    content = {
        "arrays": {
            "embeddings": data.embeddings,
            "labels": data.labels,
            "predictions": data.predictions,
            "confidence": data.confidence,
            "index": data.index,
            "images": chosen.images,
            "features": chosen.features,
        },
        "trust": None
        if data.trust is None
        else [data.trust.sample, data.trust.k, data.trust.kept, data.trust.reading],
        "class_names": data.class_names,
        "scores": [data.scores, data.score_sources],
        "atlases": [
            [a.name, a.file, a.details, a.png]  # (bytes and files: by content)
            for a in data.atlases
        ],
        "info": [data.title, data.info, data.notes],
        "options": {**options, "seed": chosen.seed, "version": __version__},
        "templates": [template(name) for name in TEMPLATE_FILES],
    }
    return fingerprint(content)


# -- building pages -----------------------------------------------------------------------------


def build_viewer(
    source: str | os.PathLike[str] | RunDir | ViewerData,
    out: str | Path | None = None,
    *,
    space: str | None = None,
    max_thumbnails: int | None = MAX_THUMBNAILS,
    k: int = 10,
    seed: int | None = None,
) -> Path:
    """Write an interactive viewer page; return its path.

    Args:
        source: a run directory (path or :class:`~latent_atlas.runs.RunDir`), whose space
            ``space`` (default: the first) is shown, or a :class:`ViewerData`.
        out: where to write the page, atomically (default for a run: the space's folder's
            ``viewer.html``, for a one-space run ``run_dir/viewer.html``; required for a
            ``ViewerData``).
        max_thumbnails: at most this many points (a seeded sample when there are more) get a
            thumbnail and latent-space neighbours; every point is drawn (above
            ``payload.MAX_POINTS`` points, a seeded sample of that many). ``None``: all.
        k: neighbours per point, found in the latent space (the space's ``activations.npy``).
        seed: seed of the samples and of the drawing order; ``None``: the run's seed (for a
            ``ViewerData``, its ``seed``, else 0).

    Raises:
        LatentAtlasError: ``source`` is no run directory, or the space has no maps yet.
        ConfigError: no ``out`` for a ``ViewerData``, or an unknown ``space``.
    """
    data, target = _open(source, out, space)
    return _write(data, target, max_thumbnails=max_thumbnails, k=k, seed=seed, check=False)[0]


def ensure_viewer(
    source: str | os.PathLike[str] | RunDir | ViewerData,
    out: str | Path | None = None,
    *,
    space: str | None = None,
    max_thumbnails: int | None = MAX_THUMBNAILS,
    k: int = 10,
    seed: int | None = None,
) -> tuple[Path, bool]:
    """Build the page (as :func:`build_viewer`) when it is missing or stale; return
    ``(path, rebuilt)``. For a run, the page of its first space unless ``space`` is given."""
    data, target = _open(source, out, space)
    return _write(data, target, max_thumbnails=max_thumbnails, k=k, seed=seed, check=True)


def ensure_viewers(
    run_dir: str | os.PathLike[str] | RunDir,
    *,
    max_thumbnails: int | None = MAX_THUMBNAILS,
    k: int = 10,
    seed: int | None = None,
) -> list[tuple[Path, bool]]:
    """:func:`ensure_viewer` for every space of a run: ``(path, rebuilt)`` per space, in order."""
    run = _run(run_dir)
    options = {"max_thumbnails": max_thumbnails, "k": k, "seed": seed, "check": True}
    return [_write(*_of_space(sp, None), **options) for sp in run.spaces()]


def _write(
    data: ViewerData,
    target: Path,
    *,
    max_thumbnails: int | None,
    k: int,
    seed: int | None,
    check: bool,
) -> tuple[Path, bool]:
    """Write the page of ``data`` to ``target`` (when ``check``: only when its key changed)."""
    html = page_html(data, target if check else None, max_thumbnails=max_thumbnails, k=k, seed=seed)
    if html is None:
        return target, False
    return save_bytes(target, html.encode("utf-8")), True


def page_html(
    data: ViewerData,
    built: Path | None = None,
    *,
    max_thumbnails: int | None = MAX_THUMBNAILS,
    k: int = 10,
    seed: int | None = None,
) -> str | None:
    """The page of ``data`` as a string (options as :func:`build_viewer`); ``None`` when the
    page ``built`` exists and was made from the same data and options."""
    check_options(k, max_thumbnails, MAX_POINTS)
    chosen = select(
        data, max_thumbnails=max_thumbnails, seed=seed, max_points=MAX_POINTS, neighbours=k > 0
    )
    key = _key(data, chosen, {"max_thumbnails": max_thumbnails, "k": k, "max_points": MAX_POINTS})
    if built is not None and built.is_file() and stored_key(built) == key:
        return None
    return render_html(payload_of(data, chosen, k), key)


def _open(source: Any, out: str | Path | None, space: str | None) -> tuple[ViewerData, Path]:
    """The data a page shows and where the page goes."""
    if isinstance(source, ViewerData):
        if out is None:
            raise ConfigError(
                "a page made from a ViewerData needs out=, the path of the page to write"
            )
        if space is not None:
            raise ConfigError("space= names a space of a run directory; a ViewerData is one")
        return source, Path(out)
    return _of_space(_run(source).space(space), out)


def _of_space(space: SpaceDir, out: str | Path | None) -> tuple[ViewerData, Path]:
    target = Path(out) if out is not None else space.file(VIEWER_FILE)
    return ViewerData.from_space(space), target


def _run(source: Any) -> RunDir:
    if isinstance(source, RunDir):
        return source
    if isinstance(source, str | os.PathLike):
        return RunDir.open(source)
    raise ConfigError(
        f"a viewer shows a run directory, a RunDir or a ViewerData, not {type(source).__name__}"
    )
