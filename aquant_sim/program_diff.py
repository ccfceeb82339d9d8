"""Field-by-field equality of two integer programs: every tensor by name (shape, quantization;
the order of the declarations is not compared, it means nothing),
every op field that :func:`aquant_sim.program.op_fields` declares (arrays exactly, requantizers
by variant, multipliers, shifts and border tables), the op names and kinds, and the program's
input, output, input borders, accumulator width and overflow policy. Floats compare exactly
(``==``), never within a tolerance."""

from __future__ import annotations

import numpy as np

from aquant_sim.program import AccumulatorParams, BorderTable, Program, Requantizer, op_fields


def _borders_differ(a: BorderTable, b: BorderTable) -> bool:
    return a.frac_bits != b.frac_bits or a.values.shape != b.values.shape or not np.array_equal(a.values, b.values)


def _arrays_differ(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape != b.shape or a.dtype.kind != b.dtype.kind or not np.array_equal(a, b)


def _value_differs(a, b) -> bool:
    if isinstance(a, Requantizer) or isinstance(b, Requantizer):
        if not (isinstance(a, Requantizer) and isinstance(b, Requantizer)):
            return True
        return (a.variant is not b.variant or _arrays_differ(a.multiplier, b.multiplier) or _arrays_differ(a.shift, b.shift)
                or _borders_differ(a.borders, b.borders))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)) or _arrays_differ(a, b)
    return a != b


def programs_differ(a: Program, b: Program) -> str:
    """The first difference between ``a`` and ``b`` in words (where, and both values), or ""
    when they are identical."""
    for name, x, y in (("input", a.input, b.input), ("output", a.output, b.output),
                       ("accumulator_bits", a.accumulator_bits, b.accumulator_bits), ("overflow", a.overflow, b.overflow),
                       ("tensor count", len(a.tensors), len(b.tensors)), ("op count", len(a.ops), len(b.ops))):
        if x != y:
            return f"program {name}: {x!r:.80} vs {y!r:.80}"
    if _borders_differ(a.input_borders, b.input_borders):
        return "program input_borders differ"
    other = {t.name: t for t in b.tensors}
    for s in a.tensors:
        t = other.get(s.name)
        if t is None or s.shape != t.shape:
            return f"tensor '{s.name}' {s.shape} vs {t.shape if t else 'none'}"
        accumulators = isinstance(s.quant, AccumulatorParams), isinstance(t.quant, AccumulatorParams)
        if accumulators[0] != accumulators[1] or (_arrays_differ(s.quant.scale, t.quant.scale) if accumulators[0]
                                                  else s.quant != t.quant):
            return f"tensor '{s.name}'.quant: {s.quant!r:.80} vs {t.quant!r:.80}"
    for p, q in zip(a.ops, b.ops):
        if (p.name, p.kind) != (q.name, q.kind):
            return f"op '{p.name}' ({p.kind.value}) vs '{q.name}' ({q.kind.value})"
        for spec in op_fields(type(p)):
            if _value_differs(getattr(p, spec.name), getattr(q, spec.name)):
                return f"op '{p.name}' ({p.kind.value}).{spec.name} differs"
    return ""
