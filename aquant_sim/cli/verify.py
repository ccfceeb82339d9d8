"""``aquant verify ARTIFACT --input FILE.npy [--expect DUMPS.npz]``: check bit-exactness.
(``aquant verify MODEL.onnx --against onnxruntime --input FILE.npy``: see ``verify_runtime``.)

Runs the numba backend and the reference on the batch, keeping every tensor, and compares them
exactly, tensor by tensor in program order (with ``--expect``, also the reference against integer
dumps from elsewhere). Exits 0 only when everything is equal; otherwise names the first layer
that differs, the index and both values, and the count of differing elements per layer. Also
prints the float-model measurement (informational, docs/contract.md).
"""

from __future__ import annotations

import argparse
import zipfile

import numpy as np

from aquant_sim.artifact import load_program
from aquant_sim.cli.common import load_array, simulator, write_json
from aquant_sim.cli.verify_runtime import RUNTIMES, run_against
from aquant_sim.compare import check_dumps, compare_tensors, first_difference
from aquant_sim.errors import InputError
from aquant_sim.float_model import measure
from aquant_sim.simulator import Backend
from aquant_sim.summary import float_model_table
from aquant_sim.table import format_table

COMPARED = (Backend.NUMBA, Backend.REFERENCE)
"""The two backends compared: the fast one first, the oracle second."""


def register(subparsers) -> None:
    parser = subparsers.add_parser("verify", help="check that numba, the reference and dumps agree bit for bit",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("artifact", help="program file written by save_program (.aqp), or with --against a "
                        "deployed model (.onnx for onnxruntime, .tflite for litert)")
    parser.add_argument("--input", required=True, help=".npy batch (N, ...)")
    parser.add_argument("--expect", help=".npz of integer dumps: one array (N, ...) per tensor name")
    parser.add_argument("--against", choices=RUNTIMES, help="compare a deployed model's every tensor with this "
                        "runtime's own kernels (docs/deploy.md)")
    parser.add_argument("--json", help="write the comparison to this JSON file")
    parser.set_defaults(func=run)


def load_dumps(path) -> dict[str, np.ndarray]:
    """Read an .npz of integer dumps without unpickling anything."""
    try:
        archive = np.load(path, allow_pickle=False)
        if isinstance(archive, np.lib.npyio.NpzFile):
            with archive:
                return {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise InputError(f"{path}: cannot read integer dumps (.npz): {error}") from None
    raise InputError(f"{path}: cannot read integer dumps (.npz): it holds a single .npy array")


def describe(comparison, left: str, right: str) -> str:
    """One line naming the first difference of a tensor."""
    a, b = comparison.first_values
    return (f"first difference: layer '{comparison.layer}' ({comparison.kind}), tensor '{comparison.tensor}' "
            f"at index {comparison.first_index}: {left} {a}, {right} {b} "
            f"({comparison.differing:,} of {comparison.elements:,} elements differ)")


def run(args) -> int:
    if args.against:
        if args.expect:
            raise InputError("--expect and --against cannot be combined")
        return run_against(args, describe)
    program = load_program(args.artifact)
    x = load_array(args.input)
    fast, oracle = (simulator(program, backend).run(x, keep_tensors=True) for backend in COMPARED)
    left, right = (backend.name.lower() for backend in COMPARED)
    checks = [(f"{left} vs {right}", left, compare_tensors(program, fast.tensors, oracle.tensors))]
    if args.expect:
        dumps = load_dumps(args.expect)
        check_dumps(program, dumps, len(x))
        checks.append((f"expect vs {right}", "expect", compare_tensors(program, dumps, oracle.tensors)))
    counter_mismatch = [a.name for a, b in zip(fast.counters, oracle.counters) if a.as_dict() != b.as_dict()]

    rows = [(c.layer, c.kind, c.tensor, f"{c.elements:,}", *(f"{check[2][i].differing:,}" for check in checks))
            for i, c in enumerate(checks[0][2])]
    print(format_table(("layer", "kind", "tensor", "elements", *(f"differing: {label}" for label, _, _ in checks)), rows, left=3))
    equal = not counter_mismatch
    for label, name, comparisons in checks:
        first = first_difference(comparisons)
        if first is None:
            print(f"{label}: all {len(comparisons)} tensors equal")
        else:
            equal = False
            print(f"{label}: {sum(not c.equal for c in comparisons)} of {len(comparisons)} tensors differ; " + describe(first, name, right))
    if counter_mismatch:
        print(f"counters differ between {left} and {right} for layer '{counter_mismatch[0]}' "
              f"({len(counter_mismatch)} layers)")

    differences = measure(program, oracle.tensors)
    print("\nfloat model vs datapath (informational: differences come from the 31-bit M, the add's "
          "integer weights, accumulator overflow and float error)")
    print(float_model_table(differences))
    print("\nverify: " + ("PASS, bit-exact" if equal else "FAIL"))
    if args.json:
        write_json(args.json, {
            "artifact": str(args.artifact), "input": str(args.input), "expect": args.expect, "equal": equal,
            "checks": {label: [c.as_dict() for c in comparisons] for label, _, comparisons in checks},
            "counter_mismatch": counter_mismatch,
            "float_model": [d.as_dict() for d in differences],
        })
    return 0 if equal else 1
