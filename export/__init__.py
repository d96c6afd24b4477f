"""Workstation only: PyTorch -> ONNX -> TFLite float32 and full int8, gated, with model cards.

Modules: ``onnx`` (export, check, run), ``tflite`` (onnx2tf in a subprocess,
inspection, running), ``calibrate`` (windows that look like the station's
data), ``parity`` (numeric and pick-level gates), ``flops`` (counted from the
ONNX graph), ``adapters`` (export views that onnx2tf converts cleanly),
``pipeline`` (one checkpoint end to end) and ``cli`` (``fieldpick export``).
See docs/export.md.
"""
