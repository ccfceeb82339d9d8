"""The AMX engine of the int8 kernels: sums equal to the reference where a tile holds positions
past a run's end, channels past the last block and bytes past a kernel row, and machine code
that multiplies on tiles with tdpbusd."""

import re

import numba
import numpy as np
import pytest

from aquant_sim import reference
from aquant_sim.kernels import amx, int8
from aquant_sim.program import Conv2d, Linear

needs_amx = pytest.mark.skipif(not amx.AVAILABLE, reason="this CPU or kernel grants no AMX-INT8 tiles")


def _conv(out_channels, in_channels, kernel, stride, seed, zero_points):
    rng = np.random.default_rng(seed)
    weight = rng.integers(-128, 128, size=(out_channels, in_channels, kernel, kernel))
    weight_zero_point = rng.integers(-128, 128, out_channels) if zero_points else np.zeros(out_channels, dtype=np.int64)
    return Conv2d("c", "x", "y", weight, 8, np.ones(out_channels), np.zeros(out_channels, dtype=np.int64), None,
                  stride=stride, padding=kernel // 2, weight_zero_point=weight_zero_point)


@needs_amx
@pytest.mark.parametrize("out_channels, in_channels, kernel, stride, size", [
    (33, 5, 3, 1, (17, 19)),   # 33 channels: a second block of one; rows of 15 bytes; runs of 17 and 19
    (64, 64, 3, 2, (9, 9)),    # stride 2: five positions per run, eleven of each tile discarded
    (16, 3, 7, 2, (23, 23)),   # a stem: kernel rows of 21 bytes, one partial step each
    (40, 130, 1, 1, (3, 4)),   # 1x1 over 130 channels: a kernel row of three steps
], ids=["odd-channels", "strided", "stem", "pointwise"])
@pytest.mark.parametrize("zero_points", [False, True], ids=["symmetric", "weight-zero-points"])
def test_tiles_match_reference_at_every_edge(out_channels, in_channels, kernel, stride, size, zero_points):
    """Extreme bytes (255, and the zero-point 7 in the padding) against random int8 weights:
    AMX sums equal the reference's and VNNI's, int32."""
    op = _conv(out_channels, in_channels, kernel, stride, out_channels + kernel, zero_points)
    x = np.random.default_rng(3).integers(0, 256, size=(2, in_channels, *size)).astype(np.int32)
    x[:, :, 0] = 255
    got = int8.conv2d_sums(x, op, 7, engine=int8.Engine.AMX)
    want = reference.conv2d_acc(x, op, 7).reshape(got.shape)
    assert got.dtype == np.int32 and np.array_equal(got, want)
    assert np.array_equal(got, int8.conv2d_sums(x, op, 7, engine=int8.Engine.VNNI))


@needs_amx
@pytest.mark.parametrize("batch", [1, 16, 17])
def test_linear_on_tiles(batch):
    """A batch shorter than, equal to and longer than a tile's 16 rows, 1000 classes (31 full
    blocks and one of 8), weight zero-points: equal to the reference."""
    rng = np.random.default_rng(batch)
    op = Linear("fc", "x", "y", rng.integers(-128, 128, size=(1000, 300)), 8, np.ones(1000),
                np.zeros(1000, dtype=np.int64), None, weight_zero_point=rng.integers(-9, 9, 1000))
    x = rng.integers(0, 256, size=(batch, 300)).astype(np.int32)
    got = int8.linear_sums(x, op, 128, engine=int8.Engine.AMX)
    assert np.array_equal(got[:, :, 0].T, reference.linear_acc(x, op, 128) - op.bias[None, :])


def test_packed_weights_follow_the_documented_layout():
    """pack_weights puts rows[32 b + 16 j + c, a * length + 64 s + 4 k + r] at [b, a, s, j, k, c, r],
    zeros past the row length and the last channel."""
    rows = np.random.default_rng(0).integers(-128, 128, size=(37, 2 * 70)).astype(np.int8)
    packed = amx.pack_weights(rows, 2, 70).reshape(2, 2, 2, 2, 16, 16, 4)
    for b, a, s, j, k, c, r in [(0, 0, 0, 0, 0, 0, 0), (1, 1, 1, 0, 1, 4, 1), (0, 1, 0, 1, 15, 15, 3), (1, 0, 0, 0, 3, 2, 2)]:
        o, i = 32 * b + 16 * j + c, 64 * s + 4 * k + r
        assert packed[b, a, s, j, k, c, r] == rows[o, a * 70 + i]
    assert not packed[:, :, 1, :, 2:].any()  # bytes 72..127 of a 70-byte row
    assert not packed[1, :, :, 0, :, 5:].any() and not packed[1, :, :, 1].any()  # channels 37..63


@numba.njit
def _one_block(u, a0, a1, stride, w, steps, scratch, columns):
    """The kernel's tile sequence from a (not cached, so inspectable) numba function."""
    amx.tile_begin(amx.TILE_CONFIG)
    amx.tile_zero()
    for s in range(steps):
        amx.tile_step(u, a0 + 64 * s, a1 + 64 * s, stride, w, 2048 * s)
    amx.tile_store(scratch)
    amx.transpose_scratch(scratch, columns)
    amx.tile_end()


@needs_amx
def test_tile_block_sums_and_runs_tdpbusd():
    """Two A tiles of 16 rows at a stride against two packed B tiles, two steps: the 32 x 32
    sums equal int64 numpy products (extreme bytes included), transposed once stored; the
    machine code loads tiles with tileloadd and multiplies with tdpbusd (u8 x s8)."""
    rng = np.random.default_rng(5)
    u = rng.integers(0, 256, size=8000).astype(np.uint8)
    u[:500] = 255
    rows = rng.integers(-128, 128, size=(32, 128)).astype(np.int8)
    rows[0] = -128
    stride, a0, a1 = 130, 3, 2100
    scratch, columns = np.empty((32, 32), dtype=np.int32), np.empty((32, 32), dtype=np.int32)
    _one_block(u, a0, a1, stride, amx.pack_weights(rows, 1, 128), 2, scratch, columns)
    positions = [a + stride * r for a in (a0, a1) for r in range(16)]
    a = np.stack([u[p:p + 128] for p in positions]).astype(np.int64)
    assert np.array_equal(scratch, a @ rows.astype(np.int64).T) and np.array_equal(columns, scratch.T)
    assembly = "\n".join(_one_block.inspect_asm().values())
    assert len(re.findall(r"\btdpbusd\s+%tmm[67],\s*%tmm[45],\s*%tmm[0-3]", assembly)) >= 4
    assert re.search(r"\btileloadd\s+\(", assembly) and re.search(r"\bldtilecfg\b", assembly)
