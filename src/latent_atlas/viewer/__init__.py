"""The interactive viewer: one self-contained HTML page per run directory.

``build_viewer(run_dir)`` writes ``run_dir/viewer.html``, which opens offline in any browser:
every map of the run with zoom and pan, thumbnails on hover, colouring by true or predicted
class, correctness or confidence, box and lasso selection, latent-space neighbours, the
metrics table and the atlases. ``serve(run_dir)`` serves the directory on 127.0.0.1.

Modules: ``payload`` (what the page needs from a run directory), ``sprites`` (thumbnail
sprite sheets), ``build`` (the page from the templates in ``templates/``), ``serve`` (the local
server). Nothing here imports torch.
"""

from __future__ import annotations

from latent_atlas.viewer.build import VIEWER_FILE, build_viewer, ensure_viewer
from latent_atlas.viewer.serve import serve, serve_forever

__all__ = ["VIEWER_FILE", "build_viewer", "ensure_viewer", "serve", "serve_forever"]
