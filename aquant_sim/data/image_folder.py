"""A folder of the user's own images: one subfolder per class, PNG or JPEG files, read with Pillow.

Layout: ``root/<class>/<image>`` with the classes in sorted order of their folder names, or
``root/train/<class>/<image>`` and ``root/test/<class>/<image>`` (same classes in both) when the
user has split the data already. Without the train/test subfolders, a fixed stratified rule
(:func:`holdout_mask`) holds out every 5th image of each class (files in sorted name order) as
the test part. Every image is converted to grey or RGB and resized to one size (bilinear).
Hidden files (``.DS_Store``, ...) are ignored; any other file that is not a readable PNG or JPEG
is an error naming it.
"""

from __future__ import annotations

import enum
from pathlib import Path

import numpy as np

from aquant_sim.data.dataset import holdout_mask
from aquant_sim.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class ColorMode(enum.Enum):
    """How images are converted: the value is the Pillow mode."""

    GREY = "L"
    """One channel."""
    RGB = "RGB"
    """Three channels."""


def _visible(folder: Path) -> list[Path]:
    return sorted(entry for entry in folder.iterdir() if not entry.name.startswith("."))


def _class_files(root: Path) -> tuple[tuple[str, ...], list[list[Path]]]:
    """Class names and, per class, its image files, both sorted by name."""
    if not root.is_dir():
        raise DataError(f"image folder {root}: not a folder")
    entries = _visible(root)
    strays = [entry.name for entry in entries if not entry.is_dir()]
    if strays:
        raise DataError(f"image folder {root}: expected only class subfolders, found files {strays[:3]}")
    if not entries:
        raise DataError(f"image folder {root}: no class subfolders (expected {root}/<class>/<image>.png)")
    files = []
    for folder in entries:
        images = _visible(folder)
        if not images:
            raise DataError(f"image folder {root}: class folder {folder.name!r} holds no images")
        for image in images:
            if not image.is_file() or image.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(f"image folder {root}: {image} is not a PNG or JPEG file")
        files.append(images)
    return tuple(folder.name for folder in entries), files


def _read_image(path: Path, size: tuple[int, int], color: ColorMode) -> np.ndarray:
    """uint8 ``(C, H, W)`` pixels of one image file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert(color.value).resize((size[1], size[0]), Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise DataError(f"{path}: cannot read the image ({error})") from None
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def read_image_folder(root: str | Path, split: str, size: int | tuple[int, int] = 32, color: ColorMode = ColorMode.GREY) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """uint8 pixels ``(N, C, H, W)``, int64 labels and the class names of one split of a folder."""
    root = Path(root)
    if split not in ("train", "test"):
        raise DataError(f"image folder {root}: unknown split {split!r}; choose 'train' or 'test'")
    height, width = (size, size) if isinstance(size, int) else size
    if min(height, width) < 1:
        raise DataError(f"image folder {root}: image size must be positive, got {size}")
    presplit = (root / "train").is_dir() and (root / "test").is_dir()
    classes, files = _class_files(root / split if presplit else root)
    if presplit:
        other, _ = _class_files(root / ("test" if split == "train" else "train"))
        if other != classes:
            raise DataError(f"image folder {root}: train and test hold different classes: {classes} vs {other}")
    labels = np.concatenate([np.full(len(images), label, dtype=np.int64) for label, images in enumerate(files)])
    paths = [path for images in files for path in images]
    if not presplit:
        test = holdout_mask(labels)
        keep = test if split == "test" else ~test
        if not keep.any():
            raise DataError(f"image folder {root}: too few images for a {split} part (every 5th image per class is held out for test)")
        labels = labels[keep]
        paths = [path for path, kept in zip(paths, keep) if kept]
    pixels = np.stack([_read_image(path, (height, width), color) for path in paths])
    return pixels, labels, classes
