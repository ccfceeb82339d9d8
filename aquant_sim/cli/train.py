"""``aquant train``: train a zoo model in float on a dataset and write its weights and a summary.

Writes ``--out`` (a ``.npz`` weight file, format in aquant_sim/models/weights.py) and, next to it,
a JSON summary (same name, ``.json``) with the settings, per-epoch loss and accuracy, the test
accuracy and the wall time. Seeds fix the initial weights and the data order.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from aquant_sim.cli.arguments import dataset, int_in, positive
from aquant_sim.errors import ConfigError


MODEL_HELP = "model of the zoo: resnet20, resnet18 or mobilenetv2"
"""Spelled out rather than read from ModelName, so that building the parser never imports torch
(every ``aquant`` command builds it); a test checks it names every model."""


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train a zoo model in float and save its weights", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help=MODEL_HELP)
    parser.add_argument("--data", required=True, type=dataset, help="fashion-mnist, mnist-digits, or the path of an image folder (class per subfolder)")
    parser.add_argument("--epochs", type=positive, default=5, help="training epochs (default 5)")
    parser.add_argument("--batch-size", type=int_in(2), default=128, help="images per SGD step, at least 2 for BatchNorm (default 128)")
    parser.add_argument("--lr", type=float, default=0.1, help="peak learning rate of the cosine schedule (SGD, Nesterov momentum 0.9)")
    parser.add_argument("--weight-decay", type=float, default=5e-4, help="SGD weight decay (default 5e-4)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the initial weights, the data order and --limit's subsets")
    parser.add_argument("--limit", type=positive, default=None, help="train and test on seeded subsets of at most this many images each")
    parser.add_argument("--width", type=float, default=None, help="model width option: channels of the first stage (resnet) or width multiplier (mobilenetv2)")
    parser.add_argument("--out", required=True, type=Path, help="weight file to write (.npz); the summary goes next to it (.json)")
    parser.add_argument("--threads", type=positive, default=None, help="torch threads (default: every core this process may use; 1 is faster on a busy shared machine)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def _options(model: str, width: float | None) -> dict:
    from aquant_sim.models import ModelName
    from aquant_sim.models.registry import model_name

    name = model_name(model)
    if width is None:
        return {}
    if name is ModelName.MOBILENETV2:
        return {"width_mult": width}
    if width != int(width):
        raise ConfigError(f"--width of {model} is a channel count, got {width}")
    return {"width": int(width)}


def run(args: argparse.Namespace) -> int:
    import torch

    from aquant_sim.data import load_dataset
    from aquant_sim.models import build_model, save_weights
    from aquant_sim.models.training import evaluate, limit_threads, train

    if args.out.suffix != ".npz":
        raise ConfigError(f"--out must name a .npz file, got {args.out}")
    options = _options(args.model, args.width)  # checks the model name before the data loads
    threads = limit_threads(args.threads)
    train_set = load_dataset(args.data, "train", limit=args.limit, seed=args.seed)
    test_set = load_dataset(args.data, "test", limit=args.limit, seed=args.seed)
    torch.manual_seed(args.seed)
    model = build_model(args.model, train_set.input_shape[0], len(train_set.classes), **options)
    print(f"training {args.model} on {len(train_set)} {args.data} images {train_set.input_shape}, {threads} threads")
    result = train(model, train_set, args.epochs, args.batch_size, args.lr, args.seed, weight_decay=args.weight_decay, progress=not args.quiet)
    accuracy = evaluate(model, test_set)
    print(f"test accuracy: {accuracy:.2%} on {len(test_set)} images; {result['seconds']:.1f} s training")
    summary = {
        "model": model.aquant_build,
        "data": args.data,
        "classes": list(train_set.classes),
        "input_shape": list(train_set.input_shape),
        "normalisation": {"mean": list(train_set.mean), "std": list(train_set.std)},
        "limit": args.limit,
        "train": result,
        "test_accuracy": accuracy,
        "test_images": len(test_set),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_weights(model, args.out, meta={key: summary[key] for key in ("data", "classes", "input_shape", "normalisation", "test_accuracy")})
    summary_path = args.out.with_suffix(".json")
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out} and {summary_path}")
    return 0
