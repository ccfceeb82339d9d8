"""Run a ``.tflite`` model in LiteRT (``ai_edge_litert``) and take every tensor of its imported
program from it.

LiteRT keeps every intermediate tensor when the interpreter is built with
``experimental_preserve_all_tensors=True``; each program tensor that LiteRT also has is read by
its TFLite index (``ImportedTflite.tensor_index``) after each sample (the test models have batch
1) and brought to the program's layout. :class:`Kernels` names the three kernel sets compared:
LiteRT's reference kernels (``OpResolverType.BUILTIN_REF``), its optimized builtin kernels
without delegates, and its default (``OpResolverType.AUTO``: the builtin kernels with the
default XNNPACK delegate applied).
"""

from __future__ import annotations

import enum

import numpy as np

from aquant_sim.errors import InputError, UnsupportedError


class Kernels(enum.Enum):
    """Which of LiteRT's kernels run the model."""

    REFERENCE = "reference"
    """``OpResolverType.BUILTIN_REF``: the reference kernels, the ones the importer models."""
    OPTIMIZED = "optimized"
    """``OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES``: the optimized builtin kernels alone."""
    DEFAULT = "default"
    """``OpResolverType.AUTO``: what an interpreter built without options runs (XNNPACK applied)."""


def _interpreter_module():
    try:
        from ai_edge_litert import interpreter
    except ImportError as error:  # pragma: no cover - the tflite extra is installed in CI
        raise UnsupportedError("--against litert needs the 'ai-edge-litert' package (pip install aquant-sim[tflite])") from error
    return interpreter


def _resolver(interpreter, kernels: Kernels):
    return {Kernels.REFERENCE: interpreter.OpResolverType.BUILTIN_REF,
            Kernels.OPTIMIZED: interpreter.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            Kernels.DEFAULT: interpreter.OpResolverType.AUTO}[kernels]


def quantize_input(x: np.ndarray, quant) -> np.ndarray:
    """TFLite's ``QUANTIZE`` of a float NHWC batch to the int8 input (``quant``, a program
    ``QuantParams``): ``z + round(x / s)`` with the division in float32 and C's ``round`` (half away
    from zero), clamped to int8."""
    x = np.asarray(x, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        raise InputError("the input batch holds NaN or infinite values")
    v = (x / np.float32(quant.scale)).astype(np.float64)
    whole = np.trunc(v)
    fraction = v - whole
    levels = whole + (fraction >= 0.5) - (fraction <= -0.5) + quant.zero_point
    return np.clip(levels, quant.qmin, quant.qmax).astype(np.int8)


def run_tensors(imported, levels: np.ndarray, kernels: Kernels) -> dict[str, np.ndarray]:
    """LiteRT's levels (program layout, int64) of every program tensor it has, for the int8 NHWC
    batch ``levels``, one sample at a time, with ``kernels``."""
    interpreter = _interpreter_module()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LiteRT warns that preserving all tensors is for debugging
        runner = interpreter.Interpreter(model_path=str(imported.path), experimental_op_resolver_type=_resolver(interpreter, kernels),
                                         experimental_preserve_all_tensors=True, num_threads=1)
    runner.allocate_tensors()
    index = runner.get_input_details()[0]["index"]
    collected: dict[str, list[np.ndarray]] = {name: [] for name in imported.tensor_index}
    for sample in range(levels.shape[0]):
        runner.set_tensor(index, levels[sample : sample + 1])
        runner.invoke()
        for name, tensor in imported.tensor_index.items():
            collected[name].append(np.array(runner.get_tensor(tensor), dtype=np.int64))
    return {name: imported.to_program_layout(name, np.concatenate(arrays)) for name, arrays in collected.items()}
