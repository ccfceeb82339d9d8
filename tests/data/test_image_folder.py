"""Folders of the user's own images read with Pillow."""

import numpy as np
import pytest
from PIL import Image

from aquant_sim.data import ColorMode, load_dataset, load_image_folder
from aquant_sim.data.image_folder import read_image_folder
from aquant_sim.errors import DataError


def make_folder(root, classes=("cat", "dog"), per_class=5, size=(12, 9), mode="L"):
    """A folder with `per_class` solid images per class; image i of class c has grey level 40*c + i."""
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            level = 40 * c + i
            color = level if mode == "L" else (level, level, level)
            suffix = ".png" if i % 2 == 0 else ".jpg"
            # JPEG is lossy, but a solid grey image survives it exactly.
            Image.new(mode, size, color).save(root / name / f"{i:02d}{suffix}")
    return root


def test_grey_split_by_holdout(tmp_path):
    """Without train/test folders, 4 of 5 images per class train and the 5th tests, resized, in class order."""
    root = make_folder(tmp_path / "pets")
    pixels, labels, classes = read_image_folder(root, "train", size=(8, 6))
    assert classes == ("cat", "dog") and pixels.shape == (8, 1, 8, 6) and pixels.dtype == np.uint8
    assert np.array_equal(labels, [0, 0, 0, 0, 1, 1, 1, 1])
    assert np.array_equal(pixels[:, 0, 3, 3], [0, 1, 2, 3, 40, 41, 42, 43])
    test_pixels, test_labels, _ = read_image_folder(root, "test", size=(8, 6))
    assert np.array_equal(test_labels, [0, 1]) and np.array_equal(test_pixels[:, 0, 0, 0], [4, 44])


def test_rgb_mode(tmp_path):
    """ColorMode.RGB gives three channels, also from grey files."""
    root = make_folder(tmp_path / "pets")
    pixels, _, _ = read_image_folder(root, "train", size=4, color=ColorMode.RGB)
    assert pixels.shape == (8, 3, 4, 4) and np.array_equal(pixels[:, 0], pixels[:, 2])


def test_presplit_layout(tmp_path):
    """With train/ and test/ subfolders, each split is read whole from its own folder."""
    make_folder(tmp_path / "d" / "train", per_class=3)
    make_folder(tmp_path / "d" / "test", per_class=2)
    assert len(read_image_folder(tmp_path / "d", "train")[1]) == 6
    assert len(read_image_folder(tmp_path / "d", "test")[1]) == 4


def test_load_dataset_accepts_a_folder_path(tmp_path):
    """load_dataset reads a folder path as grey 32x32 images normalised by the train part's stats."""
    root = make_folder(tmp_path / "pets")
    train, test = load_dataset(str(root), "train"), load_dataset(str(root), "test")
    assert train.images.shape == (8, 1, 32, 32) and test.images.shape == (2, 1, 32, 32)
    assert train.mean == test.mean and train.std == test.std
    expected = (np.array([4, 44]) / 255 - train.mean[0]) / train.std[0]
    assert np.allclose(test.images[:, 0, 0, 0], expected, atol=1e-6)
    assert len(load_image_folder(root, "train", size=5, limit=3, seed=1)) == 3


def test_mismatched_classes(tmp_path):
    """train/ and test/ with different class folders are a DataError."""
    make_folder(tmp_path / "d" / "train", classes=("a", "b"))
    make_folder(tmp_path / "d" / "test", classes=("a", "c"))
    with pytest.raises(DataError, match="different classes"):
        read_image_folder(tmp_path / "d", "train")


def test_hidden_files_are_ignored(tmp_path):
    """Hidden files such as .DS_Store are skipped."""
    root = make_folder(tmp_path / "pets")
    (root / ".DS_Store").write_bytes(b"junk")
    (root / "cat" / ".DS_Store").write_bytes(b"junk")
    assert len(read_image_folder(root, "train")[1]) == 8


def _break(root, how):
    if how == "missing":
        return root / "absent"
    if how == "empty":
        root.mkdir()
    elif how == "stray file":
        make_folder(root)
        (root / "notes.txt").write_text("x")
    elif how == "empty class":
        make_folder(root)
        (root / "bird").mkdir()
    elif how == "text in class":
        make_folder(root)
        (root / "cat" / "readme.txt").write_text("x")
    elif how == "corrupt png":
        make_folder(root)
        (root / "dog" / "99.png").write_bytes(b"\x89PNG not really")
    return root


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("missing", "not a folder"),
        ("empty", "no class subfolders"),
        ("stray file", r"only class subfolders, found files \['notes.txt'\]"),
        ("empty class", "'bird' holds no images"),
        ("text in class", "readme.txt is not a PNG or JPEG"),
        ("corrupt png", "99.png: cannot read the image"),
    ],
)
def test_malformed_folders(tmp_path, how, message):
    """Missing or empty folders, stray files, empty classes, non-images and corrupt images are DataErrors naming the culprit."""
    with pytest.raises(DataError, match=message):
        read_image_folder(_break(tmp_path / "pets", how), "train")


def test_too_few_images_for_test(tmp_path):
    """A class folder of fewer than 5 images leaves no test part: a DataError says why."""
    root = make_folder(tmp_path / "pets", per_class=2)
    with pytest.raises(DataError, match="every 5th image"):
        read_image_folder(root, "test")


def test_bad_size_and_split(tmp_path):
    """A non-positive size or an unknown split is a DataError."""
    root = make_folder(tmp_path / "pets")
    with pytest.raises(DataError, match="size must be positive"):
        read_image_folder(root, "train", size=0)
    with pytest.raises(DataError, match="unknown split"):
        read_image_folder(root, "val")
