"""``aquant evaluate ARTIFACT --data NAME``: the accuracy of an integer program, run by the
simulator on a dataset's test split."""

from __future__ import annotations

from pathlib import Path

from aquant_sim.cli.arguments import dataset, positive
from aquant_sim.simulator import Backend


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="accuracy of an integer program on a dataset (simulator)", description=__doc__)
    p.add_argument("artifact", type=Path, help="program artifact written by aquant calibrate")
    p.add_argument("--data", required=True, type=dataset, help="fashion-mnist, mnist-digits, or the path of an image folder (class per subfolder)")
    p.add_argument("--split", choices=["train", "test"], default="test", help="which split to evaluate on (default test)")
    p.add_argument("--limit", type=positive, default=None, help="evaluate on at most this many images")
    p.add_argument("--seed", type=int, default=0, help="seed of the subset when --limit is given")
    p.add_argument("--backend", choices=[b.value for b in Backend], default="numba", help="simulator backend (default numba)")
    p.add_argument("--address", default=None,
                   help="Ray cluster ('auto', 'host:port', or 'local' for a new local one): one task per batch of images, "
                        "results identical to a single-process run (needs the sweep extra)")
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from aquant_sim.artifact import load_program
    from aquant_sim.data import load_dataset
    from aquant_sim.evaluation import program_logits

    program = load_program(args.artifact)
    dataset = load_dataset(args.data, args.split, limit=args.limit, seed=args.seed)
    backend = Backend(args.backend)
    if args.address:
        from aquant_sim.ray_evaluation import program_logits_on_ray

        logits = program_logits_on_ray(args.artifact, dataset.images, args.address, backend)
    else:
        logits = program_logits(program, dataset.images, backend, progress=True)
    accuracy = float(np.mean(logits.argmax(1) == dataset.labels))
    print(f"images: {len(dataset)}")
    print(f"integer_accuracy: {accuracy:.2%}")
    return 0
