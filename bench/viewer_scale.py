"""The viewer at the field's scale: 100,000, 1,000,000 and 2,000,000 points (issue 16).

    python bench/viewer_scale.py                         # 100k, 1M, 2M; today's and the old viewer
    python bench/viewer_scale.py --points 1000000 --old /tmp/old/src

For each size, seeded synthetic data (10 Gaussian clusters mapped to 2-D, 16×16 RGB images
drawn per class, softmax-like predictions, 32-d features for the neighbour lists, and per-point
trust of both maps for a seeded sample of 100,000) goes into a :class:`ViewerData` with two
maps, and ``build_viewer`` writes the page. Measured in headless Chromium (Debian's, software
rendering, viewport 1400×860), each page opened from file://:

- *first render*: the page's own ``performance.now()`` once every point of the first map is
  drawn (since navigation start: HTML and JSON parse, base64 decoding, colours, hover grid,
  drawing); median of 3 fresh loads;
- *redraw*: the page's own time for a full redraw of all points, over 20 pan steps and 20
  wheel zooms (median and p95);
- *hover*: the page's time from ``pointermove`` to the tooltip and ring drawn (next animation
  frame included), on 60 seeded points;
- *bytes per point*: the page with the first map alone, and with both, each without
  thumbnails, neighbour lists and trust (``max_thumbnails=0``, ``k=0``), divided by N.

``--old SRC`` builds the same data with another checkout's ``src`` (for example today's viewer
from ``git worktree add /tmp/old <commit>``) in a subprocess, and measures its page the same
way; that viewer draws a seeded sample of 200,000 above that many points.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from viewer import CHROMIUM, CHROMIUM_ARGS, chromium_version, wait_js

SCORED = 100_000


def synthetic(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded arrays of n points: two maps, labels, predictions, images, features."""
    rng = np.random.default_rng(seed)
    k = 10
    labels = rng.integers(0, k, n).astype(np.int64)
    angle = labels * 2 * np.pi / k
    centre = np.stack([np.cos(angle), np.sin(angle)], axis=1) * 8
    spread = rng.gamma(2.0, 0.6, size=(n, 1))
    first = (centre + rng.normal(size=(n, 2)) * spread).astype(np.float32)
    second = (first @ np.array([[0.6, -0.8], [0.8, 0.6]]) + rng.normal(size=(n, 2))).astype(
        np.float32
    )
    wrong = rng.random(n) < 0.08
    predictions = np.where(wrong, rng.integers(0, k, n), labels)
    confidence = np.clip(rng.beta(5, 1.5, n), 0, 1).astype(np.float32)
    features = np.concatenate([first, rng.normal(size=(n, 30))], axis=1).astype(np.float32)
    return {
        "first": first,
        "second": second,
        "labels": labels,
        "predictions": predictions,
        "confidence": confidence,
        "features": features,
    }


class Images:
    """N×16×16×3 images, made on demand from the labels (a coloured square per class)."""

    def __init__(self, labels: np.ndarray):
        self.labels = labels
        self.shape = (len(labels), 16, 16, 3)
        self.dtype = np.dtype(np.uint8)
        self.ndim = 4

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows):
        lab = self.labels[rows]
        out = np.full((len(lab), 16, 16, 3), 30, dtype=np.uint8)
        colours = (np.arange(10)[:, None] * np.array([70, 130, 190]) % 200 + 55).astype(np.uint8)
        for c in range(10):
            sel = lab == c
            r0, c0 = (c // 4) * 4, (c % 4) * 4
            out[sel, r0 : r0 + 8, c0 : c0 + 8] = colours[c]
        return out


def trust_of(arrays: dict[str, np.ndarray], seed: int = 0):
    """Per-point trust of both maps for a seeded sample (random, for page size and speed)."""
    from latent_atlas.sampling import seeded_sample
    from latent_atlas.trust import PointTrust

    n = len(arrays["labels"])
    rng = np.random.default_rng(seed + 7)
    sample = seeded_sample(n, SCORED, seed)
    kept = {m: rng.beta(2, 3, len(sample)).astype(np.float32) for m in ("first", "second")}
    reading = {
        m: rng.choice(4, len(sample), p=[0.8, 0.1, 0.06, 0.04]).astype(np.uint8)
        for m in ("first", "second")
    }
    majority = arrays["labels"][sample]
    return PointTrust(sample, n, 10, kept, reading, majority)


def build(arrays, out: Path, maps: tuple[str, ...], full: bool) -> tuple[Path, float]:
    from latent_atlas.viewer import ViewerData, build_viewer

    fields = {"predictions": arrays["predictions"], "confidence": arrays["confidence"]}
    if full:
        fields.update(images=Images(arrays["labels"]), features=arrays["features"])
        with contextlib.suppress(ImportError):  # (a viewer without trust: the old one)
            fields["trust"] = trust_of(arrays)
    data = ViewerData({m: arrays[m] for m in maps}, arrays["labels"], seed=0, **fields)
    t0 = time.perf_counter()
    options = {} if full else {"max_thumbnails": 0, "k": 0}
    page = build_viewer(data, out, **options)
    return page, time.perf_counter() - t0


def open_page(browser, page_file: Path) -> tuple[object, list[str]]:
    page = browser.new_page(viewport={"width": 1400, "height": 860})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(page_file.as_uri(), timeout=120_000)
    wait_js(page, "window.latentAtlas && window.latentAtlas.ready", timeout=120)
    return page, errors


def measure(browser, page_file: Path) -> dict[str, float]:
    firsts = []
    for _ in range(3):
        page, errors = open_page(browser, page_file)
        firsts.append(page.evaluate("window.latentAtlas.timings.firstRender"))
        if errors:
            raise SystemExit(f"page errors: {errors}")
        page.close()
    page, _ = open_page(browser, page_file)
    box = page.locator("#overlay-canvas").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    for step in range(20):  # pan: drag by 12 px each time
        page.mouse.down()
        page.mouse.move(cx + 12, cy + (6 if step % 2 else -6), steps=1)
        page.mouse.up()
        page.wait_for_timeout(40)
        page.mouse.move(cx, cy)
    for step in range(20):  # zoom in and out about the centre
        page.mouse.wheel(0, -120 if step % 2 == 0 else 120)
        page.wait_for_timeout(40)
    redraws = page.evaluate("window.latentAtlas.renderTimes()")[1:]
    n = page.evaluate("window.latentAtlas.n")
    rng = np.random.default_rng(1)
    page.evaluate("window.latentAtlas.hoverTimes().length")
    for i in rng.choice(n, 60, replace=False):
        pos = page.evaluate("i => window.latentAtlas.screenPosition(i)", int(i))
        page.mouse.move(pos["x"], pos["y"])
        page.wait_for_timeout(25)
    hovers = page.evaluate("window.latentAtlas.hoverTimes()")
    page.close()
    return {
        "points_drawn": n,
        "first_render_ms": statistics.median(firsts),
        "first_renders": firsts,
        "redraw_median_ms": statistics.median(redraws),
        "redraw_p95_ms": float(np.percentile(redraws, 95)),
        "hover_median_ms": statistics.median(hovers),
        "hover_p95_ms": float(np.percentile(hovers, 95)),
    }


def sizes(arrays, tmp: Path, n: int) -> dict[str, float]:
    one, _ = build(arrays, tmp / "one.html", ("first",), full=False)
    two, _ = build(arrays, tmp / "two.html", ("first", "second"), full=False)
    base = len(_empty_page())
    return {
        "first_map_bytes_per_point": (one.stat().st_size - base) / n,
        "further_map_bytes_per_point": (two.stat().st_size - one.stat().st_size) / n,
    }


def _empty_page() -> str:
    from latent_atlas.viewer import ViewerData
    from latent_atlas.viewer.build import render_html
    from latent_atlas.viewer.payload import build_payload

    tiny = ViewerData({"first": np.zeros((1, 2), np.float32)}, np.zeros(1, np.int64))
    return render_html(build_payload(tiny, max_thumbnails=0, k=0))


def one_size(n: int, browser, tmp: Path) -> dict[str, float]:
    arrays = synthetic(n)
    result = {"n": n, **sizes(arrays, tmp, n)}
    page, seconds = build(arrays, tmp / "full.html", ("first", "second"), full=True)
    result.update(build_s=seconds, page_mib=page.stat().st_size / 2**20)
    result.update(measure(browser, page))
    return result


def old_size(n: int, src: str, browser, tmp: Path) -> dict[str, float]:
    """The same data and page built by another checkout's code (in a subprocess)."""
    code = (
        "import sys, json, time; sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2])\n"
        "import viewer_scale as v\n"
        "a = v.synthetic(int(sys.argv[3]))\n"
        "from latent_atlas.viewer import ViewerData, build_viewer\n"
        "d = ViewerData({'first': a['first'], 'second': a['second']}, a['labels'], seed=0,"
        " predictions=a['predictions'], confidence=a['confidence'], images=v.Images(a['labels']),"
        " features=a['features'])\n"
        "t0 = time.perf_counter(); build_viewer(d, sys.argv[4])\n"
        "print(json.dumps({'build_s': time.perf_counter() - t0}))\n"
    )
    out = tmp / "old.html"
    here = str(Path(__file__).resolve().parent)
    env = {**os.environ, "PYTHONPATH": src}
    done = subprocess.run(
        [sys.executable, "-c", code, src, here, str(n), str(out)],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    result = {"n": n, **json.loads(done.stdout.strip().splitlines()[-1])}
    result["page_mib"] = out.stat().st_size / 2**20
    result.update(measure(browser, out))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", default="100000,1000000,2000000")
    parser.add_argument("--old", help="another checkout's src folder (today's viewer)")
    parser.add_argument("--json", default=str(Path(__file__).parent / "out" / "viewer-scale.json"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    head = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "chromium": chromium_version(),
        "load_start": os.getloadavg()[0],
        "date": time.strftime("%Y-%m-%d"),
    }
    rows = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for n in (int(p) for p in args.points.split(",")):
            with tempfile.TemporaryDirectory() as tmp:
                row = {"viewer": "new", **one_size(n, browser, Path(tmp))}
                print(json.dumps(row), flush=True)
                rows.append(row)
            if args.old:
                with tempfile.TemporaryDirectory() as tmp:
                    row = {"viewer": "old", **old_size(n, args.old, browser, Path(tmp))}
                    print(json.dumps(row), flush=True)
                    rows.append(row)
        browser.close()
    head["load_end"] = os.getloadavg()[0]
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"head": head, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
