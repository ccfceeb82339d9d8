"""Exporters of integer programs to deployment formats (``onnx_export``). They need the ``onnx`` extra."""
