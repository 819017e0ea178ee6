"""What a notebook user sees: every Display as PNG, a run as its scores table and comparison
figure, the viewer inline in a sandboxed ``<iframe srcdoc>`` (drawn in headless Chromium), and
``examples/latent_atlas_tour.ipynb`` executed on a real kernel with its outputs checked."""

from __future__ import annotations

import base64
import html
import inspect
import re
from pathlib import Path

import numpy as np
import pytest

import latent_atlas as la
from latent_atlas import frames_plot, plotting, trust_plot
from latent_atlas.errors import ConfigError
from latent_atlas.richdisplay import FigureRepr
from latent_atlas.viewer import ViewerData, inline, show_viewer

from .conftest import wait_js
from .test_viewer import Page

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "latent_atlas_tour.ipynb"
PNG = b"\x89PNG\r\n\x1a\n"
N = 240


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = digits.data[:N].astype(np.float32), digits.target[:N]
    images = (digits.images[:N] * 16).clip(0, 255).astype(np.uint8)[..., None]
    out = tmp_path_factory.mktemp("nb") / "run"
    maps = la.MapConfig(methods=("pca", ("pca-2", "pca")), seed=0)
    return la.project_features(x, y, out=out, images=images, maps=maps)


def _srcdoc(markup: str) -> str:
    found = re.search(r'<iframe srcdoc="([^"]*)"', markup)
    assert found, markup[:300]
    return html.unescape(found.group(1))


def test_every_display_shows_as_its_figure_in_png():
    displays = [
        cls
        for module in (plotting, frames_plot, trust_plot)
        for name, cls in inspect.getmembers(module, inspect.isclass)
        if name.endswith("Display") and cls.__module__ == module.__name__
    ]
    assert len(displays) >= 8
    assert all(issubclass(cls, FigureRepr) for cls in displays), displays
    rng = np.random.default_rng(0)
    disp = la.ScatterDisplay.from_embedding(rng.normal(size=(50, 2)), np.arange(50) % 3)
    png = disp._repr_png_()
    assert png.startswith(PNG) and len(png) > 1000
    atlas = la.build_atlas(rng.random((50, 2)), 4, mode="grid")
    assert "Atlas (grid): 4×4 cells, 16 filled" in atlas._repr_html_()


def test_a_run_and_its_summary_show_their_scores_table_and_comparison_figure(run):
    for markup in (
        run._repr_html_(),
        run.run._repr_html_(),
        la.RunDir.open(run.path)._repr_html_(),
    ):
        table = re.search(r"<table.*?</table>", markup, re.S).group(0)
        assert re.findall(r"<tr><th>([^<]+)</th><td>", table) == ["pca", "pca-2"]
        assert "trust" in table and re.search(r"<td>0\.\d{4}</td>", table)
        uri = re.search(r'<img src="data:image/png;base64,([^"]+)"', markup).group(1)
        assert base64.b64decode(uri) == (run.path / "comparison.png").read_bytes()
        assert f"{N} samples × 64 features" in markup


def test_the_viewer_of_a_run_shows_inline_offline_under_its_own_policy(run):
    page = show_viewer(run.run, height=500)
    assert page.path == run.path / "viewer.html"  # the run's page, up to date, reused
    assert page.html == page.path.read_text("utf-8")
    markup = page._repr_html_()
    assert 'sandbox="allow-scripts"' in markup and 'height="500"' in markup
    assert "allow-same-origin" not in markup
    doc = _srcdoc(markup)
    assert doc == page.html
    assert '<meta http-equiv="Content-Security-Policy" content="default-src \'none\';' in doc
    assert "http://" not in markup and "https://" not in markup
    assert "ViewerPage(height=500" in repr(page) and len(repr(page)) < 200


def test_a_viewer_of_arrays_needs_no_file_and_a_huge_page_becomes_a_note(
    run, tmp_path, monkeypatch
):
    space = run.run.space()
    data = ViewerData(embeddings=space.embeddings(), labels=space.load_latent().labels)
    page = la.show_viewer(data)
    assert page.path is None and "Content-Security-Policy" in _srcdoc(page._repr_html_())
    assert page.save(tmp_path / "v.html").read_text("utf-8") == page.html
    assert list(tmp_path.iterdir()) == [tmp_path / "v.html"]
    monkeypatch.setattr(inline, "MAX_INLINE_BYTES", 1000)
    note = page._repr_html_()
    assert "<iframe" not in note and "max_thumbnails" in note
    with pytest.raises(ConfigError, match="space="):
        show_viewer(data, space="dense")
    with pytest.raises(ConfigError, match="pixels"):
        show_viewer(data, height=5)


@pytest.mark.slow
def test_the_inline_viewer_draws_and_answers_inside_its_frame(browser, run):
    markup = show_viewer(run.run, height=600)._repr_html_()
    view = Page(browser)
    try:
        view.page.set_content(f"<!DOCTYPE html><html><body><h1>notebook</h1>{markup}</body></html>")
        frame = view.page.frames[1]
        wait_js(frame, "window.latentAtlas && window.latentAtlas.ready")
        frame.evaluate("window.latentAtlas.thumbsReady")
        assert frame.url == "about:srcdoc"
        assert frame.evaluate("window.latentAtlas.n") == N
        assert frame.evaluate("window.latentAtlas.methods()") == ["pca", "pca-2"]
        assert frame.evaluate("window.origin") == "null"  # sandboxed: an opaque origin
        box = view.page.locator("iframe").bounding_box()
        p = frame.evaluate("window.latentAtlas.screenPosition(7)")
        view.page.mouse.click(box["x"] + p["x"], box["y"] + p["y"])
        wait_js(frame, "window.latentAtlas.picked() === 7")
        assert len(frame.evaluate("window.latentAtlas.neighbours(7)")) == 10
        assert view.errors == [] and view.dialogs == []
        assert all(u.startswith(("about:", "data:")) for u in view.requests), view.requests
        # the page's own policy holds in the frame: an image from elsewhere is refused
        failed: list[tuple[str, str]] = []
        view.page.on("requestfailed", lambda r: failed.append((r.url, r.failure)))
        frame.evaluate("document.body.append(Object.assign(document.createElement('img'), "
                       "{src: 'http://127.0.0.1:9/x.png'}))")  # fmt: skip
        view.page.wait_for_timeout(300)
        assert any("Content Security Policy" in e for e in view.errors), view.errors
        assert failed == [("http://127.0.0.1:9/x.png", "csp")], failed
    finally:
        view.page.close()


@pytest.mark.slow
def test_the_tour_notebook_runs_on_a_real_kernel_and_shows_each_object(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    cells = [c for c in nb.cells if c.cell_type == "code"]
    assert len(cells) <= 6
    outputs = [[o for o in c.outputs if o.output_type == "execute_result"] for c in cells]
    streams = [o for c in cells for o in c.outputs if o.output_type == "stream"]
    assert all(o.name == "stdout" for o in streams), [o.text for o in streams]
    run_html = outputs[0][0].data["text/html"]
    assert re.findall(r"<tr><th>([^<]+)</th><td>", run_html) == ["pca", "tsne"]
    assert "test accuracy" in run_html and "data:image/png;base64," in run_html
    for i in (1, 2, 3):  # the scatter plot, the atlas, the quality figure
        png = base64.b64decode(outputs[i][0].data["image/png"])
        assert png.startswith(PNG) and len(png) > 5000
    assert "256 of 256 cells filled" in cells[2].outputs[0].text
    assert "| tsne |" in "".join(o.text for o in cells[3].outputs if o.output_type == "stream")
    viewer = outputs[4][0].data["text/html"]
    assert viewer.startswith("<iframe srcdoc=") and 'sandbox="allow-scripts"' in viewer
    assert "Content-Security-Policy" in _srcdoc(viewer)
    assert "http://" not in viewer and "https://" not in viewer
    assert (tmp_path / "runs" / "tour" / "viewer.html").is_file()
