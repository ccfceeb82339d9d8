"""One entry point for every program source a command takes: an int8 ONNX model (``.onnx``), an
int8 TFLite model (``.tflite``), both imported in memory with their runtime's own requantizers
(``docs/deploy.md``), or else a saved artifact (``.aqp`` by convention)."""

from __future__ import annotations

from pathlib import Path

from aquant_sim.program import Program


def load_any_program(path) -> Program:
    """The integer program of ``path``: :func:`onnx_qdq.import_onnx` for ``.onnx``,
    :func:`tflite_model.import_tflite` for ``.tflite``, :func:`artifact.load_program` for any other
    suffix (each raises its one-line error for a file it cannot read)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        from aquant_sim.importers.onnx_qdq import import_onnx

        return import_onnx(path).program
    if suffix == ".tflite":
        from aquant_sim.importers.tflite_model import import_tflite

        return import_tflite(path).program
    from aquant_sim.artifact import load_program

    return load_program(path)
