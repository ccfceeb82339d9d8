"""Fashion-MNIST from Debian's dataset-fashion-mnist files."""

import shutil

import numpy as np
import pytest

from aquant_sim.data import fashion_mnist
from aquant_sim.data.fashion_mnist import read_fashion_mnist
from aquant_sim.errors import DataError

@pytest.mark.parametrize(("split", "count"), [("train", 60000), ("test", 10000)])
def test_real_files(split, count):
    """The real splits have 60,000 and 10,000 28x28 grey images with balanced labels 0..9."""
    pixels, labels = read_fashion_mnist(split)
    assert pixels.shape == (count, 1, 28, 28) and pixels.dtype == np.uint8
    assert labels.dtype == np.int64 and np.array_equal(np.bincount(labels), np.full(10, count // 10))
    assert pixels.max() == 255 and pixels.min() == 0


def test_missing_folder_says_how_to_install(tmp_path):
    """Without the folder, the error says which apt package provides it."""
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        read_fashion_mnist("train", root=tmp_path / "nowhere")


def test_unknown_split():
    """A split other than train/test is a DataError."""
    with pytest.raises(DataError, match="unknown split 'val'"):
        read_fashion_mnist("val")


def test_corrupt_copy_names_the_file(tmp_path):
    """A truncated copy of a real file is a DataError naming that file."""
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(fashion_mnist.DEFAULT_ROOT / name, tmp_path / name)
    raw = (tmp_path / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz"):
        read_fashion_mnist("test", root=tmp_path)
