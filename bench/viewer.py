"""Viewer benchmark: page size, first render and hover latency in headless Chromium.

    python bench/viewer.py                 # prints a Markdown report
    python bench/viewer.py --points 20000  # a smaller synthetic run

1. a synthetic run directory of 100,000 points (seeded: 10 Gaussian clusters in 64-d, 16×16
   RGB images, softmax predictions), written by ``project_features`` (PCA map);
2. ``build_viewer`` on it: build time and HTML size;
3. the page opened from file:// in headless Chromium (Debian's /usr/bin/chromium through
   Playwright), three fresh loads: time from navigation start to the first drawn map (the
   page's own ``performance.now()``) and wall time of ``goto`` until the map is drawn;
4. hover: the mouse moved onto 100 seeded random points; latency is the page's time from the
   ``pointermove`` event to the tooltip and overlay being updated (the next animation frame
   included), plus the round trip seen from Python (CDP overhead included); full redraws
   (zoom) are timed too;
5. when ../shared/data is present: the 10,000 CIFAR-10 test images with the article's own
   ``dense`` activations (PCA map), HTML size and first render.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from latent_atlas.pipeline import MapConfig, project_features
from latent_atlas.viewer import build_viewer

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def wait_js(page, expression: str, timeout: float = 60.0) -> None:
    """Poll ``expression`` in ``page`` until it is truthy (the viewer's Content-Security-Policy
    forbids the eval that Playwright's ``wait_for_function`` uses while polling)."""
    import time

    end = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > end:
            raise TimeoutError(f"still false after {timeout} s: {expression}")
        page.wait_for_timeout(15)


def synthetic_run(out: Path, n: int, seed: int = 0) -> float:
    """A seeded n-point run directory (PCA map); returns the seconds it took."""
    rng = np.random.default_rng(seed)
    k, d = 10, 64
    labels = rng.integers(0, k, n)
    centres = rng.normal(0, 4, size=(k, d))
    features = (centres[labels] + rng.normal(0, 3, size=(n, d))).astype(np.float32)
    logits = features @ centres.T / d + rng.normal(0, 4, size=(n, k))  # about 92% right
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
    colours = rng.integers(40, 255, size=(k, 3))
    images = rng.integers(0, 50, size=(n, 16, 16, 3), dtype=np.uint8)
    for c in range(k):
        rows = labels == c
        r0, c0 = (c // 4) * 4, (c % 4) * 4
        images[rows, r0 : r0 + 8, c0 : c0 + 8] = colours[c]
    names = [f"class {c}" for c in range(k)]
    t0 = time.perf_counter()
    project_features(
        features,
        labels,
        out=out,
        images=images,
        class_names=names,
        probabilities=probs,
        maps=MapConfig(methods=("pca",)),
    )
    return time.perf_counter() - t0


def cifar_run(out: Path) -> float | None:
    """The article's CIFAR-10 dense activations with the 10,000 test images (PCA map)."""
    latents = SHARED / "seed-latents" / "cifar10-test-dense.npz"
    if not latents.is_file() or not (SHARED / "cifar10").is_dir():
        return None
    from latent_atlas.datasets import load_dataset

    ds = load_dataset("cifar10", SHARED / "cifar10", progress=False)
    z = np.load(latents)
    if not np.array_equal(z["labels"], ds.y_test):
        raise SystemExit(
            "the article's latents and the CIFAR-10 test labels are not in the same order"
        )
    t0 = time.perf_counter()
    project_features(
        z["activations"],
        z["labels"],
        out=out,
        images=ds.x_test,
        class_names=ds.class_names,
        maps=MapConfig(methods=("pca",)),
    )
    return time.perf_counter() - t0


def load_times(browser, page_file: Path, repeats: int = 3) -> list[tuple[float, float]]:
    """(first render in ms after navigation start, wall ms of goto until drawn) per load."""
    out = []
    for _ in range(repeats):
        page = browser.new_page(viewport={"width": 1400, "height": 860})
        errors: list[str] = []
        page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
        t0 = time.perf_counter()
        page.goto(page_file.as_uri())
        wait_js(page, "window.latentAtlas && window.latentAtlas.ready", timeout=60)
        wall = (time.perf_counter() - t0) * 1000
        first = page.evaluate("window.latentAtlas.timings.firstRender")
        if errors:
            raise SystemExit(f"page errors: {errors}")
        out.append((first, wall))
        page.close()
    return out


def hover_times(browser, page_file: Path, n_moves: int = 100, seed: int = 1) -> dict[str, float]:
    page = browser.new_page(viewport={"width": 1400, "height": 860})
    page.goto(page_file.as_uri())
    wait_js(page, "window.latentAtlas && window.latentAtlas.ready", timeout=60)
    n = page.evaluate("window.latentAtlas.n")
    rng = np.random.default_rng(seed)
    round_trips = []
    for i in rng.choice(n, n_moves, replace=False):
        pos = page.evaluate("i => window.latentAtlas.screenPosition(i)", int(i))
        page.mouse.move(1, 1)
        wait_js(page, "window.latentAtlas.hovered() === -1")
        t0 = time.perf_counter()
        page.mouse.move(pos["x"], pos["y"])
        wait_js(page, "window.latentAtlas.hovered() !== -1")
        round_trips.append((time.perf_counter() - t0) * 1000)
    in_page = page.evaluate("window.latentAtlas.hoverTimes()")
    box = page.locator("#overlay-canvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(10):  # zoom in and out: full redraws of every point
        page.mouse.wheel(0, -120)
        page.wait_for_timeout(30)
        page.mouse.wheel(0, 120)
        page.wait_for_timeout(30)
    redraws = page.evaluate("window.latentAtlas.renderTimes()")[1:]
    page.close()
    return {
        "moves": n_moves,
        "page_median": statistics.median(in_page),
        "page_p95": float(np.percentile(in_page, 95)),
        "trip_median": statistics.median(round_trips),
        "trip_p95": float(np.percentile(round_trips, 95)),
        "redraw_median": statistics.median(redraws),
        "redraw_max": max(redraws),
        "redraws": len(redraws),
    }


def chromium_version() -> str:
    try:
        out = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.strip()
    except OSError:
        return "unknown"


def page_parts(page_file: Path) -> str:
    """MiB of the page's data by part: thumbnails, atlases, neighbours, maps, the rest."""
    from latent_atlas.viewer.build import page_data

    html = page_file.read_text()
    data = page_data(page_file)
    thumbs = sum(len(u) for u in (data["thumbs"] or {}).get("urls", []))
    atlases = sum(len(a["url"]) for a in data["atlases"])
    neighbours = len((data["neighbours"] or {}).get("slots", {}).get("b64", ""))
    maps = sum(len(m["x"]["b64"]) + len(m["y"]["b64"]) for m in data["methods"])
    rest = len(html) - thumbs - atlases - neighbours - maps
    sheets = data["thumbs"] or {"count": 0, "format": "none"}
    parts = [
        (f"thumbnails ({sheets['count']:,}, {sheets['format']})", thumbs),
        (f"atlases ({len(data['atlases'])})", atlases),
        ("neighbour lists", neighbours),
        (f"map coordinates ({len(data['methods'])})", maps),
        ("labels, predictions, script, style", rest),
    ]
    return ", ".join(f"{name} {size / 2**20:.2f}" for name, size in parts) + " MiB"


def report_page(name: str, run_dir: Path, run_seconds: float, browser, hover: bool) -> None:
    t0 = time.perf_counter()
    page_file = build_viewer(run_dir)
    build = time.perf_counter() - t0
    size = page_file.stat().st_size
    loads = load_times(browser, page_file)
    first = statistics.median(t for t, _ in loads)
    wall = statistics.median(w for _, w in loads)
    print(f"### {name}\n")
    print("| what | value |\n|---|---:|")
    print(f"| run directory (project_features, PCA) | {run_seconds:.1f} s |")
    print(f"| build_viewer | {build:.2f} s |")
    print(f"| viewer.html | {size / 2**20:.2f} MiB ({size:,} bytes) |")
    print(f"| of which | {page_parts(page_file)} |")
    print(f"| first render, median of 3 loads (ms after navigation start) | {first:.0f} ms |")
    print(f"| page.goto until drawn, median of 3 (wall) | {wall:.0f} ms |")
    each = ", ".join(f"{a:.0f} / {b:.0f}" for a, b in loads)
    print(f"| the three loads: first render / wall | {each} ms |")
    if hover:
        h = hover_times(browser, page_file)
        rows = [
            (f"hover, event → tooltip drawn, median / p95 ({h['moves']} points)", "page"),
            ("hover, Python round trip (CDP included), median / p95", "trip"),
        ]
        for what, key in rows:
            print(f"| {what} | {h[key + '_median']:.1f} / {h[key + '_p95']:.1f} ms |")
        print(
            f"| full redraw on zoom, median / max ({h['redraws']} redraws) | "
            f"{h['redraw_median']:.1f} / {h['redraw_max']:.1f} ms |"
        )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--skip-cifar", action="store_true")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    print("## Viewer (`bench/viewer.py`)\n")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {chromium_version()} headless (software rendering, "
        f"--disable-gpu), viewport 1400×860; load average {os.getloadavg()[0]:.2f}\n"
    )
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        run = Path(tmp) / "synthetic"
        seconds = synthetic_run(run, args.points)
        report_page(f"synthetic, {args.points:,} points", run, seconds, browser, hover=True)
        if not args.skip_cifar:
            seconds = cifar_run(Path(tmp) / "cifar10")
            if seconds is None:
                print("(../shared/data is not available: CIFAR-10 skipped)\n")
            else:
                report_page(
                    "CIFAR-10 test set, 10,000 images, the article's dense activations",
                    Path(tmp) / "cifar10",
                    seconds,
                    browser,
                    hover=True,
                )
        browser.close()
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
