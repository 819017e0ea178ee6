from __future__ import annotations

import numpy as np
import pytest

from latent_atlas.errors import ConfigError
from latent_atlas.palette import class_colors
from latent_atlas.plotting import ComparisonDisplay, ScatterDisplay

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(autouse=True)
def no_show(monkeypatch):
    import matplotlib.pyplot as plt

    def fail(*a, **k):
        raise AssertionError("plt.show() must never be called")

    monkeypatch.setattr(plt, "show", fail)


def points(n=500, k=10):
    rng = np.random.default_rng(0)
    labels = np.arange(n) % k
    emb = rng.normal(size=(n, 2)) + 4 * np.c_[np.cos(labels), np.sin(labels)]
    return emb, labels


def test_scatter_is_the_articles_layout():
    emb, labels = points()
    disp = ScatterDisplay.from_embedding(emb, labels, NAMES)
    fig, ax = disp.figure_, disp.ax_
    assert tuple(fig.get_size_inches()) == (6, 5) and fig.dpi == 120
    legend = disp.legend_
    assert [t.get_text() for t in legend.get_texts()] == NAMES
    assert legend._ncols == 5
    # the legend sits above the axes
    fig.canvas.draw()
    assert legend.get_window_extent().y0 >= ax.get_window_extent().y1 - 1
    # every point drawn, coloured by its class
    offsets = disp.scatter_.get_offsets()
    assert len(offsets) == len(emb)
    colors = disp.scatter_.get_facecolors()[:, :3]
    expected = class_colors(10)[labels[np.random.default_rng(0).permutation(len(emb))]]
    np.testing.assert_allclose(colors, expected)


def test_scatter_draws_on_a_given_axes():
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    emb, labels = points(50, 3)
    disp = ScatterDisplay.from_embedding(emb, labels, ax=ax, legend=False)
    assert disp.ax_ is ax


def test_comparison_has_one_panel_per_method_and_one_legend():
    emb, labels = points()
    disp = ComparisonDisplay.from_embeddings(
        {"pca": emb, "tsne": emb * 2, "umap": -emb},
        labels,
        NAMES,
        subtitles={"pca": "5-NN acc 0.5"},
    )
    assert list(disp.axes_) == ["pca", "tsne", "umap"]
    assert disp.axes_["pca"].get_title() == "pca\n5-NN acc 0.5"
    assert len(disp.figure_.legends) == 1


def test_display_errors():
    emb, labels = points(30, 3)
    with pytest.raises(ConfigError, match="N×2"):
        ScatterDisplay.from_embedding(np.zeros((30, 3)), labels)
    with pytest.raises(ConfigError, match="only 2 class names"):
        ScatterDisplay.from_embedding(emb, labels, ["a", "b"])
    with pytest.raises(ConfigError, match="no embeddings"):
        ComparisonDisplay.from_embeddings({}, labels)


def test_colours_stay_distinct_for_many_classes():
    for k in (3, 10, 20, 50):
        c = class_colors(k)
        assert len(np.unique(np.round(c, 4), axis=0)) == k


def test_millions_of_points_are_aggregated():
    from latent_atlas.plotting import AGGREGATE_ABOVE, DensityDisplay, density_image

    rng = np.random.default_rng(0)
    n = AGGREGATE_ABOVE + 1
    labels = rng.integers(0, 3, n)
    emb = rng.normal(size=(n, 2)) + 6 * np.c_[labels == 1, labels == 2]
    disp = ScatterDisplay.from_embedding(emb, labels, ["a", "b", "c"])
    assert disp.scatter_.get_array().shape == (500, 600, 4)  # an image, not 200,001 markers
    img = density_image(emb, labels, class_colors(3), width=60, height=50)
    assert img.shape == (50, 60, 4)
    assert np.all((img[..., 3] == 0) | (img[..., 3] >= 0.25)) and img[..., 3].max() == 1.0
    # a pixel holding only class 0 has exactly class 0's colour
    only = density_image(
        emb[labels == 0], labels[labels == 0], class_colors(3), width=10, height=10
    )
    filled = only[..., 3] > 0
    np.testing.assert_allclose(only[filled][:, :3], np.tile(class_colors(3)[0], (filled.sum(), 1)))
    dd = DensityDisplay.from_embedding(emb[:1000], labels[:1000], ["a", "b", "c"], title="m")
    assert dd.image_.shape[2] == 4 and "1,000 points" in dd.ax_.get_xlabel()
