"""``aquant demo [--out DIR]``: the whole integer path on the built-in example, in seconds.

Builds the built-in example program (``synthetic_resnet()``: a random ResNet-20-shaped network,
4-bit weights and activations, per-channel-and-level borders), saves it, loads it back, simulates
a random batch (fixed seed) on the numba backend, checks numba == reference on every tensor, and
prints the per-layer summary and the float-model measurement. Writes the program, the batch, the
results and the reference's integer dumps to ``--out``, with the commands that reproduce them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aquant_sim.artifact import load_program, save_program
from aquant_sim.cli.common import result_json, simulator, write_json
from aquant_sim.compare import compare_tensors, first_difference
from aquant_sim.float_model import measure
from aquant_sim.simulator import Backend
from aquant_sim.summary import counters_table, float_model_table
from aquant_sim.synthetic import synthetic_resnet

BATCH = 8
SEED = 0
COMPARED = (Backend.NUMBA, Backend.REFERENCE)
"""The backend that runs the demo, and the oracle it is checked against."""


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="build, save, load, simulate and verify the built-in example",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/demo", help="folder for the outputs (default: runs/demo)")
    parser.set_defaults(func=run)


def run(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    program = synthetic_resnet()
    path = save_program(program, out / "program.aqp")
    loaded = load_program(path)
    print(f"built the example program ({len(program.ops)} ops), saved {path} ({path.stat().st_size:,} bytes), loaded it back")

    x = np.random.default_rng(SEED).standard_normal((BATCH, *loaded.input_tensor.shape)).astype(np.float32)
    np.save(out / "input.npy", x)
    fast, oracle = (simulator(loaded, backend).run(x, keep_tensors=True) for backend in COMPARED)
    left, right = (backend.name.lower() for backend in COMPARED)
    print(f"simulated a batch of {BATCH} (seed {SEED}) on the {left} backend:\n")
    print(counters_table(fast.counters))
    print(f"\nargmax: {fast.dequantized.reshape(BATCH, -1).argmax(axis=1).tolist()}")

    comparisons = compare_tensors(loaded, fast.tensors, oracle.tensors)
    first = first_difference(comparisons)
    counters_equal = [c.as_dict() for c in fast.counters] == [c.as_dict() for c in oracle.counters]
    print("\nfloat model vs datapath (informational):")
    print(float_model_table(measure(loaded, oracle.tensors)))

    write_json(out / "result.json", result_json(loaded, fast, artifact=str(path), input=str(out / "input.npy"), backend=left))
    np.savez(out / "dumps.npz", **oracle.tensors)
    print(f"\nwrote {out / 'result.json'} and the reference's integer dumps {out / 'dumps.npz'}; reproduce with")
    print(f"  aquant simulate {path} --input {out / 'input.npy'} --json {out / 'result.json'}")
    print(f"  aquant verify {path} --input {out / 'input.npy'} --expect {out / 'dumps.npz'}")
    if first is not None or not counters_equal:
        where = f"layer '{first.layer}' at index {first.first_index}: {left} {first.first_values[0]}, " \
                f"{right} {first.first_values[1]}" if first is not None else "the counters"
        print(f"\ndemo: FAIL, {left} and {right} differ in {where}")
        return 1
    print(f"\ndemo: PASS, {left} == {right} on all {len(comparisons)} tensors and every counter")
    return 0
