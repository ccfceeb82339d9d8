"""The strict IDX reader: round trips and every malformed-file error."""

import gzip
import struct

import numpy as np
import pytest

from aquant_sim.data.idx import parse_idx, read_idx
from aquant_sim.errors import DataError


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    """An IDX file as the format's specification lays it out (header by hand, big-endian body)."""
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


CASES = [
    (np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4), 0x08),
    (np.array([-128, 0, 127], dtype=np.int8), 0x09),
    (np.array([[-30000, 2], [3, 30000]], dtype=np.int16), 0x0B),
    (np.array([-(2**31), 2**31 - 1, 7], dtype=np.int32), 0x0C),
    (np.array([1.5, -0.25], dtype=np.float32), 0x0D),
    (np.array([[np.pi]], dtype=np.float64), 0x0E),
]


@pytest.mark.parametrize(("array", "code"), CASES)
@pytest.mark.parametrize("gzipped", [False, True])
def test_round_trip(tmp_path, array, code, gzipped):
    """Every IDX type reads back with the same values and shape, from a plain or gzipped file."""
    raw = idx_bytes(array, code)
    path = tmp_path / ("a.idx.gz" if gzipped else "a.idx")
    path.write_bytes(gzip.compress(raw) if gzipped else raw)
    result = read_idx(path)
    assert result.shape == array.shape and result.dtype == array.dtype and result.dtype.isnative
    assert np.array_equal(result, array)


GOOD = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4), 0x08)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x00\x00", "too short"),
        (b"\x01" + GOOD[1:], "bad IDX magic"),
        (GOOD[:2] + b"\x07" + GOOD[3:], "unknown IDX type code 0x07"),
        (GOOD[:3] + b"\x00" + GOOD[4:], "dimension count 0"),
        (GOOD[:3] + b"\x09" + GOOD[4:], "dimension count 9"),
        (GOOD[:6], "truncated IDX header"),
        (GOOD[:-1], "truncated"),
        (GOOD + b"\x00", "trailing bytes"),
    ],
)
def test_malformed_bytes(raw, message):
    """Short files, bad magic, unknown types, bad ranks, cut or overlong bodies are DataErrors."""
    with pytest.raises(DataError, match=message):
        parse_idx(raw, "test.idx")


def test_error_names_the_file(tmp_path):
    """The error of a malformed file names the file's path."""
    path = tmp_path / "broken-labels-idx1-ubyte"
    path.write_bytes(GOOD[:-3])
    with pytest.raises(DataError, match="broken-labels-idx1-ubyte: IDX body truncated"):
        read_idx(path)


def test_truncated_gzip(tmp_path):
    """A gzip stream cut short is a DataError naming the file, not an EOFError."""
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(GOOD)[:-10])
    with pytest.raises(DataError, match="cut.gz: cannot decompress"):
        read_idx(path)


def test_not_gzip(tmp_path):
    """A .gz file that is not gzip is a DataError naming the file."""
    path = tmp_path / "plain.gz"
    path.write_bytes(GOOD)
    with pytest.raises(DataError, match="plain.gz: cannot decompress"):
        read_idx(path)


def test_missing_file(tmp_path):
    """A missing file is a DataError naming it."""
    with pytest.raises(DataError, match="absent.gz: no such file"):
        read_idx(tmp_path / "absent.gz")
