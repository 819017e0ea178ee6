"""Exports for other viewers (issue 17, items 2-5): TensorBoard's Embedding Projector, Apple's
Embedding Atlas, Parquet and CSV tables; refusals and no half-written export.

The server tests start the real ``tensorboard`` and ``embedding-atlas`` on 127.0.0.1 (a free
port, always stopped) and skip when the package is not installed.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from PIL import Image
from sklearn.decomposition import PCA

from latent_atlas import export_tensorboard
from latent_atlas.cli import main
from latent_atlas.errors import ConfigError, LatentAtlasError
from latent_atlas.export import export_run, read_points
from latent_atlas.fileio import load_table, save_table
from latent_atlas.latent import LatentSpace
from latent_atlas.maps import write_projections
from latent_atlas.pipeline import AtlasConfig, MapConfig, project_features
from latent_atlas.runs import RunDir
from latent_atlas.sampling import seeded_sample
from tests.conftest import make_images

pytestmark = pytest.mark.filterwarnings("ignore:Glyph .* missing from font")  # (the tab class)

N = 60
CLASSES = ["north west", "tab\there", "süd-ost", "plain"]
README = Path(__file__).resolve().parents[1] / "README.md"
TIMEOUT = 60.0  # seconds a server may take to start on a busy 2-core machine


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 60-point run: 4 classes, 12×12 images, predictions, two maps of its space "dense", a
    trust.parquet scoring 20 of its points, and a second space "pixels" with one map."""
    images, labels = make_images(N, size=12, seed=3)
    rng = np.random.default_rng(0)
    dense = (rng.normal(0, 3, size=(4, 8))[labels] + rng.normal(0, 1, size=(N, 8))).astype("f4")
    probs = rng.dirichlet(np.ones(4), size=N).astype(np.float32)
    out = tmp_path_factory.mktemp("export") / "run"
    maps = MapConfig(methods=("pca", ("whitened", PCA(whiten=True))), atlas=AtlasConfig(grid=4))
    project_features({"dense": dense}, labels, out=out, images=images, class_names=CLASSES,
                     probabilities=probs, maps=maps)  # fmt: skip
    with RunDir.open(out, command="test") as opened:
        space = opened.space()
        scored = np.arange(0, N, 3)[::-1].copy()  # 20 points, in another order than the rows
        codes = (scored % 4).astype(np.uint8)  # trust.parquet's reading codes
        kept = (scored / N).astype(np.float32)
        trust = {"index": scored, "pca_kept": kept, "pca_reading": codes}
        save_table(space.file("trust.parquet"), trust)
        pixels = LatentSpace(images[:, ::3, ::3, 0].reshape(N, -1), labels, CLASSES, images=images)
        second = opened.add_space("pixels", source={"layer": "pixels"})
        pixels.save(second.path)
        write_projections(second, pixels, {"whitened": PCA(2, whiten=True).fit_transform(
            pixels.features)})  # fmt: skip
    return {"dir": out, "images": images, "labels": labels, "dense": dense, "probs": probs,
            "scored": scored}  # fmt: skip


def _table(path: Path) -> dict[str, list]:
    return pq.read_table(path).to_pydict()


# -- parquet and csv --------------------------------------------------------------------------


def test_parquet_and_csv_hold_one_row_per_image_with_the_documented_columns(run, tmp_path):
    result = export_run(run["dir"], "parquet", tmp_path / "points.parquet")
    export_run(run["dir"], "csv", tmp_path / "points.csv")
    got = _table(tmp_path / "points.parquet")
    assert result.rows == N and result.space == "dense"
    assert list(got)[:7] == ["index", "label", "class", "predicted", "predicted_class",
                             "confidence", "correct"]  # fmt: skip
    assert {"pca_x", "pca_y", "whitened_x", "whitened_y", "pca_preservation",
            "whitened_preservation", "pca_kept", "pca_reading"} <= set(got)  # fmt: skip
    predicted = run["probs"].argmax(axis=1)
    assert got["index"] == list(range(N)) and got["label"] == run["labels"].tolist()
    assert got["class"] == [CLASSES[i] for i in run["labels"]]
    assert got["predicted_class"] == [CLASSES[i] for i in predicted]
    assert got["correct"] == (predicted == run["labels"]).tolist()
    np.testing.assert_array_equal(got["confidence"], run["probs"].max(axis=1))
    space = RunDir.open(run["dir"]).space()
    np.testing.assert_array_equal(np.c_[got["pca_x"], got["pca_y"]], space.embedding("pca"))
    # trust columns land on their points, whatever the file's order; the others are empty
    kept = {int(i): float(np.float32(i / N)) for i in run["scored"]}
    assert got["pca_kept"] == [kept.get(i) for i in range(N)]
    try:  # the readings by name, where latent_atlas.trust names them
        from latent_atlas.trust import READINGS
    except ImportError:
        READINGS = range(4)
    assert got["pca_reading"] == [READINGS[i % 4] if i in kept else None for i in range(N)]
    # the CSV says the same (floats in their shortest exact form)
    nulls = pa_csv.ConvertOptions(strings_can_be_null=True)
    csv = pa_csv.read_csv(tmp_path / "points.csv", convert_options=nulls).to_pydict()
    assert list(csv) == list(got)
    for name in ("index", "class", "correct", "pca_reading"):
        assert csv[name] == got[name], name
    np.testing.assert_array_equal(np.asarray(csv["pca_x"], np.float32), got["pca_x"])


def test_space_option_exports_another_space(run, tmp_path):
    result = export_run(run["dir"], "parquet", tmp_path / "p.parquet", space="pixels")
    got = _table(tmp_path / "p.parquet")
    assert result.space == "pixels" and "pca_kept" not in got  # (trust of the other space)
    assert "predicted" not in got and got["class"] == [CLASSES[i] for i in run["labels"]]
    pixels = load_table(RunDir.open(run["dir"]).space("pixels").file("projections.parquet"))
    np.testing.assert_array_equal(got["whitened_x"], pixels["whitened_x"])
    with pytest.raises(ConfigError, match="no space 'nope'"):
        export_run(run["dir"], "csv", tmp_path / "n.csv", space="nope")
    with pytest.raises(ConfigError, match="no 'nope' map; it has: pca, whitened"):
        export_run(run["dir"], "embedding-atlas", tmp_path / "n.parquet", map_name="nope")
    assert not list(tmp_path.glob("n.*"))


# -- TensorBoard's projector --------------------------------------------------------------------


def _pbtxt(folder: Path) -> list[dict[str, list[str]]]:
    """The embeddings of projector_config.pbtxt as {field: [values]} (sprite fields flat)."""
    text = (folder / export_tensorboard.CONFIG).read_text()
    out = []
    for block in re.findall(r"^embeddings \{\n(.*?)^\}", text, re.M | re.S):
        fields: dict[str, list[str]] = {}
        for key, value in re.findall(r"^\s*(\w+): (.+)$", block, re.M):
            fields.setdefault(key, []).append(json.loads(value) if '"' in value else value)
        out.append(fields)
    return out


def test_tensorboard_folder_holds_tensors_metadata_sprite_and_config(run, tmp_path):
    result = export_run(run["dir"], "tensorboard", tmp_path / "tb")
    folder = tmp_path / "tb"
    assert result.rows == N and sorted(result.files) == sorted(p.name for p in folder.iterdir())
    features = np.loadtxt(folder / "features.tsv", delimiter="\t", dtype=np.float64)
    np.testing.assert_array_equal(features.astype(np.float32), run["dense"])  # float32 exact
    config = _pbtxt(folder)
    assert [c["tensor_name"] for c in config] == [["dense"], ["dense/pca"], ["dense/whitened"]]
    assert [c["tensor_path"] for c in config] == [["features.tsv"], ["map_pca.tsv"],
                                                  ["map_whitened.tsv"]]  # fmt: skip
    assert all(c["image_path"] == ["sprite.png"] and c["single_image_dim"] == ["12", "12"]
               and c["metadata_path"] == ["metadata.tsv"] for c in config)  # fmt: skip
    lines = (folder / "metadata.tsv").read_text().splitlines()
    assert lines[0] == "class\tpredicted\tcorrect\tconfidence" and len(lines) == N + 1
    assert lines[2].split("\t")[0] == "tab here"  # (no tab, no newline inside a value)
    sprite = np.asarray(Image.open(folder / "sprite.png"))
    side = int(np.ceil(np.sqrt(N)))
    assert sprite.shape == (side * 12, side * 12, 3)
    r, c = divmod(N - 1, side)
    np.testing.assert_array_equal(sprite[r * 12 : r * 12 + 12, c * 12 : c * 12 + 12],
                                  run["images"][N - 1])  # fmt: skip


def test_tensorboard_sprite_limit_exports_a_seeded_sample(run, tmp_path, monkeypatch):
    monkeypatch.setattr(export_tensorboard, "SPRITE_MAX", 5 * 12)  # 25 thumbnails of 12×12
    result = export_run(run["dir"], "tensorboard", tmp_path / "tb")
    rows = seeded_sample(N, 25, RunDir.open(run["dir"]).seed)
    assert result.rows == 25 and any("seeded sample of 25 of 60" in n for n in result.notes)
    lines = (tmp_path / "tb" / "metadata.tsv").read_text().splitlines()
    assert lines[0].split("\t")[-1] == "index"
    assert [int(line.split("\t")[-1]) for line in lines[1:]] == rows.tolist()
    features = np.loadtxt(tmp_path / "tb" / "features.tsv", delimiter="\t")
    np.testing.assert_array_equal(features.astype(np.float32), run["dense"][rows])
    assert Image.open(tmp_path / "tb" / "sprite.png").size == (60, 60)


def test_tensorboard_without_images_has_no_sprite_and_says_so(copy_of_run, tmp_path):
    (copy_of_run / "images.npy").unlink()
    result = export_run(copy_of_run, "tensorboard", tmp_path / "tb")
    assert any("no sprite" in note for note in result.notes)
    assert "sprite.png" not in result.files and "sprite" not in _pbtxt(tmp_path / "tb")[0]


def test_large_and_grey_thumbnails_fit_the_sprite():
    assert export_tensorboard.thumbnail_size(100, 80) == (64, 51)
    assert export_tensorboard.sprite_capacity((64, 51)) == 128 * 128
    grey = np.arange(5 * 100 * 80, dtype=np.uint32).reshape(5, 100, 80, 1).astype(np.uint8)
    sheet = export_tensorboard.sprite_sheet(grey, np.array([4, 0, 2]), (64, 51))
    assert sheet.shape == (2 * 64, 2 * 51, 1)
    assert not sheet[64:, 51:].any()  # the fourth cell stays empty


def test_one_metadata_column_has_no_header(run, tmp_path):
    points = read_points(RunDir.open(run["dir"]).space())
    names = ["a\tb", "new\nline", " ", "d"]
    bare = dataclasses.replace(points, predictions=None, confidence=None, class_names=names)
    export_tensorboard.write_metadata(tmp_path / "m.tsv", bare, np.arange(N), sampled=False)
    lines = (tmp_path / "m.tsv").read_text().splitlines()
    assert lines == [["a b", "new line", "-", "d"][i] for i in run["labels"]]


# -- Embedding Atlas --------------------------------------------------------------------------


def test_embedding_atlas_file_has_the_map_text_and_png_images(run, tmp_path):
    result = export_run(run["dir"], "embedding-atlas", tmp_path / "a.parquet", map_name="whitened")
    got = _table(tmp_path / "a.parquet")
    assert {"x", "y", "class", "description", "image"} <= set(got)
    assert "embedding-atlas" in result.open_with and "--image image" in result.open_with
    assert got["x"] == got["whitened_x"] and got["y"] == got["whitened_y"]
    assert got["description"][1].startswith(f"#1: {CLASSES[run['labels'][1]]}, predicted")
    for i in (0, N - 1):  # 12×12 images enlarged 3 times (to 36×36), each pixel a block
        image = Image.open(io.BytesIO(got["image"][i]))
        assert image.format == "PNG" and image.size == (36, 36)
        np.testing.assert_array_equal(np.asarray(image)[::3, ::3], run["images"][i])
        np.testing.assert_array_equal(np.asarray(image)[2::3, 2::3], run["images"][i])
    default = export_run(run["dir"], "embedding-atlas", tmp_path / "b.parquet")
    assert _table(tmp_path / "b.parquet")["x"] == got["pca_x"] and default.rows == N


# -- refusals ---------------------------------------------------------------------------------


def _one_line_error(argv: list[str], capsys) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_refusals_are_one_line_each(run, tmp_path, capsys):
    run_dir = str(run["dir"])
    err = _one_line_error(["export", run_dir, "--to", "xml", str(tmp_path / "x")], capsys)
    assert "unknown export format 'xml'" in err and "tensorboard" in err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    err = _one_line_error(["export", run_dir, "--to", "tensorboard", str(tmp_path / "full")],
                          capsys)  # fmt: skip
    assert "not empty; give --force" in err and (tmp_path / "full" / "keep.txt").is_file()
    (tmp_path / "old.csv").write_text("old")
    err = _one_line_error(["export", run_dir, "--to", "csv", str(tmp_path / "old.csv")], capsys)
    assert "--force" in err and (tmp_path / "old.csv").read_text() == "old"
    err = _one_line_error(["export", run_dir, "--to", "csv", str(tmp_path / "full")], capsys)
    assert "is a folder" in err
    err = _one_line_error(["export", run_dir, "--to", "tensorboard", str(tmp_path / "old.csv"),
                           "--force"], capsys)  # fmt: skip
    assert "is a file" in err
    projections = RunDir.open(run_dir).space().file("projections.parquet")
    for target in (run["dir"], projections, run["dir"] / "manifest.json"):  # never over a run
        to = "tensorboard" if target.is_dir() else "parquet"
        err = _one_line_error(["export", run_dir, "--to", to, str(target), "--force"], capsys)
        assert "part of a run directory" in err
    err = _one_line_error(["export", str(tmp_path), "--to", "csv", str(tmp_path / "n.csv")],
                          capsys)  # fmt: skip
    assert "not a latent-atlas run directory" in err


def test_force_replaces_and_an_empty_folder_is_used(run, tmp_path, capsys):
    (tmp_path / "tb").mkdir()
    assert main(["export", str(run["dir"]), "--to", "tensorboard", str(tmp_path / "tb")]) == 0
    assert "open it with: tensorboard --logdir" in capsys.readouterr().out
    (tmp_path / "tb" / "stale.txt").write_text("old")
    export_run(run["dir"], "tensorboard", tmp_path / "tb", force=True)
    assert not (tmp_path / "tb" / "stale.txt").exists()
    (tmp_path / "t.csv").write_text("old")
    export_run(run["dir"], "csv", tmp_path / "t.csv", force=True)
    assert (tmp_path / "t.csv").read_text().startswith('"index"')
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "tb"]  # no temporaries
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "tb").stat().st_mode & 0o777 == 0o777 & ~umask  # as mkdir makes it


@pytest.fixture
def copy_of_run(run, tmp_path):
    shutil.copytree(run["dir"], tmp_path / "copy")
    return tmp_path / "copy"


@pytest.mark.parametrize(
    ("gone", "to", "says"),
    [
        ("activations.npy", "tensorboard", "no activations.npy, which the tensorboard export"),
        ("images.npy", "embedding-atlas", "no images.npy, which the embedding-atlas export"),
        ("projections.parquet", "parquet", "no projections.parquet; finish"),
    ],
)
def test_a_run_without_the_needed_parts_is_refused(copy_of_run, tmp_path, gone, to, says):
    (copy_of_run / gone).unlink()
    with pytest.raises(LatentAtlasError, match=says):
        export_run(copy_of_run, to, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_failed_export_leaves_nothing_and_keeps_the_old_one(run, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_tensorboard, "sprite_sheet", broken)
    with pytest.raises(OSError):
        export_run(run["dir"], "tensorboard", tmp_path / "tb")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "tb").mkdir()
    (tmp_path / "tb" / "earlier.txt").write_text("an earlier export")
    with pytest.raises(OSError):
        export_run(run["dir"], "tensorboard", tmp_path / "tb", force=True)
    assert [p.name for p in tmp_path.iterdir()] == ["tb"]
    assert [p.name for p in (tmp_path / "tb").iterdir()] == ["earlier.txt"]
    monkeypatch.setattr("latent_atlas.export.write_table", broken)
    with pytest.raises(OSError):
        export_run(run["dir"], "parquet", tmp_path / "p.parquet")
    assert [p.name for p in tmp_path.iterdir()] == ["tb"]


# -- the README's snippets ----------------------------------------------------------------------


def test_readme_snippet_opens_the_tables_with_pandas_and_polars(run, tmp_path, monkeypatch):
    pytest.importorskip("pandas")
    pytest.importorskip("polars")
    text = README.read_text(encoding="utf-8")
    section = text.split("### Export to other viewers", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    export_run(run["dir"], "parquet", "points.parquet")
    export_run(run["dir"], "csv", "points.csv")
    exec(compile(code, "README.md", "exec"), {})


# -- the real servers -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process on 127.0.0.1 for the length of a ``with`` block; always stopped."""

    def __init__(self, argv: list[str], port: int, ready: str, log: Path, env: dict | None = None):
        self.argv, self.base, self.ready, self.log = argv, f"http://127.0.0.1:{port}", ready, log
        self.env = {**os.environ, **(env or {})}

    def __enter__(self) -> Server:
        self.out = open(self.log, "wb")
        self.proc = subprocess.Popen(self.argv, stdout=self.out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=self.env)  # fmt: skip
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                self.get(self.ready)
                return self
            except OSError:
                time.sleep(0.2)
        self.__exit__()
        raise AssertionError(f"{self.argv[0]} did not start: {self.log.read_text()[-2000:]}")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.out.close()

    def get(self, path: str, **query: str) -> bytes:
        url = self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read()


@pytest.mark.slow
def test_tensorboard_projector_serves_our_tensors_metadata_and_sprite(run, tmp_path):
    pytest.importorskip("tensorboard")
    folder = tmp_path / "tb"
    export_run(run["dir"], "tensorboard", folder)
    port = _free_port()
    argv = [sys.executable, "-m", "tensorboard.main", "--logdir", str(folder),
            "--host", "127.0.0.1", "--port", str(port), "--load_fast", "false"]  # fmt: skip
    space = RunDir.open(run["dir"]).space()
    expected = {"dense": run["dense"], **{f"dense/{m}": space.embedding(m) for m in
                                          ("pca", "whitened")}}  # fmt: skip
    with Server(argv, port, "/data/plugin/projector/runs", tmp_path / "tb.log") as tb:
        assert json.loads(tb.get("/data/plugin/projector/runs")) == ["."]
        info = json.loads(tb.get("/data/plugin/projector/info", run="."))
        assert [e["tensorName"] for e in info["embeddings"]] == list(expected)
        for name, values in expected.items():
            served = tb.get("/data/plugin/projector/tensor", run=".", name=name)
            got = np.frombuffer(served, dtype=np.float32).reshape(values.shape)
            np.testing.assert_array_equal(got, values)  # exactly our numbers
            metadata = tb.get("/data/plugin/projector/metadata", run=".", name=name)
            assert metadata == (folder / "metadata.tsv").read_bytes()
            sprite = tb.get("/data/plugin/projector/sprite_image", run=".", name=name)
            assert sprite == (folder / "sprite.png").read_bytes()
        header, *rows = metadata.decode().splitlines()
        assert header == "class\tpredicted\tcorrect\tconfidence" and len(rows) == N


@pytest.mark.slow
def test_embedding_atlas_serves_every_row_coordinate_and_image(run, tmp_path):
    if shutil.which("embedding-atlas") is None:
        pytest.skip("embedding-atlas is not installed (extra embedding-atlas)")
    path = tmp_path / "atlas.parquet"
    result = export_run(run["dir"], "embedding-atlas", path)
    port = _free_port()
    argv = [*result.open_with.split(), "--host", "127.0.0.1", "--port", str(port),
            "--no-auto-port", "--duckdb", "server"]  # fmt: skip
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    with Server(argv, port, "/data/metadata.json", tmp_path / "ea.log", env) as atlas:
        props = json.loads(atlas.get("/data/metadata.json"))["props"]["data"]
        assert props["projection"] == {"x": "x", "y": "y"}
        assert props["text"] == "description" and props["image"] == "image"
        sql = 'SELECT "index", x, y, "class", image FROM dataset ORDER BY "index"'
        served = atlas.get("/data/query", query=json.dumps({"type": "arrow", "sql": sql}))
    got = pa.ipc.open_stream(served).read_all().to_pydict()
    ours = _table(path)
    assert got["index"] == list(range(N)) == ours["index"]
    assert got["x"] == ours["x"] and got["y"] == ours["y"] and got["class"] == ours["class"]
    assert got["image"] == ours["image"]
    for i in (0, N - 1):
        image = np.asarray(Image.open(io.BytesIO(got["image"][i])))
        np.testing.assert_array_equal(image[::3, ::3], run["images"][i])
    assert load_table(path, ["x"])["x"].dtype == np.float32
