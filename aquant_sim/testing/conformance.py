"""The conformance kit: run the requantization contract's properties against any implementation.

A hardware team models its rounding unit (a Python model of an RTL block, a C kernel through
ctypes, a simulator binding) as one Python callable with this signature, vectorised over a 1-D
accumulator array and per-tensor otherwise::

    fn(acc, multiplier, shift, frac_bits, borders, zero_point, qmin, qmax) -> q

    acc         1-D np.ndarray of int64: A-bit signed accumulators (A in 8..32)
    multiplier  int m in [2^30, 2^31)
    shift       int n with n - F in rounding.scaled_shift_range(A), i.e. [A - 32, 62]
                (D.6; n - F < 0 shifts left)
    frac_bits   int F in 1..16
    borders     1-D np.ndarray of int64, each B in [1, 2^F]: length 1 (one border for every
                level) or qmax - qmin (B[j] decides between levels qmin + j and qmin + j + 1)
    zero_point  int z in [qmin, qmax]
    qmin, qmax  ints: the b-bit output range (b in 2..16, signed or unsigned)
    q           1-D integer array-like of the same length: the output levels

and calls :func:`check_requantizer`. It checks, each on ``max_examples`` drawn cases (ties on a
border, type limits and powers of two favoured): equality with the contract
:func:`aquant_sim.rounding.requantize`, equations (6)-(8); ``beta = 1/2`` (every B = 2^(F-1)) is
round-half-up and ``beta = 1`` (every B = 2^F) is floor of the exact real value
``acc * m / 2^n + z``; monotone in ``acc``; always within ``[qmin, qmax]``. The first property
that fails raises :class:`ConformanceError` with the shrunk counterexample: inputs, expected,
got. See ``docs/conformance.md``.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Callable

import numpy as np
from hypothesis import HealthCheck, Phase, example, given, settings

from aquant_sim import rounding
from aquant_sim.program import QuantParams, Requantizer, BorderTable
from aquant_sim.rounding import RequantVariant
from aquant_sim.testing import runtime_oracles
from aquant_sim.testing.strategies import (
    AddCase, RequantizerCase, TfliteAddCase, TfliteAverageCase, VariantCase, add_cases, requantizer_cases, tflite_add_cases,
    tflite_average_cases, variant_cases,
)

RequantizerFn = Callable[..., object]


class ConformanceError(AssertionError):
    """An implementation disagrees with the contract. The message holds the counterexample;
    ``case`` (a :class:`RequantizerCase` with the one failing accumulator), ``expected`` and
    ``got`` hold it as values (``expected`` is None for the monotonicity and range checks)."""

    def __init__(self, message: str, case: RequantizerCase, expected=None, got=None):
        super().__init__(message)
        self.case, self.expected, self.got = case, expected, got


def _single(case, index: int):
    return dataclasses.replace(case, acc=case.acc[index : index + 1])


def contract(acc, multiplier, shift, frac_bits, borders, zero_point, qmin, qmax) -> np.ndarray:
    """The contract (6)-(8) itself in the kit's signature (:func:`rounding.requantize`)."""
    return rounding.requantize(
        np.asarray(acc, dtype=np.int64), [multiplier], [shift], frac_bits,
        np.asarray(borders, dtype=np.int64)[None, :], zero_point, qmin, qmax, channel_axis=0,
    )


def from_op_requantizer(requantize: Callable) -> RequantizerFn:
    """Adapt a backend's ``requantize(acc, Requantizer, QuantParams)`` (the reference's and the
    kernels' signature, acc of shape (N, C, ...)) to the kit's signature: acc becomes one row
    ``(1, len(acc))`` of channels sharing the per-tensor multiplier and table."""

    def adapted(acc, multiplier, shift, frac_bits, borders, zero_point, qmin, qmax):
        bits = int(qmax - qmin + 1).bit_length() - 1
        requant = Requantizer(np.array([multiplier]), np.array([shift]), BorderTable(frac_bits, np.asarray(borders)[None, :]))
        quant = QuantParams(bits, qmin < 0, 1.0, zero_point)
        return np.asarray(requantize(np.asarray(acc, dtype=np.int64)[None, :], requant, quant))[0]

    return adapted


def _torch_requantizer() -> RequantizerFn:
    """The front-end's torch form of (6)-(8), ``aquant_sim.frontend.emulation.requantize``
    (int64 torch tensors in and out); torch is imported only here."""
    import torch

    from aquant_sim.frontend.emulation import requantize

    return from_op_requantizer(lambda acc, requant, quant: requantize(torch.from_numpy(acc), requant, quant).numpy())


def _numba_requantizer() -> RequantizerFn:
    from aquant_sim import kernels

    return from_op_requantizer(kernels.requantize)


def _reference_requantizer() -> RequantizerFn:
    from aquant_sim import reference

    return from_op_requantizer(reference.requantize)


IMPLEMENTATIONS: dict[str, Callable[[], RequantizerFn]] = {
    "numpy": lambda: contract,
    "reference": _reference_requantizer,
    "numba": _numba_requantizer,
    "torch": _torch_requantizer,
}
"""Every implementation of the requantizer (6)-(8) in the project, by name: a function that
imports it (only when called) and returns it in the kit's signature. The suite's test runs
:func:`check_requantizer` on each; a new implementation is added here and is tested at once."""


def _exact_real_round(case: RequantizerCase, floor: bool) -> np.ndarray:
    """Round-half-up (or floor) of ``acc * m / 2^n + z``, in exact integer arithmetic."""
    out = []
    for acc in case.acc.tolist():
        numerator, n = acc * case.multiplier, case.shift
        if n <= 0:
            level = numerator << -n
        elif floor:
            level = numerator >> n
        else:
            level = (2 * numerator + (1 << n)) >> (n + 1)  # floor(x + 1/2)
        out.append(min(max(level + case.zero_point, case.qmin), case.qmax))
    return np.array(out, dtype=np.int64)


def _call(fn: RequantizerFn, case: RequantizerCase, prop: str) -> np.ndarray:
    got = np.asarray(fn(*case.args()))
    if got.shape != case.acc.shape or got.dtype.kind not in "iu":
        raise ConformanceError(
            f"[{prop}] expected a 1-D integer array of {case.acc.size} levels, got dtype {got.dtype} "
            f"and shape {got.shape}\n  inputs: {case.describe()}", case)
    return got.astype(np.int64)


def _compare(prop: str, case: RequantizerCase, expected: np.ndarray, got: np.ndarray) -> None:
    wrong = np.flatnonzero(expected != got)
    if wrong.size:
        i = int(wrong[0])
        raise ConformanceError(
            f"[{prop}] {wrong.size} of {case.acc.size} outputs differ; the first:\n"
            f"  inputs: {case.describe(i)}\n  expected: {int(expected[i])}\n  got: {int(got[i])}",
            _single(case, i), int(expected[i]), int(got[i]))


def _property_contract(fn, case):
    _compare("equals contract (6)-(8)", case, contract(*case.args()), _call(fn, case, "equals contract"))


def _property_half_up(fn, case):
    _compare("beta=1/2 is round half up", case, _exact_real_round(case, floor=False), _call(fn, case, "beta=1/2"))


def _property_floor(fn, case):
    _compare("beta=1 is floor", case, _exact_real_round(case, floor=True), _call(fn, case, "beta=1"))


def _property_monotone_in_range(fn, case):
    order = np.argsort(case.acc, kind="stable")
    sorted_case = dataclasses.replace(case, acc=case.acc[order])
    got = _call(fn, sorted_case, "monotone")
    outside = np.flatnonzero((got < case.qmin) | (got > case.qmax))
    if outside.size:
        i = int(outside[0])
        raise ConformanceError(
            f"[within [qmin, qmax]] output {int(got[i])} is outside [{case.qmin}, {case.qmax}]\n"
            f"  inputs: {sorted_case.describe(i)}", _single(sorted_case, i), None, int(got[i]))
    drops = np.flatnonzero(np.diff(got) < 0)
    if drops.size:
        i = int(drops[0])
        raise ConformanceError(
            f"[monotone in acc] acc {int(sorted_case.acc[i])} -> {int(got[i])} but the larger acc "
            f"{int(sorted_case.acc[i + 1])} -> {int(got[i + 1])}\n  inputs: {sorted_case.describe()}",
            sorted_case, None, got)


PROPERTIES = (
    (_property_contract, None),
    (_property_half_up, -1),
    (_property_floor, 0),
    (_property_monotone_in_range, None),
)
"""Each property and the border it fixes (None: drawn; -1: B = 2^(F-1); 0: B = 2^F)."""


def _variant_contract(variant: RequantVariant) -> RequantizerFn:
    """The numpy contract of ``variant`` in the kit's variant signature."""

    def contract_fn(acc, multiplier, shift, zero_point, qmin, qmax):
        return rounding.requantize_variant(variant, np.asarray(acc, dtype=np.int64), [multiplier], [shift], 1,
                                           np.ones((1, 1), dtype=np.int64), zero_point, qmin, qmax, channel_axis=0)

    return contract_fn


def from_op_requantizer_variant(requantize: Callable, variant: RequantVariant) -> RequantizerFn:
    """Adapt a backend's ``requantize(acc, Requantizer, QuantParams)`` to the kit's variant
    signature ``fn(acc, multiplier, shift, zero_point, qmin, qmax) -> q``."""

    def adapted(acc, multiplier, shift, zero_point, qmin, qmax):
        bits = int(qmax - qmin + 1).bit_length() - 1
        requant = Requantizer(np.array([multiplier]), np.array([shift]), BorderTable.nearest(1), variant)
        quant = QuantParams(bits, qmin < 0, 1.0, zero_point)
        return np.asarray(requantize(np.asarray(acc, dtype=np.int64)[None, :], requant, quant))[0]

    return adapted


def _variant_backend(module: str, variant: RequantVariant) -> RequantizerFn:
    import importlib

    return from_op_requantizer_variant(importlib.import_module(module).requantize, variant)


VARIANT_IMPLEMENTATIONS: dict[str, Callable[[RequantVariant], RequantizerFn]] = {
    "numpy": _variant_contract,
    "reference": lambda variant: _variant_backend("aquant_sim.reference", variant),
    "numba": lambda variant: _variant_backend("aquant_sim.kernels", variant),
}
"""Every implementation of the runtimes' variants (GEMMLOWP (10)-(13), FP32 (14)-(16), FLOAT64
(31)-(32)), by name:
a function of the variant that returns it in the kit's variant signature. The front-end has no
torch form of them: it calibrates for the BORDER requantizer."""

RUNTIME_ORACLES = {RequantVariant.GEMMLOWP: runtime_oracles.tflite_requantize,
                   RequantVariant.FP32: runtime_oracles.mlas_requantize,
                   RequantVariant.FLOAT64: runtime_oracles.tflite_fully_connected}
"""The per-element transcription of each variant's runtime source (``runtime_oracles``)."""


def _variant_property_oracle(fn, case: VariantCase):
    oracle = RUNTIME_ORACLES[case.variant]
    expected = np.array([oracle(a, case.multiplier, case.shift, case.zero_point, case.qmin, case.qmax)
                         for a in case.acc.tolist()], dtype=np.int64)
    _compare(f"equals the {case.variant.value} runtime's source", case, expected, _call(fn, case, "runtime"))


def _variant_property_near_real(fn, case: VariantCase):
    """Where the exact real ``acc * M + z`` lies within ``[qmin, qmax]``, the output is less than
    one level from it (each variant rounds to a neighbouring level, never further)."""
    got = _call(fn, case, "near the real value")
    for i, a in enumerate(case.acc.tolist()):
        exact = Fraction(a * case.multiplier, 1 << case.shift) if case.shift >= 0 else Fraction(a * case.multiplier << -case.shift)
        exact += case.zero_point
        if case.qmin <= exact <= case.qmax and abs(got[i] - exact) >= 1:
            raise ConformanceError(
                f"[within one level of acc * M + z] got {int(got[i])}, the exact value is {float(exact)!r}\n"
                f"  inputs: {case.describe(i)}", _single(case, i), None, int(got[i]))


VARIANT_PROPERTIES = (_variant_property_oracle, _variant_property_near_real, _property_monotone_in_range)
"""The properties every implementation of a variant must have, on every drawn case."""

VARIANT_EXAMPLES = {
    RequantVariant.GEMMLOWP: (
        VariantCase(RequantVariant.GEMMLOWP, np.array([3, -3], dtype=np.int64), 1 << 30, 33, 0, -128, 127, 32),
    ),
    RequantVariant.FP32: (
        VariantCase(RequantVariant.FP32, np.array([-3, -1, 1, 5], dtype=np.int64), 1 << 30, 31, 0, -128, 127, 32),
    ),
    RequantVariant.FLOAT64: (
        VariantCase(RequantVariant.FLOAT64, np.array([128, -128, 640, -640], dtype=np.int64), 1 << 52, 60, 0, -128, 127, 32),
    ),
}
"""Cases every run of a variant's properties tries first, whatever hypothesis then draws (the
drawn ties are found or missed depending on what ran before: the whole suite's order once made
the derandomized kit miss a wrong GEMMLOWP and a wrong FLOAT64). GEMMLOWP with ``M = 1/8``:
``acc = 3`` rounds twice to 1 (3/2 up to 2, then 2/4 away from zero; one rounding gives 0,
contract (10)-(13)), and ``acc = -3`` is a tie of the high multiply (11), -1.5 up to -1, which
the shift (12) takes to 0 (rounding that tie away from zero gives -2, then -1). FP32 with
``M = 1/2``: ties -1.5, -0.5, 0.5, 2.5 go to even (-2, 0, 0, 2). FLOAT64 with ``E = 2^-8``:
ties 0.5, -0.5, 2.5, -2.5 go away from zero (1, -1, 3, -3)."""


def check_requantizer_variant(fn: RequantizerFn, variant: RequantVariant, max_examples: int = 200,
                              derandomize: bool = False, shrink: bool = True) -> None:
    """Run every property of ``variant`` (GEMMLOWP, FP32 or FLOAT64) against ``fn``, called as
    ``fn(acc, multiplier, shift, zero_point, qmin, qmax) -> q`` (per tensor, ``acc`` a 1-D int64
    array of A-bit accumulators, ``(multiplier, shift)`` within the variant's ranges): equality
    with the runtime's source transcribed element by element (``runtime_oracles``), less than one
    level from the exact real value wherever that is on the grid, monotone in ``acc`` and within
    ``[qmin, qmax]``. Raises :class:`ConformanceError` at the first property that fails."""
    if variant not in RUNTIME_ORACLES:
        raise ValueError(f"variant {variant.value!r} is not a runtime variant; use check_requantizer for 'border'")
    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if shrink else [])
    config = settings(max_examples=max_examples, deadline=None, database=None, derandomize=derandomize,
                      suppress_health_check=list(HealthCheck), print_blob=False, phases=phases)
    for prop in VARIANT_PROPERTIES:
        test = given(case=variant_cases(variant))(_bind(prop, fn))
        for case in VARIANT_EXAMPLES.get(variant, ()):
            test = example(case=case)(test)
        config(test)()


AddFn = Callable[..., np.ndarray]
"""``fn(a, b, ratio_a, ratio_b, zero_a, zero_b, zero_c, qmin, qmax, offset) -> q``: an FP32_ADD add
(contract (17)-(20)) of two 1-D int64 level vectors, float32 ratios, the formats' zero-points,
the output range and the runtime's offset."""


def _add_backend(module: str) -> AddFn:
    """A backend's ``add_fp32(a, b, Add, QuantParams x 3)`` in the kit's add signature."""
    import importlib

    from aquant_sim.program import Add

    add_fp32 = importlib.import_module(module).add_fp32

    def adapted(a, b, ratio_a, ratio_b, zero_a, zero_b, zero_c, qmin, qmax, offset):
        m, n = rounding.float32_multiplier(np.array([ratio_a, ratio_b], dtype=np.float32))
        op = Add("add", "a", "b", "c", 1, 1, Requantizer(m, n, BorderTable.nearest(1), RequantVariant.FP32_ADD), offset)
        signed = qmin < 0
        quants = [QuantParams(8, signed, 1.0, z) for z in (zero_a, zero_b, zero_c)]
        return np.asarray(add_fp32(np.asarray(a)[None, :], np.asarray(b)[None, :], op, *quants))[0]

    return adapted


ADD_IMPLEMENTATIONS: dict[str, Callable[[], AddFn]] = {
    "numpy": lambda: rounding.fp32_add,
    "reference": lambda: _add_backend("aquant_sim.reference"),
    "numba": lambda: _add_backend("aquant_sim.kernels"),
}
"""Every implementation of the FP32_ADD add, by name (8-bit formats, as onnxruntime's ``QLinearAdd``)."""


def _add_args(case: AddCase) -> tuple:
    return (case.a, case.b, case.ratio_a, case.ratio_b, case.zero_a, case.zero_b, case.zero_c, case.qmin, case.qmax,
            case.offset)


def _add_property_oracle(fn, case: AddCase):
    """Equal, element by element, to MLAS's AVX2 ``QLinearAdd`` transcribed in exact rationals."""
    o = case.offset
    got = np.asarray(fn(*_add_args(case)))
    for i in range(len(case.a)):
        want = runtime_oracles.mlas_qlinear_add(int(case.a[i]) + o, int(case.b[i]) + o, float(case.ratio_a),
                                                float(case.ratio_b), case.zero_a + o, case.zero_b + o, case.zero_c + o,
                                                case.qmin + o, case.qmax + o) - o
        if got[i] != want:
            raise ConformanceError(f"[equals onnxruntime's QLinearAdd source] expected {want}, got {int(got[i])}\n"
                                   f"  inputs: {case.describe(i)}", case, want, int(got[i]))


def _add_property_near_real(fn, case: AddCase):
    """Less than one level from the exact ``r_a (a - z_a) + r_b (b - z_b) + z_c`` wherever that is
    within ``[qmin, qmax]``; always within ``[qmin, qmax]``."""
    got = np.asarray(fn(*_add_args(case)))
    for i in range(len(case.a)):
        exact = (Fraction(float(case.ratio_a)) * (int(case.a[i]) - case.zero_a)
                 + Fraction(float(case.ratio_b)) * (int(case.b[i]) - case.zero_b) + case.zero_c)
        if not case.qmin <= got[i] <= case.qmax or (case.qmin <= exact <= case.qmax and abs(got[i] - exact) >= 1):
            raise ConformanceError(f"[within one level of the exact sum, in range] got {int(got[i])}, exact {float(exact)!r}\n"
                                   f"  inputs: {case.describe(i)}", case, None, int(got[i]))


def check_fp32_add(fn: AddFn, max_examples: int = 200, derandomize: bool = False) -> None:
    """Run the FP32_ADD properties against ``fn`` (signature :data:`AddFn`): equality with the
    transcription of MLAS's ``QLinearAdd`` (``runtime_oracles.mlas_qlinear_add``) and less than
    one level from the exact sum, within the output range. Raises :class:`ConformanceError`."""
    config = settings(max_examples=max_examples, deadline=None, database=None, derandomize=derandomize,
                      suppress_health_check=list(HealthCheck), print_blob=False)
    for prop in (_add_property_oracle, _add_property_near_real):
        config(given(case=add_cases())(_bind(prop, fn)))()


TfliteAddFn = Callable[..., np.ndarray]
"""``fn(a, b, multiplier, shift, zero_a, zero_b, zero_c, qmin, qmax) -> q``: a TFLITE_ADD add
(contract (21)-(24)) of two 1-D int64 level vectors with the three ``(m, n)`` pairs."""


def _tflite_add_backend(module: str) -> TfliteAddFn:
    """A backend's ``add_tflite(a, b, Add, QuantParams x 3)`` in the kit's TFLite add signature."""
    import importlib

    from aquant_sim.program import Add

    add_tflite = importlib.import_module(module).add_tflite

    def adapted(a, b, multiplier, shift, zero_a, zero_b, zero_c, qmin, qmax):
        requant = Requantizer(np.array(multiplier), np.array(shift), BorderTable.nearest(1), RequantVariant.TFLITE_ADD)
        quants = [QuantParams(8, True, 1.0, z) for z in (zero_a, zero_b, zero_c)]
        return np.asarray(add_tflite(np.asarray(a)[None, :], np.asarray(b)[None, :], Add("add", "a", "b", "c", 1, 1, requant),
                                     *quants))[0]

    return adapted


TFLITE_ADD_IMPLEMENTATIONS: dict[str, Callable[[], TfliteAddFn]] = {
    "numpy": lambda: rounding.tflite_add,
    "reference": lambda: _tflite_add_backend("aquant_sim.reference"),
    "numba": lambda: _tflite_add_backend("aquant_sim.kernels"),
}
"""Every implementation of the TFLITE_ADD add, by name."""


def _tflite_add_args(case: TfliteAddCase) -> tuple:
    return (case.a, case.b, case.multiplier, case.shift, case.zero_a, case.zero_b, case.zero_c, case.qmin, case.qmax)


def _tflite_add_property_oracle(fn, case: TfliteAddCase):
    """Equal, element by element, to TFLite's ``AddFunc`` transcribed (``runtime_oracles.tflite_add``)."""
    got = np.asarray(fn(*_tflite_add_args(case)))
    for i in range(len(case.a)):
        want = runtime_oracles.tflite_add(int(case.a[i]), int(case.b[i]), case.multiplier, case.shift, case.zero_a,
                                          case.zero_b, case.zero_c, case.qmin, case.qmax)
        if got[i] != want:
            raise ConformanceError(f"[equals TFLite's AddFunc source] expected {want}, got {int(got[i])}\n"
                                   f"  inputs: {case.describe(i)}", case, want, int(got[i]))


def _tflite_add_property_near_real(fn, case: TfliteAddCase):
    """Less than one level from the exact ``2^20 M_c (M_a (a - z_a) + M_b (b - z_b)) + z_c`` wherever
    that is within ``[qmin, qmax]``; always within ``[qmin, qmax]``."""
    got = np.asarray(fn(*_tflite_add_args(case)))
    scale = [Fraction(m, 1 << n) for m, n in zip(case.multiplier, case.shift)]
    for i in range(len(case.a)):
        exact = (scale[2] * (1 << 20) * (scale[0] * (int(case.a[i]) - case.zero_a) + scale[1] * (int(case.b[i]) - case.zero_b))
                 + case.zero_c)
        if not case.qmin <= got[i] <= case.qmax or (case.qmin <= exact <= case.qmax and abs(got[i] - exact) >= 1):
            raise ConformanceError(f"[within one level of the exact sum, in range] got {int(got[i])}, exact {float(exact)!r}\n"
                                   f"  inputs: {case.describe(i)}", case, None, int(got[i]))


def check_tflite_add(fn: TfliteAddFn, max_examples: int = 200, derandomize: bool = False, shrink: bool = True) -> None:
    """Run the TFLITE_ADD properties against ``fn`` (signature :data:`TfliteAddFn`): equality with
    the transcription of TFLite's ``AddFunc`` and less than one level from the exact sum, within the
    output range. Raises :class:`ConformanceError`; ``shrink=False`` reports the first failing case
    as drawn."""
    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if shrink else [])
    config = settings(max_examples=max_examples, deadline=None, database=None, derandomize=derandomize,
                      suppress_health_check=list(HealthCheck), print_blob=False, phases=phases)
    for prop in (_tflite_add_property_oracle, _tflite_add_property_near_real):
        config(given(case=tflite_add_cases())(_bind(prop, fn)))()


TfliteAverageFn = Callable[..., np.ndarray]
"""``fn(values, mean, multiplier, shift, zero_in, zero_out, qmin, qmax) -> q``: one output per row
of the (K, count) int64 ``values`` by TFLITE_MEAN (``mean``, (28)-(30)) or TFLITE_AVGPOOL
((25)-(27)); a 1-D array of K levels."""


def _tflite_average_contract(values, mean, multiplier, shift, zero_in, zero_out, qmin, qmax):
    """The numpy contract in the kit's average signature (one channel per row)."""
    values = np.asarray(values, dtype=np.int64)
    acc, count = (values - zero_in).sum(axis=1)[None, :], values.shape[1]
    if mean:
        return rounding.tflite_mean(acc, count, [multiplier], [shift], zero_out, qmin, qmax)[0]
    return rounding.tflite_avgpool(acc, count, zero_in, qmin, qmax)[0]


def _tflite_average_backend(module: str) -> TfliteAverageFn:
    """A backend's ``average_tflite(acc, op, count, QuantParams x 2)`` in the kit's average signature."""
    import importlib

    from aquant_sim.program import AvgPool2d, GlobalAvgPool

    average_tflite = importlib.import_module(module).average_tflite

    def adapted(values, mean, multiplier, shift, zero_in, zero_out, qmin, qmax):
        values = np.asarray(values, dtype=np.int64)
        variant = RequantVariant.TFLITE_MEAN if mean else RequantVariant.TFLITE_AVGPOOL
        requant = Requantizer(np.array([multiplier]), np.array([shift]), BorderTable.nearest(1), variant)
        op = GlobalAvgPool("g", "x", "y", requant) if mean else AvgPool2d("p", "x", "y", (1, 1), (1, 1), requant)
        acc = (values - zero_in).sum(axis=1)[None, :]
        quants = [QuantParams(8, True, 1.0, z) for z in (zero_in, zero_out)]
        return np.asarray(average_tflite(acc, op, values.shape[1], *quants))[0]

    return adapted


TFLITE_AVERAGE_IMPLEMENTATIONS: dict[str, Callable[[], TfliteAverageFn]] = {
    "numpy": lambda: _tflite_average_contract,
    "reference": lambda: _tflite_average_backend("aquant_sim.reference"),
    "numba": lambda: _tflite_average_backend("aquant_sim.kernels"),
}
"""Every implementation of TFLite's average pooling and mean, by name."""


def _tflite_average_args(case: TfliteAverageCase) -> tuple:
    return (case.values, case.mean, case.multiplier, case.shift, case.zero_in, case.zero_out, case.qmin, case.qmax)


def _tflite_average_property_oracle(fn, case: TfliteAverageCase):
    """Equal, row by row, to LiteRT's ``QuantizedMeanOrSum`` or TFLite's ``AveragePool`` transcribed."""
    got = np.asarray(fn(*_tflite_average_args(case)))
    for i, row in enumerate(case.values.tolist()):
        want = (runtime_oracles.tflite_mean(row, case.zero_in, case.multiplier, case.shift, case.zero_out, case.qmin, case.qmax)
                if case.mean else runtime_oracles.tflite_average_pool(row, case.qmin, case.qmax))
        if got[i] != want:
            raise ConformanceError(f"[equals TFLite's {'mean' if case.mean else 'average pooling'} source] expected {want}, "
                                   f"got {int(got[i])}\n  inputs: {case.describe(i)}", case, want, int(got[i]))


def _tflite_average_property_near_real(fn, case: TfliteAverageCase):
    """Less than one level from the exact ``M * mean(x - z_x) + z_y`` (pooling: within half a level
    of ``mean(x)``) wherever that is within ``[qmin, qmax]``; always within ``[qmin, qmax]``."""
    got = np.asarray(fn(*_tflite_average_args(case)))
    scale = Fraction(case.multiplier, 1 << case.shift)
    for i, row in enumerate(case.values.tolist()):
        if case.mean:
            exact, bound = scale * Fraction(sum(row) - case.zero_in * len(row), len(row)) + case.zero_out, 1
        else:
            exact, bound = Fraction(sum(row), len(row)), Fraction(1, 2)
        if not case.qmin <= got[i] <= case.qmax or (case.qmin <= exact <= case.qmax and abs(got[i] - exact) > bound
                                                    or case.mean and abs(got[i] - exact) == bound):
            raise ConformanceError(f"[near the exact average, in range] got {int(got[i])}, exact {float(exact)!r}\n"
                                   f"  inputs: {case.describe(i)}", case, None, int(got[i]))


def check_tflite_average(fn: TfliteAverageFn, max_examples: int = 200, derandomize: bool = False, shrink: bool = True) -> None:
    """Run the TFLITE_MEAN and TFLITE_AVGPOOL properties against ``fn`` (signature
    :data:`TfliteAverageFn`): equality with the transcriptions of LiteRT's sources and nearness to
    the exact average. Raises :class:`ConformanceError`; ``shrink=False`` reports the first
    failing case as drawn."""
    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if shrink else [])
    config = settings(max_examples=max_examples, deadline=None, database=None, derandomize=derandomize,
                      suppress_health_check=list(HealthCheck), print_blob=False, phases=phases)
    for prop in (_tflite_average_property_oracle, _tflite_average_property_near_real):
        config(given(case=tflite_average_cases())(_bind(prop, fn)))()


def check_requantizer(fn: RequantizerFn, max_examples: int = 200, derandomize: bool = False,
                      shrink: bool = True) -> None:
    """Run every property of the contract against ``fn`` (signature in the module docstring).

    Returns None when ``fn`` conforms on every drawn case; raises :class:`ConformanceError`
    with the shrunk counterexample at the first property that fails. ``derandomize`` makes
    the drawn cases the same on every run (for CI); ``shrink=False`` reports the first failing
    case as drawn instead of searching for the smallest one (faster, larger counterexample).
    """
    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if shrink else [])
    config = settings(max_examples=max_examples, deadline=None, database=None, derandomize=derandomize,
                      suppress_health_check=list(HealthCheck), print_blob=False, phases=phases)
    for prop, border in PROPERTIES:
        config(given(case=requantizer_cases(border=border))(_bind(prop, fn)))()


def _bind(prop, fn):
    """A one-argument test of ``prop`` on ``fn`` (hypothesis refuses functions with defaults)."""

    def test(case):
        prop(fn, case)

    return test
