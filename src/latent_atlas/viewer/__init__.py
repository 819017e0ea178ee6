"""The interactive viewer: one self-contained HTML page per latent space.

``build_viewer(run_dir)`` writes the page of a run's (first) space into that space's folder
(``run_dir/viewer.html`` for a run of one space); ``build_viewer(ViewerData(...), out)`` makes
one from arrays alone. The page opens offline in any browser: every map with zoom and pan,
thumbnails on hover, colouring by true or predicted class, correctness or confidence, box and
lasso selection, latent-space neighbours, the scores table and the atlases. ``serve(run_dir)``
serves a run directory on 127.0.0.1. ``build_frames_viewer(run_dir, [(space, label), ...])``
writes ``frames.html``: several spaces of the same images as one animated map.
``show_viewer(run_dir or ViewerData)`` is the page for a notebook: shown inline, offline.

Modules: ``data`` (:class:`ViewerData`, everything a page shows, from arrays or from a run's
space), ``payload`` (the page's JSON from a ``ViewerData``), ``scores`` (the scores of a run's
manifest and ``metrics.csv``), ``sprites`` (thumbnail sprite sheets), ``build`` (the page from
the templates in ``templates/``, rebuilt only when stale), ``inline`` (the page in a notebook),
``frames`` (the frames page),
``serve`` (the local server).
Nothing here imports torch, nor the map, pipeline, config or command-line modules.
"""

from __future__ import annotations

from latent_atlas.viewer.build import VIEWER_FILE, build_viewer, ensure_viewer, ensure_viewers
from latent_atlas.viewer.data import Atlas, ViewerData
from latent_atlas.viewer.frames import FRAMES_FILE, build_frames_viewer
from latent_atlas.viewer.inline import ViewerPage, show_viewer
from latent_atlas.viewer.serve import serve, serve_forever

__all__ = [
    "FRAMES_FILE",
    "VIEWER_FILE",
    "Atlas",
    "ViewerData",
    "ViewerPage",
    "build_frames_viewer",
    "build_viewer",
    "ensure_viewer",
    "ensure_viewers",
    "serve",
    "serve_forever",
    "show_viewer",
]
