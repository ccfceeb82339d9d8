"""One entry point for every program source a command takes: an int8 ONNX model (``.onnx``), an
int8 TFLite model (``.tflite``), both imported in memory with their runtime's own requantizers
(``docs/deploy.md``), or else a saved artifact (``.aqp`` by convention)."""

from __future__ import annotations

from pathlib import Path

from aquant_sim.program import Program

TFLITE_SUFFIX = ".tflite"
"""The file ending (any case) that selects the TFLite importer."""
ONNX_SUFFIX = ".onnx"


def import_deployed(path) -> Program:
    """The integer program of a deployed int8 model: :func:`tflite_model.import_tflite` for a name
    ending in ``.tflite`` (any case), :func:`onnx_qdq.import_onnx` for any other (each raises its
    one-line error for a file it cannot read)."""
    if Path(path).suffix.lower() == TFLITE_SUFFIX:
        from aquant_sim.importers.tflite_model import import_tflite

        return import_tflite(path).program
    from aquant_sim.importers.onnx_qdq import import_onnx

    return import_onnx(path).program


def load_any_program(path) -> Program:
    """The integer program of ``path``: :func:`import_deployed` for ``.onnx`` and ``.tflite``,
    :func:`artifact.load_program` for any other suffix."""
    if Path(path).suffix.lower() in (ONNX_SUFFIX, TFLITE_SUFFIX):
        return import_deployed(path)
    from aquant_sim.artifact import load_program

    return load_program(path)
