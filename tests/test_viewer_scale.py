"""The viewer at scale, in headless Chromium: every point drawn, density-aware opacity, the
images themselves when zoomed in, and the trust colour modes (issue 16).

CI uses a few hundred thousand points at most; ``bench/viewer_scale.py`` measures 1 and 2 million.
"""

from __future__ import annotations

import numpy as np
import pytest

from latent_atlas.trust import READINGS, PointTrust
from latent_atlas.viewer import ViewerData, build_viewer
from latent_atlas.viewer.payload import MAX_POINTS, build_payload

from .conftest import wait_js

PALETTE_WHITE = (255, 255, 255)


def _clusters(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    centres = np.array([[0, 0], [6, 0], [0, 6], [6, 6]], dtype=np.float32)
    return (centres[labels] + rng.normal(size=(n, 2)) * 1.2).astype(np.float32), labels


def _trust(n: int, maps: tuple[str, ...], every: int = 1) -> PointTrust:
    sample = np.arange(0, n, every)
    reading = {m: ((sample * (i + 3)) % 4).astype(np.uint8) for i, m in enumerate(maps)}
    kept = {m: ((sample % 11) / 10).astype(np.float32) for m in maps}
    return PointTrust(sample, n, 10, kept, reading)


def _open(browser, path, width: int = 1280):
    page = browser.new_page(viewport={"width": width, "height": 800})
    errors: list[str] = []
    requests: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    wait_js(page, "window.latentAtlas && window.latentAtlas.ready", timeout=60)
    page.evaluate("window.latentAtlas.thumbsReady")
    return page, errors, requests


def _pixels(page) -> np.ndarray:
    """The map canvas as an H×W×3 array (through a PNG: quick for large canvases)."""
    import base64
    import io

    from PIL import Image

    url = page.evaluate("document.getElementById('map-canvas').toDataURL('image/png')")
    png = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _redraw(page) -> None:
    n = len(page.evaluate("window.latentAtlas.renderTimes()"))
    page.locator("#reset-view").click()
    wait_js(page, f"window.latentAtlas.renderTimes().length > {n}")


def test_every_point_is_drawn_up_to_two_million():
    assert MAX_POINTS == 2_000_000
    emb, labels = _clusters(250_001)
    payload = build_payload(ViewerData({"m": emb}, labels), max_thumbnails=0, k=0)
    assert payload["n"] == 250_001 and payload["sample"]["size"] == 0  # (the old cap: 200,000)
    sampled = build_payload(ViewerData({"m": emb}, labels), max_points=1000, max_thumbnails=0)
    assert sampled["n"] == 1000 and any("seeded sample" in n for n in sampled["notes"])


def test_trust_travels_per_map_for_the_scored_points():
    emb, labels = _clusters(500)
    trust = _trust(500, ("a", "b"), every=5)
    data = ViewerData({"a": emb, "b": emb[:, ::-1]}, labels, trust=trust)
    t = build_payload(data, k=0)["trust"]
    assert t["readings"] == list(READINGS) and t["k"] == 10 and set(t["maps"]) == {"a", "b"}
    drawn = build_payload(data, k=0, max_points=200)  # a sample of the points is drawn
    assert any("scored on a seeded sample" in n for n in drawn["notes"])
    with pytest.raises(Exception, match="increasing indices"):
        ViewerData({"a": emb}, labels, trust=PointTrust(np.array([3, 1]), 500, 10, {}, {}))


@pytest.mark.slow
def test_a_large_map_is_drawn_whole_with_density_aware_opacity(browser, tmp_path):
    emb, labels = _clusters(300_000)
    page_file = build_viewer(ViewerData({"m": emb}, labels), tmp_path / "v.html")
    page, errors, requests = _open(browser, page_file)
    assert page.evaluate("window.latentAtlas.n") == 300_000
    assert page.evaluate("window.latentAtlas.visibleCount()") == 300_000
    assert page.evaluate("window.latentAtlas.lastRender().density") >= 4  # points pile up
    colours = np.asarray(page.evaluate("JSON.parse(document.getElementById('la-data')"
                                       ".textContent).colors"))  # fmt: skip
    dense = _pixels(page)
    page.select_option("#opacity", "opaque")
    _redraw(page)
    opaque = _pixels(page)
    assert page.evaluate("window.latentAtlas.lastRender().density") == 0

    def blended(img: np.ndarray) -> int:  # neither background nor a class colour
        flat = img.reshape(-1, 3)
        exact = (flat[:, None, :] == colours[None, :, :]).all(axis=2).any(axis=1)
        return int((~exact & (flat != PALETTE_WHITE).any(axis=1)).sum())

    assert blended(opaque) == 0 and blended(dense) > 5000  # the sparse outskirts are lighter
    assert not errors and all(u.startswith(("file:", "data:", "blob:")) for u in requests)
    page.close()


@pytest.mark.slow
def test_zoomed_in_the_map_draws_the_images_themselves(browser, tmp_path):
    rng = np.random.default_rng(0)
    emb, labels = _clusters(3000)
    images = np.zeros((3000, 16, 16, 3), dtype=np.uint8)
    images[:, :, :, 1] = 200  # every image is green: no class colour is
    images[:, 4:12, 4:12, 0] = rng.integers(100, 255, 3000)[:, None, None]
    page_file = build_viewer(ViewerData({"m": emb}, labels, images=images), tmp_path / "v.html")
    page, errors, _ = _open(browser, page_file)

    def greenish(img: np.ndarray) -> int:  # (WebP and scaling move the values a little)
        g, b = img[:, :, 1].astype(int), img[:, :, 2].astype(int)
        return int(((abs(g - 200) < 25) & (b < 40)).sum())

    assert page.evaluate("window.latentAtlas.lastRender().images") == 0  # too many to show
    assert greenish(_pixels(page)) == 0
    box = page.locator("#overlay-canvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(3):
        page.mouse.wheel(0, -300)
        page.wait_for_timeout(30)
    page.wait_for_timeout(200)
    wait_js(page, "window.latentAtlas.lastRender().images > 0")
    shown = page.evaluate("window.latentAtlas.lastRender().images")
    assert 20 < shown <= 4000 and greenish(_pixels(page)) > shown * 100  # whole images
    page.uncheck("#images")
    _redraw(page)
    assert page.evaluate("window.latentAtlas.lastRender().images") == 0
    assert not errors
    page.close()


@pytest.mark.slow
def test_trust_colour_modes_count_each_reading_per_map(browser, tmp_path):
    emb, labels = _clusters(2000)
    trust = _trust(2000, ("a", "b"), every=2)  # half the points scored
    data = ViewerData({"a": emb, "b": -emb}, labels, trust=trust)
    page, errors, _ = _open(browser, build_viewer(data, tmp_path / "v.html"))
    page.select_option("#color-by", "reading")
    legend = {e["name"]: e["count"] for e in page.evaluate("window.latentAtlas.legend()")}
    want = np.bincount(trust.reading["a"], minlength=4)
    assert [legend[r] for r in READINGS] == want.tolist() and legend["not scored"] == 1000
    text = page.locator("#legend").inner_text()
    assert f"{want[1] / 1000 * 100:.1f}%" in text  # shares of the scored points
    page.locator("#methods button", has_text="b").click()
    legend_b = {e["name"]: e["count"] for e in page.evaluate("window.latentAtlas.legend()")}
    assert [legend_b[r] for r in READINGS] == np.bincount(trust.reading["b"], minlength=4).tolist()
    assert "of 10 neighbours kept" in page.evaluate("window.latentAtlas.trust(0)")
    assert "not scored" in page.evaluate("window.latentAtlas.trust(1)")
    page.select_option("#color-by", "kept")
    names = [e["name"] for e in page.evaluate("window.latentAtlas.legend()")]
    assert names[0] == "0 of 10 kept" and names[-1] == "not scored"
    assert not errors
    page.close()
