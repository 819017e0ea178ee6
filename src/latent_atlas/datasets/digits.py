"""scikit-learn's bundled 8×8 handwritten digits: the default data set, no download needed."""

from __future__ import annotations

import numpy as np

from latent_atlas.datasets.base import Dataset

TEST_FRACTION = 0.3
SPLIT_SEED = 0


def load_digits_dataset() -> Dataset:
    """1,797 8×8 grey digits, split 70/30 (stratified, fixed seed) into train and test."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    # pixel values are 0..16; scale to the full 0..255 range of an 8-bit image
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, :, :, None]
    labels = bunch.target.astype(np.int64)
    idx_train, idx_test = train_test_split(
        np.arange(len(labels)), test_size=TEST_FRACTION, stratify=labels, random_state=SPLIT_SEED
    )
    idx_train, idx_test = np.sort(idx_train), np.sort(idx_test)
    return Dataset(
        name="digits",
        x_train=images[idx_train],
        y_train=labels[idx_train],
        x_test=images[idx_test],
        y_test=labels[idx_test],
        class_names=[str(d) for d in range(10)],
        source="sklearn.datasets.load_digits",
        info={
            "split": f"stratified {1 - TEST_FRACTION:.0%}/{TEST_FRACTION:.0%}, seed {SPLIT_SEED}"
        },
    )
