"""The Dataset representation and its seeded subset/split helpers."""

import numpy as np
import pytest

from aquant_sim.data.dataset import Dataset, channel_stats, holdout_mask, normalise, split, subset
from aquant_sim.errors import DataError


def toy(n=20, channels=1):
    images = np.arange(n * channels * 4, dtype=np.float32).reshape(n, channels, 2, 2)
    return Dataset("toy", images, np.arange(n, dtype=np.int64) % 3, ("a", "b", "c"), (0.0,) * channels, (1.0,) * channels)


def test_arrays_are_read_only():
    """A dataset's arrays cannot be changed in place."""
    dataset = toy()
    with pytest.raises(ValueError):
        dataset.images[0, 0, 0, 0] = 1.0
    with pytest.raises(ValueError):
        dataset.labels[0] = 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"images": np.zeros((2, 1, 2, 2), dtype=np.float64)}, "float32"),
        ({"images": np.zeros((2, 4), dtype=np.float32)}, "float32"),
        ({"labels": np.zeros(2, dtype=np.int32)}, "int64"),
        ({"labels": np.zeros(3, dtype=np.int64)}, "shape"),
        ({"labels": np.array([0, 3])}, r"\[0, 3\)"),
        ({"labels": np.array([-1, 0])}, r"\[0, 3\)"),
        ({"classes": ()}, "no class names"),
        ({"mean": (0.0, 0.0)}, "1 means"),
        ({"std": (0.0,)}, "positive stds"),
        ({"images": np.full((2, 1, 2, 2), np.nan, dtype=np.float32)}, "NaN"),
    ],
)
def test_validation(change, message):
    """Wrong dtypes, ranks, label counts or ranges, empty classes, bad stats and NaN are DataErrors."""
    fields = {"name": "bad", "images": np.zeros((2, 1, 2, 2), dtype=np.float32), "labels": np.zeros(2, dtype=np.int64), "classes": ("a", "b", "c"), "mean": (0.0,), "std": (1.0,)}
    with pytest.raises(DataError, match=message):
        Dataset(**{**fields, **change})


def test_subset_is_seeded_sorted_and_distinct():
    """A subset has `limit` distinct images in source order, the same for the same seed."""
    dataset = toy()
    a, b, c = subset(dataset, 7, seed=1), subset(dataset, 7, seed=1), subset(dataset, 7, seed=2)
    first = a.images[:, 0, 0, 0] / 4
    assert len(a) == 7 and np.array_equal(a.images, b.images) and not np.array_equal(a.images, c.images)
    assert np.all(np.diff(first) > 0)
    assert np.array_equal(a.labels, first.astype(np.int64) % 3)


def test_subset_limits():
    """No limit or a limit at least the size keeps everything; a limit below 1 is a DataError."""
    dataset = toy()
    assert subset(dataset, None) is dataset and subset(dataset, 20) is dataset
    with pytest.raises(DataError, match="at least 1"):
        subset(dataset, 0)


def test_split_partitions():
    """A split gives two disjoint parts covering every image, the first of round(f * N) images."""
    first, second = split(toy(), 0.3, seed=5)
    ids = np.concatenate([first.images[:, 0, 0, 0], second.images[:, 0, 0, 0]]) / 4
    assert len(first) == 6 and len(second) == 14
    assert np.array_equal(np.sort(ids), np.arange(20))
    with pytest.raises(DataError, match="fraction"):
        split(toy(), 1.0)


def test_holdout_mask_is_every_fifth_per_class():
    """Within each class, the 5th, 10th, ... image (in order) is held out."""
    labels = np.array([0, 1] * 10 + [2] * 4)
    mask = holdout_mask(labels)
    assert np.array_equal(np.flatnonzero(mask), [8, 9, 18, 19])


def test_normalise_and_stats():
    """Normalising pixels with their own stats gives zero mean and unit std per channel (float32 tolerance 1e-5)."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(50, 3, 4, 4), dtype=np.uint8)
    pixels[:, 2] = 9
    mean, std = channel_stats(pixels)
    images = normalise(pixels, mean, std)
    assert images.dtype == np.float32
    assert np.allclose(images[:, :2].mean(axis=(0, 2, 3)), 0, atol=1e-5)
    assert np.allclose(images[:, :2].std(axis=(0, 2, 3)), 1, atol=1e-5)
    assert std[2] == 1.0 and np.allclose(images[:, 2], 0, atol=1e-6)
