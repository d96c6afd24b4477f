"""The station's TFLite runtime: a bounds-checked reader, numpy kernels, one interpreter
interface over numpy and the optional faster runtimes (ai-edge-litert, tflite-runtime,
onnxruntime).  ``Interpreter(path).run(batch)`` is all the station needs."""

from .interpreter import BACKENDS, Interpreter

__all__ = ["Interpreter", "BACKENDS"]
