"""``aquant demo [--out DIR]``: the main job, the whole pipeline on a built-in default.

By default: trains a float ResNet-20 on a subset of Fashion-MNIST (or reuses the one an earlier
run left in ``--out``), calibrates it with AQuant (QDrop plus learned borders, W4A4, a short
reconstruction schedule) and reports the integer program's accuracy beside the float and
fake-quant models'. Then, on the program of either source, the integer path: save the artifact,
load it back, simulate a batch on the numba backend, check numba == reference on every tensor and
counter, print the per-layer summary and the float-model measurement, and end with the hardware
report (the shipped default accelerator, refined by this run's counters).

``--synthetic`` skips training and calibration and uses the built-in random program
(``synthetic_resnet()``: ResNet-20-shaped, 4-bit, per-channel-and-level borders) on a random
batch: the integer path alone, in seconds, without torch.

Writes the program, the batch, the results, the hardware report and the reference's integer
dumps to ``--out``, with the commands that reproduce them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from aquant_sim.artifact import load_program, save_program
from aquant_sim.cli.arguments import bits, non_negative, positive
from aquant_sim.cli.common import result_json, simulator, write_json
from aquant_sim.compare import compare_tensors, first_difference
from aquant_sim.float_model import measure
from aquant_sim.frontend.methods import Method
from aquant_sim.program import MAX_BITS, MIN_BITS
from aquant_sim.simulator import Backend
from aquant_sim.summary import counters_table, float_model_table
from aquant_sim.synthetic import synthetic_resnet
from hw_models.config import default_config
from hw_models.report import build_report, format_report, report_json

BATCH = 8
SEED = 0
COMPARED = (Backend.NUMBA, Backend.REFERENCE)
"""The backend that runs the demo, and the oracle it is checked against."""
DATA = "fashion-mnist"
MODEL = "resnet20"


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="the main job: train, calibrate, simulate, verify and cost the built-in default",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/demo", help="folder for the outputs (default: runs/demo)")
    parser.add_argument("--synthetic", action="store_true", help="use the random built-in program: no training or calibration")
    parser.add_argument("--method", choices=[m.value for m in Method], default=Method.AQUANT.value, help="calibration method (default aquant)")
    parser.add_argument("--w-bits", type=bits, default=4, help=f"weight bits of the inner layers, {MIN_BITS}..{MAX_BITS} (default 4)")
    parser.add_argument("--a-bits", type=bits, default=4, help=f"activation bits of the inner layers, {MIN_BITS}..{MAX_BITS} (default 4)")
    parser.add_argument("--train-size", type=positive, default=10000, help="training images for the float model (default 10000)")
    parser.add_argument("--epochs", type=positive, default=1, help="training epochs (default 1)")
    parser.add_argument("--iters", type=non_negative, default=100, help="reconstruction iterations per unit (default 100; the protocol's is 20000)")
    parser.add_argument("--calib-size", type=positive, default=256, help="calibration images (default 256)")
    parser.add_argument("--eval-size", type=positive, default=1000, help="test images for the accuracies (default 1000)")
    parser.add_argument("--threads", type=positive, default=1, help="torch threads (default 1: fastest on a shared 2-core machine)")
    parser.set_defaults(func=run)


def _synthetic_source():
    """The random built-in program and a random standard-normal batch (fixed seed)."""
    program = synthetic_resnet()
    x = np.random.default_rng(SEED).standard_normal((BATCH, *program.input_tensor.shape)).astype(np.float32)
    print(f"built the random example program ({len(program.ops)} ops)")
    return program, x


def _calibrated_source(args, out: Path):
    """Train (or reuse) the float model, calibrate it, report accuracies; return the program and
    the first test images as the batch to verify."""
    import torch

    from aquant_sim.data import load_dataset
    from aquant_sim.evaluation import evaluate
    from aquant_sim.frontend.pipeline import CalibrationConfig, calibrate
    from aquant_sim.frontend.qmodel import QuantConfig
    from aquant_sim.frontend.reconstruction import ReconstructionConfig
    from aquant_sim.models import build_model, load_model, save_weights
    from aquant_sim.models.training import limit_threads, train

    limit_threads(args.threads)
    weights = out / f"{MODEL}_float.npz"
    if weights.exists():
        model, _ = load_model(weights)
        print(f"[1/3] reusing the float model {weights}")
    else:
        print(f"[1/3] training a float {MODEL} on {args.train_size} {DATA} images, {args.epochs} epoch(s)")
        train_set = load_dataset(DATA, "train", limit=args.train_size, seed=SEED)
        model = build_model(MODEL, in_channels=train_set.images.shape[1], num_classes=len(train_set.classes))
        history = train(model, train_set, epochs=args.epochs, batch_size=128, lr=0.1, seed=SEED)
        save_weights(model, weights, {"data": DATA, "train": history})
    model.eval()
    print(f"[2/3] calibrating: {args.method}, W{args.w_bits}A{args.a_bits}, {args.iters} iterations per unit, {args.calib_size} images")
    calib_set = load_dataset(DATA, "train", limit=args.calib_size, seed=SEED + 1)
    config = CalibrationConfig(
        method=Method(args.method),
        quant=QuantConfig(weight_bits=args.w_bits, act_bits=args.a_bits),
        reconstruction=ReconstructionConfig(iters=args.iters, seed=SEED),
    )
    calibrated = calibrate(model, torch.from_numpy(np.array(calib_set.images)), config)
    print(f"[3/3] evaluating on {args.eval_size} {DATA} test images")
    test_set = load_dataset(DATA, "test", limit=args.eval_size, seed=SEED)
    images = torch.from_numpy(np.array(test_set.images))
    evaluation = evaluate(calibrated, images, torch.from_numpy(np.array(test_set.labels)), progress=True)
    write_json(out / "accuracy.json", {**evaluation.as_dict(), "method": args.method, "w_bits": args.w_bits,
                                       "a_bits": args.a_bits, "iters": args.iters, "calib_size": len(calib_set)})
    print(f"\naccuracy on {evaluation.samples} test images: float {evaluation.float_accuracy:.2%}, "
          f"fake-quant {evaluation.fake_quant_accuracy:.2%}, integer program {evaluation.integer_accuracy:.2%} "
          f"(top-1 agreement {evaluation.agreement:.2%}); written to {out / 'accuracy.json'}\n")
    return calibrated.program, np.array(test_set.images[:BATCH])


def run(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    program, x = _synthetic_source() if args.synthetic else _calibrated_source(args, out)
    path = save_program(program, out / "program.aqp")
    loaded = load_program(path)
    print(f"saved {path} ({path.stat().st_size:,} bytes) and loaded it back")

    np.save(out / "input.npy", x)
    fast, oracle = (simulator(loaded, backend).run(x, keep_tensors=True) for backend in COMPARED)
    left, right = (backend.name.lower() for backend in COMPARED)
    print(f"simulated a batch of {len(x)} on the {left} backend:\n")
    print(counters_table(fast.counters))
    print(f"\nargmax: {fast.dequantized.reshape(len(x), -1).argmax(axis=1).tolist()}")

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

    report = build_report(loaded, default_config(), fast.counters)
    write_json(out / "hw_report.json", report_json(report))
    print("\nhardware report (default accelerator, this run's counters):\n")
    print(format_report(report))
    print(f"\nwrote {out / 'hw_report.json'}; reproduce with")
    print(f"  aquant hw-report {path} --input {out / 'input.npy'} --json {out / 'hw_report.json'}")
    return 0
