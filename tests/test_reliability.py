"""Nothing half-written, nothing run from data, every bad input one clear line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from latent_atlas.cli import main
from latent_atlas.errors import describe_os_error
from latent_atlas.runs import RunDir

ARGS = [
    "-q",
    "run",
    "--dataset",
    "npz",
    "--epochs",
    "4",
    "--batch-size",
    "32",
    "--methods",
    "pca,tsne",
    "--grid",
    "6",
    "--tile",
    "12",
]


def run_cli(data: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "latent_atlas", *ARGS, "--data-dir", str(data), "--out", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def progress_marks(out: Path) -> set[str]:
    """Top-level manifest fields and finished steps so far (empty before the first write)."""
    try:
        manifest = json.loads((out / "manifest.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return set()
    spaces = manifest.get("spaces", {}).values()
    return set(manifest) | set(manifest.get("steps", {})).union(*(s["steps"] for s in spaces))


def check_every_artifact(out: Path) -> None:
    """Every file there opens completely (no truncated artifact)."""
    for path in out.iterdir():
        if path.name.startswith("."):
            continue  # a temporary file the killed process was writing
        if path.suffix == ".npy":
            np.load(path, allow_pickle=False)
        elif path.suffix == ".parquet":
            pq.read_table(path)
        elif path.suffix == ".png":
            with Image.open(path) as img:
                img.load()
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".pt":
            import torch

            torch.load(path, weights_only=True)
        elif path.suffix in (".csv", ".md"):
            assert path.read_text().endswith("\n")


@pytest.mark.slow
def test_sigkill_at_several_points_leaves_no_corrupt_artifact(tiny_npz, tmp_path):
    reference = tmp_path / "reference"
    proc = run_cli(tiny_npz, reference)
    assert proc.wait(timeout=240) == 0, proc.stderr.read().decode()

    out = tmp_path / "killed"
    # kill just after each of these appears in the manifest: while training, while extracting,
    # while fitting t-SNE, while drawing plots and atlases
    kill_after = ["dataset", "model", "embedding:pca", "metrics"]
    for marker in kill_after:
        proc = run_cli(tiny_npz, out)
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline:
            if marker in progress_marks(out):
                break
            time.sleep(0.005)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        check_every_artifact(out)
    proc = run_cli(tiny_npz, out)
    assert proc.wait(timeout=240) == 0, proc.stderr.read().decode()
    check_every_artifact(out)
    assert not list(out.glob(".*.tmp"))  # the re-run swept up after the killed ones
    for name in ("activations.npy", "predictions.npy", "embedding_pca.npy", "embedding_tsne.npy"):
        np.testing.assert_array_equal(np.load(out / name), np.load(reference / name), name)
    for name in ("atlas_tsne.parquet", "metrics_per_point.parquet"):
        got, want = pq.read_table(out / name), pq.read_table(reference / name)
        assert got.column_names == want.column_names, name
        for col in got.column_names:  # (NaN cells compare equal here, unlike Table.equals)
            np.testing.assert_array_equal(got.column(col).to_numpy(), want.column(col).to_numpy())
    assert (out / "atlas_tsne.png").read_bytes() == (reference / "atlas_tsne.png").read_bytes()


def test_pngs_carry_no_timestamps(tmp_path, tiny_npz):
    out = tmp_path / "run"
    assert main([*ARGS, "--methods", "pca", "--data-dir", str(tiny_npz), "--out", str(out)]) == 0
    for png in out.glob("*.png"):
        with Image.open(png) as img:
            assert not {"date", "Date", "Creation Time", "Software"} & set(img.info), png.name
            chunks = img.text if hasattr(img, "text") else {}
            assert "Software" not in chunks


def test_unwritable_output_directory(tmp_path, tiny_npz, capsys):
    if os.geteuid() == 0:
        target = Path("/proc/latent-atlas-cannot-write-here")  # not even root can
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        target = locked / "run"
    assert main([*ARGS, "--data-dir", str(tiny_npz), "--out", str(target)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot create the run directory" in err[0]


def test_full_disk_is_one_line():
    import errno

    exc = OSError(errno.ENOSPC, "No space left on device", "/runs/x/activations.npy")
    assert describe_os_error(exc) == (
        "cannot write /runs/x/activations.npy: the disk is full; free some space and run again"
    )


def test_cli_turns_os_errors_into_one_line(monkeypatch, tmp_path, capsys, tiny_npz):
    import errno

    from latent_atlas import fileio

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.npy"))

    monkeypatch.setattr(fileio.np, "save", full)
    assert main([*ARGS, "--data-dir", str(tiny_npz), "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"latent-atlas: error: cannot write {tmp_path / 'x.npy'}: the disk is full; "
        "free some space and run again"
    ]


@pytest.mark.parametrize(
    ("features", "labels", "message"),
    [
        (np.ones((30, 4)), np.arange(30) % 3, "are constant"),
        (np.zeros((1, 4)), np.zeros(1, int), "at least 2 samples"),
        (np.zeros((30, 0)), np.zeros(30, int), "no columns"),
        (np.random.default_rng(0).normal(size=(30, 2, 2)), np.zeros(30, int), "must be a 2-D"),
        (np.random.default_rng(0).normal(size=(30, 4)), np.full(30, 0.5), "whole numbers"),
    ],
)
def test_project_refuses_features_that_cannot_be_mapped(
    tmp_path, capsys, features, labels, message
):
    np.save(tmp_path / "f.npy", features)
    np.save(tmp_path / "y.npy", labels)
    assert (
        main(
            [
                "project",
                str(tmp_path / "f.npy"),
                "--labels",
                str(tmp_path / "y.npy"),
                "--methods",
                "pca",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_one_dimensional_features_and_a_single_class(tmp_path, capsys):
    x = np.random.default_rng(0).normal(size=60)
    np.save(tmp_path / "f.npy", x)
    np.save(tmp_path / "y.npy", np.zeros(60, dtype=int))
    assert (
        main(
            [
                "project",
                str(tmp_path / "f.npy"),
                "--labels",
                str(tmp_path / "y.npy"),
                "--methods",
                "pca",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 1
    )
    assert "n_components=2 exceeds" in capsys.readouterr().err
    assert (
        main(
            [
                "-q",
                "project",
                str(tmp_path / "f.npy"),
                "--labels",
                str(tmp_path / "y.npy"),
                "--methods",
                "tsne",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 0
    )
    scores = RunDir.open(tmp_path / "o").space().metrics["scores"]
    assert np.isnan(scores["tsne"]["silhouette"])  # one class: undefined


def test_npy_with_objects_is_refused(tmp_path, capsys):
    np.save(tmp_path / "f.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    np.save(tmp_path / "y.npy", np.zeros(2, dtype=int))
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
    assert "is not a readable .npy file" in capsys.readouterr().err


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch /tmp/latent-atlas-checkpoint-pwned",))


def test_a_checkpoint_that_runs_code_is_refused(tmp_path, capsys):
    import torch

    from latent_atlas.errors import LatentAtlasError
    from latent_atlas.models import load_checkpoint

    marker = Path("/tmp/latent-atlas-checkpoint-pwned")
    marker.unlink(missing_ok=True)
    path = tmp_path / "evil.pt"
    torch.save({"format": "latent-atlas-checkpoint", "state_dict": _Payload()}, path)
    with pytest.raises(LatentAtlasError, match="evil.pt: not a loadable"):
        load_checkpoint(path)
    assert not marker.exists()


def test_mixed_size_folder_says_so(tmp_path, caplog):
    import logging

    from latent_atlas.datasets import load_dataset

    for split in ("train", "test"):
        for cls, size in (("a", 10), ("b", 12)):
            (tmp_path / split / cls).mkdir(parents=True)
            Image.new("L", (size, size), 100).save(tmp_path / split / cls / "0.png")
            Image.new("L", (10, 10), 50).save(tmp_path / split / cls / "1.png")
    with caplog.at_level(logging.WARNING, logger="latent_atlas"):
        ds = load_dataset("folder", tmp_path, progress=False)
    assert ds.image_shape == (10, 10, 1)
    assert "2 of 8 images resized to 10x10 (sizes found: 10x10, 12x12)" in caplog.text
