"""``aquant verify MODEL.tflite --against litert --input FILE.npy``: the simulator against LiteRT,
every tensor.

Imports the int8 model as an integer program with TFLite's requantizers
(:mod:`aquant_sim.importers.tflite_model`), quantizes the float NHWC batch as TFLite's
``QUANTIZE`` does, takes every program tensor LiteRT also has from its reference kernels
(``OpResolverType.BUILTIN_REF``; :mod:`aquant_sim.importers.litert_run`), runs both backends of
the simulator from the same input levels, and compares every tensor exactly: the verdict. The
same model also runs on LiteRT's optimized builtin kernels and on its default kernels (the
XNNPACK delegate); how many elements of each tensor those differ from the reference kernels is
reported beside, for information (``docs/deploy.md`` says where they differ).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aquant_sim.cli.common import load_array, simulator, write_json
from aquant_sim.compare import compare_tensors, first_difference
from aquant_sim.errors import InputError
from aquant_sim.simulator import Backend
from aquant_sim.table import format_table


def compare_shared(imported, a: dict, b: dict) -> list:
    """:func:`aquant_sim.compare.compare_tensors` over the program tensors LiteRT has (``a`` and
    ``b`` hold at least those); the internal ones (before a fused activation's clamp) are left out
    of the comparison and the report."""
    program = imported.program
    batch = len(a[program.input])
    filler = {name: np.zeros((batch, *program.tensor(name).shape), dtype=np.int64) for name in imported.internal}
    comparisons = compare_tensors(program, {**filler, **a}, {**filler, **b})
    return [c for c in comparisons if c.tensor not in imported.internal]


def run_against_litert(args, describe) -> int:
    """Compare the simulator with LiteRT's reference kernels on ``args.input``; 0 when every
    tensor is equal."""
    from aquant_sim.importers.litert_run import Kernels, quantize_input, run_tensors
    from aquant_sim.importers.tflite_model import import_tflite

    imported = import_tflite(Path(args.artifact))
    program = imported.program
    c, h, w = program.input_tensor.shape
    x = load_array(args.input)
    if x.dtype.kind != "f" or x.ndim != 4 or tuple(x.shape[1:]) != (h, w, c):
        raise InputError(f"{args.input}: expected a float NHWC batch (N, {h}, {w}, {c}), got {x.dtype} {x.shape}")
    levels = quantize_input(x, program.input_tensor.quant)
    runs = {kernels: run_tensors(imported, levels, kernels) for kernels in Kernels}
    reference = runs[Kernels.REFERENCE]
    checks = []
    for backend in (Backend.NUMBA, Backend.REFERENCE):
        result = simulator(program, backend).run(reference[program.input].astype(np.int32), keep_tensors=True)
        checks.append((backend.name.lower(), compare_shared(imported, reference, result.tensors)))
    others = [(kernels.value, compare_shared(imported, reference, runs[kernels])) for kernels in (Kernels.OPTIMIZED, Kernels.DEFAULT)]
    rows = [(cmp.layer, cmp.kind, f"{cmp.elements:,}", *(f"{check[1][i].differing:,}" for check in checks),
             *(f"{other[1][i].differing:,}" for other in others)) for i, cmp in enumerate(checks[0][1])]
    print(format_table(("layer", "kind", "elements", *(f"differing: {name}" for name, _ in checks),
                        *(f"litert {name} vs reference" for name, _ in others)), rows, left=2))
    equal = True
    for name, comparisons in checks:
        first = first_difference(comparisons)
        if first is None:
            print(f"litert reference kernels vs {name}: all {len(comparisons)} tensors equal")
        else:
            equal = False
            print(f"litert reference kernels vs {name}: {sum(not c.equal for c in comparisons)} of {len(comparisons)} "
                  "tensors differ; " + describe(first, "litert", name))
    for name, comparisons in others:
        first = first_difference(comparisons)
        print(f"litert {name} kernels vs its reference kernels (informational): "
              + ("all tensors equal" if first is None else f"first differ at layer '{first.layer}' ({first.kind}), "
                 f"{first.differing:,} of {first.elements:,} elements"))
    print("\nverify: " + ("PASS, bit-exact against litert's reference kernels" if equal else "FAIL"))
    if args.json:
        write_json(args.json, {
            "model": str(args.artifact), "input": str(args.input), "against": args.against, "equal": equal,
            "checks": {name: [c.as_dict() for c in comparisons] for name, comparisons in checks},
            "litert_kernels_vs_reference": {name: [c.as_dict() for c in comparisons] for name, comparisons in others},
        })
    return 0 if equal else 1
