"""Every op of the integer program as slow, plain numpy code: the oracle the kernels must match.

All arithmetic is int64 and exact; no float touches an integer here, except in the FP32 variants
of the requantizer and the add, which are float32 rules by definition (``rounding``). Activations come in NCHW
(or N, F) integer arrays. Functions return exact int64 sums ("acc" functions, equations D.1,
D.2, D.9, D.11, D.12, D.16 of ``docs/datapath.md``) or final levels (max pooling, clamp, lookup
table, requantize).
The accumulator width is applied by the simulator, after these exact sums.
"""

from __future__ import annotations

import numpy as np

from aquant_sim import rounding
from aquant_sim.program import Add, AvgPool2d, Conv2d, Linear, MaxPool2d, QuantParams, Requantizer, window_output_size


def _pad(x: np.ndarray, padding: tuple[int, int], value: int, padding_end: tuple[int, int] | None = None) -> np.ndarray:
    """Pad H and W with ``value``: ``padding`` (top, left) before, ``padding_end`` (bottom,
    right; None: ``padding``) after."""
    (pt, pl), (pb, pr) = padding, padding if padding_end is None else padding_end
    return np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=value)


def _window_taps(x: np.ndarray, kernel, stride, dilation, out_hw):
    """Yield ``(kh, kw, view)`` where ``view[..., oh, ow] = x[..., oh*s + kh*d, ow*s + kw*d]``."""
    (sh, sw), (dh, dw), (oh, ow) = stride, dilation, out_hw
    for kh in range(kernel[0]):
        for kw in range(kernel[1]):
            h0, w0 = kh * dh, kw * dw
            yield kh, kw, x[..., h0 : h0 + sh * (oh - 1) + 1 : sh, w0 : w0 + sw * (ow - 1) + 1 : sw]


def _centred_weight(op) -> np.ndarray:
    """``w[o, ...] - z_w[o]`` in int64: contract (5) as written, without the row-sum trick."""
    shape = (-1,) + (1,) * (op.weight.ndim - 1)
    return op.weight.astype(np.int64) - op.weight_zero_point.reshape(shape)


def conv2d_acc(x: np.ndarray, op: Conv2d, zero_point: int) -> np.ndarray:
    """D.1: ``acc[n, o, y, x] = bias[o] + sum_{c, kh, kw} (w[o, c, kh, kw] - z_w[o]) * (xp - z)``
    over the input channels of o's group, ``xp`` the input padded with ``z`` (padding adds
    nothing), ``padding`` before and ``padding_end`` after."""
    n, c, h, w = x.shape
    groups = op.groups
    out_c, cg, kh_, kw_ = op.weight.shape
    oh = window_output_size(h, kh_, op.stride[0], op.padding[0], op.dilation[0], op.padding_end[0])
    ow = window_output_size(w, kw_, op.stride[1], op.padding[1], op.dilation[1], op.padding_end[1])
    centred = _pad(x.astype(np.int64), op.padding, zero_point, op.padding_end) - zero_point
    centred = centred.reshape(n, groups, cg, *centred.shape[2:])
    weight = _centred_weight(op).reshape(groups, out_c // groups, cg, kh_, kw_)
    acc = np.zeros((n, groups, out_c // groups, oh, ow), dtype=np.int64)
    for kh, kw, view in _window_taps(centred, (kh_, kw_), op.stride, op.dilation, (oh, ow)):
        acc += np.einsum("ngcyx,goc->ngoyx", view, weight[:, :, :, kh, kw])
    return acc.reshape(n, out_c, oh, ow) + op.bias[None, :, None, None]


def linear_acc(x: np.ndarray, op: Linear, zero_point: int) -> np.ndarray:
    """D.2: ``acc[n, o] = bias[o] + sum_i (w[o, i] - z_w[o]) * (x[n, i] - z)``."""
    centred = x.astype(np.int64) - zero_point
    return np.einsum("ni,oi->no", centred, _centred_weight(op)) + op.bias[None, :]


def add_acc(a: np.ndarray, b: np.ndarray, weight_a: int, weight_b: int, zero_a: int, zero_b: int) -> np.ndarray:
    """D.9: ``acc = w_a * (a - z_a) + w_b * (b - z_b)``."""
    return weight_a * (a.astype(np.int64) - zero_a) + weight_b * (b.astype(np.int64) - zero_b)


def add_fp32(a: np.ndarray, b: np.ndarray, op: Add, quant_a: QuantParams, quant_b: QuantParams,
             quant_c: QuantParams) -> np.ndarray:
    """An add with the FP32_ADD requantizer, contract (17)-(20) (onnxruntime's ``QLinearAdd``): no
    integer sum; the float32 ratios are the requantizer's two entries, the offset the op's
    ``zero_offset``. Levels out, int64."""
    ratio_a, ratio_b = rounding.float32_scale(op.requant.multiplier, op.requant.shift)
    return rounding.fp32_add(a, b, ratio_a, ratio_b, quant_a.zero_point, quant_b.zero_point, quant_c.zero_point,
                             quant_c.qmin, quant_c.qmax, op.zero_offset)


def add_tflite(a: np.ndarray, b: np.ndarray, op: Add, quant_a: QuantParams, quant_b: QuantParams,
               quant_c: QuantParams) -> np.ndarray:
    """An add with the TFLITE_ADD requantizer, contract (21)-(24) (TFLite's int8 ``ADD``): the
    requantizer's three pairs scale input a, input b and the sum. Levels out, int64."""
    return rounding.tflite_add(a, b, op.requant.multiplier, op.requant.shift, quant_a.zero_point, quant_b.zero_point,
                               quant_c.zero_point, quant_c.qmin, quant_c.qmax)


def average_tflite(acc: np.ndarray, op, count: int, in_quant: QuantParams, quant: QuantParams) -> np.ndarray:
    """Average pooling (TFLITE_AVGPOOL, (25)-(27)) or mean (TFLITE_MEAN, (28)-(30)) of ``count``
    levels from the centred sums ``acc`` (D.11, D.12), channel on axis 1. Levels out, int64."""
    if op.requant.variant is rounding.RequantVariant.TFLITE_MEAN:
        return rounding.tflite_mean(acc, count, op.requant.multiplier, op.requant.shift, quant.zero_point,
                                    quant.qmin, quant.qmax, channel_axis=1)
    return rounding.tflite_avgpool(acc, count, in_quant.zero_point, quant.qmin, quant.qmax)


def avgpool_acc(x: np.ndarray, op: AvgPool2d, zero_point: int) -> np.ndarray:
    """D.11: ``acc = sum over the window of (xp - z)``, ``xp`` padded with ``z``; the divisor
    ``KH * KW`` lives in the requantizer's multiplier."""
    n, c, h, w = x.shape
    oh = window_output_size(h, op.kernel_size[0], op.stride[0], op.padding[0], 1)
    ow = window_output_size(w, op.kernel_size[1], op.stride[1], op.padding[1], 1)
    centred = _pad(x.astype(np.int64), op.padding, zero_point) - zero_point
    acc = np.zeros((n, c, oh, ow), dtype=np.int64)
    for _, _, view in _window_taps(centred, op.kernel_size, op.stride, (1, 1), (oh, ow)):
        acc += view
    return acc


def concat_acc(a: np.ndarray, b: np.ndarray, zero_a: int, zero_b: int) -> np.ndarray:
    """D.17: ``acc = (a - z_a)`` on the first channels, ``(b - z_b)`` on the rest."""
    return np.concatenate([a.astype(np.int64) - zero_a, b.astype(np.int64) - zero_b], axis=1)


def global_avgpool_acc(x: np.ndarray, zero_point: int) -> np.ndarray:
    """D.12: ``acc[n, c, 0, 0] = sum_{y, x} (x[n, c, y, x] - z)``."""
    return (x.astype(np.int64) - zero_point).sum(axis=(2, 3), keepdims=True)


def maxpool(x: np.ndarray, op: MaxPool2d, qmin: int) -> np.ndarray:
    """D.10: the window maximum; padding (``padding`` before, ``padding_end`` after) holds
    ``qmin``, which never beats a real value because every window contains at least one (the
    program checks ``2 * padding <= kernel`` on both sides and that no window reads padding alone)."""
    n, c, h, w = x.shape
    oh = window_output_size(h, op.kernel_size[0], op.stride[0], op.padding[0], op.dilation[0], op.padding_end[0])
    ow = window_output_size(w, op.kernel_size[1], op.stride[1], op.padding[1], op.dilation[1], op.padding_end[1])
    padded = _pad(x.astype(np.int64), op.padding, qmin, op.padding_end)
    out = np.full((n, c, oh, ow), qmin, dtype=np.int64)
    for _, _, view in _window_taps(padded, op.kernel_size, op.stride, op.dilation, (oh, ow)):
        out = np.maximum(out, view)
    return out


def mul_acc(a: np.ndarray, b: np.ndarray, zero_a: int, zero_b: int) -> np.ndarray:
    """D.16: ``acc = (a - z_a) * (b - z_b)``, ``b`` broadcast over the positions of ``a`` when it
    holds one value per channel (N, C, 1, 1)."""
    return (a.astype(np.int64) - zero_a) * (b.astype(np.int64) - zero_b)


def lut(x: np.ndarray, table: np.ndarray, qmin: int) -> np.ndarray:
    """D.15: ``table[g(c), x - qmin]`` with the channel on axis 1 (one row serves every channel)."""
    index = x.astype(np.int64) - qmin
    if table.shape[0] == 1:
        return table[0][index]
    shape = [1] * x.ndim
    shape[1] = table.shape[0]
    return table[np.arange(table.shape[0]).reshape(shape), index]


def clamp(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """D.13: ``clamp(x, lo[c], hi[c])`` with the channel on axis 1."""
    shape = [1] * x.ndim
    shape[1] = lo.shape[0]
    return np.clip(x.astype(np.int64), lo.reshape(shape), hi.reshape(shape))


def requantize(acc: np.ndarray, requant: Requantizer, quant: QuantParams) -> np.ndarray:
    """The op's requantizer with its variant ((6)-(8), (10)-(13) or (14)-(16)), channel on axis 1."""
    return rounding.requantize_variant(
        requant.variant, acc, requant.multiplier, requant.shift, requant.frac_bits, requant.borders.values,
        quant.zero_point, quant.qmin, quant.qmax, channel_axis=1,
    )
