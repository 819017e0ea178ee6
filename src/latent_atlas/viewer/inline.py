"""The viewer inside a notebook: ``show_viewer(source)`` returns a :class:`ViewerPage`, which
Jupyter shows inline as the whole self-contained page in an ``<iframe srcdoc>``.

Nothing is served and nothing is fetched: the page's own Content-Security-Policy (its inline
script and style by hash, ``data:`` images, no connections) applies inside the frame, which is
sandboxed (``allow-scripts``, an opaque origin, out of reach of the notebook). The page lives in
the notebook's output, so its size counts: a page above ``MAX_INLINE_BYTES`` shows as a note
instead (fewer ``max_thumbnails`` make it smaller; ``save`` writes it as a file).
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path

from latent_atlas.errors import ConfigError
from latent_atlas.fileio import save_bytes
from latent_atlas.richdisplay import srcdoc_iframe
from latent_atlas.runs import RunDir
from latent_atlas.viewer.build import VIEWER_FILE, _run, page_html
from latent_atlas.viewer.data import ViewerData
from latent_atlas.viewer.payload import MAX_THUMBNAILS

MAX_INLINE_BYTES = 30_000_000  # a larger page is not put into the notebook
DEFAULT_HEIGHT = 640  # pixels of the frame in the notebook


@dataclass(frozen=True)
class ViewerPage:
    """One viewer page in memory; ``_repr_html_`` is the page in a sandboxed iframe."""

    html: str = field(repr=False)
    height: int = DEFAULT_HEIGHT
    path: Path | None = None  # the run's page file, when the page is that file's

    @property
    def size(self) -> int:
        """The page's size in bytes (UTF-8)."""
        return len(self.html.encode("utf-8"))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the page (atomically) as a file that opens offline in any browser."""
        return save_bytes(Path(path), self.html.encode("utf-8"))

    def _repr_html_(self) -> str:
        if self.size > MAX_INLINE_BYTES:
            where = f" It is {self.path}." if self.path else ""
            return (
                f"<p>The viewer page is {self.size / 1e6:.0f} MB, more than a notebook should "
                f"hold inline ({MAX_INLINE_BYTES / 1e6:.0f} MB): pass a smaller max_thumbnails "
                f"or open it as a file (page.save(path)).{html.escape(where)}</p>"
            )
        return srcdoc_iframe(self.html, self.height)


def show_viewer(
    source: str | os.PathLike[str] | RunDir | ViewerData,
    *,
    space: str | None = None,
    height: int = DEFAULT_HEIGHT,
    max_thumbnails: int | None = MAX_THUMBNAILS,
    k: int = 10,
    seed: int | None = None,
) -> ViewerPage:
    """The viewer of a run's space (default: the first) or of a :class:`ViewerData`, for a
    notebook (options as :func:`~latent_atlas.viewer.build_viewer`). Writes nothing: a run's
    ``viewer.html`` is reused when it was built from the same data and options."""
    if height < 100:
        raise ConfigError(f"height is in pixels, at least 100; got {height}")
    built = None
    if isinstance(source, ViewerData):
        if space is not None:
            raise ConfigError("space= names a space of a run directory; a ViewerData is one")
        data = source
    else:
        run_space = _run(source).space(space)
        data, built = ViewerData.from_space(run_space), run_space.file(VIEWER_FILE)
    options = {"max_thumbnails": max_thumbnails, "k": k, "seed": seed}
    text = page_html(data, built, **options)
    if text is None:  # the run's page (built) is up to date
        assert built is not None
        return ViewerPage(built.read_text("utf-8"), height, built)
    return ViewerPage(text, height)
