"""The frames viewer: several spaces of the same images as one animated page.

The run is made here with ``project_features`` (three spaces of 240 points, PCA only, no
torch); space ``b`` loses its probabilities so that one frame has no predictions. Browser
tests skip when the ``playwright`` package or Debian's /usr/bin/chromium is missing, as in
``test_viewer``.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from latent_atlas.config import AtlasConfig, MapConfig
from latent_atlas.errors import ConfigError
from latent_atlas.pipeline import project_features
from latent_atlas.runs import RunDir
from latent_atlas.sampling import seeded_sample
from latent_atlas.viewer import build_frames_viewer
from latent_atlas.viewer.frames import normalise

from .conftest import make_images

N = 240
CLASSES = ["north-west", "north-east", "south-west", "south-east"]
FRAMES = [("a", "conv1"), ("b", "conv2"), ("c", "dense")]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Three spaces whose classes separate more and more (like deeper layers)."""
    images, labels = make_images(N, size=12, seed=3)
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, size=(4, 8))
    noise = rng.normal(0, 1, size=(N, 8))
    features = {
        name: (scale * centres[labels] + noise + rng.normal(0, 0.3, size=(N, 8))).astype("f4")
        for name, scale in (("a", 0.2), ("b", 1.0), ("c", 3.0))
    }
    probs = rng.dirichlet(np.ones(4), size=N).astype(np.float32)
    out = tmp_path_factory.mktemp("frames") / "run"
    project_features(
        features,
        labels,
        out=out,
        images=images,
        class_names=CLASSES,
        probabilities=probs,
        maps=MapConfig(methods=("pca",), atlas=AtlasConfig(grid=6, tile=12)),
    )
    (RunDir.open(out).space("b").path / "probabilities.npy").unlink()  # no predictions there
    page = build_frames_viewer(out, FRAMES)
    return {"dir": out, "page": page, "labels": labels, "predicted": probs.argmax(axis=1)}


def _payload(page: Path) -> dict:
    html = page.read_text(encoding="utf-8")
    found = re.search(r'<script type="application/json" id="la-data">(.*?)</script>', html, re.S)
    assert found
    return json.loads(found.group(1))


def _decode(arr: dict | None) -> np.ndarray | None:
    if arr is None:
        return None
    dtypes = {"uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32, "int32": np.int32}
    values = np.frombuffer(base64.b64decode(arr["b64"]), dtype=dtypes[arr["dtype"]])
    assert len(values) == arr["length"]
    return values


def _coords(frame: dict) -> np.ndarray:
    x0, x1, y0, y1 = frame["bounds"]
    x = x0 + _decode(frame["x"]) * (x1 - x0) / 65535
    y = y0 + _decode(frame["y"]) * (y1 - y0) / 65535
    return np.stack([x, y], axis=1)


# -- the page without a browser ---------------------------------------------------------------


def test_page_is_one_file_that_fetches_nothing(run):
    assert run["page"] == run["dir"] / "frames.html"
    html = run["page"].read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "http://" not in html and "https://" not in html
    assert html.count("<script") == 2  # the data block and the page's own script
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    for element in ("frame-slider", "play", "method", "side-by-side", "frame-a", "frame-b"):
        assert f'id="{element}"' in html


def test_payload_holds_the_frames_in_order(run):
    data = _payload(run["page"])
    assert data["n"] == N
    assert [f["label"] for f in data["frames"]] == ["conv1", "conv2", "dense"]
    assert [f["space"] for f in data["frames"]] == ["a", "b", "c"]
    assert data["classNames"] == CLASSES and len(data["colors"]) == 4
    np.testing.assert_array_equal(_decode(data["label"]), run["labels"])
    assert data["index"] is None  # every point drawn, in order
    np.testing.assert_array_equal(_decode(data["frames"][0]["predicted"]), run["predicted"])
    assert data["frames"][1]["predicted"] is None  # space b has no probabilities
    assert [m["name"] for m in data["methods"]] == ["pca"]
    assert all(len(_coords(f)) == N for f in data["methods"][0]["frames"])
    assert data["thumbs"]["count"] == N and data["sample"]["indices"] is None


def test_each_frame_is_centred_and_scaled_to_unit_rms_radius(run):
    data = _payload(run["page"])
    space_dir = RunDir.open(run["dir"])
    for (space, _), frame in zip(FRAMES, data["methods"][0]["frames"], strict=True):
        xy = _coords(frame)
        np.testing.assert_allclose(xy.mean(axis=0), 0, atol=1e-3)
        assert np.sqrt((xy**2).sum(axis=1).mean()) == pytest.approx(1, abs=1e-3)
        expected = normalise(space_dir.space(space).embedding("pca"))
        np.testing.assert_allclose(xy, expected, atol=1e-3)  # 16-bit steps
    raw = [space_dir.space(s).embedding("pca") for s, _ in FRAMES]
    assert np.ptp(raw[2]) > 2 * np.ptp(raw[0])  # on disk the frames differ in scale


def test_a_seeded_sample_of_the_same_rows_in_every_frame(run, tmp_path):
    page = build_frames_viewer(
        run["dir"], FRAMES, tmp_path / "f.html", max_points=100, seed=2, thumbnails=30
    )
    data = _payload(page)
    rows = seeded_sample(N, 100, 2)
    assert data["n"] == 100
    np.testing.assert_array_equal(_decode(data["index"]), rows)
    np.testing.assert_array_equal(_decode(data["label"]), run["labels"][rows])
    np.testing.assert_array_equal(_decode(data["frames"][2]["predicted"]), run["predicted"][rows])
    np.testing.assert_array_equal(_decode(data["sample"]["indices"]), seeded_sample(100, 30, 2))
    assert data["thumbs"]["count"] == 30 and data["sample"]["seed"] == 2
    assert any("seeded sample (seed 2) of 100" in note for note in data["notes"])
    for frame in data["methods"][0]["frames"]:  # normalised over the drawn points
        xy = _coords(frame)
        assert len(xy) == 100 and np.abs(xy.mean(axis=0)).max() < 1e-3
    default = _payload(build_frames_viewer(run["dir"], FRAMES[:2], tmp_path / "g.html"))
    assert default["sample"]["seed"] == RunDir.open(run["dir"]).seed
    assert [f["label"] for f in default["frames"]] == ["conv1", "conv2"]


def test_clear_errors_for_frames_that_do_not_fit(run, tmp_path):
    with pytest.raises(ConfigError, match="at least 2 frames, got 1"):
        build_frames_viewer(run["dir"], FRAMES[:1])
    with pytest.raises(ConfigError, match="at least 2 frames, got 0"):
        build_frames_viewer(run["dir"], [])
    with pytest.raises(ConfigError, match=r"no space 'conv9'; it has: a, b, c"):
        build_frames_viewer(run["dir"], [("a", "x"), ("conv9", "y")])
    with pytest.raises(ConfigError, match="pair"):
        build_frames_viewer(run["dir"], ["a", "b"])
    copy = tmp_path / "copy"
    shutil.copytree(run["dir"], copy)
    folder = RunDir.open(copy).space("c").path
    labels = np.load(folder / "labels.npy")
    np.save(folder / "labels.npy", np.roll(labels, 1))
    with pytest.raises(ConfigError, match="labels of space 'c' differ from those of space 'a'"):
        build_frames_viewer(copy, FRAMES)
    for name in ("labels", "activations", "images", "probabilities", "predictions"):
        array = np.load(folder / f"{name}.npy")
        np.save(folder / f"{name}.npy", array[: N - 10] if name != "labels" else labels[:-10])
    with pytest.raises(ConfigError, match="space 'c' has 230 points, space 'a' has 240"):
        build_frames_viewer(copy, FRAMES)
    (RunDir.open(copy).space("b").path / "embedding_pca.npy").unlink()
    with pytest.raises(ConfigError, match=r"no map is common to every frame \(a: pca; b: no maps"):
        build_frames_viewer(copy, FRAMES[:2])


# -- the page in headless Chromium ------------------------------------------------------------


class View:
    """The frames page in a browser tab, with its errors and requests recorded."""

    def __init__(self, browser, url: str):
        self.page = browser.new_page(viewport={"width": 1200, "height": 800})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(url)
        self.until("window.latentFrames && window.latentFrames.ready")
        self.js("window.latentFrames.thumbsReady")

    def js(self, expression: str, arg=None):
        return self.page.evaluate(expression, arg)

    def until(self, expression: str, timeout: float = 5.0):
        """Poll ``expression`` (the page's CSP forbids the eval that wait_for_function uses)."""
        end = time.monotonic() + timeout
        while True:
            value = self.js(expression)
            if value or time.monotonic() > end:
                assert value, f"timed out waiting for {expression}"
                return value
            self.page.wait_for_timeout(15)

    def positions(self, panel: str = "a") -> np.ndarray:
        flat = self.js(f"window.latentFrames.drawnPositions({panel!r})")
        return np.array(flat).reshape(-1, 2)

    def drawn(self, canvas: str) -> list[int]:
        """A summary of a canvas's painted pixels (their count and a position checksum),
        computed in the page: the full pixel data is megabytes of JSON."""
        return self.js(
            """id => {
                const c = document.getElementById(id);
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0, sum = 0;
                for (let i = 0; i < d.length; i += 4) {
                    if (d[i] !== 255 || d[i + 1] !== 255 || d[i + 2] !== 255) {
                        n++;
                        sum = (sum + (i / 4) * (d[i] + 1)) % 2147483647;
                    }
                }
                return [n, sum];
            }""",
            canvas,
        )

    def client(self, i: int, panel: str = "a") -> tuple[float, float]:
        p = self.js(f"window.latentFrames.screenPosition({i}, {panel!r})")
        return p["x"], p["y"]


@pytest.fixture
def view(browser, run):
    v = View(browser, run["page"].as_uri())
    yield v
    v.page.close()


def _lasso(view: View, panel: str) -> list[int]:
    """Drag a triangle over the lower left of a map's points; the points inside it."""
    from matplotlib.path import Path as PolyPath

    pos = view.positions(panel)
    box = view.page.locator(f"#overlay-{panel}").bounding_box()
    (x0, y0), (x1, y1) = pos.min(axis=0), pos.max(axis=0)
    triangle = [(x0 - 4, y0 - 4), (x1 + 4, y1 + 4), (x0 - 4, y1 + 4)]
    client = [(box["x"] + x, box["y"] + y) for x, y in triangle]
    view.page.mouse.move(*client[0])
    view.page.mouse.down()
    for x, y in [*client[1:], client[0]]:
        view.page.mouse.move(x, y, steps=6)
    view.page.mouse.up()
    return np.flatnonzero(PolyPath(triangle).contains_points(pos)).tolist()


def _isolated(pos: np.ndarray) -> int:
    d = np.sqrt(((pos[:, None] - pos[None]) ** 2).sum(-1)) + np.eye(len(pos)) * 1e9
    return int(np.argmax(d.min(axis=1)))


@pytest.mark.slow
def test_the_slider_animates_the_points_to_the_next_frame(view):
    page = view.page
    assert view.js("window.latentFrames.frameLabels()") == ["conv1", "conv2", "dense"]
    assert page.locator("#frame-label").text_content() == "conv1 · 1/3"
    assert page.locator("#method-field").is_hidden()  # one method: no chooser
    start, start_pixels = view.positions(), view.drawn("canvas-a")
    page.locator("#frame-slider").fill("2")
    assert page.locator("#frame-label").text_content() == "dense · 3/3"
    page.wait_for_timeout(150)
    assert view.js("window.latentFrames.animating()")
    middle = view.positions()
    view.until("!window.latentFrames.animating()")
    end = view.positions()
    travelled = np.linalg.norm(end - start, axis=1)
    assert np.median(travelled) > 20  # screen pixels: the points moved
    far = travelled > 20
    part = np.linalg.norm(middle - start, axis=1)[far] / travelled[far]
    assert 0.02 < np.median(part) < 0.98  # on the way, neither at the start nor at the end
    assert start_pixels[0] > 0 and view.drawn("canvas-a") != start_pixels  # redrawn
    assert page.locator("#caption-a .cap-label").text_content() == "dense"
    page.locator("#frame-slider").fill("0")
    view.until("!window.latentFrames.animating()")
    np.testing.assert_allclose(view.positions(), start, atol=1e-3)
    page.locator("#play").click()  # plays from the first frame to the next
    view.until("window.latentFrames.frame() === 1")
    assert view.js("window.latentFrames.playing()")
    page.locator("#play").click()
    assert not view.js("window.latentFrames.playing()")
    assert view.errors == []
    assert all(u.startswith(("file://", "data:")) for u in view.requests), view.requests


@pytest.mark.slow
def test_hover_shows_the_image_its_class_and_the_frames_prediction(view, run):
    i = _isolated(view.positions())
    view.page.mouse.move(*view.client(i))
    view.until(f"window.latentFrames.hovered() === {i}")
    assert view.page.locator("#tooltip").is_visible()
    assert view.page.locator("#tooltip-index").text_content() == f"#{i}"
    label = CLASSES[run["labels"][i]]
    assert view.page.locator("#tooltip-label").text_content() == f"class: {label}"
    pred = view.page.locator("#tooltip-pred").text_content()
    assert pred.startswith(f"conv1: predicted {CLASSES[run['predicted'][i]]}")
    assert view.js("document.getElementById('tooltip-thumb').width") == 12
    view.page.mouse.move(2, 790)
    view.until("window.latentFrames.hovered() === -1")
    view.js("window.latentFrames.setFrame(1)")  # space b: no probabilities
    view.until("!window.latentFrames.animating()")
    view.page.mouse.move(*view.client(i))
    view.until(f"window.latentFrames.hovered() === {i}")
    assert view.page.locator("#tooltip-pred").text_content() == "conv2: no predictions"


@pytest.mark.slow
def test_side_by_side_links_hover_and_selection(view, run):
    page = view.page
    assert page.locator("#canvas-b").is_hidden()
    page.locator("#side-by-side").click()
    assert page.locator("#side-by-side").get_attribute("aria-pressed") == "true"
    assert page.locator("canvas.points:visible").count() == 2
    boxes = [page.locator(f"#canvas-{k}").bounding_box() for k in "ab"]
    assert all(b["width"] > 200 and b["height"] > 200 for b in boxes)
    assert boxes[0]["x"] + boxes[0]["width"] <= boxes[1]["x"] + 1  # side by side, no overlap
    assert page.locator("#frame-a").input_value() == "0"
    assert page.locator("#frame-b").input_value() == "2"
    view.until("!window.latentFrames.animating()")
    assert view.js("['a', 'b'].map(window.latentFrames.panelFrame)") == [0, 2]
    assert page.locator("#frame-slider").is_disabled()

    i = _isolated(view.positions("a"))
    page.mouse.move(*view.client(i, "a"))
    view.until(f"window.latentFrames.ringed('b') === {i}")  # the same image in the other map
    assert view.js("window.latentFrames.ringed('a')") == i
    preds = page.locator("#tooltip-pred div").all_text_contents()
    assert [p.split(":")[0] for p in preds] == ["conv1", "dense"]
    j = _isolated(view.positions("b"))
    page.mouse.move(*view.client(j, "b"))
    view.until(f"window.latentFrames.ringed('a') === {j}")

    page.mouse.click(*view.client(i, "a"))
    assert view.js("window.latentFrames.selection()") == [i]
    page.keyboard.down("Shift")
    page.mouse.click(*view.client(j, "b"))
    page.keyboard.up("Shift")
    assert view.js("window.latentFrames.selection()") == sorted({i, j})
    expected = f"Selection · {len({i, j})} images" if i != j else "Selection · 1 image"
    assert page.locator("#selection-title").text_content() == expected
    lasso = _lasso(view, "b")  # a drag in the right map selects there (the lasso tool)
    assert 0 < len(lasso) < N and view.js("window.latentFrames.selection()") == lasso
    page.locator("#frame-b").select_option("1")  # the selection stays on the same images
    view.until("window.latentFrames.panelFrame('b') === 1 && !window.latentFrames.animating()")
    assert view.js("window.latentFrames.selection()") == lasso
    page.locator("#clear-selection").click()
    assert view.js("window.latentFrames.selection()") == []
    page.locator("#side-by-side").click()
    assert page.locator("#canvas-b").is_hidden() and view.errors == []
