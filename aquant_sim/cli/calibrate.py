"""``aquant calibrate``: quantize a zoo model with a calibration method and write the program.

    aquant calibrate --model resnet20 --weights W.npz --data fashion-mnist --w-bits 4 --a-bits 4 \
        --method aquant --iters 20000 --calib-size 1024 --seed 0 --out PROGRAM.aqp [--summary S.json]

Writes the integer program (``aquant_sim.artifact``) and a JSON summary: the accuracies (integer
program run by the simulator, fake-quant model, float model), their top-1 agreement, per-tensor
level differences, per-unit reconstruction loss before and after, and the wall time.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from aquant_sim.program import BorderGranularity
from aquant_sim.simulator import Backend


def register(subparsers) -> None:
    from aquant_sim.frontend.methods import Method

    p = subparsers.add_parser("calibrate", help="quantize a model (post-training) and write its integer program")
    p.add_argument("--model", required=True, help="zoo model name, e.g. resnet20 (must be the one the weights record)")
    p.add_argument("--weights", required=True, type=Path, help="float weights (.npz written by aquant train)")
    p.add_argument("--data", required=True, help="dataset name (fashion-mnist, ...) or image folder")
    p.add_argument("--w-bits", type=int, default=4)
    p.add_argument("--a-bits", type=int, default=4)
    p.add_argument("--first-last-bits", type=int, default=8, help="first and last layers (default 8, BRECQ protocol)")
    p.add_argument("--method", choices=[m.value for m in Method], default=Method.AQUANT.value)
    p.add_argument("--granularity", choices=[g.value for g in BorderGranularity], default=BorderGranularity.CHANNEL_LEVEL.value)
    p.add_argument("--frac-bits", type=int, default=8, help="F, fraction bits of the border unit")
    p.add_argument("--iters", type=int, default=20000, help="reconstruction iterations per unit (default 20000)")
    p.add_argument("--calib-size", type=int, default=1024, help="calibration images from the train split (default 1024)")
    p.add_argument("--eval-size", type=int, default=None, help="test images to evaluate on (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch threads (1 is faster on a loaded machine)")
    p.add_argument("--backend", choices=[b.value for b in Backend], default="numba", help="simulator backend (default numba)")
    p.add_argument("--out", required=True, type=Path, help="program artifact to write")
    p.add_argument("--summary", type=Path, default=None, help="JSON summary to write")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from aquant_sim.artifact import save_program
    from aquant_sim.data import load_dataset
    from aquant_sim.evaluation import evaluate
    from aquant_sim.frontend.pipeline import CalibrationConfig, calibrate
    from aquant_sim.frontend.qmodel import QuantConfig
    from aquant_sim.frontend.methods import Method
    from aquant_sim.frontend.reconstruction import ReconstructionConfig
    from aquant_sim.errors import InputError
    from aquant_sim.models import load_model
    from aquant_sim.models.registry import BUILD_ATTRIBUTE, model_name

    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    calib_set = load_dataset(args.data, "train", limit=args.calib_size, seed=args.seed)
    test_set = load_dataset(args.data, "test", limit=args.eval_size, seed=args.seed)
    model, _ = load_model(args.weights)
    recorded = getattr(model, BUILD_ATTRIBUTE, {}).get("name")
    if recorded is not None and recorded != model_name(args.model).value:
        raise InputError(f"--model {args.model}: the weights in {args.weights} are of model {recorded}")
    config = CalibrationConfig(
        method=Method(args.method),
        quant=QuantConfig(weight_bits=args.w_bits, act_bits=args.a_bits, first_last_bits=args.first_last_bits,
                          frac_bits=args.frac_bits, granularity=BorderGranularity(args.granularity)),
        reconstruction=ReconstructionConfig(iters=args.iters, seed=args.seed),
    )
    calibrated = calibrate(model, torch.tensor(calib_set.images), config)
    save_program(calibrated.program, args.out)
    backend = Backend(args.backend)
    report = evaluate(calibrated, torch.tensor(test_set.images), torch.tensor(test_set.labels), backend, progress=True)
    summary = {
        "model": args.model, "weights": str(args.weights), "data": args.data, "method": args.method,
        "w_bits": args.w_bits, "a_bits": args.a_bits, "first_last_bits": args.first_last_bits,
        "granularity": args.granularity, "frac_bits": args.frac_bits, "iters": args.iters,
        "calib_size": len(calib_set), "seed": args.seed, "program": str(args.out),
        **report.as_dict(),
        "units": [u.as_dict() for u in calibrated.units],
        "calibration_seconds": calibrated.seconds,
        "wall_seconds": time.perf_counter() - started,
    }
    if args.summary:
        args.summary.write_text(json.dumps(summary, indent=2) + "\n")
    for key in ("float_accuracy", "fake_quant_accuracy", "integer_accuracy", "top1_agreement", "wall_seconds"):
        print(f"{key}: {summary[key]:.4f}")
    return 0
