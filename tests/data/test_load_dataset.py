"""load_dataset: the one entry point for every source."""

import numpy as np
import pytest

from aquant_sim.data import DATASET_NAMES, load_dataset
from aquant_sim.errors import DataError


def test_fashion_mnist_normalised_with_train_stats():
    """Fashion-MNIST comes back float32 NCHW, normalised so the train split has mean 0, std 1 (tolerance 1e-4)."""
    train = load_dataset("fashion-mnist", "train")
    test = load_dataset("fashion-mnist", "test", limit=500, seed=3)
    assert train.images.shape == (60000, 1, 28, 28) and train.images.dtype == np.float32
    assert len(test) == 500 and test.classes[9] == "Ankle boot" and test.mean == train.mean
    assert abs(float(train.images.mean(dtype=np.float64))) < 1e-4 and abs(float(train.images.std(dtype=np.float64)) - 1) < 1e-4
    assert set(np.unique(train.labels)) == set(range(10))


def test_mnist_digits_limit_is_seeded():
    """The same limit and seed give the same digits; another seed other digits."""
    a = load_dataset("mnist-digits", "train", limit=50, seed=0)
    b = load_dataset("mnist-digits", "train", limit=50, seed=0)
    c = load_dataset("mnist-digits", "train", limit=50, seed=1)
    assert np.array_equal(a.images, b.images) and not np.array_equal(a.images, c.images)
    assert a.classes == tuple("0123456789") and a.name == "mnist-digits"


def test_unknown_name():
    """A name that is neither built in nor an existing folder is a DataError listing the choices."""
    with pytest.raises(DataError, match="unknown dataset 'cifar10'.*" + ", ".join(DATASET_NAMES)):
        load_dataset("cifar10", "train")


def test_unknown_split():
    """A split other than train/test is a DataError."""
    with pytest.raises(DataError, match="unknown split"):
        load_dataset("mnist-digits", "validation")
