"""Study: how many of one unit's rounding variables are still soft when they are hardened, and what
the unit's hard loss is, against the iteration count and the weight learning rate.

    python tools/convergence.py --weights W.npz [--config W2A2] [--method qdrop] [--unit 1]
        [--grid 2000:1e-3 2000:1e-2 20000:1e-3] [--calib-size 1024] [--seed 0] [--threads 1]
        [--out docs/results/convergence.jsonl]

Each grid point ``ITERS:WEIGHT_LR`` calibrates units ``0 .. --unit`` afresh, in order, exactly as
``calibrate`` does, with the config the results table resolves for the run (``results_table.py``
``calibration_config``: the front-end's defaults, the run's bits, method and seed) and the
overrides ``reconstruction.iters`` and ``reconstruction.weight_lr``, and reports unit ``--unit``: ``soft_share`` (the share of its
rounding variables with ``h(V)`` in ``(0.01, 0.99)`` when they are hardened; the protocol's
target is at most 1%), its loss before training, with its soft weights and hard, and its training
time. One line per point is printed as it finishes and appended to ``--out`` as JSON.

Why the iteration count matters: Adam moves each variable ``V`` by about ``weight_lr`` per step
at most, so ``iters`` steps move it by about ``iters * weight_lr``; ``h(V) = clip(1.2 sigmoid(V)
- 0.1, 0, 1)`` is binary only where ``|V| >= 2.3``, and a variable that starts near
``h = 1/2`` (``V = 0``) cannot get there in 2,000 steps at ``1e-3``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run from a checkout: import this tree's package, not an installed one.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import dataclasses
import datetime
import json

import numpy as np
import torch

from aquant_sim.data import load_dataset
from aquant_sim.errors import ConfigError
from aquant_sim.frontend.methods import Method
from aquant_sim.frontend.pipeline import CalibrationConfig, check_images, prepare_graph
from aquant_sim.frontend.qmodel import QuantModel
from aquant_sim.frontend.reconstruction import Reconstructor
from aquant_sim.frontend.threads import use_threads
from aquant_sim.models import load_model
from results_table import calibration_config, file_sha256, git_commit, parse_bits


@dataclasses.dataclass(frozen=True)
class GridPoint:
    iters: int
    weight_lr: float


def parse_point(text: str) -> GridPoint:
    """``ITERS:WEIGHT_LR``, e.g. ``2000:1e-3``."""
    try:
        iters, lr = text.split(":")
        point = GridPoint(int(iters), float(lr))
    except ValueError:
        raise argparse.ArgumentTypeError(f"grid point {text!r}: expected ITERS:WEIGHT_LR, e.g. 2000:1e-3") from None
    if point.iters < 1 or not point.weight_lr > 0:
        raise argparse.ArgumentTypeError(f"grid point {text!r}: iterations and learning rate must be positive")
    return point


def point_config(config: str, method: Method, seed: int, point: GridPoint) -> CalibrationConfig:
    """The results table's config for the run, with this point's iterations and weight lr."""
    return calibration_config({"config": config, "method": method.value, "seed": seed,
                               "overrides": {"reconstruction.iters": point.iters, "reconstruction.weight_lr": point.weight_lr}})


def measure(model: torch.nn.Module, calib: torch.Tensor, config: CalibrationConfig, unit: int) -> dict:
    """Calibrate units ``0 .. unit`` of ``model`` with ``config``; unit ``unit``'s report."""
    calib = check_images(calib, "calibration data")
    graph, _ = prepare_graph(model, tuple(calib.shape[1:]))
    rec = Reconstructor(QuantModel(graph, config.quant, calib), config.method, config.reconstruction, calib, progress=False)
    if not 0 <= unit < len(rec.units):
        raise ConfigError(f"--unit {unit}: the model has units 0 to {len(rec.units) - 1}")
    if rec.spec.two_stage:
        raise ConfigError(f"method {config.method.value}: two-stage methods are not studied here; use a one-stage method")
    for index in range(unit):
        rec.calibrate_unit(index)
    return rec.calibrate_unit(unit).as_dict()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", required=True, help="a float weight file of the zoo (.npz)")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--config", default="W2A2", help="WxAy (default W2A2)")
    parser.add_argument("--method", type=Method, default=Method.QDROP, choices=list(Method), metavar="METHOD")
    parser.add_argument("--unit", type=int, default=1, help="the unit reported (default 1, the first residual block)")
    parser.add_argument("--grid", type=parse_point, nargs="+", default=[GridPoint(2000, 1e-3), GridPoint(2000, 1e-2)],
                        help="ITERS:WEIGHT_LR points (default 2000:1e-3 2000:1e-2)")
    parser.add_argument("--calib-size", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="append one JSON line per point")
    args = parser.parse_args(argv)

    parse_bits(args.config)  # a bad config fails before the model and data load
    use_threads(args.threads)
    torch.manual_seed(args.seed)
    model, _ = load_model(args.weights)
    calib = torch.from_numpy(np.array(load_dataset(args.dataset, "train", limit=args.calib_size, seed=args.seed).images))
    sha = file_sha256(args.weights)
    commit = git_commit()
    print(f"{args.config} {args.method.value} unit {args.unit}, seed {args.seed}, {len(calib)} calibration images, "
          f"weights sha256 {sha[:12]}")
    for point in args.grid:
        report = measure(model, calib, point_config(args.config, args.method, args.seed, point), args.unit)
        print(f"iters {point.iters} weight_lr {point.weight_lr:g}: soft_share {100 * report['soft_share']:.2f}%, "
              f"loss before {report['loss_before']:.4g}, soft {report['loss_soft']:.4g}, hard {report['loss_after']:.4g}, "
              f"{report['train_seconds']:.0f} s", flush=True)
        if args.out:
            record = {"config": args.config, "method": args.method.value, "unit": args.unit, "seed": args.seed,
                      "calib_size": len(calib), "iters": point.iters, "weight_lr": point.weight_lr,
                      "weights_sha256": sha, "commit": commit, "threads": args.threads,
                      "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                      "report": report}
            with args.out.open("a") as out:
                out.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
