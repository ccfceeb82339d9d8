"""``aquant verify MODEL.onnx --against onnxruntime --input FILE.npy``: the simulator against a
real runtime, every tensor.

Imports the QDQ model as an integer program with onnxruntime's requantizers
(:mod:`aquant_sim.importers.onnx_qdq`), takes every program tensor from onnxruntime's CPU
kernels (:mod:`aquant_sim.importers.onnxruntime_run`), runs both backends of the simulator from
onnxruntime's quantized input, and compares every tensor exactly. Prints, per layer, the kernel
onnxruntime ran and the count of differing elements; also how many input levels the project's
own input rounding ((1)-(4), round half up in float64) gives differently from onnxruntime's
``QuantizeLinear`` (float32 division, round half to even), which the comparison does not use.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from aquant_sim.cli.common import load_array, simulator, write_json
from aquant_sim.compare import compare_tensors, first_difference
from aquant_sim.errors import InputError
from aquant_sim.program import REQUANTIZING_OPS
from aquant_sim.simulator import Backend
from aquant_sim.table import format_table

RUNTIMES = ("onnxruntime", "litert")
"""The runtimes ``--against`` accepts (``litert``: :mod:`aquant_sim.cli.verify_litert`)."""


def run_against(args, describe) -> int:
    """Compare the simulator with ``args.against`` on ``args.input``; 0 when every tensor is equal."""
    if args.against == "litert":
        from aquant_sim.cli.verify_litert import run_against_litert

        return run_against_litert(args, describe)
    from aquant_sim.importers.onnx_qdq import import_onnx
    from aquant_sim.importers.onnxruntime_run import PROBE_EXACT, kernels, pair_sums_saturate, run_tensors

    model = Path(args.artifact)
    imported = import_onnx(model)
    program = imported.program
    x = load_array(args.input)
    if x.dtype.kind != "f" or x.ndim != 4 or tuple(x.shape[1:]) != program.input_tensor.shape:
        raise InputError(f"{args.input}: expected a float batch (N, {', '.join(map(str, program.input_tensor.shape))}), "
                         f"got {x.dtype} {x.shape}")
    runtime = run_tensors(model, imported.graph_input, program, x)
    with tempfile.TemporaryDirectory() as scratch:
        ran = kernels(model, program, Path(scratch))
    levels = runtime[program.input]
    checks = []
    for backend in (Backend.NUMBA, Backend.REFERENCE):
        result = simulator(program, backend).run(levels.astype(np.int32), keep_tensors=True)
        checks.append((backend.name.lower(), compare_tensors(program, runtime, result.tensors)))
    rows = [(c.layer, c.kind, ran[c.tensor], f"{c.elements:,}", *(f"{check[1][i].differing:,}" for check in checks))
            for i, c in enumerate(checks[0][1])]
    print(format_table(("layer", "kind", "onnxruntime kernel", "elements", *(f"differing: {name}" for name, _ in checks)),
                       rows, left=3))
    equal = True
    for name, comparisons in checks:
        first = first_difference(comparisons)
        if first is None:
            print(f"onnxruntime vs {name}: all {len(comparisons)} tensors equal")
        else:
            equal = False
            print(f"onnxruntime vs {name}: {sum(not c.equal for c in comparisons)} of {len(comparisons)} tensors differ; "
                  + describe(first, "onnxruntime", name))
    unfused = [op.name for op in program.ops if op.kind in REQUANTIZING_OPS and ran[op.output] == "QuantizeLinear"]
    if unfused:
        print(f"note: onnxruntime did not fuse {len(unfused)} layers into integer kernels (the first: '{unfused[0]}'); "
              "it ran their float op in float32, which is what they were compared with")
    own = simulator(program, Backend.REFERENCE).quantize_input(x)
    input_differs = int(np.count_nonzero(own != levels))
    print(f"input rounding (informational): the project's (1)-(4) and onnxruntime's QuantizeLinear differ on "
          f"{input_differs:,} of {levels.size:,} levels; the comparison starts from onnxruntime's")
    saturated = pair_sums_saturate()
    if saturated is not None:
        print(f"warning: onnxruntime on this CPU adds uint8 x int8 products in pairs with int16 saturation "
              f"(MLAS's AVX2 kernels without VNNI: 4 x 255 x 127 gave {saturated:,}, not {PROBE_EXACT:,}); its "
              "integer convolutions and matrix products are not exact here, so differences in them are the runtime's")
    print("\nverify: " + ("PASS, bit-exact against onnxruntime" if equal else "FAIL"))
    if args.json:
        write_json(args.json, {
            "model": str(model), "input": str(args.input), "against": args.against, "equal": equal,
            "kernels": ran, "input_rounding_differs": input_differs, "pair_sums_saturate": saturated,
            "checks": {name: [c.as_dict() for c in comparisons] for name, comparisons in checks},
        })
    return 0 if equal else 1
