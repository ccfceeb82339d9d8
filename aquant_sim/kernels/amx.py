"""Dense conv2d (D.1) and linear (D.2) sums on AMX tiles: ``tdpbusd`` multiplies a tile of
16 x 64 unsigned bytes by a tile of 16 x 64 signed bytes (VNNI-packed, 16 channels x 4 bytes per
row) and adds every group of 4 products into a 16 x 16 tile of int32, without saturation: 16,384
products per instruction, against 64 for AVX-512 ``vpdpbusd`` (:mod:`aquant_sim.kernels.int8`).

Where it applies: the operands :func:`aquant_sim.kernels.int8.operand_offset` accepts (the same
bytes ``u = x - lo``, the same int32 bound) whose sums (5) fit int32, dense convs with one group
and no horizontal dilation (a 3-channel stem included, directly: its 21-byte kernel rows take
one step each), and linear layers, on a CPU with AMX-INT8 whose kernel grants this process the
tile state (``arch_prctl(ARCH_REQ_XCOMP_PERM)``, Linux).
:data:`AVAILABLE` says so; elsewhere the int8 module runs its VNNI tile.

Layout. A *run* is a row of output positions whose bytes lie at one stride ``ps`` in ``u``: an
output row of a conv (``ps = sw * C``), or a linear layer's batch. An A tile holds 16 consecutive positions of a run, 64 bytes of each: a 64-byte
step of one kernel row (``KW * C`` contiguous bytes). Positions past the run's end are computed
and discarded, so ``u`` carries slack bytes after its end (:func:`slack`). The weights are
packed per block of 32 channels, kernel row and 64-byte step into two B tiles; taps past a
kernel row's length have weight 0, so the bytes an A tile reads beyond the row add nothing, and
channels past the last are zero rows whose sums are discarded.

Exactness. Every int32 lane of a C tile is the sum, over the steps, of products ``w[o, i] *
u_i`` of one channel and one position, each step adding 4 at a time: every intermediate is a
partial sum of that channel's ``T_o`` (padding products are 0), bounded by ``max_c sum_i
|w[c, i]| * max u < 2^31``, the condition ``operand_offset`` checks. So no lane wraps and the
sums are exact. A discarded position may wrap; it is never read.

The epilogue stores the C tiles, transposes them in registers (``vpermt2d``) so that each
channel's positions are contiguous, and writes ``T_o - z' * W_o - z_w[o] * (R - K z')`` (the
int8 module text) with masked vector stores, in int32 arithmetic that wraps: the true value fits
int32 (the sums' dtype says so), and arithmetic modulo 2^32 returns it exactly. ``R`` comes from
a first pass against a ones row when some ``z_w != 0``. ``tests/kernels/test_amx.py``
checks the sums against the reference and the machine code for ``tdpbusd``.

The tile intrinsics live in this file with the kernel that uses them: numba's on-disk cache of
a kernel is invalidated only when the kernel's own file changes.
"""

from __future__ import annotations

import ctypes
import sys

import llvmlite.binding as llvm
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from aquant_sim.kernels import requant
from aquant_sim.kernels.config import cache_depends_on, parallel_jit, prange
from aquant_sim.kernels.requant import requantize_row

ROWS = 16
"""Positions per A tile (rows of a tile)."""
STEP = 64
"""Bytes of one position per A tile (the tile's row width)."""
CHANNELS = 32
"""Channels per block: two B tiles of 16."""

_ARCH_REQ_XCOMP_PERM, _XFEATURE_XTILEDATA, _SYS_ARCH_PRCTL = 0x1023, 18, 158  # Linux x86-64 (asm/prctl.h, the syscall table)


def _tiles_granted() -> bool:
    """True when numba compiles for this host, the CPU has AMX-TILE and AMX-INT8, and Linux
    grants this process the tile data state (needed before the first tile instruction)."""
    if not sys.platform.startswith("linux") or numba.config.CPU_NAME not in (None, "host") \
            or numba.config.CPU_FEATURES not in (None, ""):
        return False
    features = llvm.get_host_cpu_features()
    if not (features.get("amx-tile", False) and features.get("amx-int8", False)):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.syscall(_SYS_ARCH_PRCTL, _ARCH_REQ_XCOMP_PERM, _XFEATURE_XTILEDATA) == 0


AVAILABLE = _tiles_granted()

_I8, _I32, _I64, _VOID = ir.IntType(8), ir.IntType(32), ir.IntType(64), ir.VoidType()
_PTR = ir.PointerType(_I8)


def _declare(builder, name, *args):
    return builder.module.declare_intrinsic(f"llvm.x86.{name}", fnty=ir.FunctionType(_VOID, list(args)))


def _tile(i):
    return ir.Constant(_I8, i)


def _pointer(context, builder, array_type, value, offset=None):
    data = builder.bitcast(context.make_array(array_type)(context, builder, value).data, _PTR)
    return data if offset is None else builder.gep(data, [offset])


TILE_CONFIG = np.zeros(64, dtype=np.uint8)
"""``ldtilecfg``'s 64 bytes: palette 1; tiles 0-3 (C), 4-5 (A), 6-7 (B) of 16 rows x 64 bytes."""
TILE_CONFIG[0] = 1
TILE_CONFIG[16:32].view(np.uint16)[:8] = STEP
TILE_CONFIG[48:56] = ROWS


@intrinsic
def tile_begin(typingctx, config):
    """Load the tile configuration ``config`` (:data:`TILE_CONFIG`), on the calling thread."""

    def codegen(context, builder, sig, args):
        builder.call(_declare(builder, "ldtilecfg", _PTR), [_pointer(context, builder, sig.args[0], args[0])])
        return context.get_dummy_value()

    return types.void(config), codegen


@intrinsic
def tile_zero(typingctx):
    """Zero the C tiles 0-3."""

    def codegen(context, builder, sig, args):
        zero = _declare(builder, "tilezero", _I8)
        for c in range(4):
            builder.call(zero, [_tile(c)])
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def tile_step(typingctx, u, a0, a1, stride, w, b):
    """C[2i + j] += A_i . B_j: A_i the 16 rows of 64 bytes at ``u[a_i + r * stride]``, B_j the
    16 x 64 bytes at ``w[b + 1024 j]`` (packed, row stride 64); offsets are int64."""

    def codegen(context, builder, sig, args):
        load = _declare(builder, "tileloadd64", _I8, _PTR, _I64)
        dot = _declare(builder, "tdpbusd", _I8, _I8, _I8)
        step = ir.Constant(_I64, STEP)
        builder.call(load, [_tile(4), _pointer(context, builder, sig.args[0], args[0], args[1]), args[3]])
        builder.call(load, [_tile(5), _pointer(context, builder, sig.args[0], args[0], args[2]), args[3]])
        builder.call(load, [_tile(6), _pointer(context, builder, sig.args[4], args[4], args[5]), step])
        builder.call(load, [_tile(7), _pointer(context, builder, sig.args[4], args[4],
                                                builder.add(args[5], ir.Constant(_I64, ROWS * STEP))), step])
        for i in range(2):
            for j in range(2):
                builder.call(dot, [_tile(2 * i + j), _tile(4 + i), _tile(6 + j)])
        return context.get_dummy_value()

    return types.void(u, types.int64, types.int64, types.int64, w, types.int64), codegen


@intrinsic
def tile_store(typingctx, scratch):
    """Store the C tiles into ``scratch``, int32 (32, 32): ``scratch[16 i + r, 16 j + c] = C[2i + j][r, c]``."""

    def codegen(context, builder, sig, args):
        store = _declare(builder, "tilestored64", _I8, _PTR, _I64)
        base = _pointer(context, builder, sig.args[0], args[0])
        for i in range(2):
            for j in range(2):
                at = builder.gep(base, [ir.Constant(_I64, (ROWS * i * CHANNELS + ROWS * j) * 4)])
                builder.call(store, [_tile(2 * i + j), at, ir.Constant(_I64, CHANNELS * 4)])
        return context.get_dummy_value()

    return types.void(scratch), codegen


def _transposed(builder, rows):
    """The 16 x 16 int32 matrix of 16 vectors ``rows``, transposed: four rounds that swap the
    off-diagonal w x w blocks (w = 8, 4, 2, 1), each vector a two-source shuffle (``vpermt2d``)."""
    rows = list(rows)
    for w in (8, 4, 2, 1):
        swapped = list(rows)
        for i in (i for i in range(ROWS) if i % (2 * w) < w):
            low = [16 + lane - w if lane % (2 * w) >= w else lane for lane in range(ROWS)]
            high = [lane + w if lane % (2 * w) < w else 16 + lane for lane in range(ROWS)]
            for target, lanes in ((i, low), (i + w, high)):
                swapped[target] = builder.shuffle_vector(rows[i], rows[i + w],
                                                         ir.Constant(ir.VectorType(_I32, ROWS), lanes))
        rows = swapped
    return rows


@intrinsic
def transpose_scratch(typingctx, scratch, columns):
    """``columns[c, k] = scratch[k, c]`` for int32 (32, 32) arrays: the C tiles channel-major,
    so that the epilogue reads each channel's positions contiguously."""

    def codegen(context, builder, sig, args):
        vector = ir.VectorType(_I32, ROWS)
        source = builder.bitcast(_pointer(context, builder, sig.args[0], args[0]), ir.PointerType(_I32))
        target = builder.bitcast(_pointer(context, builder, sig.args[1], args[1]), ir.PointerType(_I32))
        for i in range(2):
            for j in range(2):
                rows = [builder.load(builder.bitcast(builder.gep(source, [ir.Constant(_I64, (ROWS * i + k) * CHANNELS + ROWS * j)]),
                                                     ir.PointerType(vector)), align=4) for k in range(ROWS)]
                for c, row in enumerate(_transposed(builder, rows)):
                    at = builder.gep(target, [ir.Constant(_I64, (ROWS * j + c) * CHANNELS + ROWS * i)])
                    builder.store(row, builder.bitcast(at, ir.PointerType(vector)), align=4)
        return context.get_dummy_value()

    return types.void(scratch, columns), codegen


@intrinsic
def write_row(typingctx, columns, at, out, out_at, valid, constant, z_w, window, window_at, taps_fill):
    """``out[out_at + k] = columns[at + k] - constant - z_w * (window[window_at + k] - taps_fill)``
    for ``k < valid <= 16``, in int32 arithmetic that wraps (exact whenever the true value fits
    int32, as every sum stored in an int32 ``out`` does); ``window`` is read only when ``z_w !=
    0``. One vector subtract and one masked store (``vmovdqu32 {k}``) per row."""

    def codegen(context, builder, sig, args):
        vector, mask_type = ir.VectorType(_I32, ROWS), ir.VectorType(ir.IntType(1), ROWS)
        load = builder.module.declare_intrinsic(
            "llvm.masked.load.v16i32.p0", fnty=ir.FunctionType(vector, [ir.PointerType(_I32), _I32, mask_type, vector]))
        store = builder.module.declare_intrinsic(
            "llvm.masked.store.v16i32.p0", fnty=ir.FunctionType(_VOID, [vector, ir.PointerType(_I32), _I32, mask_type]))

        def element(i, offset):
            data = builder.bitcast(context.make_array(sig.args[i])(context, builder, args[i]).data, ir.PointerType(_I32))
            return builder.gep(data, [offset])

        def splat(value):
            return builder.shuffle_vector(builder.insert_element(ir.Constant(vector, None), builder.trunc(value, _I32),
                                                                 ir.Constant(_I32, 0)),
                                          ir.Constant(vector, None), ir.Constant(ir.VectorType(_I32, ROWS), [0] * ROWS))

        bits = builder.sub(builder.shl(ir.Constant(ir.IntType(ROWS), 1), builder.trunc(args[4], ir.IntType(ROWS))),
                           ir.Constant(ir.IntType(ROWS), 1))
        full = builder.icmp_signed(">=", args[4], ir.Constant(_I64, ROWS))
        mask = builder.bitcast(builder.select(full, ir.Constant(ir.IntType(ROWS), -1), bits), mask_type)
        sums = builder.load(builder.bitcast(element(0, args[1]), ir.PointerType(vector)), align=4)
        value = builder.sub(sums, splat(args[5]))
        has_zero_point = builder.icmp_signed("!=", args[6], ir.Constant(_I64, 0))
        window_mask = builder.select(has_zero_point, mask, ir.Constant(mask_type, None))
        window_row = builder.call(load, [element(7, args[8]), ir.Constant(_I32, 4), window_mask, ir.Constant(vector, None)])
        value = builder.sub(value, builder.mul(splat(args[6]), builder.sub(window_row, splat(args[9]))))
        builder.call(store, [value, element(2, args[3]), ir.Constant(_I32, 4), mask])
        return context.get_dummy_value()

    return types.void(columns, types.int64, out, types.int64, types.int64, types.int64, types.int64, window,
                      types.int64, types.int64), codegen


@intrinsic
def tile_end(typingctx):
    """Release the tile state (``tilerelease``)."""

    def codegen(context, builder, sig, args):
        builder.call(_declare(builder, "tilerelease"), [])
        return context.get_dummy_value()

    return types.void(), codegen


def pack_weights(rows: np.ndarray, outer: int, length: int) -> np.ndarray:
    """Weights ``rows`` (O, outer * length) int8, each of ``outer`` kernel rows ``length`` bytes,
    as B tiles: ``(ceil(O / 32), outer, steps, 2, 16, 16, 4)`` int8, flat, with
    ``packed[b, a, s, j, k, c, r] = rows[32 b + 16 j + c, a * length + 64 s + 4 k + r]`` and 0 past
    a row's length or the last channel."""
    channels = rows.shape[0]
    steps, blocks = -(-length // STEP), -(-channels // CHANNELS)
    padded = np.zeros((blocks * CHANNELS, outer, steps * STEP), dtype=np.int8)
    padded[:channels, :, :length] = rows.reshape(channels, outer, length)
    tiles = padded.reshape(blocks, 2, ROWS, outer, steps, ROWS, 4)  # b, j, c, a, s, k, r
    return np.ascontiguousarray(tiles.transpose(0, 3, 4, 1, 5, 2, 6)).ravel()


def slack(stride: int, outer_stride: int, outer: int, length: int) -> int:
    """Bytes ``u`` must hold after its last position: the 15 positions of a tile past a run's
    end and the bytes of each kernel row's last step past its length."""
    return (ROWS - 1) * stride + (outer - 1) * outer_stride + -(-length // STEP) * STEP


@parallel_jit
def dense(u, w, row_offsets, run, stride, image_stride, outer, u_outer, steps, taps, weight_sum, fill, zero_point,
          window, fused, epilogue, stats, block_sums, config, out):
    """``out[n, o, r * run + x] = T_o - z' * W_o - z_w[o] * (window[n, p] - K z')`` for position
    ``x < run`` of run ``r`` at byte ``n * image_stride + row_offsets[r] + x * stride`` of ``u``;
    ``T_o`` sums ``outer`` kernel rows ``u_outer`` bytes apart of ``steps`` 64-byte steps against
    the packed weights ``w`` (:func:`pack_weights`). ``window`` (N, P) is ``R`` (read only where
    some ``z_w != 0``). One work item per image and block of 32 channels.

    With ``fused``, the requantizer is the work item's epilogue: its block's sums go to the
    calling thread's part of ``block_sums`` (``(threads, 32, P)`` int32, ``block_sums[t, o -
    first, p]``), and once the block is done each channel's row goes through
    :func:`aquant_sim.kernels.requant.requantize_row` with ``epilogue``
    (:func:`aquant_sim.kernels.requant.border_epilogue`) into ``out``, int32 levels, counted in
    ``stats[n * O + o]``; no tensor of the layer's sums is made."""
    batch, channels, positions = out.shape
    runs = row_offsets.shape[0]
    per_run = (run + ROWS - 1) // ROWS
    tiles = runs * per_run
    blocks = (channels + CHANNELS - 1) // CHANNELS
    block_bytes = outer * steps * 2 * ROWS * STEP
    taps_fill = np.int64(taps) * fill
    bias, acc_lo, acc_hi, saturate, m_y, n_y, frac_bits, table, z_y, qmin, qmax = epilogue
    for t in prange(batch * blocks):
        n, b = t // blocks, t % blocks
        first = b * CHANNELS
        stop = min(first + CHANNELS, channels)
        scratch = np.empty((2 * ROWS, CHANNELS), dtype=np.int32)
        columns = np.empty((CHANNELS, 2 * ROWS), dtype=np.int32)
        tid = numba.get_thread_id()
        tile_begin(config)
        for pair in range(0, tiles, 2):
            second = min(pair + 1, tiles - 1)
            r0, x0 = pair // per_run, (pair % per_run) * ROWS
            r1, x1 = second // per_run, (second % per_run) * ROWS
            a0 = n * image_stride + row_offsets[r0] + x0 * stride
            a1 = n * image_stride + row_offsets[r1] + x1 * stride
            tile_zero()
            for a in range(outer):
                for s in range(steps):
                    tile_step(u, a0 + a * u_outer + s * STEP, a1 + a * u_outer + s * STEP, stride, w,
                              b * block_bytes + (a * steps + s) * 2 * ROWS * STEP)
            tile_store(scratch)
            transpose_scratch(scratch, columns)
            for i in range(2 if second != pair else 1):
                # Two selects, not a select of tuples: a tuple would cost the epilogue its
                # vector loops (requant.requantize_row's text).
                r = r0 if i == 0 else r1
                x = x0 if i == 0 else x1
                p0 = r * run + x
                for o in range(first, stop):
                    if fused:
                        write_row(columns, (o - first) * 2 * ROWS + ROWS * i, block_sums,
                                  (tid * CHANNELS + o - first) * positions + p0, min(ROWS, run - x),
                                  fill * weight_sum[o], zero_point[o], window, n * positions + p0, taps_fill)
                    else:
                        write_row(columns, (o - first) * 2 * ROWS + ROWS * i, out, (n * channels + o) * positions + p0,
                                  min(ROWS, run - x), fill * weight_sum[o], zero_point[o], window, n * positions + p0,
                                  taps_fill)
        if fused:
            for o in range(first, stop):
                requantize_row(block_sums, tid, o - first, positions, bias, acc_lo, acc_hi, saturate, m_y, n_y, frac_bits,
                               table, z_y, qmin, qmax, out, n, o, stats, n * channels + o)
        tile_end()


cache_depends_on(dense, requant)
