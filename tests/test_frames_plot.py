from __future__ import annotations

import logging
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

from latent_atlas.errors import ConfigError
from latent_atlas.frames_anim import animation_schedule, ease, tween
from latent_atlas.frames_plot import (
    CKADisplay,
    FilmStripDisplay,
    ScoreCurvesDisplay,
    normalise_frame,
    write_animation,
)
from latent_atlas.palette import class_colors, class_colors_uint8
from latent_atlas.sampling import seeded_sample

NAMES = ["cat", "dog", "frog"]
LAYERS = ["conv1", "conv2", "conv3", "dense"]


@pytest.fixture(autouse=True)
def no_show(monkeypatch):
    import matplotlib.pyplot as plt

    def fail(*a, **k):
        raise AssertionError("plt.show() must never be called")

    monkeypatch.setattr(plt, "show", fail)


@pytest.fixture
def no_video(monkeypatch):
    """imageio and imageio-ffmpeg absent, whatever is installed."""
    monkeypatch.setitem(sys.modules, "imageio", None)
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)


def sweep(n_frames=4, n=300, seed=0):
    """Frames of 3 Gaussian classes that drift apart a little from frame to frame."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    centres = np.array([[0.0, 1.0], [-1.0, -0.5], [1.0, -0.5]])
    base = rng.normal(size=(n, 2))
    frames = [base * 0.8 + (1 + k) * centres[labels] + 0.05 * k for k in range(n_frames)]
    return frames, labels


def cell(ax):
    spec = ax.get_subplotspec()
    return spec.rowspan.start, spec.colspan.start


# --- film strip ---------------------------------------------------------------------------------


def test_film_strip_has_one_titled_captioned_panel_per_frame_and_one_legend():
    frames, labels = sweep()
    captions = [f"trust 0.9{k}2 · 5-NN 0.7{k}" for k in range(4)]
    disp = FilmStripDisplay.from_frames(frames, labels, NAMES, titles=LAYERS, captions=captions)
    fig = disp.figure_
    assert len(fig.axes) == len(disp.axes_) == 4
    assert [ax.get_title() for ax in disp.axes_] == LAYERS
    assert [ax.get_xlabel() for ax in disp.axes_] == captions
    assert [cell(ax) for ax in disp.axes_] == [(0, 0), (0, 1), (0, 2), (0, 3)]  # one row
    assert all(not ax.get_xticks().size and not ax.get_yticks().size for ax in disp.axes_)
    assert len(fig.legends) == 1
    assert [t.get_text() for t in disp.legend_.get_texts()] == NAMES
    sizes = disp.scatters_[0].get_sizes()
    assert 1.0 <= sizes.min() <= sizes.max() <= 4.0
    assert not disp.scatters_[0].get_linewidths().any()


def test_film_strip_wraps_into_rows_above_eight_panels():
    frames, labels = sweep(11, n=60)
    disp = FilmStripDisplay.from_frames(frames, labels, NAMES, titles=[str(k) for k in range(11)])
    cells = [cell(ax) for ax in disp.axes_]
    assert {r for r, _ in cells} == {0, 1}
    assert max(c for _, c in cells) + 1 <= 8
    assert len(set(cells)) == 11


def test_film_strip_places_frames_in_the_grid_with_row_and_column_names():
    frames, labels = sweep(5, n=90)
    grid = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2)]  # (1, 0) stays blank
    disp = FilmStripDisplay.from_frames(
        frames,
        labels,
        NAMES,
        titles=[f"f{k}" for k in range(5)],
        grid=grid,
        row_names=["conv1", "dense"],
        col_names=["epoch 1", "epoch 5", "epoch 10"],
    )
    # panels sit one cell down and right of their grid cell: the names take row 0 and column 0
    assert [cell(ax) for ax in disp.axes_] == [(r + 1, c + 1) for r, c in grid]
    headers = {t.get_text(): cell(t.axes) for t in disp.headers_}
    assert headers == {
        "conv1": (1, 0),
        "dense": (2, 0),
        "epoch 1": (0, 1),
        "epoch 5": (0, 2),
        "epoch 10": (0, 3),
    }
    assert disp.headers_[0].get_rotation() == 90
    occupied = {cell(ax) for ax in disp.figure_.axes}
    assert (2, 1) not in occupied  # the blank cell has no axes at all
    assert len(disp.figure_.axes) == 5 + 2 + 3


def test_film_strip_draws_the_same_seeded_rows_in_every_panel():
    n, shift = 300, np.array([10.0, -3.0])
    rng = np.random.default_rng(1)
    base, labels = rng.normal(size=(n, 2)), np.arange(n) % 3
    frames = [base + k * shift for k in range(3)]
    disp = FilmStripDisplay.from_frames(
        frames, labels, NAMES, titles=["a", "b", "c"], max_points=100, seed=7
    )
    np.testing.assert_array_equal(disp.sample_, seeded_sample(n, 100, 7))
    drawn = [np.asarray(sc.get_offsets()) - k * shift for k, sc in enumerate(disp.scatters_)]
    assert len(drawn[0]) == 100
    for other in drawn[1:]:
        np.testing.assert_allclose(other, drawn[0], atol=1e-9)  # same rows, same order
    rows = [int(np.argmin(np.abs(base - p).sum(axis=1))) for p in drawn[0]]
    assert sorted(rows) == list(disp.sample_)
    colours = disp.scatters_[0].get_facecolors()[:, :3]
    np.testing.assert_allclose(colours, class_colors(3)[labels[rows]])
    np.testing.assert_allclose(disp.scatters_[2].get_facecolors()[:, :3], colours)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"captions": ["x"]}, "captions"),
        ({"grid": [(0, 0), (0, 0), (0, 1)]}, "distinct"),
        ({"grid": [(0, 0), (0, 1), (0, 2)], "col_names": ["a", "b"]}, "outside"),
        ({"row_names": ["a"]}, "need a grid"),
        ({"titles": ["a", "b"]}, "titles"),
    ],
)
def test_film_strip_refuses_what_does_not_fit(kwargs, message):
    frames, labels = sweep(3, n=30)
    kwargs = {"titles": ["a", "b", "c"], **kwargs}
    with pytest.raises(ConfigError, match=message):
        FilmStripDisplay.from_frames(frames, labels, NAMES, **kwargs)


# --- score curves -------------------------------------------------------------------------------

TABLE = {
    "frame": LAYERS,
    "knn_accuracy": [0.3, 0.5, 0.7, 0.9],
    "linear_probe": [0.4, float("nan"), 0.8, 0.95],
    "silhouette": [-0.1, 0.05, 0.2, 0.4],
    "trust_umap": [0.8, 0.85, None, 0.92],
}


def test_score_curves_one_subplot_per_score_with_layers_as_ordered_ticks():
    ys = ["knn_accuracy", "linear_probe", "silhouette", "trust_umap"]
    disp = ScoreCurvesDisplay.from_table(TABLE, x="frame", ys=ys, xlabel="layer")
    assert list(disp.axes_) == ys
    assert [ax.get_title() for ax in disp.axes_.values()] == [y.replace("_", " ") for y in ys]
    bottom = disp.axes_["trust_umap"]
    assert [t.get_text() for t in bottom.get_xticklabels()] == LAYERS
    assert bottom.get_xlabel() == "layer"
    line = disp.lines_[("knn_accuracy", None)]
    np.testing.assert_array_equal(line.get_xdata(), [0, 1, 2, 3])
    np.testing.assert_allclose(line.get_ydata(), TABLE["knn_accuracy"])
    assert disp.legend_ is None


def test_score_curves_leave_gaps_at_missing_values():
    disp = ScoreCurvesDisplay.from_table(TABLE, x="frame", ys=["linear_probe", "trust_umap"])
    for y, gap in (("linear_probe", 1), ("trust_umap", 2)):
        line = disp.lines_[(y, None)]
        assert np.isnan(line.get_ydata()[gap])
        codes = line.get_path().cleaned(remove_nans=True).codes
        assert list(codes).count(1) == 2  # MOVETO twice: the line is cut at the gap


def test_score_curves_few_scores_share_one_axes_with_a_legend():
    disp = ScoreCurvesDisplay.from_table(TABLE, x="frame", ys=["knn_accuracy", "silhouette"])
    assert list(disp.axes_) == ["scores"]
    assert [t.get_text() for t in disp.legend_.get_texts()] == ["knn_accuracy", "silhouette"]


def test_score_curves_group_splits_lines_over_numeric_epochs():
    table = {
        "epoch": [10, 1, 5] * 2,
        "layer": ["conv1"] * 3 + ["dense"] * 3,
        "knn_accuracy": [0.5, 0.3, 0.4, 0.9, 0.7, 0.8],
        "silhouette": [0.1, -0.1, 0.0, 0.4, 0.2, 0.3],
    }
    disp = ScoreCurvesDisplay.from_table(
        table, x="epoch", ys=["knn_accuracy", "silhouette"], group="layer"
    )
    assert list(disp.axes_) == ["knn_accuracy", "silhouette"]
    dense = disp.lines_[("knn_accuracy", "dense")]
    np.testing.assert_array_equal(dense.get_xdata(), [1, 5, 10])  # sorted along x
    np.testing.assert_allclose(dense.get_ydata(), [0.7, 0.8, 0.9])
    assert [t.get_text() for t in disp.legend_.get_texts()] == ["conv1", "dense"]
    assert disp.legend_.get_title().get_text() == "layer"


def test_score_curves_name_a_missing_column():
    with pytest.raises(ConfigError, match="no column 'probe'"):
        ScoreCurvesDisplay.from_table(TABLE, x="frame", ys=["probe"])
    with pytest.raises(ConfigError, match="3 values, not 4"):
        ScoreCurvesDisplay.from_table({**TABLE, "silhouette": [1, 2, 3]}, "frame", ["silhouette"])


# --- CKA heatmap --------------------------------------------------------------------------------


def test_cka_heatmap_writes_the_values_in_the_cells():
    m = np.array([[1.0, 0.8, 0.31], [0.8, 1.0, 0.55], [0.31, 0.55, 1.0]])
    disp = CKADisplay.from_matrix(m, ["conv1", "conv2", "dense"])
    assert sorted(t.get_text() for t in disp.texts_) == sorted(f"{v:.2f}" for v in m.ravel())
    assert disp.image_.get_clim() == (0, 1)
    assert disp.colorbar_.ax.get_ylabel() == "linear CKA"
    labels = disp.ax_.get_xticklabels()
    assert [t.get_text() for t in labels] == ["conv1", "conv2", "dense"]
    assert labels[0].get_rotation() == 45
    assert [t.get_text() for t in disp.ax_.get_yticklabels()] == ["conv1", "conv2", "dense"]


def test_cka_heatmap_leaves_the_values_out_above_sixteen_frames_and_checks_the_shape():
    n = 17
    disp = CKADisplay.from_matrix(np.eye(n), [f"l{k}" for k in range(n)])
    assert disp.texts_ == []
    with pytest.raises(ConfigError, match="3×3"):
        CKADisplay.from_matrix(np.eye(2), ["a", "b", "c"])


# --- animation ----------------------------------------------------------------------------------


def test_normalise_frame_centres_and_scales_to_rms_radius_one():
    frames, _ = sweep(1)
    out = normalise_frame(frames[0] * 7 + 3)
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-12)
    assert np.sqrt(np.mean(np.sum(out**2, axis=1))) == pytest.approx(1.0)
    np.testing.assert_array_equal(normalise_frame(np.ones((5, 2))), np.zeros((5, 2)))


def test_interpolation_moves_every_point_monotonically_from_one_frame_to_the_next():
    t = np.linspace(0, 1, 50)
    assert ease(0.0) == 0 and ease(1.0) == 1
    assert np.all(np.diff(ease(t)) > 0)
    a, b = np.array([[0.0, 0.0], [1.0, 2.0]]), np.array([[3.0, -1.0], [1.0, 0.0]])
    np.testing.assert_allclose(tween(a, b, 0.0), a)
    np.testing.assert_allclose(tween(a, b, 1.0), b)
    path = np.array([tween(a, b, s) for s in t])  # (steps, points, 2)
    assert np.all(np.diff(path[:, 0, 0]) > 0) and np.all(np.diff(path[:, 1, 1]) < 0)


def test_animation_schedule_holds_each_frame_and_steps_between():
    sched = animation_schedule(4, steps=3, hold=5)
    assert len(sched) == 4 + 3 * 3
    assert sum(count for *_, count in sched) == 4 * 5 + 3 * 3
    assert [s for s in sched if s[0] == s[1]] == [(k, k, 0.0, 5) for k in range(4)]
    assert [s[2] for s in sched[1:4]] == [0.25, 0.5, 0.75]


def test_write_animation_gif_images_durations_size_and_loop(tmp_path, no_video, caplog):
    frames, labels = sweep(4, n=300)
    n, steps, hold, ms = 4, 5, 3, 60
    with caplog.at_level(logging.INFO, logger="latent_atlas"):
        paths = write_animation(
            frames,
            labels,
            NAMES,
            tmp_path / "sweep.gif",
            titles=LAYERS,
            steps=steps,
            hold=hold,
            size=240,
            frame_ms=ms,
        )
    assert paths == [tmp_path / "sweep.gif"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.gif"]  # no temporaries left
    assert "imageio" in caplog.text
    with Image.open(paths[0]) as gif:
        assert gif.format == "GIF"
        assert gif.size == (240, 240)
        assert gif.info["loop"] == 0
        assert gif.n_frames == n + (n - 1) * steps
        durations = [im.info["duration"] for im in ImageSequence.Iterator(gif)]
    assert durations[0] == hold * ms and durations[1] == ms
    assert durations[steps + 1] == hold * ms  # the second real frame
    assert sum(durations) == (n * hold + (n - 1) * steps) * ms


def gif_rgb(path: Path) -> list[np.ndarray]:
    with Image.open(path) as gif:
        return [np.asarray(im.convert("RGB")) for im in ImageSequence.Iterator(gif)]


def test_a_tracked_point_travels_monotonically_during_a_transition(tmp_path, no_video):
    a = np.array([[-1.0, 1.0], [1.0, -1.0]])  # point 0 moves right along the top,
    b = np.array([[1.0, 1.0], [-1.0, -1.0]])  # point 1 left along the bottom
    steps = 8
    (path,) = write_animation(
        [a, b],
        np.array([0, 1]),
        ["mover", "other"],
        tmp_path / "track.gif",
        titles=["a", "b"],
        steps=steps,
        hold=1,
        size=200,
        legend=False,
    )
    images = gif_rgb(path)
    assert len(images) == 2 + steps
    blue = class_colors_uint8(2)[0]
    where = []
    for image in images:
        rows, cols = np.nonzero(np.all(image == blue, axis=2))
        assert len(rows), "the tracked point is drawn in every image"
        where.append((rows.mean(), cols.mean()))
    rows, cols = np.array(where).T
    assert np.all(np.diff(cols) > 0)  # always moving right, never back
    assert np.ptp(rows) < 1  # along a straight line
    assert cols[-1] - cols[0] > 100


def test_animation_titles_name_the_frame_and_the_transition(tmp_path, no_video):
    frames, labels = sweep(2, n=50)
    kwargs = {"steps": 2, "hold": 1, "size": 200}
    write_animation(frames, labels, NAMES, tmp_path / "ab.gif", titles=["a", "b"], **kwargs)
    write_animation(frames[:1], labels, NAMES, tmp_path / "a.gif", titles=["a"], **kwargs)
    write_animation(frames[:1], labels, NAMES, tmp_path / "t.gif", titles=["a → b"], **kwargs)
    sweep_images = gif_rgb(tmp_path / "ab.gif")
    band = slice(0, 18)  # the title band, above the map
    np.testing.assert_array_equal(sweep_images[0][band], gif_rgb(tmp_path / "a.gif")[0][band])
    np.testing.assert_array_equal(sweep_images[1][band], gif_rgb(tmp_path / "t.gif")[0][band])
    assert (sweep_images[1][band] < 128).any()  # dark text is there


def test_write_animation_also_writes_an_mp4_when_imageio_ffmpeg_is_there(tmp_path, monkeypatch):
    calls = []

    def write_frames(path, size, **kwargs):
        frames = []
        calls.append((size, kwargs, frames))

        def writer():
            try:
                while True:
                    frame = yield
                    if frame is not None:
                        frames.append(frame)
            finally:
                Path(path).write_bytes(b"mp4")

        return writer()

    fake = types.SimpleNamespace(write_frames=write_frames)
    monkeypatch.setitem(sys.modules, "imageio", types.SimpleNamespace())
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", fake)
    frames, labels = sweep(3, n=60)
    paths = write_animation(
        frames, labels, NAMES, tmp_path / "s.gif", titles=LAYERS[:3], steps=2, hold=3, size=120
    )
    assert paths == [tmp_path / "s.gif", tmp_path / "s.mp4"]
    assert (tmp_path / "s.mp4").read_bytes() == b"mp4"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.gif", "s.mp4"]
    ((size, kwargs, written),) = calls
    assert size == (128, 128)  # whole 16-pixel macro blocks
    assert len(written) == 3 * 3 + 2 * 2  # held images repeated: a constant frame rate
    assert written[0].shape == (128, 128, 3) and written[0].dtype == np.uint8
    assert kwargs["codec"] == "libx264"


def test_write_animation_refuses_bad_frames(tmp_path):
    frames, labels = sweep(2, n=20)
    with pytest.raises(ConfigError, match="titles"):
        write_animation(frames, labels, NAMES, tmp_path / "x.gif", titles=["a"])
    bad = frames[1].copy()
    bad[3, 0] = np.nan
    with pytest.raises(ConfigError, match="frame 1 has coordinates"):
        write_animation([frames[0], bad], labels, NAMES, tmp_path / "x.gif", titles=["a", "b"])
    with pytest.raises(ConfigError, match="frame 1 has 19 points"):
        write_animation([frames[0], bad[:19]], labels, NAMES, tmp_path / "x.gif", titles="ab")
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_ten_frames_of_ten_thousand_points_animate_quickly(tmp_path, no_video):
    rng = np.random.default_rng(0)
    labels = np.arange(12_000) % 10
    frames = [
        rng.normal(size=(12_000, 2)) + k * np.c_[np.cos(labels), np.sin(labels)] for k in range(10)
    ]
    start = time.perf_counter()
    (path,) = write_animation(
        frames,
        labels,
        [str(k) for k in range(10)],
        tmp_path / "big.gif",
        titles=[f"layer{k}" for k in range(10)],
    )
    assert time.perf_counter() - start < 30  # about 1 s on a quiet 2-core machine
    with Image.open(path) as gif:
        assert gif.n_frames == 10 + 9 * 12 and gif.size == (480, 480)


@pytest.mark.slow
def test_a_real_mp4_when_imageio_ffmpeg_is_installed(tmp_path):
    pytest.importorskip("imageio")
    ffmpeg = pytest.importorskip("imageio_ffmpeg")
    frames, labels = sweep(3, n=200)
    paths = write_animation(
        frames, labels, NAMES, tmp_path / "s.gif", titles=LAYERS[:3], steps=4, hold=2, size=160
    )
    assert paths[1] == tmp_path / "s.mp4"
    reader = ffmpeg.read_frames(str(paths[1]))
    meta = next(reader)
    assert meta["size"] == (160, 160)
    assert sum(1 for _ in reader) == 3 * 2 + 2 * 4
