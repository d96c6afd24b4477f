"""The one exception hierarchy of fieldpick.

Every failure that a user can cause (a bad file, a bad option, a forged
packet) raises a subclass of :class:`FieldpickError` whose message names the
bad value and what is allowed.  Programming errors stay ordinary Python
exceptions.  Classes that describe bad values also derive from
:class:`ValueError` so that callers who catch that keep working.
"""

__all__ = [
    "FieldpickError",
    "ConfigError",
    "DataError",
    "ModelError",
    "CardError",
    "ModelFormatError",
    "UnsupportedOperatorError",
    "ModelBudgetError",
    "BackendError",
    "TelemetryError",
    "PacketError",
    "JournalError",
    "NotAvailableError",
]


class FieldpickError(Exception):
    """Base class of every error fieldpick raises on purpose."""


class ConfigError(FieldpickError, ValueError):
    """A configuration key, option or argument is unknown, mistyped or impossible."""


class DataError(FieldpickError, ValueError):
    """Input data cannot be used: corrupt records, NaN samples, wrong sampling rate."""


class ModelError(FieldpickError):
    """A model or its card cannot be used."""


class CardError(ModelError, ValueError):
    """A model card is malformed, of an unsupported version, or does not match its file."""


class ModelFormatError(ModelError, ValueError):
    """A model file is truncated, corrupt or not the format it claims to be."""


class UnsupportedOperatorError(ModelError):
    """A model uses an operator (or operator option) this runtime does not implement."""


class ModelBudgetError(ModelError, ValueError):
    """A model may need more memory at run time than the station's budget allows (refused at load)."""


class BackendError(FieldpickError):
    """An optional back end (tflite-runtime, ai-edge-litert, onnxruntime) is missing or failed."""


class TelemetryError(FieldpickError):
    """Base class of pick packet, journal and link failures."""


class PacketError(TelemetryError, ValueError):
    """A packet is malformed, truncated, forged, altered or replayed."""


class JournalError(TelemetryError):
    """The on-disk pick journal cannot be read or written."""


class NotAvailableError(FieldpickError):
    """A feature is not part of this build or install (the message says how to get it)."""
