"""``aquant import MODEL.onnx --out PROGRAM.aqp``: save a deployed int8 model as an integer program.

The program (``docs/deploy.md``) carries the runtime's own requantizers, so ``aquant simulate``,
``aquant verify`` and ``aquant hw-report`` then run on exactly what the deployment computes.
"""

from __future__ import annotations

from aquant_sim.artifact import save_program


def register(subparsers) -> None:
    parser = subparsers.add_parser("import", help="save an int8 ONNX model (QDQ or QOperator, or an aquant export) as an integer program",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("model", help="an int8 ONNX model quantized by onnxruntime (.onnx)")
    parser.add_argument("--out", required=True, help="the program file to write (.aqp)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from aquant_sim.importers.onnx_qdq import import_onnx

    program = import_onnx(args.model).program
    save_program(program, args.out)
    variants = sorted({op.requant.variant.value for op in program.ops if getattr(op, "requant", None) is not None})
    print(f"{args.model}: {len(program.ops)} ops, requantizers {', '.join(variants)} -> {args.out}")
    return 0
