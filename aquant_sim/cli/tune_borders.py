"""``aquant tune-borders MODEL --data NAME --out TUNED.aqp``: what learned borders would change in
an imported int8 deployment.

Keeps the model's integer weights, scales and zero-points, switches every conv and linear
requantizer from the runtime's rule to this project's BORDER requantizer (docs/contract.md
(6)-(8): F fraction bits and a border lookup table), learns the tables on calibration images from
the network's output error (teacher: the program with its integer weights and unrounded
activations), and saves the result. The result is a new integer program for this simulator (and
for hardware with the border unit), NOT a model onnxruntime or LiteRT can run: the requantizer
rule differs from theirs. It prints, on the test split, the accuracy of the integer program in
the simulator for the imported program, the BORDER program with every border 1/2 (the change of
rounding rule alone) and the tuned one, the hardware estimate of each (cycles, energy, area) and
every requantizing op it could not tune, with the reason."""

from __future__ import annotations

from pathlib import Path

from aquant_sim.cli.arguments import dataset, frac_bits, non_negative, positive
from aquant_sim.program import BorderGranularity


def register(subparsers) -> None:
    p = subparsers.add_parser("tune-borders", help="learn border tables for an imported int8 model; accuracy and hardware cost beside the original",
                              description=__doc__)
    p.add_argument("model", help="an int8 model (.onnx, .tflite) to import, or a saved program (.aqp)")
    p.add_argument("--data", required=True, type=dataset, help="fashion-mnist, mnist-digits, or an image folder: calibration from its train split, accuracy on its test split")
    p.add_argument("--out", required=True, type=Path, help="the tuned program to write (.aqp; runs in the simulator, not in the runtime)")
    p.add_argument("--frac-bits", type=frac_bits, default=8, help="F, fraction bits of the border unit (default 8)")
    p.add_argument("--granularity", choices=[g.value for g in BorderGranularity], default=BorderGranularity.CHANNEL.value,
                   help="border table shape per tuned op (default channel: one border per output channel)")
    p.add_argument("--iters", type=non_negative, default=500, help="Adam steps on the border tables (default 500)")
    p.add_argument("--batch-size", type=positive, default=32, help="calibration images per step (default 32)")
    p.add_argument("--calib-size", type=positive, default=256, help="calibration images from the train split (default 256)")
    p.add_argument("--limit", type=positive, default=1000, help="test images for the accuracies (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the subsets and of the batches")
    p.add_argument("--hw", metavar="FILE.toml", help="accelerator config for the cost (default: hw_models/configs/default.toml)")
    p.add_argument("--json", type=Path, default=None, help="write the comparison as JSON (accuracies as fractions)")
    p.set_defaults(func=run)


def _check_shape(program, images, where: str) -> None:
    from aquant_sim.errors import InputError

    if tuple(images.shape[1:]) != tuple(program.input_tensor.shape):
        raise InputError(f"{where}: images of shape {tuple(images.shape[1:])} do not fit the model input {tuple(program.input_tensor.shape)}")


def _costs(program, config) -> dict:
    from hw_models.estimate import estimate

    net = estimate(program, config, borders=True)
    return {"cycles": net.cycles, "energy_pj": net.energy_pj, "area_um2": net.area.total,
            "border_area_um2": net.area.border_overhead, "requantizer_area_um2": net.area.requantizer}


def run(args) -> int:
    import numpy as np
    import torch

    from aquant_sim.artifact import save_program
    from aquant_sim.cli.common import write_json
    from aquant_sim.cli.hw_report import load_hw_config
    from aquant_sim.data import load_dataset
    from aquant_sim.errors import InputError, UnsupportedError
    from aquant_sim.evaluation import program_logits
    from aquant_sim.frontend.program_borders import BorderTuningConfig, learn_borders
    from aquant_sim.frontend.program_exact import exact_tensors
    from aquant_sim.importers.border_requant import to_border_requantizers, with_border_tables
    from aquant_sim.importers.loading import load_any_program

    hw = load_hw_config(args.hw, None)
    if not args.out.parent.is_dir():  # checked before anything is learned
        raise InputError(f"--out {args.out}: folder {args.out.parent} does not exist")
    config = BorderTuningConfig(iters=args.iters, batch_size=args.batch_size, granularity=BorderGranularity(args.granularity), seed=args.seed)
    original = load_any_program(args.model)
    converted = to_border_requantizers(original, args.frac_bits)
    if not converted.tuned:
        raise UnsupportedError(f"{args.model}: no conv or linear requantizer that BORDER can take; nothing to tune")
    calib = load_dataset(args.data, "train", limit=args.calib_size, seed=args.seed)
    test = load_dataset(args.data, "test", limit=args.limit, seed=args.seed)
    _check_shape(original, calib.images, f"--data {args.data}")
    torch.manual_seed(args.seed)
    result = learn_borders(converted.program, converted.tuned, torch.from_numpy(calib.images.copy()), config)
    tuned = with_border_tables(converted.program, result.tables)
    save_program(tuned, args.out)

    programs = {"imported": original, "border_nearest": converted.program, "tuned": tuned}
    rows = {}
    for name, program in programs.items():
        logits = program_logits(program, test.images)
        rows[name] = {"accuracy": float(np.mean(logits.argmax(1) == test.labels)), **_costs(program, hw)}
    exact = exact_tensors(tuned, torch.from_numpy(test.images.copy()))[tuned.output]
    simulated = program_logits(tuned, test.images).argmax(1)
    torch_top1 = exact.reshape(len(test), -1).numpy().argmax(1)
    agreement = float(np.mean(torch_top1 == simulated))

    print(f"{args.model}: {len(converted.tuned)} conv/linear requantizers switched to BORDER (F = {args.frac_bits}, "
          f"{args.granularity} tables), {len(converted.untuned)} requantizing ops kept on their rule")
    for op in converted.untuned:
        print(f"  not tuned: {op.op} ({op.kind.value}, {op.variant.value if op.variant else 'none'}): {op.reason}")
    print(f"learned on {len(calib)} train images, {args.iters} steps, {result.seconds:.1f} s: output loss "
          f"{result.loss_nearest:.4g} (borders 1/2) -> {result.loss_tuned:.4g} (tuned)")
    print(f"on {len(test)} test images (integer program in the simulator; hardware per inference, {hw.name}):")
    print(f"  {'program':<16} {'accuracy':>9} {'cycles':>12} {'energy uJ':>10} {'area mm^2':>10} {'border mm^2':>12}")
    for name, row in rows.items():
        print(f"  {name:<16} {row['accuracy']:>9.2%} {row['cycles']:>12,} {row['energy_pj'] / 1e6:>10.3f} "
              f"{row['area_um2'] / 1e6:>10.4f} {row['border_area_um2'] / 1e6:>12.4f}")
    print(f"tuned program: torch exact forward vs simulator top-1 agreement {agreement:.2%}")
    print(f"wrote {args.out} (runs in aquant simulate / evaluate / hw-report, not in the original runtime)")
    if args.json:
        write_json(args.json, {"model": str(args.model), "frac_bits": args.frac_bits, "granularity": args.granularity,
                               "tuned": list(converted.tuned),
                               "untuned": [{"op": u.op, "kind": u.kind.value, "variant": u.variant.value if u.variant else None,
                                            "reason": u.reason} for u in converted.untuned],
                               "loss_nearest": result.loss_nearest, "loss_tuned": result.loss_tuned,
                               "test_images": len(test), "agreement": agreement, "programs": rows})
    return 0
