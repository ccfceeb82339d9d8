"""The exact torch forward of a program whose requantizers mix this project's BORDER rule with
runtimes' rules (what ``aquant tune-borders`` writes): every tensor's integers, to be compared
with the simulator's, element for element.

Ops with a BORDER requantizer, ops without one (max pooling, clamp, flatten, accumulator outputs)
and the input quantizer run in the front-end's torch backend of the datapath
(:func:`aquant_sim.frontend.emulation.run_op`, exact int64). The front-end emulates only BORDER
(calibration targets this project's requantizer), so an op that keeps a runtime's rule takes its
exact int64 inputs from torch and runs on the reference datapath
(:class:`aquant_sim.reference_datapath.ReferenceDatapath`, the contract's numpy functions).
"""

from __future__ import annotations

import numpy as np
import torch

from aquant_sim.frontend.emulation import quantize_input, run_op
from aquant_sim.program import Program
from aquant_sim.reference_datapath import ReferenceDatapath
from aquant_sim.rounding import RequantVariant


@torch.no_grad()
def exact_tensors(program: Program, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every tensor of ``program`` (int64, by name) for float ``images`` (NCHW)."""
    reference = ReferenceDatapath()
    values = {program.input: quantize_input(images, program.input_tensor.quant, program.input_borders)}
    for op in program.ops:
        ins = [values[name] for name in op.inputs]
        quants = [program.tensor(name).quant for name in op.inputs]
        out = program.tensor(op.output)
        requant = getattr(op, "requant", None)
        if requant is None or requant.variant is RequantVariant.BORDER:
            values[op.output], _ = run_op(op, ins, quants, out.quant, program.accumulator_bits, program.overflow)
            continue
        result = reference.run_accumulating(op, [x.numpy().astype(np.int32) for x in ins], quants, out.quant,
                                            out.shape, program.accumulator_bits, program.overflow)
        values[op.output] = torch.from_numpy(np.asarray(result.values, dtype=np.int64))
    return values
