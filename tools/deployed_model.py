"""A deployed int8 ONNX model to try ``aquant verify --against onnxruntime``, ``aquant hw-report``
and ``aquant tune-borders`` on: a zoo model trained briefly on a built-in dataset, exported with
``torch.onnx`` and quantized by onnxruntime's ``quantize_static`` (QDQ), as a deployment would have
it (``aquant_sim/testing/onnx_models.py``).

    python tools/deployed_model.py --out runs/deployed/resnet20_int8.onnx
        [--model resnet20] [--width 8] [--data fashion-mnist] [--train-images 10000] [--epochs 2]
        [--calib-images 256] [--per-tensor] [--int8-activations] [--seed 0] [--threads 1]

Prints ``name: value`` lines: the float model's top-1 on 1,000 test images and the paths written
(the float model beside the int8 one). With the defaults it makes the model of the
``tune-borders`` run in ``docs/deploy.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run from a checkout: import this tree's package, not an installed one.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402

WIDTH_OPTION = {"resnet20": "width", "resnet18": "width", "mobilenetv2": "width_mult"}
"""The zoo option that scales each model's channels."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="the int8 ONNX model to write")
    parser.add_argument("--model", default="resnet20", choices=sorted(WIDTH_OPTION))
    parser.add_argument("--width", type=float, default=8, help="channel width (resnet: base width; mobilenetv2: multiplier)")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--train-images", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--calib-images", type=int, default=256, help="quantize_static's calibration images (from the train split)")
    parser.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor (default: per output channel)")
    parser.add_argument("--int8-activations", action="store_true", help="int8 activations (default: uint8, see docs/deploy.md)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.train_images < 1 or args.calib_images < 1:
        parser.error("--epochs, --train-images and --calib-images must be at least 1")

    import torch
    from onnxruntime.quantization import QuantType

    from aquant_sim.data import load_dataset
    from aquant_sim.models import build_model
    from aquant_sim.models.training import evaluate, train
    from aquant_sim.testing.onnx_models import ImageReader, float_model_path, quantize_onnx

    torch.set_num_threads(args.threads)
    train_set = load_dataset(args.data, "train", limit=args.train_images, seed=args.seed)
    test_set = load_dataset(args.data, "test", limit=1000, seed=args.seed)
    width = int(args.width) if WIDTH_OPTION[args.model] == "width" else args.width
    torch.manual_seed(args.seed)
    model = build_model(args.model, train_set.images.shape[1], 10, **{WIDTH_OPTION[args.model]: width})
    train(model, train_set, epochs=args.epochs, batch_size=64, lr=0.05, seed=args.seed, progress=True)
    print(f"float_top1_1000_test: {evaluate(model.eval(), test_set):.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    path = quantize_onnx(model, ImageReader(train_set.images[:args.calib_images]), torch.from_numpy(train_set.images[:1].copy()),
                         args.out, per_channel=not args.per_tensor,
                         activation_type=QuantType.QInt8 if args.int8_activations else QuantType.QUInt8)
    print(f"float_model: {float_model_path(path)}")
    print(f"int8_model: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
