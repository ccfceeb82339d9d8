"""Importers of deployed int8 models into integer programs (``onnx_qdq``), and the runners of
the runtimes they are checked against (``onnxruntime_run``). They need the ``onnx`` extra."""
