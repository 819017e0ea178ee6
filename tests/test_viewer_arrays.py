"""The viewer made from arrays alone (no run directory), from a run's seed, and for every space.

The page of a :class:`ViewerData` is checked number by number (16-bit coordinates, classes,
predictions, neighbours against scikit-learn) and drawn in headless Chromium with the helpers
of ``test_viewer`` (skipped without Playwright or /usr/bin/chromium).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import numpy as np
import pytest

from latent_atlas.errors import ConfigError
from latent_atlas.fileio import save_npy, save_table
from latent_atlas.pipeline import MapConfig, project_features
from latent_atlas.runs import RunDir
from latent_atlas.viewer import ViewerData, build_viewer, ensure_viewer, ensure_viewers
from latent_atlas.viewer.payload import build_payload
from latent_atlas.viewer.serve import pages

from .conftest import make_images, wait_js
from .test_viewer import Page, _class_pixels

N = 300
NAMES = ["alpha", "beta", "gamma", "delta", "epsilon"]
SCREENSHOT = Path("/tmp/viewer_arrays.png")


def _arrays() -> dict:
    images, _ = make_images(N, size=12, seed=5)
    rng = np.random.default_rng(1)
    labels = rng.integers(0, len(NAMES), size=N)
    centres = rng.normal(0, 4, size=(len(NAMES), 6))
    features = (centres[labels] + rng.normal(0, 1, size=(N, 6))).astype(np.float32)
    first = features[:, :2] * 3.0 + 100.0  # any coordinates: bounds are the map's own
    second = np.column_stack([features[:, 2], -features[:, 3] * 1e-3])
    predictions = np.where(rng.random(N) < 0.8, labels, (labels + 1) % len(NAMES))
    return {
        "embeddings": {"first": first, "second": second},
        "labels": labels,
        "class_names": NAMES,
        "images": images,
        "predictions": predictions,
        "confidence": rng.random(N),
        "features": features,
    }


@pytest.fixture(scope="module")
def arrays():
    return _arrays()


@pytest.fixture(scope="module")
def data(arrays):
    scores = {"first": {"trustworthiness": 0.9, "n_fit": 300}, "second": {"trustworthiness": 0.5}}
    return ViewerData.from_arrays(
        **arrays,
        scores=scores,
        score_sources=["my notebook"],
        info={"dataset": "toy", "knn_accuracy": 0.75},
        atlases=[("my atlas", _png(arrays["images"][0]), {"grid": "1×1"})],
        title="arrays only",
    )


def _png(pixels: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _decode(arr: dict) -> np.ndarray:
    dtypes = {"uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32, "int32": np.int32}
    return np.frombuffer(base64.b64decode(arr["b64"]), dtype=dtypes[arr["dtype"]])


def _page_data(page: Path) -> dict:
    """The JSON blocks of a built page."""
    from latent_atlas.viewer.build import page_data

    data = page_data(page)
    assert data, "no data block in the page"
    return data


# -- the payload, number by number ------------------------------------------------------------


def test_payload_of_arrays_round_trips_coordinates_classes_and_neighbours(data, arrays):
    from sklearn.neighbors import NearestNeighbors

    page = build_payload(data, k=7)
    assert page["n"] == N and page["sample"] == {"size": N, "seed": 0, "indices": None}
    assert [m["name"] for m in page["methods"]] == ["first", "second"]
    for method in page["methods"]:
        coords = arrays["embeddings"][method["name"]]
        x0, x1, y0, y1 = method["bounds"]
        assert [x0, x1] == [coords[:, 0].min(), coords[:, 0].max()]
        assert [y0, y1] == [coords[:, 1].min(), coords[:, 1].max()]
        for q, lo, hi, truth in (
            (method["x"], x0, x1, coords[:, 0]),
            (method["y"], y0, y1, coords[:, 1]),
        ):
            back = lo + _decode(q).astype(np.float64) / 65535 * (hi - lo)
            np.testing.assert_allclose(back, truth, rtol=0, atol=(hi - lo) / 65535 / 2 * 1.001)
    assert page["classNames"] == NAMES and len(page["colors"]) == len(NAMES)
    np.testing.assert_array_equal(_decode(page["label"]), arrays["labels"])
    np.testing.assert_array_equal(_decode(page["predicted"]), arrays["predictions"])
    conf = _decode(page["confidence"]) / 65535
    np.testing.assert_allclose(conf, arrays["confidence"], atol=1 / 65535)
    assert page["index"] is None  # rows 0..N-1
    slots = _decode(page["neighbours"]["slots"]).reshape(N, 7)
    nn = NearestNeighbors(n_neighbors=8).fit(arrays["features"])
    _, idx = nn.kneighbors(arrays["features"])
    np.testing.assert_array_equal(
        slots, [[j for j in row if j != i][:7] for i, row in enumerate(idx)]
    )
    assert page["thumbs"]["count"] == N and page["thumbs"]["format"] == "png"  # 12 px: lossless
    assert page["run"]["name"] == "arrays only" and page["run"]["dataset"] == "toy"
    assert page["run"]["nFeatures"] == 6 and page["run"]["latentKnn"] == 0.75
    metrics = page["metrics"]
    assert metrics["columns"] == ["trustworthiness", "n_fit"] and metrics["integer"] == ["n_fit"]
    assert metrics["rows"] == [
        {"method": "first", "values": [0.9, 300.0]},
        {"method": "second", "values": [0.5, None]},
    ]
    assert metrics["sources"] == ["my notebook"] and page["notes"] == []
    (atlas,) = page["atlases"]
    assert atlas["name"] == "my atlas" and atlas["file"] == "my atlas.png"
    assert atlas["details"] == {"grid": "1×1"} and atlas["url"].startswith("data:image/png;")


def test_probabilities_give_predictions_and_confidence(arrays):
    probs = np.random.default_rng(2).dirichlet(np.ones(5), size=N)
    data = ViewerData(arrays["embeddings"], arrays["labels"], probabilities=probs)
    np.testing.assert_array_equal(data.predictions, probs.argmax(axis=1))
    np.testing.assert_allclose(data.confidence, probs.max(axis=1), rtol=1e-6)
    assert data.class_names == [str(i) for i in range(int(arrays["labels"].max()) + 1)]


def test_a_sample_of_points_is_drawn_above_max_points(data, arrays):
    page = build_payload(data, max_points=120, max_thumbnails=40, k=3, seed=4)
    rows = _decode(page["index"]).astype(np.int64)
    assert page["n"] == 120 and len(np.unique(rows)) == 120
    np.testing.assert_array_equal(_decode(page["label"]), arrays["labels"][rows])
    assert page["thumbs"]["count"] == 40 and page["neighbours"]["k"] == 3
    assert any("sample (seed 4) of 120" in note for note in page["notes"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"labels": np.zeros(N - 1, dtype=int)}, "labels must hold one value per point"),
        ({"labels": -np.ones(N, dtype=int)}, "non-negative"),
        ({"labels": np.full(N, 0.5)}, "whole numbers"),
        ({"embeddings": {"a": np.zeros((N, 3))}}, "must be N×2"),
        ({"embeddings": {"a": np.zeros((N, 2)), "b": np.zeros((N - 1, 2))}}, "has 299 points"),
        ({"embeddings": {}}, "at least one map"),
        ({"class_names": ["a", "b"]}, "has no class name"),
        ({"images": np.zeros((N, 4, 4), dtype=np.float32)}, "images must be uint8"),
        ({"images": np.zeros((N - 1, 4, 4), dtype=np.uint8)}, "299 images for 300 points"),
        ({"features": np.zeros((N, 2, 2))}, "features must be numeric"),
        ({"probabilities": np.ones((N, 5))}, "not both"),
        ({"confidence": np.full(N, 2.0)}, "0..1"),
        ({"scores": {"first": {"x": "high"}}}, "must be a number"),
        ({"info": {"colour": "red"}}, "unknown keys"),
        ({"atlases": ["just a name"]}, "an atlas is"),
    ],
)
def test_bad_arrays_are_one_clear_error(arrays, change, message):
    with pytest.raises(ConfigError, match=message):
        ViewerData(**{**arrays, **change})


def test_a_page_of_arrays_needs_a_path(data, tmp_path):
    with pytest.raises(ConfigError, match="needs out="):
        build_viewer(data)
    with pytest.raises(ConfigError, match="space= names a space"):
        build_viewer(data, tmp_path / "p.html", space="other")
    with pytest.raises(ConfigError, match="not int"):
        build_viewer(3)


class CountingImages:
    """An array-like of images that counts how often it is read (a lazily decoded set)."""

    def __init__(self, images: np.ndarray):
        self.images, self.reads = images, 0
        self.shape, self.dtype, self.ndim = images.shape, images.dtype, images.ndim

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key):
        self.reads += 1
        return self.images[key]


def test_the_key_follows_the_content_and_images_are_read_once(arrays, tmp_path):
    images = CountingImages(arrays["images"])
    data = ViewerData(**{**arrays, "images": images})
    page = tmp_path / "page.html"
    assert ensure_viewer(data, page) == (page, True)
    assert images.reads == 1  # the key and the page share one read of the thumbnails
    assert ensure_viewer(data, page) == (page, False)
    assert images.reads == 2
    changed = arrays["images"].copy()
    changed[7, 0, 0, 0] ^= 1  # one pixel of one thumbnail
    assert ensure_viewer(ViewerData(**{**arrays, "images": changed}), page) == (page, True)
    labels = arrays["labels"].copy()
    labels[0] = (labels[0] + 1) % len(NAMES)
    assert ensure_viewer(ViewerData(**{**arrays, "labels": labels}), page) == (page, True)
    assert ensure_viewer(ViewerData(**{**arrays, "labels": labels}), page, k=3) == (page, True)
    assert ensure_viewer(ViewerData(**{**arrays, "labels": labels}), page, k=3) == (page, False)


# -- pages of runs: the run's seed, every space -------------------------------------------------


def test_a_run_page_uses_the_run_seed(tmp_path):
    images, labels = make_images(80, size=8, seed=1)
    features = np.random.default_rng(0).normal(size=(80, 5)).astype(np.float32)
    out = tmp_path / "seeded"
    project_features(
        features, labels, out=out, images=images, maps=MapConfig(methods=("pca",), seed=3)
    )
    assert RunDir.open(out).seed == 3
    page = build_viewer(out)
    assert page == out / "viewer.html"
    assert _page_data(page)["sample"]["seed"] == 3
    sampled = _page_data(build_viewer(RunDir.open(out), tmp_path / "v.html", max_thumbnails=20))
    assert sampled["sample"]["seed"] == 3
    assert any("sample (seed 3) of 20" in note for note in sampled["notes"])
    assert _page_data(build_viewer(out, tmp_path / "w.html", seed=5))["sample"]["seed"] == 5
    arrays = ViewerData({"m": features[:, :2]}, labels)
    assert _page_data(build_viewer(arrays, tmp_path / "a.html"))["sample"]["seed"] == 0


def _space(run: RunDir, name: str, n: int, shift: float) -> None:
    """A space with one map written through the RunDir API (no pipeline)."""
    space = run.add_space(name, source={"layer": name})
    rng = np.random.default_rng(len(name))
    coords = rng.normal(size=(n, 2)).astype(np.float32) + shift
    labels = np.arange(n) % 3
    save_npy(space.file("embedding_m.npy"), coords)
    save_npy(space.file("activations.npy"), rng.normal(size=(n, 4)).astype(np.float32))
    save_table(
        space.file("projections.parquet"),
        {"index": np.arange(n), "label": labels, "m_x": coords[:, 0], "m_y": coords[:, 1]},
    )
    space.set(maps={"m": {"method": "pca", "scores": {"trustworthiness": 0.5 + shift / 10}}})


def test_every_space_of_a_run_gets_its_page(tmp_path):
    run = RunDir.create(tmp_path / "two", command="project", config={}, seed=2)
    run.set(dataset={"name": "toy", "class_names": ["a", "b", "c"]})
    _space(run, "conv", 50, 0.0)
    _space(run, "fc", 50, 1.0)
    built = ensure_viewers(run.path)
    first, second = run.path / "viewer.html", run.path / "spaces" / "fc" / "viewer.html"
    assert built == [(first, True), (second, True)]
    assert ensure_viewers(run) == [(first, False), (second, False)]
    assert ensure_viewer(run.path) == (first, False)  # the first space
    shown = _page_data(second)
    assert shown["n"] == 50 and shown["run"]["name"] == "two · fc"
    assert shown["sample"]["seed"] == 2 and shown["neighbours"]["k"] == 10
    assert shown["metrics"]["rows"] == [{"method": "m", "values": [0.6]}]
    os.utime(run.path / "spaces" / "fc" / "activations.npy")  # touched, not changed
    assert ensure_viewer(run, space="fc") == (second, False)
    assert pages(run.path) == [first, second]
    with pytest.raises(ConfigError, match="no space 'nope'"):
        build_viewer(run, space="nope")
    (run.path / "spaces" / "fc" / "activations.npy").unlink()  # never the first space's
    alone = _page_data(build_viewer(run, space="fc"))
    assert alone["neighbours"] is None
    assert "space fc has no activations.npy" in " ".join(alone["notes"])


# -- the page of arrays in headless Chromium ----------------------------------------------------


@pytest.mark.slow
def test_the_page_of_arrays_draws_its_points(browser, data, arrays, tmp_path):
    page_file = build_viewer(data, tmp_path / "arrays.html")
    view = Page(browser)
    try:
        view.open(page_file.as_uri())
        page = view.page
        assert view.errors == [] and view.dialogs == []
        assert all(u.startswith(("file://", "data:")) for u in view.requests), view.requests
        assert view.js("window.latentAtlas.n") == N
        assert view.js("window.latentAtlas.methods()") == ["first", "second"]
        assert page.locator("#legend .legend-name").all_text_contents() == NAMES
        assert "arrays only" in page.locator("#run-title").text_content()
        colours = _page_data(page_file)["colors"]
        for c, colour in enumerate(colours):
            assert _class_pixels(view, colour) > 0, f"no pixel of class {NAMES[c]}"
        pos = np.array(
            view.js(
                "n => Array.from({length: n}, (_, i) => window.latentAtlas.screenPosition(i))"
                ".map(p => [p.x, p.y])",
                N,
            )
        )
        box = page.locator("#map-canvas").bounding_box()
        inside = (pos[:, 0] >= box["x"]) & (pos[:, 0] <= box["x"] + box["width"])
        assert inside.all()
        first = arrays["embeddings"]["first"]  # screen x grows with the map's x
        assert np.corrcoef(pos[:, 0], first[:, 0])[0, 1] > 0.99
        i = int(np.argmax(first[:, 0]))
        page.mouse.click(*pos[i])
        wait_js(page, f"window.latentAtlas.picked() === {i}")
        got = view.js(f"window.latentAtlas.neighbours({i})")
        d = ((arrays["features"] - arrays["features"][i]) ** 2).sum(axis=1)
        d[i] = np.inf
        assert got == np.argsort(d, kind="stable")[:10].tolist()
        page.screenshot(path=str(SCREENSHOT))
        assert SCREENSHOT.stat().st_size > 10_000
    finally:
        view.page.close()
