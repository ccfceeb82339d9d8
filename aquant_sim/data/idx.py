"""A strict reader of IDX files (the MNIST / Fashion-MNIST container), plain or gzipped.

Layout (big-endian): two zero bytes, a type code, the number of dimensions ``d``, then ``d``
unsigned 32-bit sizes, then exactly ``prod(sizes)`` items of the type. Anything else (a bad
magic, an unknown type, a truncated or overlong body, a broken gzip stream) is a
:class:`DataError` naming the file. Nothing in the file is executed.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from aquant_sim.errors import DataError

IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
"""IDX type code -> big-endian numpy dtype."""

MAX_DIMS = 8
"""More dimensions than any real IDX file has: guards against reading garbage as a header."""


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file (gzipped when the name ends in ``.gz``), native byte order."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, EOFError, zlib.error) as error:
        # gzip raises BadGzipFile (an OSError) for a bad header, EOFError when truncated.
        raise DataError(f"{path}: cannot decompress ({error})") from None
    return parse_idx(raw, str(path))


def parse_idx(raw: bytes, where: str) -> np.ndarray:
    """Parse the bytes of an uncompressed IDX file; ``where`` names it in errors."""
    if len(raw) < 4:
        raise DataError(f"{where}: {len(raw)} bytes, too short for an IDX header")
    zero0, zero1, code, ndim = raw[:4]
    if zero0 != 0 or zero1 != 0:
        raise DataError(f"{where}: bad IDX magic {raw[:4].hex()} (must start with 0000)")
    if code not in IDX_TYPES:
        raise DataError(f"{where}: unknown IDX type code 0x{code:02x}")
    if not 1 <= ndim <= MAX_DIMS:
        raise DataError(f"{where}: IDX dimension count {ndim} not in [1, {MAX_DIMS}]")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{where}: truncated IDX header ({len(raw)} bytes, need {header})")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = IDX_TYPES[code]
    expected = math.prod(shape) * dtype.itemsize
    body = len(raw) - header
    if body != expected:
        state = "truncated" if body < expected else "has trailing bytes"
        raise DataError(f"{where}: IDX body {state}: shape {shape} of {dtype.name} needs {expected} bytes, found {body}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))
