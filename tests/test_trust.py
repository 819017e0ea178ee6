"""Where a map can be trusted, point by point: latent_atlas.trust and its picture."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from sklearn.datasets import load_digits

from latent_atlas.compare import compare_run
from latent_atlas.config import AtlasConfig, MapConfig
from latent_atlas.errors import ConfigError
from latent_atlas.latent import LatentSpace
from latent_atlas.maps import map_space
from latent_atlas.runs import RunDir
from latent_atlas.trust import (
    LATENT_CONFUSION,
    MISPLACED,
    PROJECTION_ARTEFACT,
    READING_HELP,
    READINGS,
    point_trust,
    read_trust,
    save_trust,
)
from latent_atlas.trust_plot import KeptScale, TrustDisplay, shared_neighbours

AGREED = READINGS.index("agreed")


def two_clusters(n: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Class 0 around the origin, class 1 far away: a latent space that separates them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2 * n, 5))
    x[n:] += 100.0
    return x, np.repeat([0, 1], n)


def test_readings_and_their_help_are_in_order():
    assert READINGS == ("agreed", "latent confusion", "projection artefact", "misplaced")
    assert [READINGS.index(r) for r in READINGS] == [0, LATENT_CONFUSION, PROJECTION_ARTEFACT, 3]
    assert set(READING_HELP) == set(READINGS) and all(READING_HELP.values())


def test_a_point_the_latent_space_mixes_is_latent_confusion():
    x, y = two_clusters()
    x[5] = x[30:].mean(axis=0)  # a class-0 image inside the class-1 cluster of the network
    trust = point_trust(x, {"same": x[:, :2]}, y)  # a map that draws what the network sees
    reading = trust.reading["same"]
    assert reading[5] == LATENT_CONFUSION
    assert trust.latent_majority[5] == 1 and trust.latent_majority[4] == 0
    assert np.all(np.delete(reading, 5) == AGREED)


def test_a_wrong_prediction_is_latent_confusion_even_where_neighbours_agree():
    x, y = two_clusters()
    predictions = y.copy()
    predictions[3] = 1
    trust = point_trust(x, {"same": x[:, :2]}, y, predictions)
    assert trust.reading["same"][3] == LATENT_CONFUSION
    assert np.all(np.delete(trust.reading["same"], 3) == AGREED)


def test_a_map_that_mixes_separated_classes_is_a_projection_artefact():
    x, y = two_clusters(20)
    # the map: a ring, classes alternating; each map neighbourhood (±1, ±2) is half and half,
    # the tie goes to class 0, so every class-1 point is mixed on the map only
    angle = np.r_[np.arange(20) * 2, np.arange(20) * 2 + 1] * (2 * np.pi / 40)
    ring = np.c_[np.cos(angle), np.sin(angle)]
    trust = point_trust(x, {"scrambled": ring}, y, k=4)
    reading = trust.reading["scrambled"]
    assert np.all(reading[y == 1] == PROJECTION_ARTEFACT)
    assert np.all(reading[y == 0] == AGREED)
    assert trust.shares()["scrambled"]["projection artefact"] == pytest.approx(0.5)


def test_a_point_drawn_inside_a_pure_cluster_of_another_class_is_misplaced():
    x, y = two_clusters()
    emb = x[:, :2].copy()
    emb[7] = emb[30:].mean(axis=0)  # the map puts a class-0 point among class 1
    trust = point_trust(x, {"map": emb}, y)
    assert trust.reading["map"][7] == MISPLACED
    assert np.all(np.delete(trust.reading["map"], 7) == AGREED)
    assert trust.kept["map"][7] == 0.0 and trust.kept["map"].dtype == np.float32
    assert trust.share_scores()["map"] == {
        "latent_confusion": 0.0,
        "projection_artefact": 0.0,
        "misplaced": pytest.approx(1 / 60),
    }


def test_kept_is_the_jaccard_overlap_of_both_neighbourhoods():
    x, y = two_clusters()
    trust = point_trust(x, {"same": x, "flat": x[:, :2]}, y, k=5)
    assert np.all(trust.kept["same"] == 1.0)  # (a map identical to the space keeps all)
    assert 0 < trust.kept["flat"].mean() < 1
    assert trust.reading["same"].dtype == np.uint8


def test_shares_sum_to_one_for_every_map():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(300, 8)), rng.integers(0, 4, 300)
    maps = {"a": rng.normal(size=(300, 2)), "b": x[:, :2]}
    trust = point_trust(x, maps, y, rng.integers(0, 4, 300))
    for shares in trust.shares().values():
        assert list(shares) == list(READINGS)
        assert sum(shares.values()) == pytest.approx(1.0)
        assert all(0 <= s <= 1 for s in shares.values())


def test_above_max_points_a_seeded_sample_is_scored_and_said():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(600, 4)), rng.integers(0, 3, 600)
    maps = {"m": x[:, :2]}
    trust = point_trust(x, maps, y, max_points=200, random_state=5)
    again = point_trust(x, maps, y, max_points=200, random_state=5)
    other = point_trust(x, maps, y, max_points=200, random_state=6)
    assert trust.sampled and len(trust.sample) == 200 and trust.n_total == 600
    assert trust.sample.dtype == np.int64 and np.all(np.diff(trust.sample) > 0)
    np.testing.assert_array_equal(trust.sample, again.sample)
    np.testing.assert_array_equal(trust.reading["m"], again.reading["m"])
    assert not np.array_equal(trust.sample, other.sample)
    assert "seeded sample (seed 5) of 200 of 600 points" in trust.describe()
    whole = point_trust(x, maps, y)
    assert not whole.sampled and whole.describe() == "all 600 points"


def test_bad_inputs_are_named():
    x, y = two_clusters(5)
    with pytest.raises(ConfigError, match="map 'm' has shape"):
        point_trust(x, {"m": x[:-1, :2]}, y)
    with pytest.raises(ConfigError, match="labels have shape"):
        point_trust(x, {"m": x[:, :2]}, y[:-1])
    with pytest.raises(ConfigError, match="predictions have shape"):
        point_trust(x, {"m": x[:, :2]}, y, y[:3])
    with pytest.raises(ConfigError, match="no maps"):
        point_trust(x, {}, y)
    with pytest.raises(ConfigError, match="k < points"):
        point_trust(x, {"m": x[:, :2]}, y, k=10)
    with pytest.raises(ConfigError, match="2-D"):
        point_trust(x[:, 0], {"m": x[:, :2]}, y)


def test_the_table_saved_is_read_back(tmp_path):
    x, y = two_clusters()
    trust = point_trust(x, {"pca": x[:, :2], "other": x[:, 2:4]}, y, max_points=50)
    table = trust.to_table()
    assert list(table) == ["index", "pca_kept", "pca_reading", "other_kept", "other_reading"]
    path = save_trust(tmp_path / "trust.parquet", trust)
    back = read_trust(path)
    assert back is not None and (back.k, back.n_total, back.seed) == (10, 60, 0)
    np.testing.assert_array_equal(back.sample, trust.sample)
    for m in ("pca", "other"):
        np.testing.assert_array_equal(back.kept[m], trust.kept[m])
        np.testing.assert_array_equal(back.reading[m], trust.reading[m])
    assert back.shares() == trust.shares()
    assert read_trust(tmp_path / "missing.parquet") is None
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    assert read_trust(tmp_path / "junk.parquet") is None


def test_the_kept_scale_is_discrete_and_robust():
    k = 10
    jaccard = np.array([s / (2 * k - s) for s in range(k + 1)])
    np.testing.assert_array_equal(shared_neighbours(jaccard, k), np.arange(k + 1))
    low = np.r_[np.zeros(90), np.full(10, jaccard[3])]  # a map that keeps little
    assert KeptScale.of([low], k).top == 3  # topped at its 98th percentile, not at 10
    assert KeptScale.of([np.zeros(50)], k).top == 1


def test_the_trust_figure_has_two_panels_per_map_and_counted_legends():
    x, y = two_clusters()
    emb = x[:, :2].copy()
    emb[7] = emb[30:].mean(axis=0)
    maps = {"a": emb, "b": x[:, 2:4]}
    disp = TrustDisplay.from_embeddings(x, maps, y)
    assert set(disp.axes_["kept"]) == set(disp.axes_["reading"]) == {"a", "b"}
    texts = [t.get_text() for t in disp.legends_["a"].get_texts()]
    assert texts == [
        "agreed 59 (98.3%)",
        "latent confusion 0 (0.0%)",
        "projection artefact 0 (0.0%)",
        "misplaced 1 (1.7%)",
    ]
    assert "all 60 points" in disp.figure_.get_suptitle()


def test_metrics_figure_labels_do_not_run_into_each_other():
    from latent_atlas.metrics import evaluate_maps
    from latent_atlas.plotting import QualityDisplay

    x, y = two_clusters()
    maps = {"a": x[:, :2], "b": x[:, 2:4]}
    disp = QualityDisplay.from_report(evaluate_maps(x, maps, y), maps)
    labels = [t.get_text() for t in disp.axes_["scores"].get_xticklabels()]
    assert "neighbourhood\npreservation" in labels and "trustworthiness" in labels
    assert disp.scale_.k == 10


@pytest.fixture
def space(tmp_path):
    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(10), 200).astype(np.float32)
    latent = LatentSpace(
        x[:200].astype(np.float32),
        y[:200],
        [str(i) for i in range(10)],
        probabilities=probabilities,
    )
    run = RunDir.create(tmp_path / "run", command="project", config={}, seed=4)
    run.set(dataset={"class_names": latent.class_names})
    found = run.add_space("pixels", source={})
    outputs = latent.save(found.path)
    found.steps.finish("features", {"x": latent.features}, outputs, 0.0)
    return found, latent


COLUMNS = ("latent_confusion", "projection_artefact", "misplaced")


def test_a_run_writes_trust_files_and_metric_columns(space):
    found, latent = space
    maps = map_space(found, latent, MapConfig(methods=("pca",), seed=4, atlas=AtlasConfig()))
    trust = read_trust(found.file("trust.parquet"))
    assert trust is not None and len(trust.sample) == 200 and set(trust.kept) == {"pca"}
    assert found.file("trust.png").is_file()
    shares = trust.share_scores()["pca"]
    assert shares["latent_confusion"] > 0.5  # (random predictions: the network is confused)
    for c in COLUMNS:
        assert maps["pca"]["scores"][c] == pytest.approx(shares[c])
        assert found.metrics["scores"]["pca"][c] == pytest.approx(shares[c])
    with open(found.file("metrics.csv")) as f:
        row = next(csv.DictReader(f))
    assert row["method"] == "pca" and float(row["misplaced"]) == pytest.approx(shares["misplaced"])
    info = found.steps.info("trust")
    assert info["n_samples"] == 200 and info["predictions"] is True
    stamp = found.file("trust.parquet").stat().st_mtime_ns
    map_space(found, latent, MapConfig(methods=("pca",), seed=4, atlas=AtlasConfig()))
    assert found.file("trust.parquet").stat().st_mtime_ns == stamp  # reused, not redone


def test_comparing_an_older_run_adds_the_trust_step(space):
    found, latent = space
    map_space(found, latent, MapConfig(methods=("pca",), seed=4, atlas=AtlasConfig()))
    found.steps.drop("trust")  # a run made before per-point trust
    found.file("trust.parquet").unlink()
    found.run.save()
    path = found.run.path
    found.run.close()
    out = compare_run(path)
    assert set(COLUMNS) <= set(out["pixels"]["scores"]["pca"])
    assert (path / "trust.parquet").is_file()
    with open(path / "metrics.csv") as f:
        assert set(COLUMNS) <= set(next(csv.DictReader(f)))


def test_the_figure_draws_unscored_points_beneath_and_says_so():
    from latent_atlas.trust import point_trust
    from latent_atlas.trust_plot import TrustDisplay

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 600)
    x = rng.normal(size=(600, 6)) + y[:, None] * 2
    emb = {"a": x[:, :2]}
    trust = point_trust(x, emb, y, max_points=200)
    d = TrustDisplay.from_trust(trust, emb)
    grey = d.axes_["kept"]["a"].collections[0]  # drawn first: beneath
    assert len(grey.get_offsets()) == 400 and "pale grey beneath" in d.figure_._suptitle.get_text()


def test_trust_scored_apart_on_one_latent_side_equals_trust_scored_together():
    from latent_atlas.trust import point_trust, trust_side

    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, 6))
    y = (x[:, 0] > 0).astype(int) + 2 * (x[:, 1] > 0)
    pred = np.where(rng.random(400) < 0.1, 0, y)
    maps = {"a": x[:, :2], "b": x[:, 2:4] + x[:, :2], "c": rng.normal(size=(400, 2))}
    whole = point_trust(x, maps, y, pred, k=8, max_points=300, random_state=1)
    side = trust_side(x, y, pred, k=8, max_points=300, random_state=1)
    first = point_trust(x, {"c": maps["c"]}, y, pred, latent=side)
    rest = point_trust(x, {"a": maps["a"], "b": maps["b"]}, y, pred, latent=side)
    merged = first.merged(rest, order=["a", "b", "c"])
    assert list(merged.kept) == ["a", "b", "c"] and merged.describe() == whole.describe()
    for m in maps:
        np.testing.assert_array_equal(merged.kept[m], whole.kept[m])
        np.testing.assert_array_equal(merged.reading[m], whole.reading[m])
    np.testing.assert_array_equal(merged.latent_majority, whole.latent_majority)
