"""Fashion-MNIST (60,000 train / 10,000 test 28x28 grey images, MIT licence) from Debian's files.

The Debian package ``dataset-fashion-mnist`` installs the four gzipped IDX files of the original
release into :data:`DEFAULT_ROOT`; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aquant_sim.data.idx import read_idx
from aquant_sim.errors import DataError

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_fashion_mnist(split: str, root: str | Path = DEFAULT_ROOT) -> tuple[np.ndarray, np.ndarray]:
    """uint8 pixels ``(N, 1, 28, 28)`` and int64 labels ``(N,)`` of the ``"train"`` or ``"test"`` split."""
    root = Path(root)
    if split not in _FILES:
        raise DataError(f"fashion-mnist: unknown split {split!r}; choose 'train' or 'test'")
    if not root.is_dir():
        raise DataError(f"fashion-mnist: folder {root} not found; install it with `apt-get install dataset-fashion-mnist`")
    image_file, label_file = (root / name for name in _FILES[split])
    images, labels = read_idx(image_file), read_idx(label_file)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{image_file}: expected uint8 images of shape (N, 28, 28), got {images.dtype} {images.shape}")
    if labels.dtype != np.uint8 or labels.shape != images.shape[:1]:
        raise DataError(f"{label_file}: expected {images.shape[0]} uint8 labels, got {labels.dtype} {labels.shape}")
    if labels.max() >= len(CLASSES):
        raise DataError(f"{label_file}: label {labels.max()} outside [0, {len(CLASSES)})")
    return images[:, None, :, :], labels.astype(np.int64)
