"""``aquant export PROGRAM.aqp --out MODEL.onnx [--form aquant|onnxruntime]``: write a program as an ONNX model.

The aquant form holds any program exactly (QDQ groups ending in the documented ``ai.aquant``
custom ops, ``docs/deploy.md``); onnxruntime's form is plain QDQ that onnxruntime runs, only
for programs whose requantizers are onnxruntime's own (an imported model). ``aquant import``
reads either back as the identical program.
"""

from __future__ import annotations

from aquant_sim.artifact import load_program


def register(subparsers) -> None:
    from aquant_sim.exporters.onnx_export import ExportForm

    parser = subparsers.add_parser("export", help="write a program as an ONNX model (QDQ)", description=__doc__.splitlines()[0])
    parser.add_argument("artifact", help="a program file (.aqp)")
    parser.add_argument("--out", required=True, help="the ONNX model to write (.onnx)")
    parser.add_argument("--form", choices=[form.value for form in ExportForm], default=ExportForm.AQUANT.value,
                        help="aquant: any program, with ai.aquant custom ops; onnxruntime: plain QDQ that onnxruntime "
                             "runs, only for programs with onnxruntime's requantizers (default: aquant)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from aquant_sim.exporters.onnx_export import ExportForm, export_onnx

    program = load_program(args.artifact)
    path = export_onnx(program, args.out, ExportForm(args.form))
    print(f"{args.artifact}: {len(program.ops)} ops -> {path} ({args.form} form)")
    return 0
