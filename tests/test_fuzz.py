"""Property-based tests: loaders never fail with anything but a clear DatasetError, and the
metrics stay in range on any input they accept."""

from __future__ import annotations

import contextlib
import gzip
import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from latent_atlas.datasets import load_dataset, read_idx
from latent_atlas.datasets.base import decode_image
from latent_atlas.datasets.safe_pickle import safe_load
from latent_atlas.errors import ConfigError, DatasetError
from latent_atlas.metrics import evaluate_maps, knn_accuracy

FUZZ = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

VALID_IDX = bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in (2, 3, 3)) + bytes(18)


@FUZZ
@given(data=st.binary(max_size=200), gz=st.booleans())
def test_idx_reader_on_random_bytes(tmp_path, data, gz):
    path = tmp_path / "f"
    path.write_bytes(gzip.compress(data) if gz else data)
    try:
        arr = read_idx(path)
    except DatasetError:
        return
    assert isinstance(arr, np.ndarray)


@FUZZ
@given(
    cut=st.integers(0, len(VALID_IDX) - 1),
    flip=st.integers(0, len(VALID_IDX) - 1),
    value=st.integers(0, 255),
)
def test_idx_reader_on_truncated_or_damaged_files(tmp_path, cut, flip, value):
    damaged = bytearray(VALID_IDX)
    damaged[flip] = value
    for blob in (VALID_IDX[:cut], bytes(damaged), gzip.compress(VALID_IDX)[: cut + 1]):
        path = tmp_path / "f"
        path.write_bytes(blob)
        with contextlib.suppress(DatasetError):
            read_idx(path)


GOOD_PICKLE = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}, protocol=2)


@FUZZ
@given(data=st.binary(max_size=300))
def test_restricted_unpickler_on_random_bytes(data):
    with contextlib.suppress(DatasetError):
        safe_load(data, "fuzz")


@FUZZ
@given(
    cut=st.integers(0, len(GOOD_PICKLE)),
    flip=st.integers(0, len(GOOD_PICKLE) - 1),
    value=st.integers(0, 255),
)
def test_restricted_unpickler_on_damaged_pickles(cut, flip, value):
    damaged = bytearray(GOOD_PICKLE)
    damaged[flip] = value
    for blob in (GOOD_PICKLE[:cut], bytes(damaged)):
        with contextlib.suppress(DatasetError):
            safe_load(blob, "fuzz")


@FUZZ
@given(data=st.binary(max_size=400))
def test_image_decoder_on_random_bytes(data):
    try:
        img = decode_image(data, "fuzz")
    except DatasetError:
        return
    assert img.dtype == np.uint8 and img.ndim == 3


@FUZZ
@given(sizes=st.lists(st.integers(0, 3 * 3073 + 5), min_size=6, max_size=6), gz=st.booleans())
def test_cifar_binary_batches_of_any_size(tmp_path, sizes, gz):
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for name, size in zip(names, sizes, strict=True):
        raw = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        (tmp_path / name).write_bytes(gzip.compress(raw) if gz else raw)
    try:
        ds = load_dataset("cifar10", tmp_path, progress=False)
    except DatasetError:
        return
    assert ds.x_train.shape[1:] == (32, 32, 3)


@FUZZ
@given(data=st.binary(max_size=300))
def test_npz_loader_on_random_bytes(tmp_path, data):
    path = tmp_path / "x.npz"
    path.write_bytes(data)
    with pytest.raises(DatasetError):
        load_dataset("npz", path)


points = arrays(
    np.float64,
    st.tuples(st.integers(4, 40), st.integers(1, 5)),
    elements=st.floats(-100, 100, allow_nan=False, width=32),
)


@settings(max_examples=60, deadline=None)
@given(x=points, seed=st.integers(0, 3), k=st.integers(1, 12))
def test_metrics_stay_in_range(x, seed, k):
    rng = np.random.default_rng(seed)
    emb = x[:, :1] @ np.ones((1, 2)) + rng.normal(size=(len(x), 2))
    labels = rng.integers(0, 3, len(x))
    try:
        report = evaluate_maps(x, {"m": emb}, labels, k=k)
    except ConfigError:
        return
    s = report.scores["m"]
    for name in (
        "trustworthiness",
        "continuity",
        "knn_accuracy_2d",
        "knn_accuracy_original",
        "neighbourhood_preservation",
        "triplet_accuracy",
    ):
        assert 0.0 <= s[name] <= 1.0 + 1e-9, name
    assert np.isnan(s["silhouette"]) or -1.0 <= s["silhouette"] <= 1.0
    assert np.all((report.per_point["m"] >= 0) & (report.per_point["m"] <= 1))
    assert 0.0 <= knn_accuracy(x, labels, k=min(3, len(x) - 1)) <= 1.0
