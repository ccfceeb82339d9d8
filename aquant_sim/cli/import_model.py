"""``aquant import MODEL.onnx|MODEL.tflite --out PROGRAM.aqp``: save a deployed int8 model as an integer program.

The program (``docs/deploy.md``) carries the runtime's own requantizers (onnxruntime's for an ONNX
model, LiteRT's reference kernels' for a ``.tflite`` one), so ``aquant simulate``, ``aquant verify``
and ``aquant hw-report`` then run on exactly what the deployment computes. A file whose name ends
in ``.tflite`` is read by the TFLite importer, any other as ONNX.
"""

from __future__ import annotations

from aquant_sim.artifact import save_program
from aquant_sim.importers.loading import import_deployed


def register(subparsers) -> None:
    parser = subparsers.add_parser("import", help="save an int8 ONNX model (QDQ or QOperator, or an aquant export) or an int8 "
                                                  ".tflite model as an integer program",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("model", help="an int8 ONNX model quantized by onnxruntime (.onnx) or an int8 TFLite model (.tflite)")
    parser.add_argument("--out", required=True, help="the program file to write (.aqp)")
    parser.set_defaults(func=run)


def run(args) -> int:
    program = import_deployed(args.model)
    save_program(program, args.out)
    variants = sorted({op.requant.variant.value for op in program.ops if getattr(op, "requant", None) is not None})
    print(f"{args.model}: {len(program.ops)} ops, requantizers {', '.join(variants)} -> {args.out}")
    return 0
