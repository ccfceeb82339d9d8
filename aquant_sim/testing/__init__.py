"""Public test helpers: hypothesis strategies for the rounding contract (``strategies``), the
conformance kit that checks any requantizer implementation against it (``conformance``), and
random programs whose multipliers are exactly dyadic (``dyadic``), and deployed int8 models made by the
runtimes' own tools: ONNX by onnxruntime's quantizer (``onnx_models``), TFLite written with its schema
(``tflite_models``)."""
