"""A run directory's safety: nothing left by a run that cannot start, durable renames, only
the project's own temporary files swept, one writer at a time."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from latent_atlas.cli import main
from latent_atlas.errors import LatentAtlasError
from latent_atlas.fileio import TMP_TAG, save_json, stale_temporaries
from latent_atlas.runs import LOCK_FILE, RunDir


def test_a_run_that_cannot_start_leaves_no_directory(tmp_path, capsys):
    empty = tmp_path / "no-mnist-here"
    empty.mkdir()
    out = tmp_path / "out"
    assert main(["run", "--dataset", "mnist", "--data-dir", str(empty), "--out", str(out)]) == 1
    assert "latent-atlas: error:" in capsys.readouterr().err
    assert not out.exists()
    existing = tmp_path / "mine"  # a directory the user made is never removed
    existing.mkdir()
    assert main(["run", "--dataset", "mnist", "--data-dir", str(empty), "--out", str(existing)])
    assert existing.is_dir()


def test_renames_are_flushed_to_disk_with_their_directory(tmp_path, monkeypatch):
    import latent_atlas.fileio as fileio

    flushed = []
    monkeypatch.setattr(fileio, "fsync_dir", lambda folder: flushed.append(Path(folder)))
    save_json(tmp_path / "sub" / "a.json", {"a": 1})
    assert flushed == [tmp_path / "sub"]


def test_only_the_projects_temporaries_of_gone_processes_are_swept(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        gone = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True,
            text=True,
            check=True,
        )
        dead = tmp_path / f".activations.npy.{TMP_TAG}-{gone.stdout.strip()}-x1.tmp"
        live = tmp_path / f".activations.npy.{TMP_TAG}-{sleeper.pid}-x2.tmp"
        users = tmp_path / ".notes.tmp"  # not ours
        for path in (dead, live, users):
            path.write_bytes(b"partial")
        assert stale_temporaries(tmp_path) == [dead]
        run = RunDir.create(tmp_path, command="project", config={}, seed=0)
        run.close()
        assert not dead.exists() and live.exists() and users.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_second_process_on_the_same_run_directory_is_refused(tmp_path):
    holder = textwrap.dedent(f"""
        import time
        from latent_atlas.runs import RunDir
        run = RunDir.create({str(tmp_path / "r")!r}, command="run", config={{}}, seed=0)
        print("held", flush=True)
        time.sleep(30)
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(LatentAtlasError, match=r"in use by another latent-atlas process \(pid"):
            RunDir.create(tmp_path / "r", command="run", config={}, seed=0)
        with pytest.raises(LatentAtlasError, match="in use by another"):
            RunDir.open(tmp_path / "r", command="atlas")
        assert RunDir.open(tmp_path / "r").space_names == []  # reading needs no lock
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10  # the lock goes with the process
    while True:
        try:
            RunDir.create(tmp_path / "r", command="run", config={}, seed=0).close()
            break
        except LatentAtlasError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert (tmp_path / "r" / LOCK_FILE).is_file()


def test_one_process_may_open_its_run_directory_again(tmp_path):
    first = RunDir.create(tmp_path / "r", command="run", config={}, seed=0)
    second = RunDir.create(tmp_path / "r", command="run", config={}, seed=0)
    third = RunDir.open(tmp_path / "r", command="atlas")
    for run in (third, second, first):
        run.close()
    assert os.path.isdir(tmp_path / "r")
