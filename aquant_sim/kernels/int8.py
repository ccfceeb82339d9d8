"""Conv2d (D.1) and linear (D.2) on 8-bit operands: direct convolution on the VNNI dot tile, no
im2col; depthwise convolution as its own kernel.

When it applies (:func:`operand_offset`): weights in ``[-128, 127]``; the batch and the
zero-point span at most 256 levels, ``lo = min(x.min(), z_x)`` to ``lo + 255``; and the int32
bound holds. The input is then stored once as ``u = x - lo`` in unsigned bytes, NHWC, padded
with ``z' = z_x - lo`` (so padded taps add nothing, D.1), and contract (5) without the bias is

    sum_i (w[c, i] - z_w[c]) * (x_i - z_x) = T_c - z' * W_c - z_w[c] * (R - K * z'),

``T_c = sum_i w[c, i] * u_i`` (the dot tile, int32), ``W_c = sum_i w[c, i]``, ``R = sum_i u_i``
over the ``K`` taps of c's window (the tile against a row of ones, only when some ``z_w != 0``),
the corrections in int64. Every partial sum of ``T_c`` is at most ``max_c sum_i |w[c, i]| *
max u`` and every partial sum of ``R`` at most ``K * max u`` in magnitude; both must be below
2^31 (:data:`INT32_EXACT`), so the int32 tile is exact (see the VNNI dot tile below). Any
other operands (up to 16 bits, the contract's limit) take the general exact path of
:mod:`aquant_sim.kernels.conv`. The depthwise kernel accumulates in int64 and needs no bound.

Conv sums come back batch-major, ``(N, O, OH*OW)``; linear sums channel-major ``(O, N, 1)``; both
int32 when ``max_c sum_i |w[c, i] - z_w[c]| * max |x - z_x|`` (a bound on every sum (5), padded
taps adding 0) is below 2^31, else int64 (:func:`sums_dtype`): half the memory and bandwidth of
int64 for the usual case.

The VNNI dot tile
-----------------
LLVM does not turn a plain numba loop of ``u8 * s8`` products into ``vpdpbusd`` (numba's loop
compiles to ``vpmovzxbd`` + ``vpdpwssd``, 16 products per instruction), so :func:`dot_tile`
emits the instruction itself: ``llvm.x86.avx512.vpdpbusd.512``, which multiplies 64 unsigned
bytes by 64 signed bytes and adds each group of 4 products to one of 16 int32 lanes, without
saturation (64 products per instruction). Loads are ``llvm.masked.load`` (``vmovdqu8`` with a
byte mask, AVX-512BW), so a segment need not be a multiple of 64 bytes and nothing past it is
read. Every lane holds a sum over a subset of the products and the final reduction adds lanes,
so every intermediate is a partial sum, bounded as above. ``tests/kernels/test_int8.py`` checks
the emitted assembly and the sums. :data:`AVAILABLE` says whether the CPU numba compiles for has
the instructions; where it is False the dense kernels report None (compiling the intrinsic there
would fail) and the depthwise kernel, plain numba, still runs.

The tile lives in this file, not its own: numba's on-disk cache of a kernel is invalidated only
when the kernel's own file changes, not the file of an intrinsic it inlines.
"""

from __future__ import annotations

import enum
import weakref

import llvmlite.binding as llvm
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from aquant_sim.kernels import amx
from aquant_sim.kernels.config import parallel_jit, prange
from aquant_sim.kernels.requant import NO_EPILOGUE
from aquant_sim.program import Conv2d, Linear, window_output_size

PIXELS = 4
"""Rows of ``u8`` operands per tile (output positions)."""
CHANNELS = 4
"""Rows of ``s8`` operands per tile (output channels)."""
LANES = 16
"""int32 lanes of a 512-bit register."""
assert PIXELS * CHANNELS == LANES  # the reduction packs the tile's sums into one register


def _host_has_vnni() -> bool:
    """True when numba compiles for this host's CPU and it has AVX-512 VNNI and BW."""
    if numba.config.CPU_NAME not in (None, "host") or numba.config.CPU_FEATURES not in (None, ""):
        return False
    features = llvm.get_host_cpu_features()
    return all(features.get(name, False) for name in ("avx512vnni", "avx512bw", "avx512f"))


AVAILABLE = _host_has_vnni()


class Engine(enum.Enum):
    """Which instructions compute the dense sums; both are exact under the same bound."""

    VNNI = "vnni"
    """AVX-512 ``vpdpbusd`` on the 4 x 4 dot tile of this module."""
    AMX = "amx"
    """AMX ``tdpbusd`` on 16 x 16 tiles (:mod:`aquant_sim.kernels.amx`): dense convs with one
    group and no horizontal dilation, a 3-channel stem (directly), linear layers, whose sums (5) fit int32
    (:func:`sums_dtype`); others take VNNI."""


ENGINES = tuple(e for e in Engine if e is Engine.VNNI and AVAILABLE or e is Engine.AMX and amx.AVAILABLE)
"""The engines this CPU runs, best last; the kernels use the last unless told otherwise."""

_I1, _I8, _I32, _I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
_BYTES, _WORDS, _MASK = ir.VectorType(_I8, 64), ir.VectorType(_I32, LANES), ir.VectorType(_I1, 64)


def _shuffle(builder, a, b, indices):
    return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(_I32, len(indices)), indices))


def _reduce_tile(builder, accumulators, order):
    """Horizontal sums of 16 vectors of 16 lanes, packed into one vector whose lane ``L`` holds
    accumulator ``order[L]``: four rounds of pairwise (lower blocks + upper blocks), 15 adds and
    31 shuffles in all."""
    vectors, labels, width = list(accumulators), [[i] * LANES for i in range(len(accumulators))], LANES // 2
    while len(vectors) > 1:
        even = [i for start in range(0, 2 * LANES, 2 * width) for i in range(start, start + width)]
        odd = [i + width for i in even]
        reduced, reduced_labels = [], []
        for a in range(0, len(vectors), 2):
            both = labels[a] + labels[a + 1]
            assert [both[i] for i in even] == [both[i] for i in odd]
            reduced.append(builder.add(_shuffle(builder, vectors[a], vectors[a + 1], even),
                                       _shuffle(builder, vectors[a], vectors[a + 1], odd)))
            reduced_labels.append([both[i] for i in even])
        vectors, labels, width = reduced, reduced_labels, width // 2
    return _shuffle(builder, vectors[0], vectors[0], [labels[0].index(i) for i in order])


@intrinsic
def dot_tile(typingctx, u, w, u0, u1, u2, u3, w0, w1, w2, w3, outer, u_outer, w_outer, inner, u_inner, w_inner,
             length, out):
    """``out[4 * j + i] = sum_{a < outer} sum_{b < inner} sum_{k < length}
    u[u_i + a*u_outer + b*u_inner + k] * w[w_j + a*w_outer + b*w_inner + k]`` in int32, for the
    four ``u8`` row offsets ``u_i`` of 1-d array ``u`` and four ``s8`` offsets ``w_j`` of ``w``;
    ``out`` is a contiguous int32 array of 16. Every offset is int64; segments of ``length``
    bytes (any length >= 1) are read with masked loads, so no byte outside them is touched."""
    signature = types.void(u, w, *(types.int64,) * 15, out)

    def codegen(context, builder, sig, args):
        u_arr, w_arr, out_arr = (context.make_array(sig.args[i])(context, builder, args[i]) for i in (0, 1, 17))
        u_rows, w_rows = args[2:6], args[6:10]
        n_outer, u_out, w_out, n_inner, u_in, w_in, seg = args[10:17]
        module = builder.module
        dot = module.declare_intrinsic("llvm.x86.avx512.vpdpbusd.512", fnty=ir.FunctionType(_WORDS, [_WORDS] * 3))
        load = module.declare_intrinsic(
            "llvm.masked.load.v64i8.p0", fnty=ir.FunctionType(_BYTES, [ir.PointerType(_I8), _I32, _MASK, _BYTES]))
        u_ptr, w_ptr = (builder.bitcast(a.data, ir.PointerType(_I8)) for a in (u_arr, w_arr))
        zero64, one64, full = ir.Constant(_I64, 0), ir.Constant(_I64, 1), ir.Constant(_I64, 64)
        total = builder.mul(builder.mul(n_outer, n_inner), builder.udiv(builder.add(seg, ir.Constant(_I64, 63)), full))

        entry = builder.block
        head, body, done = (builder.append_basic_block(f"dot_tile.{n}") for n in ("head", "body", "done"))
        builder.branch(head)
        builder.position_at_end(head)
        step, k, b, u_base, w_base, u_row, w_row = (builder.phi(_I64) for _ in range(7))
        accumulators = [builder.phi(_WORDS) for _ in range(LANES)]
        for phi in (step, k, b, u_base, w_base, u_row, w_row):
            phi.add_incoming(zero64, entry)
        for phi in accumulators:
            phi.add_incoming(ir.Constant(_WORDS, None), entry)
        builder.cbranch(builder.icmp_signed("<", step, total), body, done)

        builder.position_at_end(body)
        left = builder.sub(seg, k)
        whole = builder.icmp_signed(">=", left, full)
        partial = builder.sub(builder.shl(one64, builder.select(whole, zero64, left)), one64)
        mask = builder.bitcast(builder.select(whole, ir.Constant(_I64, -1), partial), _MASK)
        u_at, w_at = builder.add(u_base, k), builder.add(w_base, k)
        align, nothing = ir.Constant(_I32, 1), ir.Constant(_BYTES, None)

        def loaded(ptr, offset):
            return builder.bitcast(builder.call(load, [builder.gep(ptr, [offset]), align, mask, nothing]), _WORDS)

        u_vectors = [loaded(u_ptr, builder.add(row, u_at)) for row in u_rows]
        w_vectors = [loaded(w_ptr, builder.add(row, w_at)) for row in w_rows]
        updated = [builder.call(dot, [accumulators[i * CHANNELS + j], u_vectors[i], w_vectors[j]])
                   for i in range(PIXELS) for j in range(CHANNELS)]
        # Advance (k, b, a) without divisions: k by 64 within a segment, then the inner index b,
        # then the outer one; u_row/w_row hold a * u_outer / a * w_outer.
        next_k = builder.add(k, full)
        seg_done = builder.icmp_signed(">=", next_k, seg)
        next_b = builder.select(seg_done, builder.add(b, one64), b)
        inner_done = builder.icmp_signed(">=", next_b, n_inner)
        next_u_row = builder.select(inner_done, builder.add(u_row, u_out), u_row)
        next_w_row = builder.select(inner_done, builder.add(w_row, w_out), w_row)
        next_b = builder.select(inner_done, zero64, next_b)
        next_u_base = builder.add(next_u_row, builder.mul(next_b, u_in))
        next_w_base = builder.add(next_w_row, builder.mul(next_b, w_in))
        for phi, value in ((step, builder.add(step, one64)), (k, builder.select(seg_done, zero64, next_k)),
                           (b, next_b), (u_base, next_u_base), (w_base, next_w_base), (u_row, next_u_row),
                           (w_row, next_w_row)):
            phi.add_incoming(value, body)
        for phi, value in zip(accumulators, updated):
            phi.add_incoming(value, body)
        builder.branch(head)

        builder.position_at_end(done)
        # Lane 4 * j + i: channel-major, so that a channel's four positions are adjacent.
        sums = _reduce_tile(builder, accumulators, [i * CHANNELS + j for j in range(CHANNELS) for i in range(PIXELS)])
        builder.store(sums, builder.bitcast(out_arr.data, ir.PointerType(_WORDS)), align=4)
        return context.get_dummy_value()

    return signature, codegen


INT32_EXACT = 1 << 31
BLOCK = 32
"""Output channels per work item of the dense kernel: their weights stay in L2 while every
output position of the image streams past them."""


class _Int8Weights:
    """An op's weights for the int8 kernels: ``(O + 1, KH, KW, C/G)`` int8 rows, flat (the last
    row all ones, for ``R``), ``W_c`` and ``z_w`` as int64, ``max_c sum_i |w[c, i]|`` and the
    tap count ``K``; ``usable`` is False when a weight lies outside ``[-128, 127]``."""

    def __init__(self, weight: np.ndarray, zero_point: np.ndarray):
        self.usable = bool(weight.min() >= -128 and weight.max() <= 127)
        if not self.usable:
            return
        rows = weight.reshape(weight.shape[0], weight.shape[1], -1)
        self.taps = rows.shape[1] * rows.shape[2]
        self.row_sum = int(np.abs(rows.astype(np.int64)).sum(axis=(1, 2)).max())
        self.weight_sum = rows.astype(np.int64).sum(axis=(1, 2))
        self.centred_row_sum = int(np.abs(rows.astype(np.int64) - zero_point.astype(np.int64)[:, None, None]).sum(axis=(1, 2)).max())
        self.zero_point = zero_point.astype(np.int64)
        self.has_zero_point = bool(np.any(zero_point))
        if weight.ndim == 4:
            weight = weight.transpose(0, 2, 3, 1)
        flat = weight.reshape(weight.shape[0], -1).astype(np.int8)
        self.rows = np.ascontiguousarray(np.concatenate([flat, np.ones((1, flat.shape[1]), dtype=np.int8)]).ravel())
        self._flat = flat
        self._amx = {}

    def amx_tiles(self, outer: int, length: int, ones: bool = False) -> np.ndarray:
        """The weights (or, with ``ones``, one row of ones: ``R``) as AMX B tiles for ``outer``
        kernel rows of ``length`` bytes (:func:`aquant_sim.kernels.amx.pack_weights`), made once
        per op and layout."""
        key = (outer, length, ones)
        if key not in self._amx:
            rows = np.ones((1, self._flat.shape[1]), dtype=np.int8) if ones else self._flat
            self._amx[key] = amx.pack_weights(rows, outer, length)
        return self._amx[key]

    def by_tap(self) -> np.ndarray:
        """The depthwise kernel's layout, ``(KH*KW, O)`` int64 (weights of one input channel)."""
        return np.ascontiguousarray(self._flat.T, dtype=np.int64)


_WEIGHTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
"""Per-op conversions, made once per (frozen, validated) op and freed with it."""


def _weights(op) -> _Int8Weights:
    prepared = _WEIGHTS.get(op)
    if prepared is None:
        prepared = _WEIGHTS[op] = _Int8Weights(op.weight, op.weight_zero_point)
    return prepared


def sums_dtype(weights: _Int8Weights, x_min: int, x_max: int, zero_point: int):
    """int32 when every sum (5) of these weights over inputs in ``[x_min, x_max]`` fits it, else
    int64."""
    bound = weights.centred_row_sum * max(x_max - zero_point, zero_point - x_min)
    return np.int32 if bound < INT32_EXACT else np.int64


def operand_offset(weights: _Int8Weights, x_min: int, x_max: int, zero_point: int, depthwise: bool = False) -> int | None:
    """``lo`` such that ``u = x - lo`` and ``z - lo`` are bytes for inputs in ``[x_min,
    x_max]``, or None when the int8 kernels do not apply (no VNNI for the dense ones, a weight
    or the input range too wide, or the int32 bound of the module text broken)."""
    if not weights.usable or not (depthwise or AVAILABLE):
        return None
    lo, hi = min(x_min, zero_point), max(x_max, zero_point)
    span = hi - lo
    if span > 255:
        return None
    if not depthwise:
        if weights.row_sum * span >= INT32_EXACT or (weights.has_zero_point and weights.taps * span >= INT32_EXACT):
            return None
    return lo


@parallel_jit
def _pack(x, lo, fill, ph, pw, out):
    """``out[n, y, x, c]`` = ``x[n, c, y - ph, x - pw] - lo`` as bytes, ``fill`` outside."""
    batch, channels, h, w = x.shape
    rows, width = out.shape[1], out.shape[2]
    for t in prange(batch * rows):
        n, y = t // rows, t % rows
        iy = y - ph
        if iy < 0 or iy >= h:
            for ix in range(width):
                for c in range(channels):
                    out[n, y, ix, c] = fill
            continue
        for ix in range(pw):
            for c in range(channels):
                out[n, y, ix, c] = fill
        for ix in range(pw + w, width):
            for c in range(channels):
                out[n, y, ix, c] = fill
        for c in range(channels):
            for ix in range(w):
                out[n, y, ix + pw, c] = np.uint8(x[n, c, iy, ix] - lo)


@parallel_jit
def _dense(u, w, pixels, image_stride, batch, cg, groups, per_group, row, outer, u_outer, w_outer, inner, u_inner,
           w_inner, length, weight_sum, fill, zero_point, has_zero_point, out):
    """``out[n, o, p] = T_o - z' * W_o - z_w[o] * (R - K z')`` (module text) for output position
    ``p`` at byte offset ``pixels[p]`` of image ``n`` and channel ``o`` of group ``o //
    per_group``; weight row ``o`` at ``o * row`` of ``w``, the ones row after the last."""
    channels, positions = out.shape[1], out.shape[2]
    blocks = (per_group + BLOCK - 1) // BLOCK
    ones = channels * row
    taps_fill = np.int64(row) * fill
    for t in prange(batch * groups * blocks):
        n, g, b = t // (groups * blocks), (t // blocks) % groups, t % blocks
        first = g * per_group + b * BLOCK
        stop = min(first + BLOCK, (g + 1) * per_group)
        sums = np.empty(LANES, dtype=np.int32)
        window = np.zeros(LANES, dtype=np.int32)
        shared = np.empty(PIXELS, dtype=np.int64)
        base = n * image_stride + g * cg
        last = positions - 1
        for p0 in range(0, positions, PIXELS):
            u0 = base + pixels[p0]
            u1 = base + pixels[min(p0 + 1, last)]
            u2 = base + pixels[min(p0 + 2, last)]
            u3 = base + pixels[min(p0 + 3, last)]
            if has_zero_point:
                dot_tile(u, w, u0, u1, u2, u3, ones, ones, ones, ones, outer, u_outer, w_outer, inner,
                         u_inner, w_inner, length, window)
            for i in range(PIXELS):
                shared[i] = np.int64(window[i]) - taps_fill
            for o0 in range(first, stop, CHANNELS):
                dot_tile(u, w, u0, u1, u2, u3, o0 * row, min(o0 + 1, stop - 1) * row, min(o0 + 2, stop - 1) * row,
                         min(o0 + 3, stop - 1) * row, outer, u_outer, w_outer, inner, u_inner, w_inner, length, sums)
                for j in range(min(CHANNELS, stop - o0)):
                    o = o0 + j
                    constant, z_w = fill * weight_sum[o], zero_point[o]
                    if p0 + PIXELS <= positions:
                        for i in range(PIXELS):
                            out[n, o, p0 + i] = np.int64(sums[PIXELS * j + i]) - constant - z_w * shared[i]
                    else:
                        for i in range(positions - p0):
                            out[n, o, p0 + i] = np.int64(sums[PIXELS * j + i]) - constant - z_w * shared[i]


@parallel_jit
def _depthwise(u, w, multiplier, sh, sw, dh, dw, kh_, kw_, ow, fill, weight_sum, zero_point, out):
    """Depthwise D.1 (``G = C_in``, ``O = multiplier * C_in``) over the packed bytes ``u`` (N,
    Hp, Wp, C) and weights ``w`` (KH*KW, O), in int64: ``out[n, o, p] = sum_taps w[tap, o] *
    u[.., o // multiplier] - z' * W_o - z_w[o] * (R - K z')``. Parallel over output rows."""
    batch, channels, positions = out.shape
    in_channels = u.shape[3]
    oh = positions // ow
    taps_fill = np.int64(kh_ * kw_) * fill
    for t in prange(batch * oh):
        n, oy = t // oh, t % oh
        acc = np.empty(channels, dtype=np.int64)
        window = np.empty(in_channels, dtype=np.int64)
        for ox in range(ow):
            acc[:] = 0
            window[:] = 0
            for kh in range(kh_):
                iy = oy * sh + kh * dh
                for kw in range(kw_):
                    ix = ox * sw + kw * dw
                    tap = kh * kw_ + kw
                    if multiplier == 1:
                        for c in range(channels):
                            acc[c] += w[tap, c] * u[n, iy, ix, c]
                    else:
                        for o in range(channels):
                            acc[o] += w[tap, o] * u[n, iy, ix, o // multiplier]
                    for c in range(in_channels):
                        window[c] += u[n, iy, ix, c]
            p = oy * ow + ox
            for o in range(channels):
                out[n, o, p] = acc[o] - fill * weight_sum[o] - zero_point[o] * (window[o // multiplier] - taps_fill)


@parallel_jit
def _gather_windows(u, kh_, kw_, sh, sw, dh, dw, ow, out):
    """``out[n, p, (kh*KW + kw)*C + c] = u[n, oy*sh + kh*dh, ox*sw + kw*dw, c]`` for output
    position ``p = oy*OW + ox`` of the packed bytes ``u`` (N, Hp, Wp, C)."""
    batch, positions = out.shape[0], out.shape[1]
    channels = u.shape[3]
    oh = positions // ow
    for t in prange(batch * oh):
        n, oy = t // oh, t % oh
        for ox in range(ow):
            p = oy * ow + ox
            for kh in range(kh_):
                for kw in range(kw_):
                    base = (kh * kw_ + kw) * channels
                    for c in range(channels):
                        out[n, p, base + c] = u[n, oy * sh + kh * dh, ox * sw + kw * dw, c]


def _steps(length: int) -> int:
    """64-byte steps of the tile over a run of ``length`` bytes."""
    return -(-length // 64)


def _amx_sums(u, weights: _Int8Weights, row_offsets, run, stride, image_stride, outer, u_outer, length, batch, fill,
              out, epilogue=None, stats=None) -> None:
    """Dense sums on AMX tiles (:func:`aquant_sim.kernels.amx.dense`) into ``out`` (N, O, P), or
    with ``epilogue`` their int32 levels, counted in ``stats``; ``R`` first, against a ones row,
    when some ``z_w != 0``."""
    steps, taps = _steps(length), outer * length
    window = np.empty((1, 1), dtype=np.int32)  # read only where some z_w != 0
    if weights.has_zero_point:
        ones = np.zeros(1, dtype=np.int64)
        window = np.empty((batch, 1, out.shape[2]), dtype=np.int32)
        amx.dense(u, weights.amx_tiles(outer, length, ones=True), row_offsets, run, stride, image_stride, outer,
                  u_outer, steps, taps, ones, 0, ones, window[:, 0], False, NO_EPILOGUE, _NO_STATS, _NO_SCRATCH,
                  amx.TILE_CONFIG, window)
        window = window[:, 0]
    fused = epilogue is not None
    # The epilogue's sums: one block of 32 channels per thread, never the layer's.
    scratch = np.empty((numba.config.NUMBA_NUM_THREADS, amx.CHANNELS, out.shape[2]), dtype=np.int32) if fused \
        else _NO_SCRATCH
    amx.dense(u, weights.amx_tiles(outer, length), row_offsets, run, stride, image_stride, outer, u_outer, steps,
              taps, weights.weight_sum, fill, weights.zero_point, window, fused, epilogue if fused else NO_EPILOGUE,
              stats if fused else _NO_STATS, scratch, amx.TILE_CONFIG, out)


_NO_STATS = np.zeros((1, 3), dtype=np.int64)
"""The counts of a kernel run without an epilogue: never written."""
_NO_SCRATCH = np.zeros((1, 1, 1), dtype=np.int32)
"""The AMX kernel's epilogue scratch when it runs without one: never written."""


def _engine(engine: Engine | None) -> Engine:
    if engine is None:
        return ENGINES[-1] if ENGINES else Engine.VNNI
    if engine not in ENGINES:
        raise ValueError(f"int8 kernels: engine {engine.name} is not available on this CPU (available: "
                         f"{', '.join(e.name for e in ENGINES) or 'none'})")
    return engine


def _conv2d(x: np.ndarray, op: Conv2d, zero_point: int, x_range, engine, epilogue):
    """:func:`conv2d_sums` (``epilogue`` None), or :func:`conv2d_levels`: ``(out, stats)`` or None."""
    weights = _weights(op)
    batch, channels, h, w = x.shape
    out_channels, cg, kh_, kw_ = op.weight.shape
    depthwise = cg == 1 and op.groups == channels
    x_min, x_max = (int(x.min()), int(x.max())) if x_range is None else x_range
    lo = operand_offset(weights, x_min, x_max, zero_point, depthwise)
    if lo is None:
        return None
    (sh, sw), (ph, pw), (dh, dw) = op.stride, op.padding, op.dilation
    oh, ow = (window_output_size(x.shape[2 + a], op.weight.shape[2 + a], op.stride[a], op.padding[a], op.dilation[a],
                                 op.padding_end[a])
              for a in (0, 1))
    hp, wp = h + ph + op.padding_end[0], w + pw + op.padding_end[1]
    fill = zero_point - lo
    dtype = sums_dtype(weights, x_min, x_max, zero_point)
    tiles = not depthwise and _engine(engine) is Engine.AMX and op.groups == 1 and dw == 1 and dtype is np.int32
    if epilogue is not None and not tiles:
        return None
    size = batch * hp * wp * channels
    extra = amx.slack(sw * channels, dh * wp * channels, kh_, kw_ * channels) if tiles else 0
    buffer = np.empty(size + extra, dtype=np.uint8)
    u = buffer[:size].reshape(batch, hp, wp, channels)
    _pack(x, lo, fill, ph, pw, u)
    if epilogue is not None:
        out, stats = np.empty((batch, out_channels, oh * ow), dtype=np.int32), np.zeros((batch * out_channels, 3), dtype=np.int64)
    else:
        out, stats = np.empty((batch, out_channels, oh * ow), dtype=dtype), None
    if depthwise:
        _depthwise(u, weights.by_tap(), out_channels // channels, sh, sw, dh, dw, kh_, kw_, ow, fill,
                   weights.weight_sum, weights.zero_point, out)
        return out, stats
    taps = kh_ * kw_ * cg
    if not tiles and op.groups == 1 and _steps(taps) * 2 <= kh_ * _steps(kw_ * channels if dw == 1 else channels) * (kw_ if dw > 1 else 1):
        # Short kernel rows (a stem of 1-3 channels): gathering each window into one run of
        # bytes at least halves the 64-byte steps of the VNNI tile. (On AMX tiles the gather
        # costs more than the extra steps: the stem of tools/bench_sim.py took 21 ms gathered
        # against 8 ms direct, batch 8, one thread.)
        positions = oh * ow
        windows = np.empty((batch, positions, taps), dtype=np.uint8)
        _gather_windows(u, kh_, kw_, sh, sw, dh, dw, ow, windows)
        pixels = np.arange(positions, dtype=np.int64) * taps
        _dense(windows.ravel(), weights.rows, pixels, positions * taps, batch, 0, 1, out_channels, taps, 1, 0, 0, 1,
               0, 0, taps, weights.weight_sum, fill, weights.zero_point, weights.has_zero_point, out)
        return out, stats
    if tiles:
        row_offsets = np.arange(oh, dtype=np.int64) * (sh * wp * channels)
        _amx_sums(buffer, weights, row_offsets, ow, sw * channels, hp * wp * channels, kh_, dh * wp * channels,
                  kw_ * channels, batch, fill, out, epilogue, stats)
        return out, stats
    oy, ox = np.divmod(np.arange(oh * ow, dtype=np.int64), ow)
    pixels = (oy * sh * wp + ox * sw) * channels
    if op.groups == 1 and dw == 1:
        inner, u_inner, w_inner, length = 1, 0, 0, kw_ * channels  # a kernel row is one run of bytes
    else:
        inner, u_inner, w_inner, length = kw_, dw * channels, cg, cg
    _dense(u.ravel(), weights.rows, pixels, hp * wp * channels, batch, cg, op.groups, out_channels // op.groups,
           kh_ * kw_ * cg, kh_, dh * wp * channels, kw_ * cg, inner, u_inner, w_inner, length, weights.weight_sum,
           fill, weights.zero_point, weights.has_zero_point, out)
    return out, stats


def conv2d_sums(x: np.ndarray, op: Conv2d, zero_point: int, x_range: tuple[int, int] | None = None,
                engine: Engine | None = None) -> np.ndarray | None:
    """D.1 without the bias, batch-major ``(N, O, OH*OW)`` (:func:`sums_dtype`), or None when
    the operands do not fit the int8 kernels (:func:`operand_offset`). ``x_range`` bounds the
    levels of ``x`` (its format's ``qmin, qmax``; measured when None); ``engine`` the dense
    kernels' instructions (the best of :data:`ENGINES` when None)."""
    result = _conv2d(x, op, zero_point, x_range, engine, None)
    return None if result is None else result[0]


def conv2d_levels(x: np.ndarray, op: Conv2d, zero_point: int, epilogue: tuple, x_range: tuple[int, int] | None = None,
                  engine: Engine | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """D.1 with the requantizer in the AMX kernel's epilogue (``epilogue`` from
    :func:`aquant_sim.kernels.requant.border_epilogue`): int32 output levels ``(N, O, OH*OW)``,
    each block of 32 channels of one image requantized as soon as it is accumulated, so that no
    tensor of the layer's sums exists, and the counts ``stats`` (rows of ``max |acc|``,
    overflows, levels at the zero-point; reduce by max, sum, sum). None where the AMX tiles do
    not take the op (:func:`conv2d_sums` then gives the sums for the separate pass)."""
    return _conv2d(x, op, zero_point, x_range, engine, epilogue)


def _linear(x: np.ndarray, op: Linear, zero_point: int, x_range, engine, epilogue):
    """:func:`linear_sums` (``epilogue`` None), or :func:`linear_levels`: ``(out (1, O, N), stats)`` or None."""
    weights = _weights(op)
    x_min, x_max = (int(x.min()), int(x.max())) if x_range is None else x_range
    lo = operand_offset(weights, x_min, x_max, zero_point)
    if lo is None:
        return None
    batch, features = x.shape
    out_channels = op.weight.shape[0]
    dtype = sums_dtype(weights, x_min, x_max, zero_point)
    tiles = _engine(engine) is Engine.AMX and dtype is np.int32
    if epilogue is not None and not tiles:
        return None
    u = np.empty(batch * features + (amx.slack(features, 0, 1, features) if tiles else 0), dtype=np.uint8)
    u[:batch * features] = (x - lo).ravel()
    if tiles:
        out = np.empty((1, out_channels, batch), dtype=dtype)
        stats = None if epilogue is None else np.zeros((out_channels, 3), dtype=np.int64)
        _amx_sums(u, weights, np.zeros(1, dtype=np.int64), batch, features, 0, 1, 0, features, 1, zero_point - lo, out,
                  epilogue, stats)
        return out, stats
    out = np.empty((1, out_channels, batch), dtype=dtype)
    pixels = np.arange(batch, dtype=np.int64) * features
    _dense(u, weights.rows, pixels, 0, 1, features, 1, out_channels, features, 1, 0, 0, 1, 0, 0, features,
           weights.weight_sum, zero_point - lo, weights.zero_point, weights.has_zero_point, out)
    return out, None


def linear_sums(x: np.ndarray, op: Linear, zero_point: int, x_range: tuple[int, int] | None = None,
                engine: Engine | None = None) -> np.ndarray | None:
    """D.2 without the bias, channel-major ``(O, N, 1)`` (:func:`sums_dtype`), or None
    (:func:`operand_offset`); ``x_range`` and ``engine`` as for :func:`conv2d_sums`."""
    result = _linear(x, op, zero_point, x_range, engine, None)
    return None if result is None else result[0].reshape(op.weight.shape[0], x.shape[0], 1)


def linear_levels(x: np.ndarray, op: Linear, zero_point: int, epilogue: tuple, x_range: tuple[int, int] | None = None,
                  engine: Engine | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """D.2 with the requantizer in the AMX kernel's epilogue, as :func:`conv2d_levels`: int32
    output levels ``(N, O)`` and the counts, or None where the AMX tiles do not take the op."""
    result = _linear(x, op, zero_point, x_range, engine, epilogue)
    return None if result is None else (np.ascontiguousarray(result[0][0].T), result[1])
