"""``aquant simulate ARTIFACT --input FILE.npy``: run a saved program on a batch.

Prints the per-layer summary and the argmax of each sample; ``--json`` writes the counters,
the output integers, their real values and the argmax.
"""

from __future__ import annotations

import argparse

from aquant_sim.artifact import load_program
from aquant_sim.cli.common import BACKENDS, load_array, result_json, simulator, write_json
from aquant_sim.summary import counters_table

ARGMAX_SHOWN = 32
"""Samples whose argmax is printed (the JSON has all of them)."""


def register(subparsers) -> None:
    parser = subparsers.add_parser("simulate", help="run a saved program bit-exactly on a batch",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("artifact", help="program file written by save_program (.aqp)")
    parser.add_argument("--input", required=True, help=".npy batch (N, ...): floats are quantized with "
                        "the program's input borders, integers are taken as levels")
    parser.add_argument("--json", help="write the results to this JSON file")
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="numba", help="numba (fast kernels, default) or reference (plain numpy loops)")
    parser.set_defaults(func=run)


def run(args) -> int:
    program = load_program(args.artifact)
    x = load_array(args.input)
    backend = BACKENDS[args.backend]
    result = simulator(program, backend).run(x)
    print(counters_table(result.counters))
    kind = "levels" if program.output_tensor.is_quantized else "int32 accumulators"
    print(f"\noutput '{program.output}': {result.output.shape} {kind}")
    argmax = result.dequantized.reshape(len(x), -1).argmax(axis=1)
    shown = argmax[:ARGMAX_SHOWN].tolist()
    print(f"argmax: {shown}" + (f" ... ({len(argmax)} samples)" if len(argmax) > ARGMAX_SHOWN else ""))
    if args.json:
        write_json(args.json, result_json(program, result, artifact=str(args.artifact), input=str(args.input),
                                          backend=args.backend))
        print(f"wrote {args.json}")
    return 0
