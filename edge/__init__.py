"""fieldpick.edge: the station runtime.

Imports nothing but numpy and the Python standard library (3.8 or newer), so
that it runs on a Raspberry Pi or Jetson with a bare Python.  Optional
faster back ends (tflite-runtime, ai-edge-litert, onnxruntime) are imported
lazily, only when asked for.  A test enforces both rules.
"""

from .card import ModelCard, sha256_file
from .errors import (
    BackendError,
    CardError,
    ConfigError,
    DataError,
    FieldpickError,
    JournalError,
    ModelError,
    ModelFormatError,
    NotAvailableError,
    PacketError,
    TelemetryError,
    UnsupportedOperatorError,
)

__all__ = [
    "ModelCard",
    "sha256_file",
    "FieldpickError",
    "ConfigError",
    "DataError",
    "ModelError",
    "CardError",
    "ModelFormatError",
    "UnsupportedOperatorError",
    "BackendError",
    "TelemetryError",
    "PacketError",
    "JournalError",
    "NotAvailableError",
]
