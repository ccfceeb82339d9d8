"""Exact comparison of two runs' tensors, layer by layer in program order.

Integer tensors are equal or not: no tolerance. Used by ``aquant verify`` to compare the numba
backend with the reference, and either with integer dumps from elsewhere (an RTL simulation, a
C model, another framework), whose format ``docs/artifact.md`` describes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aquant_sim.errors import InputError
from aquant_sim.program import Program


@dataclass(frozen=True)
class TensorComparison:
    """One tensor in two runs: ``differing`` of ``elements`` differ; the first difference (in C
    order) is at ``first_index`` with values ``first_values``. ``layer`` is the op that produced
    the tensor ("input" for the program input)."""

    tensor: str
    layer: str
    kind: str
    elements: int
    differing: int
    first_index: tuple[int, ...] | None = None
    first_values: tuple[int, int] | None = None

    @property
    def equal(self) -> bool:
        return self.differing == 0

    def as_dict(self) -> dict:
        return {"tensor": self.tensor, "layer": self.layer, "kind": self.kind, "elements": self.elements,
                "differing": self.differing, "first_index": None if self.first_index is None else list(self.first_index),
                "first_values": None if self.first_values is None else list(self.first_values)}


def tensor_order(program: Program) -> list[tuple[str, str, str]]:
    """``(tensor, layer, kind)`` of the input and of every op's output, in program order."""
    return [(program.input, "input", "input")] + [(op.output, op.name, op.kind.value) for op in program.ops]


def compare_tensors(program: Program, a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> list[TensorComparison]:
    """Compare every tensor of ``program`` in ``a`` and ``b`` exactly; both must hold all of them
    with equal shapes (see :func:`check_dumps` for data from outside)."""
    comparisons = []
    for tensor, layer, kind in tensor_order(program):
        x, y = np.asarray(a[tensor]), np.asarray(b[tensor])
        if x.shape != y.shape:
            raise InputError(f"tensor '{tensor}': shapes differ, {x.shape} and {y.shape}")
        wrong = x != y
        count = int(np.count_nonzero(wrong))
        if count == 0:
            comparisons.append(TensorComparison(tensor, layer, kind, x.size, 0))
            continue
        index = tuple(int(i) for i in np.argwhere(wrong)[0])
        comparisons.append(TensorComparison(tensor, layer, kind, x.size, count, index, (int(x[index]), int(y[index]))))
    return comparisons


def first_difference(comparisons: list[TensorComparison]) -> TensorComparison | None:
    """The first tensor in program order that differs, or None when all are equal."""
    return next((c for c in comparisons if not c.equal), None)


def check_dumps(program: Program, dumps: dict[str, np.ndarray], batch: int) -> None:
    """Check integer dumps against the program: one integer array per tensor name, of shape
    ``(batch, *tensor.shape)``; missing or extra names, wrong shapes and non-integer dtypes are
    InputErrors naming the tensor."""
    names = [tensor for tensor, _, _ in tensor_order(program)]
    missing = [name for name in names if name not in dumps]
    if missing:
        raise InputError(f"dumps: tensor '{missing[0]}' is missing ({len(missing)} of {len(names)} missing)")
    extra = sorted(set(dumps) - set(names))
    if extra:
        raise InputError(f"dumps: '{extra[0]}' is not a tensor of the program ({len(extra)} unknown names)")
    for name in names:
        expected = (batch, *program.tensor(name).shape)
        array = dumps[name]
        if array.shape != expected:
            raise InputError(f"dumps: tensor '{name}' has shape {array.shape}, expected {expected}")
        if array.dtype.kind not in "iu":
            raise InputError(f"dumps: tensor '{name}' has dtype {array.dtype}, expected integers")
