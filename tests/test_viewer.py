"""The viewer: the page built from a run directory, driven in real headless Chromium.

Browser tests skip when the ``playwright`` package or Debian's /usr/bin/chromium is missing;
the run directory is made here (PCA only, no torch) with class names, a directory name and an
atlas file name that try to inject markup.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from latent_atlas.errors import ConfigError, LatentAtlasError
from latent_atlas.fileio import load_table, save_table
from latent_atlas.pipeline import AtlasConfig, MapConfig, project_features
from latent_atlas.runs import RunDir
from latent_atlas.viewer import ViewerData, build_viewer, ensure_viewer, serve
from latent_atlas.viewer.build import script_json, stored_key
from latent_atlas.viewer.payload import build_payload, nearest_neighbours
from latent_atlas.viewer.scores import metrics_table

from .conftest import make_images, wait_js

EVIL_NAMES = [
    "<img src=x onerror=alert(1)>",
    "</script><script>alert(2)</script>",
    "cats & dogs \u2028 'single' \"double\"",
    "plain",
]
EVIL_DIR = "run <img src=y onerror=alert(3)>"
EVIL_ATLAS = "atlas_<svg onload=alert(4)>.png"
N = 240


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 240-point run: 4 classes, 12×12 RGB images, predictions, a PCA map and a second map."""
    images, labels = make_images(N, size=12, seed=3)
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, size=(4, 8))
    features = (centres[labels] + rng.normal(0, 1, size=(N, 8))).astype(np.float32)
    probs = rng.dirichlet(np.ones(4), size=N).astype(np.float32)
    out = tmp_path_factory.mktemp("viewer") / EVIL_DIR
    project_features(
        features,
        labels,
        out=out,
        images=images,
        class_names=EVIL_NAMES,
        probabilities=probs,
        maps=MapConfig(methods=("pca",), atlas=AtlasConfig(grid=6, tile=12)),
    )
    table = load_table(out / "projections.parquet")  # a second map: PCA turned by 90°
    table["turned_x"], table["turned_y"] = -table["pca_y"], table["pca_x"]
    save_table(out / "projections.parquet", table)
    (out / "metrics.csv").write_text("method,custom_score\npca,0.875\nturned,0.5\n")
    shutil.copy(out / "atlas_pca.png", out / EVIL_ATLAS)
    page = build_viewer(out)
    return {
        "dir": out,
        "page": page,
        "features": features,
        "images": images,
        "labels": labels,
        "predicted": probs.argmax(axis=1),
    }


# -- the page without a browser ---------------------------------------------------------------


def _data(run_dir: Path) -> ViewerData:
    """What the page of the run's (only) space shows."""
    return ViewerData.from_space(RunDir.open(run_dir).space())


def test_script_json_cannot_close_its_script_block():
    value = {"name": "</script><!-- <b>&amp; \u2028\u2029", "n": [1, 2.5]}
    text = script_json(value)
    for bad in ("<", ">", "&", "\u2028", "\u2029"):
        assert bad not in text
    assert json.loads(text) == value


def test_page_embeds_no_markup_from_the_run(run):
    html = run["page"].read_text()
    for name in [*EVIL_NAMES[:2], EVIL_DIR, "<svg onload"]:
        assert name not in html
    assert html.count("<script") == 3  # two data blocks and the viewer's own script
    assert "http://" not in html and "https://" not in html  # nothing to fetch
    assert "Content-Security-Policy" in html


def test_not_a_run_directory_is_one_clear_error(tmp_path):
    with pytest.raises(LatentAtlasError, match=r"not a latent-atlas run directory \(no manifest"):
        build_viewer(tmp_path)
    (tmp_path / "manifest.json").write_text("{}")
    with pytest.raises(LatentAtlasError, match="no projections.parquet"):
        build_viewer(tmp_path)
    with pytest.raises(LatentAtlasError, match="is not a directory"):
        build_viewer(tmp_path / "missing")
    with pytest.raises(LatentAtlasError, match="no viewer.html"):
        serve(tmp_path)
    with pytest.raises(ConfigError, match="k must be"):
        build_payload(ViewerData({"m": np.zeros((2, 2))}, [0, 1]), k=-1)


def test_payload_samples_thumbnails_and_merges_metrics(run):
    full = build_payload(_data(run["dir"]))
    assert full["sample"] == {"size": N, "seed": 0, "indices": None}
    assert [m["name"] for m in full["methods"]] == ["pca", "turned"]
    metrics = full["metrics"]
    assert metrics["columns"][0] == "trustworthiness"
    assert {"params", "effective", "n_components"}.isdisjoint(metrics["columns"])  # settings
    rows = {
        r["method"]: dict(zip(metrics["columns"], r["values"], strict=True))
        for r in metrics["rows"]
    }
    assert list(rows) == ["pca", "turned"]
    assert rows["pca"]["custom_score"] == 0.875 and rows["turned"]["custom_score"] == 0.5
    assert rows["pca"]["trustworthiness"] == _manifest_score(run["dir"], "trustworthiness")
    assert metrics["sources"][0] == "manifest.json (methods)"
    assert metrics["sources"][-1] == "metrics.csv"

    part = build_payload(_data(run["dir"]), max_thumbnails=50, k=5, seed=1)
    assert part["sample"]["size"] == 50 and part["thumbs"]["count"] == 50
    assert part["neighbours"]["k"] == 5
    assert any("sample (seed 1) of 50 of the 240 points" in note for note in part["notes"])


def _decode(arr: dict) -> np.ndarray:
    import base64

    dtypes = {"uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32, "int32": np.int32}
    return np.frombuffer(base64.b64decode(arr["b64"]), dtype=dtypes[arr["dtype"]])


def test_large_runs_show_a_seeded_sample_of_points(run):
    page = build_payload(_data(run["dir"]), max_points=100, max_thumbnails=30, k=3, seed=2)
    assert page["n"] == 100
    assert any(
        "240 points are too many" in n and "sample (seed 2) of 100" in n for n in page["notes"]
    )
    rows = _decode(page["index"]).astype(np.int64)  # hover reports each point's row in the run
    assert len(rows) == 100 and len(np.unique(rows)) == 100 and rows.max() < N
    np.testing.assert_array_equal(_decode(page["label"]), run["labels"][rows])
    again = build_payload(_data(run["dir"]), max_points=100, max_thumbnails=30, k=3, seed=2)
    np.testing.assert_array_equal(_decode(again["index"]), _decode(page["index"]))  # seeded
    assert page["thumbs"]["count"] == 30 and page["neighbours"]["k"] == 3
    assert build_payload(_data(run["dir"]))["n"] == N  # below the limit every point is drawn


def _manifest_score(run_dir: Path, name: str) -> float:
    entry = RunDir.open(run_dir).space().maps["pca"]
    return entry.get(name, entry.get("scores", {}).get(name))


def test_metrics_come_from_every_format(tmp_path, run):
    manifest = {
        "methods": {"a": {"seconds": 2, "params": {"x": 1.0}, "scores": {"trust": 0.5}}},
        "metrics": {"k": 10, "scores": {"a": {"trust": 0.75}, "b": {"silhouette": -0.25}}},
    }
    (tmp_path / "metrics.csv").write_text("method,metric,value\nb,silhouette,0.125\nb,note,n/a\n")
    got = metrics_table(tmp_path, manifest, ["b", "a"])
    assert got["columns"] == ["silhouette", "trust", "seconds"]  # the CSV's order first
    assert got["integer"] == got["aux"] == ["seconds"]  # shown as a count, below the scores
    assert got["rows"] == [
        {"method": "b", "values": [0.125, None, None]},  # the CSV (long format) wins
        {"method": "a", "values": [None, 0.75, 2.0]},
    ]
    legacy = {"methods": {"a": {"knn_accuracy": 0.5}}, "metrics": {"a": {"x": 1}, "k": 3}}
    assert metrics_table(run["dir"] / "missing", legacy, ["a"])["rows"] == [
        {"method": "a", "values": [0.5, 1.0]}
    ]


def test_nearest_neighbours_are_exact_and_exclude_the_point():
    x = np.random.default_rng(0).normal(size=(60, 5)).astype(np.float32)
    got = nearest_neighbours(x, 4)
    d = ((x[:, None] - x[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    np.testing.assert_array_equal(got, np.argsort(d, axis=1)[:, :4])


def test_ensure_viewer_rebuilds_only_when_the_run_changes(run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run["dir"], copy)
    (copy / "viewer.html").unlink()
    page, rebuilt = ensure_viewer(copy)
    assert rebuilt and stored_key(page)
    assert ensure_viewer(copy) == (page, False)
    (copy / "metrics.csv").write_text("method,custom_score\npca,0.25\n")
    assert ensure_viewer(copy) == (page, True)
    assert ensure_viewer(copy, k=3) == (page, True)  # other options, another page


@pytest.mark.slow
def test_building_the_viewer_never_loads_torch(run, tmp_path):
    code = (
        "import sys; from latent_atlas.viewer import build_viewer; "
        f"build_viewer({str(run['dir'])!r}, {str(tmp_path / 'v.html')!r}); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert (tmp_path / "v.html").stat().st_size > 1000


# -- the page in headless Chromium ------------------------------------------------------------


class Page:
    """A browser page that records console errors, page errors, dialogs and requests."""

    def __init__(self, browser):
        self.page = browser.new_page(viewport={"width": 1280, "height": 800})
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", self._dialog)
        self.page.on("request", lambda r: self.requests.append(r.url))

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open(self, url: str):
        self.page.goto(url)
        wait_js(self.page, "window.latentAtlas && window.latentAtlas.ready")
        self.page.evaluate("window.latentAtlas.thumbsReady")
        return self.page

    def js(self, expression: str, arg=None):
        return self.page.evaluate(expression, arg)

    def positions(self) -> np.ndarray:
        return np.array(
            self.js(
                "n => Array.from({length: n}, (_, i) => window.latentAtlas.screenPosition(i))"
                ".map(p => [p.x, p.y])",
                N,
            )
        )


@pytest.fixture
def view(browser, run):
    p = Page(browser)
    p.open(run["page"].as_uri())
    yield p
    p.page.close()


def _class_pixels(view: Page, rgb) -> int:
    return view.js(
        """([r, g, b]) => {
            const c = document.getElementById('map-canvas');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 0; i < d.length; i += 4) {
                if (d[i] === r && d[i + 1] === g && d[i + 2] === b) n++;
            }
            return n;
        }""",
        list(rgb),
    )


@pytest.mark.slow
def test_page_opens_offline_with_maps_and_metrics(view, run):
    page = view.page
    assert view.errors == [] and view.dialogs == []
    assert all(u.startswith(("file://", "data:")) for u in view.requests), view.requests
    assert view.js("window.latentAtlas.methods()") == ["pca", "turned"]
    assert page.locator("#methods button").all_text_contents() == ["pca", "turned"]
    assert page.locator("#metrics thead th").all_text_contents() == ["score", "pca", "turned"]
    trust = page.locator("#metrics tr[data-score=trustworthiness] td").all_text_contents()
    assert trust[:2] == ["trustworthiness", f"{_manifest_score(run['dir'], 'trustworthiness'):.4f}"]
    custom = page.locator("#metrics tr[data-score=custom_score] td").all_text_contents()
    assert custom == ["custom score", "0.8750", "0.5000"]  # from metrics.csv
    before = view.positions()
    page.locator("#methods button", has_text="turned").click()
    assert view.js("window.latentAtlas.method()") == "turned"
    assert not np.allclose(before, view.positions())
    assert page.locator("#metrics th.current").text_content() == "turned"


@pytest.mark.slow
def test_hover_shows_a_tooltip_with_the_thumbnail(view, run):
    pos = view.positions()
    i = int(np.argmax(np.min(_pairwise(pos) + np.eye(N) * 1e9, axis=1)))  # most isolated
    view.page.mouse.move(*pos[i])
    wait_js(view.page, f"window.latentAtlas.hovered() === {i}")
    tip = view.page.locator("#tooltip")
    assert tip.is_visible()
    assert view.page.locator("#tooltip-index").text_content() == f"#{i}"
    assert view.page.locator("#tooltip-label").text_content() == (
        f"true: {EVIL_NAMES[run['labels'][i]]}"
    )
    assert EVIL_NAMES[run["predicted"][i]] in view.page.locator("#tooltip-pred").text_content()
    assert view.page.locator("#tooltip-conf").text_content().startswith("confidence: 0.")
    pixels = view.js(
        """() => {
            const c = document.getElementById('tooltip-thumb');
            return [c.width, c.height, Array.from(c.getContext('2d')
                .getImageData(0, 0, c.width, c.height).data)];
        }"""
    )
    w, h, rgba = pixels
    got = np.array(rgba, dtype=np.uint8).reshape(h, w, 4)[:, :, :3]
    np.testing.assert_array_equal(got, run["images"][i])  # 12 px: lossless PNG sprites
    view.page.mouse.move(2, 2)
    wait_js(view.page, "window.latentAtlas.hovered() === -1")
    assert not tip.is_visible()


def _pairwise(pos: np.ndarray) -> np.ndarray:
    return np.sqrt(((pos[:, None] - pos[None]) ** 2).sum(-1))


@pytest.mark.slow
def test_legend_entries_hide_and_show_a_class(view, run):
    colour = json.loads(view.js("document.getElementById('la-data').textContent"))["colors"][1]
    legend = view.page.locator(".legend-item").nth(1)
    assert legend.locator(".legend-name").text_content() == EVIL_NAMES[1]
    n_class = int((run["labels"] == 1).sum())
    assert _class_pixels(view, colour) > 0
    legend.click()
    assert legend.get_attribute("aria-pressed") == "false"
    wait_js(view.page, f"window.latentAtlas.visibleCount() === {N - n_class}")
    view.page.wait_for_timeout(50)  # the next animation frame redraws
    assert _class_pixels(view, colour) == 0
    pos = view.positions()[run["labels"] == 1][0]
    view.page.mouse.move(*pos)
    view.page.wait_for_timeout(50)
    hovered = view.js("window.latentAtlas.hovered()")
    assert hovered == -1 or run["labels"][hovered] != 1  # hidden points are not hoverable
    legend.click()
    wait_js(view.page, f"window.latentAtlas.visibleCount() === {N}")
    view.page.wait_for_timeout(50)
    assert _class_pixels(view, colour) > 0


@pytest.mark.slow
def test_wheel_zooms_about_the_pointer_and_drag_pans(view):
    box = view.page.locator("#overlay-canvas").bounding_box()
    centre = np.array([box["x"] + box["width"] / 2, box["y"] + box["height"] / 2])
    before = view.positions()
    view.page.mouse.move(*centre)
    view.page.mouse.wheel(0, -300)
    view.page.wait_for_timeout(50)
    zoomed = view.positions()
    factor = (zoomed - centre) / (before - centre)
    assert factor.min() > 1.2 and np.allclose(factor, factor.mean(), atol=1e-3)
    shift = np.array([40.0, -25.0])
    view.page.mouse.down()
    view.page.mouse.move(*(centre + shift), steps=4)
    view.page.mouse.up()
    np.testing.assert_allclose(view.positions(), zoomed + shift, atol=1e-3)
    assert view.js("window.latentAtlas.picked()") == -1  # a drag is not a click
    view.page.locator("#reset-view").click()
    np.testing.assert_allclose(view.positions(), before, atol=1e-3)


@pytest.mark.slow
def test_box_selection_fills_the_side_grid(view, run):
    pos = view.positions()
    x0, y0 = np.floor(pos.min(axis=0)) - 5
    x1, y1 = np.round(pos.mean(axis=0))
    view.page.locator("[data-tool=box]").click()
    view.page.mouse.move(x0, y0)
    view.page.mouse.down()
    view.page.mouse.move(x1, y1, steps=4)
    view.page.mouse.up()
    inside = (pos[:, 0] >= x0) & (pos[:, 0] <= x1) & (pos[:, 1] >= y0) & (pos[:, 1] <= y1)
    expected = np.flatnonzero(inside)
    assert 0 < len(expected) < N
    assert view.js("window.latentAtlas.selection()") == expected.tolist()
    assert view.page.locator("#selection-grid canvas").count() == len(expected)
    title = view.page.locator("#selection-title").text_content()
    assert title == f"Selection · {len(expected)} points"
    counts = {
        row.locator(".name").text_content(): int(row.locator(".num").text_content())
        for row in view.page.locator("#selection-counts tr").all()
    }
    labels = run["labels"][expected]
    assert counts == {EVIL_NAMES[c]: int((labels == c).sum()) for c in np.unique(labels)}
    view.page.locator("#selection-grid canvas").first.click()  # a thumbnail: its neighbours
    assert view.js("window.latentAtlas.picked()") == int(expected[0])
    view.page.keyboard.press("Escape")
    assert view.js("window.latentAtlas.selection()") == []
    assert view.page.locator("#selection-grid canvas").count() == 0


@pytest.mark.slow
def test_lasso_selection_takes_the_points_inside(view):
    from matplotlib.path import Path as PolyPath

    pos = view.positions()
    (x0, y0), (x1, y1) = pos.min(axis=0), pos.max(axis=0)
    triangle = [(x0 - 4, y0 - 4), (x1 + 4, y0 - 4), (x0 - 4, y1 + 4)]
    view.page.locator("[data-tool=lasso]").click()
    view.page.mouse.move(*triangle[0])
    view.page.mouse.down()
    for x, y in [*triangle[1:], triangle[0]]:
        view.page.mouse.move(x, y, steps=6)
    view.page.mouse.up()
    got = view.js("window.latentAtlas.selection()")
    expected = np.flatnonzero(PolyPath(triangle).contains_points(pos)).tolist()
    assert 0 < len(expected) < N
    assert got == expected


@pytest.mark.slow
def test_click_shows_neighbours_in_the_latent_space(view, run):
    from sklearn.neighbors import NearestNeighbors

    pos = view.positions()
    i = int(np.argmax(np.min(_pairwise(pos) + np.eye(N) * 1e9, axis=1)))
    view.page.mouse.click(*pos[i])
    wait_js(view.page, f"window.latentAtlas.picked() === {i}")
    got = view.js(f"window.latentAtlas.neighbours({i})")
    _, idx = NearestNeighbors(n_neighbors=11).fit(run["features"]).kneighbors(run["features"][[i]])
    assert got == [j for j in idx[0] if j != i][:10]
    assert view.page.locator("#neighbours-card").is_visible()
    assert view.page.locator("#neighbours-grid canvas").count() == 11
    assert view.page.locator("#neighbours-title").text_content() == f"Neighbours of #{i}"


@pytest.mark.slow
def test_markup_in_names_is_shown_as_text_and_runs_nothing(view, run):
    page = view.page
    names = page.locator("#legend .legend-name").all_text_contents()
    assert names == EVIL_NAMES
    assert EVIL_DIR in page.locator("#run-title").text_content()
    assert page.locator("img[src=x], img[src=y], svg").count() == 0
    # hover and select so every place that shows names renders them
    pos = view.positions()
    page.mouse.move(*pos[0])
    page.keyboard.press("b")
    box = page.locator("#overlay-canvas").bounding_box()
    page.mouse.move(box["x"] + 1, box["y"] + 1)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] - 2, steps=3)
    page.mouse.up()
    shown = page.locator("#selection-counts .name").all_text_contents()
    assert sorted(shown) == sorted(EVIL_NAMES)
    page.locator("#tab-atlases").click()
    atlases = page.locator(".atlas-item").all_text_contents()
    assert "atlas_<svg onload=alert(4)>" in atlases
    page.locator(".atlas-item", has_text="svg").click()
    assert page.locator("#atlas-caption").text_content().startswith(EVIL_ATLAS)
    assert page.locator("#atlas-image").evaluate("img => img.naturalWidth") == 72  # 6×12 px
    page.wait_for_timeout(100)
    assert view.dialogs == [] and view.errors == []
    assert page.locator("img[src=x], img[src=y], svg").count() == 0


@pytest.mark.slow
def test_the_server_serves_the_page_on_localhost(browser, run):
    server, url = serve(run["dir"])
    try:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/viewer.html")
        view = Page(browser)
        view.open(url)
        assert view.js("window.latentAtlas.n") == N
        assert view.errors == [] and view.dialogs == []
        view.page.close()
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxies
        with direct.open(url.replace("viewer.html", "metrics.csv")) as r:
            assert r.read().decode().startswith("method,custom_score")
        with pytest.raises(urllib.error.HTTPError, match="404"):
            direct.open(url.replace("viewer.html", ""))  # no directory listing
    finally:
        server.shutdown()
        server.server_close()
