"""End to end through ``main(argv)``, as a user would call the command."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from latent_atlas.cli import main
from latent_atlas.runs import RunDir

RUN_FILES = [
    "manifest.json", "model.pt", "activations.npy", "labels.npy", "predictions.npy",
    "probabilities.npy", "images.npy", "projections.parquet", "comparison.png",
]  # fmt: skip
METHODS = ["pca", "tsne", "umap"]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "digits"
    argv = [
        "-q",
        "run",
        "--dataset",
        "digits",
        "--limit",
        "300",
        "--epochs",
        "3",
        "--out",
        str(out),
        "--grid",
        "10",
    ]
    assert main(argv) == 0
    return out, argv


@pytest.mark.slow
def test_run_writes_every_artifact(digits_run, capsys):
    out, _ = digits_run
    for name in RUN_FILES:
        assert (out / name).is_file(), name
    for m in METHODS:
        for name in (
            f"scatter_{m}.png",
            f"atlas_{m}.png",
            f"atlas_{m}.parquet",
            f"embedding_{m}.npy",
        ):
            assert (out / name).is_file(), name
    n = 300
    feats = np.load(out / "activations.npy")
    assert feats.shape == (n, 128) and feats.dtype == np.float32
    assert np.load(out / "labels.npy").shape == (n,)
    preds = np.load(out / "predictions.npy")
    assert preds.shape == (n,) and preds.max() < 10

    table = pq.read_table(out / "projections.parquet")
    assert table.num_rows == n
    assert {"index", "label", "label_name", "predicted", "confidence"} <= set(table.column_names)
    for m in METHODS:
        assert {f"{m}_x", f"{m}_y"} <= set(table.column_names)
    np.testing.assert_array_equal(table.column("index").to_numpy(), np.arange(n))
    np.testing.assert_array_equal(
        table.column("tsne_x").to_numpy(), np.load(out / "embedding_tsne.npy")[:, 0]
    )

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 0 and manifest["config"]["dataset"] == "digits"
    run = RunDir.open(out)
    assert run.seed == 0 and run.space_names == ["dense"]
    assert 0 <= run.training["test_accuracy"] <= 1
    assert "test_loss" in run.training
    assert {"torch", "numpy", "scikit-learn", "python"} <= set(run.versions)
    space = run.space()
    assert set(space.maps) == set(METHODS)
    assert space.maps["tsne"]["params"]["perplexity"] == 50
    assert space.maps["umap"]["params"]["n_neighbors"] == 30
    assert run.steps.entries["model"]["finished"] is True
    for step in ("features", "embedding:pca", "atlas:umap", "comparison", "metrics"):
        assert space.steps.entries[step]["finished"] is True
        assert space.steps.entries[step]["seconds"] >= 0

    atlas = Image.open(out / "atlas_umap.png")
    assert atlas.size == (10 * 32, 10 * 32)  # --grid 10, tile 32
    cells = pq.read_table(out / "atlas_umap.parquet")
    assert cells.num_rows == 100
    # the map is faithful enough to read: digits separate in 2-D
    assert space.maps["umap"]["scores"]["knn_accuracy_2d"] > 0.5
    # the comparison step: files, manifest, numbers that agree with each other
    for name in ("metrics.csv", "metrics.md", "metrics.png", "metrics_per_point.parquet"):
        assert (out / name).is_file(), name
    scores = space.metrics["scores"]
    assert set(scores) == set(METHODS)
    for m in METHODS:
        assert 0 < scores[m]["trustworthiness"] <= 1 and 0 < scores[m]["continuity"] <= 1
        assert scores[m]["knn_ratio"] == pytest.approx(
            scores[m]["knn_accuracy_2d"] / scores[m]["knn_accuracy_original"]
        )
    assert scores["tsne"]["trustworthiness"] > scores["pca"]["trustworthiness"]
    csv_rows = (out / "metrics.csv").read_text().splitlines()
    assert csv_rows[0].startswith("method,trustworthiness,continuity")
    assert len(csv_rows) == 4
    per_point = pq.read_table(out / "metrics_per_point.parquet")
    assert per_point.num_rows == 300
    np.testing.assert_allclose(
        per_point.column("umap_preservation").to_numpy().mean(),
        scores["umap"]["neighbourhood_preservation"],
        rtol=1e-5,
    )


@pytest.mark.slow
def test_rerun_reuses_finished_steps(digits_run, capsys):
    out, argv = digits_run
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert main(argv) == 0
    after = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    for name in (
        "model.pt",
        "activations.npy",
        "embedding_umap.npy",
        "scatter_tsne.png",
        "atlas_pca.png",
    ):
        assert before[name] == after[name], name
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and "umap" in printed


@pytest.mark.slow
def test_run_is_reproducible(digits_run, tmp_path):
    out, argv = digits_run
    other = tmp_path / "again"
    argv = [a if a != str(out) else str(other) for a in argv]
    assert main([*argv, "--methods", "pca,tsne"]) == 0
    for name in ("activations.npy", "embedding_pca.npy", "embedding_tsne.npy"):
        np.testing.assert_array_equal(np.load(out / name), np.load(other / name))


@pytest.mark.slow
def test_improved_recipe_options_train_another_model(digits_run, tmp_path):
    out, argv = digits_run
    other = tmp_path / "improved"
    argv = [a if a != str(out) else str(other) for a in argv]
    assert main([*argv, "--methods", "pca", "--augment", "--lr-schedule", "cosine"]) == 0
    manifest = json.loads((other / "manifest.json").read_text())
    assert manifest["config"]["training"]["augment"] is True
    assert manifest["config"]["training"]["lr_schedule"] == "cosine"
    assert not np.array_equal(np.load(out / "activations.npy"), np.load(other / "activations.npy"))
    with pytest.raises(SystemExit):  # argparse: not one of the choices
        main([*argv, "--lr-schedule", "linear"])


@pytest.mark.slow
def test_project_maps_features_you_already_have(tmp_path, capsys):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x, y = x[:400].astype(np.float32), y[:400]
    images = (load_digits().images[:400] * 15).astype(np.uint8)  # 8×8 grey, 0..240
    np.save(tmp_path / "f.npy", x)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "img.npy", images)
    (tmp_path / "names.txt").write_text("\n".join(f"digit {i}" for i in range(10)))
    out = tmp_path / "proj"
    assert (
        main(
            [
                "-q",
                "project",
                str(tmp_path / "f.npy"),
                "--labels",
                str(tmp_path / "y.npy"),
                "--images",
                str(tmp_path / "img.npy"),
                "--class-names",
                str(tmp_path / "names.txt"),
                "--methods",
                "pca,tsne",
                "--out",
                str(out),
                "--seed",
                "1",
            ]
        )
        == 0
    )
    for name in (
        "manifest.json",
        "projections.parquet",
        "scatter_tsne.png",
        "comparison.png",
        "atlas_tsne.png",
        "activations.npy",
    ):
        assert (out / name).is_file(), name
    run = RunDir.open(out)
    assert run.command == "project" and run.seed == 1
    assert run.space().maps["tsne"]["scores"]["knn_accuracy_2d"] > 0.9
    table = pq.read_table(out / "projections.parquet")
    assert table.column("label_name").to_pylist()[:2] == ["digit 0", "digit 1"]
    assert "predicted" not in table.column_names  # no model, no predictions
    assert Image.open(out / "atlas_tsne.png").mode == "L"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--methods", "pca,lle"], "unknown method 'lle'"),
        (["run", "--epochs", "0"], "epochs must be at least 1"),
        (["run", "--dataset", "mnist", "--data-dir", "/nonexistent"], "does not exist"),
        (["project", "/nonexistent.npy", "--labels", "/x.npy"], "does not exist"),
        (["run", "--param", "tsne.perplexty=3"], "unknown parameter"),
    ],
)
def test_bad_input_is_one_clear_line(argv, message, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("latent-atlas: error:") and message in err[0]


def test_project_checks_features(tmp_path, capsys):
    x = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    np.save(tmp_path / "f.npy", x)
    np.save(tmp_path / "y.npy", np.zeros(49, dtype=int))
    assert (
        main(
            [
                "project",
                str(tmp_path / "f.npy"),
                "--labels",
                str(tmp_path / "y.npy"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 1
    )
    assert "50 feature rows but 49 labels" in capsys.readouterr().err
    x[7, 2] = np.nan
    np.save(tmp_path / "f.npy", x)
    np.save(tmp_path / "y.npy", np.zeros(50, dtype=int))
    assert (
        main(
            [
                "project",
                str(tmp_path / "f.npy"),
                "--labels",
                str(tmp_path / "y.npy"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 1
    )
    assert "NaN or infinite values (first in row 7)" in capsys.readouterr().err


@pytest.mark.slow
def test_atlas_command_adds_atlases_to_a_run(digits_run, capsys):
    out, _ = digits_run
    for mode, extra in (
        ("grid", ["--grid", "12x15"]),
        ("bins", ["--border", "2", "--mark-errors"]),
    ):
        assert (
            main(
                [
                    "-q",
                    "atlas",
                    str(out),
                    "--method",
                    "tsne",
                    "--mode",
                    mode,
                    "--tile",
                    "16",
                    *extra,
                ]
            )
            == 0
        )
        png = out / f"atlas_tsne_{mode}.png"
        cells = pq.read_table(out / f"atlas_tsne_{mode}.parquet")
        rows, cols = (12, 15) if mode == "grid" else (20, 20)
        assert Image.open(png).size == (cols * 16, rows * 16)
        assert cells.num_rows == rows * cols
        assert {"index", "label", "predicted", "distance", "count", "purity"} <= set(
            cells.column_names
        )
        if mode == "grid":  # 300 samples, 180 cells: every cell filled, each sample once
            idx = cells.column("index").to_numpy()
            assert (idx >= 0).all() and len(set(idx)) == 180
        else:
            assert cells.column("count").to_numpy().sum() == 300
            assert Image.open(png).mode == "RGB"  # class frames turn grey tiles to colour
    atlases = RunDir.open(out).space().atlases
    assert {"atlas_tsne_grid", "atlas_tsne_bins", "atlas_umap"} <= set(atlases)
    assert atlases["atlas_tsne_grid"]["params"]["exact"] is True
    assert "12×15 cells, 180 filled" in capsys.readouterr().out
    assert main(["atlas", str(out), "--method", "isomap"]) == 1
    assert "has no 'isomap' map; it has: pca, tsne, umap" in capsys.readouterr().err
    assert main(["atlas", str(out.parent / "nowhere")]) == 1
    assert "not a latent-atlas run directory" in capsys.readouterr().err


@pytest.mark.slow
def test_compare_command_rescores_a_run(digits_run, capsys):
    out, _ = digits_run
    assert (
        main(["-q", "compare", str(out), "--metrics-k", "5", "--metrics-max-samples", "200"]) == 0
    )
    printed = capsys.readouterr().out
    assert "| method | trustworthiness |" in printed and "200 of 300 points" in printed
    run = RunDir.open(out)
    assert run.space().metrics["k"] == 5 and run.space().metrics["n_samples"] == 200
    assert [h["command"] for h in run.history][-1] == "compare"  # provenance kept
    assert run.manifest["created"]["argv"] != ["compare"] and run.command == "run"
    assert pq.read_table(out / "metrics_per_point.parquet").num_rows == 200


@pytest.mark.slow
def test_fit_on_train_and_show_test(tmp_path, capsys):
    out = tmp_path / "fit-train"
    argv = [
        "-q",
        "run",
        "--limit",
        "300",
        "--epochs",
        "2",
        "--methods",
        "pca,tsne",
        "--fit-on",
        "train",
        "--show",
        "test",
        "--out",
        str(out),
        "--grid",
        "5",
    ]
    assert main(argv) == 0
    tsne = RunDir.open(out).space().steps.info("embedding:tsne")
    assert tsne["fit_on"] == "train" and tsne["n_fit"] == 300
    assert np.load(out / "fit_activations.npy").shape == (300, 128)
    assert np.load(out / "embedding_tsne.npy").shape == (300, 2)  # the 300 test points
    assert main([*argv[:6], "--methods", "tsne-sklearn", *argv[8:]]) == 1
    assert "tsne-sklearn cannot place new points" in capsys.readouterr().err


@pytest.mark.slow
def test_view_builds_and_serves_on_loopback(digits_run, monkeypatch, capsys):
    import latent_atlas.viewer as viewer

    out, _ = digits_run
    served = {}
    monkeypatch.setattr(
        viewer,
        "serve_forever",
        lambda run_dir, port=0, open_browser=False: served.update(
            run_dir=run_dir, port=port, open_browser=open_browser
        ),
    )
    assert (out / "viewer.html").is_file()  # the run wrote it
    assert main(["view", str(out), "--port", "0"]) == 0  # (rebuilt if other tests changed the run)
    capsys.readouterr()
    assert main(["view", str(out), "--port", "0"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert served == {"run_dir": out, "port": 0, "open_browser": False}
    (out / "viewer.html").unlink()
    assert main(["view", str(out), "--open"]) == 0
    assert "built" in capsys.readouterr().out and (out / "viewer.html").is_file()
    assert served["open_browser"] is True


@pytest.mark.slow
def test_project_several_feature_files_make_one_space_each(tmp_path, capsys):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x, y = x[:300].astype(np.float32), y[:300]
    np.save(tmp_path / "pixels.npy", x)
    np.save(tmp_path / "left.npy", x[:, :32])  # the left half of each image: a poorer space
    np.save(tmp_path / "y.npy", y)
    out = tmp_path / "two"
    argv = ["-q", "project", str(tmp_path / "pixels.npy"), str(tmp_path / "left.npy")]
    argv += ["--labels", str(tmp_path / "y.npy"), "--methods", "pca,tsne", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "space pixels:" in printed and "space left:" in printed
    run = RunDir.open(out)
    assert run.space_names == ["pixels", "left"]
    for name, width in (("pixels", 64), ("left", 32)):
        space = run.space(name)
        assert space.path == out / "spaces" / name
        assert np.load(space.file("activations.npy")).shape == (300, width)
        for file in ("embedding_tsne.npy", "projections.parquet", "metrics.csv", "viewer.html"):
            assert space.file(file).is_file(), (name, file)
    pixels, left = (run.space(n).maps["tsne"]["scores"]["knn_accuracy_2d"] for n in run.space_names)
    assert pixels > 0.9 and pixels > left  # each space is scored on its own features
    assert main(["-q", "compare", str(out), "--space", "left", "--metrics-k", "5"]) == 0
    assert RunDir.open(out).space("left").metrics["k"] == 5
    assert RunDir.open(out).space("pixels").metrics["k"] == 10  # the other space untouched
    assert main(["compare", str(out), "--space", "right"]) == 1
    assert "no space 'right'; it has: pixels, left" in capsys.readouterr().err


@pytest.mark.slow
def test_old_spellings_still_work_with_a_note(tmp_path, capsys):
    argv = ["-q", "run", "--model", "seed-cnn", "--limit", "100", "--epochs", "1"]
    argv += ["--methods", "pca", "--out", str(tmp_path / "o"), "--grid", "4"]
    assert main(argv) == 0
    assert "'seed-cnn' is now called 'article-cnn'" in capsys.readouterr().err
    assert RunDir.open(tmp_path / "o").manifest["config"]["model"] == "article-cnn"


def test_recipe_improved_is_the_augmented_cosine_recipe(tmp_path):
    from latent_atlas.cli import build_parser
    from latent_atlas.cli.options import training_from

    parser = build_parser()
    improved = training_from(parser.parse_args(["run", "--recipe", "improved"]))
    assert improved.augment and improved.lr_schedule == "cosine"
    plain = training_from(parser.parse_args(["run", "--recipe", "improved", "--no-augment"]))
    assert not plain.augment and plain.lr_schedule == "cosine"
    assert training_from(parser.parse_args(["run", "--epochs", "3"])).epochs == 3


def test_a_wrong_layer_fails_before_training_and_leaves_no_space_behind(tmp_path, capsys):
    out = tmp_path / "o"
    argv = ["-q", "run", "--limit", "100", "--epochs", "1", "--methods", "pca", "--grid", "4"]
    assert main([*argv, "--layer", "nope", "--out", str(out)]) == 1
    assert "unknown layer 'nope'" in capsys.readouterr().err
    assert not (out / "model.pt").exists()  # failed before training
    assert main([*argv, "--out", str(out)]) == 0
    run = RunDir.open(out)
    assert run.space_names == ["dense"] and run.space().path == out
