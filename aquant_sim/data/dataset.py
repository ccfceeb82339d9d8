"""The common dataset representation and its deterministic subset and split helpers.

Every loader returns a :class:`Dataset`: normalised float32 images in NCHW layout, int64 labels
and the class names. The arrays are made read-only so that a dataset shared between the
calibration front-end, training and the verify tools cannot be changed behind their backs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aquant_sim.errors import DataError


@dataclass(frozen=True, eq=False)
class Dataset:
    """Images ``(N, C, H, W)`` float32, normalised as ``(pixel / 255 - mean[c]) / std[c]``.

    ``mean`` and ``std`` (one per channel) are those of the source's training split, so that
    train and test images go through the same affine map; they are kept so that a quantized
    network's input scale can be related back to pixels. Labels are int64 in ``[0, len(classes))``.
    """

    name: str
    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        images, labels = self.images, self.labels
        if not isinstance(images, np.ndarray) or images.dtype != np.float32 or images.ndim != 4:
            raise DataError(f"dataset {self.name!r}: images must be a float32 (N, C, H, W) array, got {_describe(images)}")
        if not isinstance(labels, np.ndarray) or labels.dtype != np.int64 or labels.shape != images.shape[:1]:
            raise DataError(f"dataset {self.name!r}: labels must be an int64 array of shape ({images.shape[0]},), got {_describe(labels)}")
        if not self.classes:
            raise DataError(f"dataset {self.name!r}: no class names")
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.classes)):
            raise DataError(f"dataset {self.name!r}: labels must lie in [0, {len(self.classes)}), got [{labels.min()}, {labels.max()}]")
        channels = images.shape[1]
        if len(self.mean) != channels or len(self.std) != channels or min(self.std) <= 0:
            raise DataError(f"dataset {self.name!r}: need {channels} means and {channels} positive stds, got {self.mean} and {self.std}")
        if not np.isfinite(images).all():
            raise DataError(f"dataset {self.name!r}: images contain NaN or Inf")
        images.flags.writeable = False
        labels.flags.writeable = False

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return tuple(int(d) for d in self.images.shape[1:])

    def take(self, indices: np.ndarray) -> Dataset:
        """The images at ``indices`` (in that order), with the same classes and normalisation."""
        indices = np.asarray(indices, dtype=np.int64)
        return Dataset(self.name, self.images[indices], self.labels[indices], self.classes, self.mean, self.std)


def _describe(array) -> str:
    if isinstance(array, np.ndarray):
        return f"{array.dtype} array of shape {array.shape}"
    return type(array).__name__


def subset(dataset: Dataset, limit: int | None, seed: int = 0) -> Dataset:
    """At most ``limit`` images drawn without replacement by a generator seeded with ``seed``.

    The chosen indices are sorted, so a subset keeps the source's order; the same
    ``(limit, seed)`` always gives the same images. ``limit=None`` returns the dataset itself.
    """
    if limit is None:
        return dataset
    if limit < 1:
        raise DataError(f"dataset {dataset.name!r}: limit must be at least 1, got {limit}")
    if limit >= len(dataset):
        return dataset
    indices = np.sort(np.random.default_rng(seed).choice(len(dataset), size=limit, replace=False))
    return dataset.take(indices)


def split(dataset: Dataset, fraction: float, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Split into two disjoint parts, the first holding ``round(fraction * N)`` images.

    The parts are drawn by a permutation seeded with ``seed`` (each part keeps the source's
    order); every image is in exactly one part.
    """
    if not 0.0 < fraction < 1.0:
        raise DataError(f"dataset {dataset.name!r}: split fraction must lie in (0, 1), got {fraction}")
    order = np.random.default_rng(seed).permutation(len(dataset))
    cut = int(round(fraction * len(dataset)))
    return dataset.take(np.sort(order[:cut])), dataset.take(np.sort(order[cut:]))


def holdout_mask(labels: np.ndarray, every: int = 5) -> np.ndarray:
    """True for the test part of a source that ships without a test split.

    Within each class (in the source's order), every ``every``-th image goes to the test part:
    a fixed, stratified rule that needs no seed, so that train and test never overlap whatever
    seed the caller later uses for subsets.
    """
    mask = np.zeros(labels.shape, dtype=bool)
    for label in np.unique(labels):
        positions = np.flatnonzero(labels == label)
        mask[positions[every - 1 :: every]] = True
    return mask


def normalise(pixels: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """uint8 ``(N, C, H, W)`` pixels to float32 ``(pixel / 255 - mean[c]) / std[c]``."""
    images = pixels.astype(np.float32) / np.float32(255.0)
    images -= np.asarray(mean, dtype=np.float32)[None, :, None, None]
    images /= np.asarray(std, dtype=np.float32)[None, :, None, None]
    return images


def channel_stats(pixels: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 ``(N, C, H, W)`` pixels scaled to [0, 1]."""
    scaled = pixels.astype(np.float64) / 255.0
    mean = scaled.mean(axis=(0, 2, 3))
    std = scaled.std(axis=(0, 2, 3))
    # A constant channel (e.g. an all-black toy folder) would divide by zero: leave it unscaled.
    # Tested on the integers, since the float std of a constant is rounding noise, not zero.
    constant = pixels.min(axis=(0, 2, 3)) == pixels.max(axis=(0, 2, 3))
    std = np.where(constant, 1.0, std)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)
