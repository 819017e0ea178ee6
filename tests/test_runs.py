"""The run directory API: spaces, steps and their keys, fingerprints, history, old manifests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from latent_atlas.errors import ConfigError, LatentAtlasError
from latent_atlas.latent import LatentSpace
from latent_atlas.runs import (
    MANIFEST,
    RunDir,
    array_digest,
    check_space_name,
    fingerprint,
    space_name,
)


def test_fingerprint_hashes_arrays_and_files_by_content(tmp_path: Path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert fingerprint({"x": a}) == fingerprint({"x": a.copy()})
    assert fingerprint({"x": a}) != fingerprint({"x": a + 1})
    assert fingerprint({"x": a}) != fingerprint({"x": a.reshape(4, 3)})  # shape counts
    assert fingerprint({"x": a}) != fingerprint({"x": a.astype(np.float64)})  # dtype counts
    f = tmp_path / "m.bin"
    f.write_bytes(b"one")
    first = fingerprint({"file": f})
    f.write_bytes(b"two")
    assert fingerprint({"file": f}) != first
    assert fingerprint({"b": 1, "a": 2}) == fingerprint({"a": 2, "b": 1})  # key order


def test_array_digest_reads_memory_maps_in_blocks(tmp_path: Path):
    a = np.random.default_rng(0).random((1000, 8)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    mapped = np.load(tmp_path / "a.npy", mmap_mode="r")
    assert array_digest(mapped) == array_digest(a)


def test_steps_are_done_only_with_the_same_key_and_their_files(tmp_path: Path):
    run = RunDir.create(tmp_path / "r", command="run", config={"a": 1}, seed=3)
    (run.path / "model.pt").write_bytes(b"x")
    run.steps.finish("model", {"k": 1}, ["model.pt"], 1.5, test_accuracy=0.9)
    assert run.steps.is_done("model", {"k": 1})
    assert not run.steps.is_done("model", {"k": 2})
    assert run.steps.info("model") == {
        "outputs": ["model.pt"],
        "seconds": 1.5,
        "test_accuracy": 0.9,
    }
    (run.path / "model.pt").unlink()
    assert not run.steps.is_done("model", {"k": 1})  # its file is gone


def test_spaces_the_first_in_the_run_folder_others_in_their_own(tmp_path: Path):
    run = RunDir.create(tmp_path / "r", command="project", config={}, seed=0)
    dense = run.add_space("dense", source={"layer": "dense"})
    conv = run.add_space("conv3", source={"layer": "conv3"})
    assert dense.path == run.path and conv.path == run.path / "spaces" / "conv3"
    assert conv.path.is_dir()
    assert run.space_names == ["dense", "conv3"]  # order of adding, though JSON sorts keys
    reopened = RunDir.open(run.path)
    assert reopened.space_names == ["dense", "conv3"]
    assert reopened.space().name == "dense" and reopened.space("conv3").source["layer"] == "conv3"
    with pytest.raises(ConfigError, match="no space 'fc'.*dense, conv3"):
        reopened.space("fc")


def test_space_names_are_folder_names():
    assert space_name("features.3") == "features.3"
    assert space_name("layer4/conv 2") == "layer4-conv-2"
    for bad in ("", "..", "a/b", "x" * 65):
        with pytest.raises(ConfigError):
            check_space_name(bad)


def test_space_reads_its_latent_space_maps_and_records(tmp_path: Path):
    run = RunDir.create(tmp_path / "r", command="project", config={}, seed=0)
    run.set(dataset={"class_names": ["a", "b"]})
    space = run.add_space("f", source={})
    x = np.random.default_rng(1).random((6, 3)).astype(np.float32)
    LatentSpace(x, np.array([0, 1] * 3), ["a", "b"]).save(space.path)
    np.save(space.file("embedding_pca.npy"), x[:, :2])
    space.set(maps={"pca": {"seconds": 0.1}})
    latent = RunDir.open(run.path).space("f").load_latent()
    assert latent.class_names == ["a", "b"] and np.array_equal(latent.features, x)
    assert space.map_names == ["pca"]
    with pytest.raises(ConfigError, match="no 'umap' map; it has: pca"):
        space.embedding("umap")


def test_later_commands_append_to_history_and_keep_provenance(tmp_path: Path):
    run = RunDir.create(tmp_path / "r", command="run", config={"a": 1}, seed=0)
    created = dict(run.manifest["created"])
    RunDir.open(run.path, command="atlas")
    RunDir.open(run.path, command="compare")
    manifest = json.loads((run.path / MANIFEST).read_text())
    assert [h["command"] for h in manifest["history"]] == ["run", "atlas", "compare"]
    assert manifest["created"] == created and manifest["command"] == "run"
    again = RunDir.create(run.path, command="run", config={"a": 1}, seed=0)  # same run again
    assert again.manifest["created"] == created


def test_open_refuses_what_is_not_a_run(tmp_path: Path):
    with pytest.raises(LatentAtlasError, match="not a directory"):
        RunDir.open(tmp_path / "missing")
    with pytest.raises(LatentAtlasError, match="not a latent-atlas run directory"):
        RunDir.open(tmp_path)
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(LatentAtlasError, match="not valid JSON"):
        RunDir.open(tmp_path)
    (tmp_path / MANIFEST).write_text(json.dumps({"format": 99}))
    with pytest.raises(LatentAtlasError, match="newer latent-atlas"):
        RunDir.open(tmp_path)


def test_format_1_manifests_open_as_one_space(tmp_path: Path):
    old = {
        "command": "run",
        "seed": 4,
        "config": {"layer": "dense"},
        "dataset": {"class_names": ["x", "y"]},
        "training": {"test_accuracy": 0.5},
        "latent_atlas_version": "0.1.0",
        "versions": {"numpy": "2"},
        "methods": {"tsne": {"seconds": 1.0}},
        "metrics": {"k": 10},
        "atlases": {"atlas_tsne": {"filled": 3}},
        "steps": {
            "train": {"finished": True, "key": "k1", "outputs": ["model.pt"]},
            "extract": {"finished": True, "key": "k2", "outputs": [], "layer": "dense"},
            "project:tsne": {"finished": True, "key": "k3", "outputs": []},
            "compare": {"finished": True, "key": "k4", "outputs": []},
            "atlas:tsne": {"finished": True, "key": "k5", "outputs": []},
        },
    }
    (tmp_path / MANIFEST).write_text(json.dumps(old))
    run = RunDir.open(tmp_path)
    assert run.seed == 4 and run.class_names == ["x", "y"] and run.versions == {"numpy": "2"}
    assert run.space_names == ["dense"] and run.steps.key("model") == "k1"
    space = run.space()
    assert space.path == tmp_path
    assert space.steps.key("features") == "k2" and space.steps.key("embedding:tsne") == "k3"
    assert space.steps.key("metrics") == "k4" and space.steps.key("atlas:tsne") == "k5"
    assert space.maps == {"tsne": {"seconds": 1.0}} and space.atlases["atlas_tsne"]["filled"] == 3


def test_a_space_never_takes_a_folder_another_space_uses(tmp_path: Path):
    run = RunDir.create(tmp_path / "r", command="project", config={}, seed=0)
    run.add_space("a", source={}, folder=".")
    b = run.add_space("b", source={}, folder=".")  # asked for the run folder: taken
    assert b.path == run.path / "spaces" / "b"
    run.keep_spaces(["b"])  # a later command makes only b: a is forgotten
    assert run.space_names == ["b"]
    c = run.add_space("c", source={})
    assert c.path == run.path  # the run folder is free again


def test_map_names_are_the_recorded_maps_not_every_file(tmp_path: Path):
    run = RunDir.create(tmp_path / "r", command="project", config={}, seed=0)
    space = run.add_space("f", source={})
    for name in ("pca", "isomap"):
        np.save(space.file(f"embedding_{name}.npy"), np.zeros((3, 2)))
    assert space.map_names == ["isomap", "pca"]  # no record: every map on disk
    space.set(maps={"pca": {}})  # a later run made pca only; isomap is an old file
    assert space.map_names == ["pca"] and list(space.embeddings()) == ["pca"]


def test_the_same_config_again_keeps_its_provenance(tmp_path: Path):
    config = {"grid": (10, 20), "mean": (0.5, 0.5, 0.5)}  # tuples, as dataclasses hold them
    first = RunDir.create(tmp_path / "r", command="run", config=config, seed=0)
    created = dict(first.manifest["created"])
    again = RunDir.create(tmp_path / "r", command="run", config=config, seed=0)
    assert again.manifest["created"] == created and len(again.history) == 2


def test_a_fingerprint_is_a_key_hashed_once(tmp_path: Path, monkeypatch):
    import latent_atlas.keys as keys

    big = np.arange(10_000, dtype=np.float32)
    key = fingerprint({"x": big})
    assert fingerprint(key) is key  # not hashed again
    calls = []
    monkeypatch.setattr(keys, "array_digest", lambda a: calls.append(1) or "d")
    run = RunDir.create(tmp_path / "r", command="project", config={}, seed=0)
    run.steps.finish("features", key, [], 0.0)
    assert run.steps.is_done("features", key) and calls == []  # no array read again
    assert run.steps.key("features") == key
