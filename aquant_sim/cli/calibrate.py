"""``aquant calibrate``: quantize a zoo model, or your own (``--model package.module:factory``),
with a calibration method and write the program.

    aquant calibrate --model resnet20 --weights W.npz --data fashion-mnist --w-bits 4 --a-bits 4
        --method aquant --iters 20000 --calib-size 1024 --seed 0 --out PROGRAM.aqp [--summary S.json]

Writes the integer program (``aquant_sim.artifact``) and a JSON summary: the accuracies (integer
program run by the simulator, fake-quant model, float model), their top-1 agreement, per-tensor
level differences, per-unit reconstruction loss before and after, and the wall time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from aquant_sim.cli.arguments import bits, dataset, frac_bits, non_negative, positive, weights_file
from aquant_sim.program import MAX_BITS, MIN_BITS, BorderGranularity
from aquant_sim.simulator import Backend


LONG_ITERS = 1000
"""Iterations per unit above which calibrate warns before it starts: the published protocol's
20,000 (the default) take hours per model on a CPU, a few hundred take minutes."""


def register(subparsers) -> None:
    from aquant_sim.frontend.methods import Method

    p = subparsers.add_parser("calibrate", help="quantize a model (post-training) and write its integer program",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="zoo model name: resnet20, resnet18 or mobilenetv2 (the one the weights record), "
                   "or package.module:factory, a function of yours returning the nn.Module whose state dict --weights holds")
    p.add_argument("--weights", required=True, type=weights_file, help="float weights: .npz written by aquant train, or a state dict as .safetensors, .pt or .pth (read without running pickle)")
    p.add_argument("--data", required=True, type=dataset, help="fashion-mnist, mnist-digits, or the path of an image folder (class per subfolder)")
    p.add_argument("--w-bits", type=bits, default=4, help=f"weight bits of the inner layers, {MIN_BITS}..{MAX_BITS} (default 4)")
    p.add_argument("--a-bits", type=bits, default=4, help=f"activation bits of the inner layers, {MIN_BITS}..{MAX_BITS} (default 4)")
    p.add_argument("--first-last-bits", type=bits, default=8, help="weight and input bits of the first and last layers (default 8, BRECQ protocol)")
    p.add_argument("--method", choices=[m.value for m in Method], default=Method.AQUANT.value, help="calibration method (default aquant)")
    p.add_argument("--granularity", choices=[g.value for g in BorderGranularity], default=BorderGranularity.CHANNEL_LEVEL.value,
                   help="how borders are shared: per tensor, channel, level, or channel and level (default)")
    p.add_argument("--frac-bits", type=frac_bits, default=8, help="F, fraction bits of the border unit (default 8)")
    p.add_argument("--iters", type=non_negative, default=20000,
                   help="reconstruction iterations per unit (default 20000, the published protocol: hours on a CPU; 200 for a trial)")
    p.add_argument("--calib-size", type=positive, default=1024, help="calibration images from the train split (default 1024)")
    p.add_argument("--eval-size", type=positive, default=None, help="test images to evaluate on (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seeds the calibration subset and the reconstruction (default 0)")
    p.add_argument("--threads", type=positive, default=2, help="torch threads (default 2; 1 is faster on a loaded machine)")
    p.add_argument("--backend", choices=[b.value for b in Backend], default="numba", help="simulator backend (default numba)")
    p.add_argument("--out", required=True, type=Path, help="program artifact to write (.aqp)")
    p.add_argument("--summary", type=Path, default=None, help="JSON summary to write (accuracies as fractions)")
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
    from aquant_sim.frontend.threads import use_threads
    from aquant_sim.errors import InputError
    from aquant_sim.models.state_dict import load_state_dict, read_state_dict
    from aquant_sim.models.user import build_user_model, is_factory_spec
    from aquant_sim.models.weights import load_zoo_model
    from aquant_sim.models.registry import BUILD_ATTRIBUTE, model_name

    started = time.perf_counter()
    # Everything that can be checked without the data is checked first: the model name, the
    # weights (read and matched against it) and the configs, so that a mistake costs no loading.
    if is_factory_spec(args.model):
        model = build_user_model(args.model)
        load_state_dict(model, read_state_dict(args.weights), args.weights)
    else:
        name = model_name(args.model)
        model, _ = load_zoo_model(name.value, args.weights)
        recorded = getattr(model, BUILD_ATTRIBUTE, {}).get("name")
        if recorded is not None and recorded != name.value:
            raise InputError(f"--model {args.model}: the weights in {args.weights} are of model {recorded}")
    config = CalibrationConfig(
        method=Method(args.method),
        quant=QuantConfig(weight_bits=args.w_bits, act_bits=args.a_bits, first_last_bits=args.first_last_bits,
                          frac_bits=args.frac_bits, granularity=BorderGranularity(args.granularity)),
        reconstruction=ReconstructionConfig(iters=args.iters, seed=args.seed),
    )
    if args.iters > LONG_ITERS and config.method is not Method.RTN:
        print(f"aquant calibrate: note: --iters {args.iters} reconstruction iterations per unit (the published protocol) "
              f"take hours on a CPU; the progress bar shows the estimate; --iters 200 gives a trial in minutes", file=sys.stderr)
    use_threads(args.threads)
    torch.manual_seed(args.seed)
    calib_set = load_dataset(args.data, "train", limit=args.calib_size, seed=args.seed)
    test_set = load_dataset(args.data, "test", limit=args.eval_size, seed=args.seed)
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
    for key in ("float_accuracy", "fake_quant_accuracy", "integer_accuracy", "top1_agreement"):
        print(f"{key}: {summary[key]:.2%}")
    print(f"wall_seconds: {summary['wall_seconds']:.1f}")
    return 0
