"""The model card: the one place that says what a model expects and returns.

A card is a JSON file beside its model file (``<name>.json`` next to
``<name>.tflite``).  Every stage (training, export, the station runtime, the
benchmarks) reads it; none restates it.  On disk it starts with a format tag
and a version, like every file fieldpick writes::

    {"format": "fieldpick-model-card", "version": 1, "name": ..., ...}

Loading is strict: unknown keys, wrong types and impossible values are
errors that name the key and what is allowed, a newer card version tells the
user to upgrade, and the sha256 recorded in the card must match the model
file beside it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .errors import CardError
from .limits import loads_json, read_json

__all__ = [
    "CARD_FORMAT",
    "CARD_VERSION",
    "OUTPUT_KINDS",
    "Normalisation",
    "InputSpec",
    "OutputSpec",
    "TensorSpec",
    "Quantisation",
    "MetricSet",
    "ModelCard",
    "sha256_file",
]

CARD_FORMAT = "fieldpick-model-card"
CARD_VERSION = 1

#: per-sample probability traces (PhaseNet), per-stride class + in-stride
#: offset (LPPN), one class per window (CPIC), detection + P + S traces (EQT).
OUTPUT_KINDS = ("probabilities", "stride_class_offset", "window_class", "detection_probabilities")
LAYOUTS = ("NTC", "NCT")
CHANNEL_NAMES = ("Z", "N", "E", "1", "2", "3")
DETRENDS = ("none", "demean", "linear")
SCALES = ("none", "std", "peak")
COMPRESSIONS = ("none", "asinh")
QUANT_SCHEMES = ("float32", "float16", "dynamic_range", "int8")
TENSOR_DTYPES = ("float32", "float16", "int8", "uint8", "int16", "int32", "int64")
TENSOR_ROLES = ("input", "output")


def sha256_file(path, chunk=1 << 20):
    """Hex sha256 of a file, read in chunks (model files can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


MIN_RATE_HZ, MAX_RATE_HZ = 0.1, 1e4  # a model's input rate
MAX_WINDOW_SAMPLES = 1 << 20


def _choice(value, allowed, where):
    if value not in allowed:
        raise CardError(
            "%s is %r; allowed: %s" % (where, value, ", ".join(repr(a) for a in allowed))
        )


def _positive(value, where, allow_zero=False):
    if isinstance(value, float) and not math.isfinite(value):
        raise CardError("%s is %r; it must be a finite number" % (where, value))
    if value < 0 or (value == 0 and not allow_zero):
        raise CardError(
            "%s is %r; it must be %s" % (where, value, ">= 0" if allow_zero else "> 0")
        )


@dataclass
class Normalisation:
    """How a window is normalised before it enters the network.

    detrend: 'none', 'demean' or 'linear' (per channel, over the window).
    scale: 'none', 'std' or 'peak'; per channel when ``per_channel`` else one
    factor for all channels.  ``epsilon`` guards the division (dead channels);
    1e-30 leaves data in physical units (m/s, 1e-9 and below) intact.
    compress: 'none' or 'asinh': after scaling, ``y = asinh(y / compress_scale)``
    (linear below ``compress_scale``, logarithmic above), so that an int8
    input keeps levels for the pre-event noise and the P onset of a window
    whose scale the S wave sets.  ``compress_scale`` is in units of the
    scaled window (window standard deviations for scale 'std').
    """

    detrend: str = "demean"
    scale: str = "std"
    per_channel: bool = True
    epsilon: float = 1e-30
    compress: str = "none"
    compress_scale: float = 1.0

    def validate(self, where="input.normalisation"):
        _choice(self.detrend, DETRENDS, where + ".detrend")
        _choice(self.scale, SCALES, where + ".scale")
        _positive(self.epsilon, where + ".epsilon")
        _choice(self.compress, COMPRESSIONS, where + ".compress")
        if isinstance(self.compress_scale, bool) or not isinstance(self.compress_scale, (int, float)):
            raise CardError("%s.compress_scale is %r; it must be a number > 0" % (where, self.compress_scale))
        _positive(self.compress_scale, where + ".compress_scale")


@dataclass
class InputSpec:
    """What the network reads.

    sampling_rate_hz: Hz.  window_samples: samples per window and channel.
    channels: component order in the tensor, e.g. ``["Z", "N", "E"]``.
    layout: 'NTC' (batch, time, channel; TFLite) or 'NCT' (PyTorch).
    highpass_hz, highpass_order: a causal Butterworth highpass the stream
    goes through before windowing (:class:`fieldpick.edge.stream.trigger.HighpassInput`,
    from the first sample of the stream and after each gap), as the model
    was trained; 0: none (and the fields are left out of the JSON).
    """

    sampling_rate_hz: float
    window_samples: int
    channels: List[str] = field(default_factory=lambda: ["Z", "N", "E"])
    layout: str = "NTC"
    normalisation: Normalisation = field(default_factory=Normalisation)
    highpass_hz: float = 0.0
    highpass_order: int = 2

    def validate(self, where="input"):
        _positive(self.sampling_rate_hz, where + ".sampling_rate_hz")
        if not (isinstance(self.highpass_hz, (int, float)) and 0.0 <= self.highpass_hz < self.sampling_rate_hz / 2):
            raise CardError("%s.highpass_hz is %r; allowed: 0 (none) or a corner below Nyquist (%g Hz)"
                            % (where, self.highpass_hz, self.sampling_rate_hz / 2))
        _choice(self.highpass_order, (2, 4, 6, 8), where + ".highpass_order")
        _positive(self.window_samples, where + ".window_samples")
        if not MIN_RATE_HZ <= self.sampling_rate_hz <= MAX_RATE_HZ:
            raise CardError("%s.sampling_rate_hz is %r; allowed: %g .. %g Hz"
                            % (where, self.sampling_rate_hz, MIN_RATE_HZ, MAX_RATE_HZ))
        if self.window_samples > MAX_WINDOW_SAMPLES:
            raise CardError("%s.window_samples is %r; allowed: 1 .. %d"
                            % (where, self.window_samples, MAX_WINDOW_SAMPLES))
        if not self.channels:
            raise CardError("%s.channels is empty; give at least one of %s" % (where, CHANNEL_NAMES))
        for i, c in enumerate(self.channels):
            _choice(c, CHANNEL_NAMES, "%s.channels[%d]" % (where, i))
        if len(set(self.channels)) != len(self.channels):
            raise CardError("%s.channels %r repeats a channel" % (where, self.channels))
        _choice(self.layout, LAYOUTS, where + ".layout")
        self.normalisation.validate(where + ".normalisation")

    @property
    def window_seconds(self):
        """Window length in seconds."""
        return self.window_samples / float(self.sampling_rate_hz)


@dataclass
class OutputSpec:
    """What the network returns.

    kind: one of :data:`OUTPUT_KINDS`.  labels: class names in output order
    (e.g. ``["N", "P", "S"]``; 'N' is noise, 'D' detection).
    stride_samples: input samples per output step (1 for per-sample traces,
    S for LPPN, window_samples for a window classifier).
    """

    kind: str
    labels: List[str]
    stride_samples: int = 1
    layout: str = "NTC"

    def validate(self, window_samples, where="output"):
        _choice(self.kind, OUTPUT_KINDS, where + ".kind")
        _choice(self.layout, LAYOUTS, where + ".layout")
        if not self.labels or len(set(self.labels)) != len(self.labels):
            raise CardError("%s.labels %r must be non-empty and unique" % (where, self.labels))
        phases = [lab for lab in self.labels if lab in ("P", "S")]
        if not phases:
            raise CardError("%s.labels %r names no phase; include 'P' and/or 'S'" % (where, self.labels))
        _positive(self.stride_samples, where + ".stride_samples")
        if self.kind == "probabilities" and self.stride_samples != 1:
            raise CardError(
                "%s.stride_samples is %d but kind 'probabilities' is per sample; use 1"
                % (where, self.stride_samples)
            )
        if self.stride_samples > window_samples:
            raise CardError(
                "%s.stride_samples %d is longer than input.window_samples %d"
                % (where, self.stride_samples, window_samples)
            )


@dataclass
class TensorSpec:
    """One input or output tensor of the model file, as the runtime sees it."""

    name: str
    role: str
    shape: List[int]
    dtype: str
    scale: Optional[float] = None
    zero_point: Optional[int] = None

    def validate(self, where):
        _choice(self.role, TENSOR_ROLES, where + ".role")
        _choice(self.dtype, TENSOR_DTYPES, where + ".dtype")
        for i, n in enumerate(self.shape):
            _positive(n, "%s.shape[%d]" % (where, i))
        if self.dtype in ("int8", "uint8", "int16") and (self.scale is None or self.zero_point is None):
            raise CardError("%s is %s but has no scale/zero_point" % (where, self.dtype))
        if self.scale is not None:
            _positive(self.scale, where + ".scale")


@dataclass
class Quantisation:
    """How the model file stores numbers: scheme and its I/O tensors."""

    scheme: str = "float32"
    tensors: List[TensorSpec] = field(default_factory=list)
    calibration: str = ""

    def validate(self, where="quantisation"):
        _choice(self.scheme, QUANT_SCHEMES, where + ".scheme")
        for i, t in enumerate(self.tensors):
            t.validate("%s.tensors[%d]" % (where, i))


@dataclass
class MetricSet:
    """Metrics a model reached, and on what data (never its training data)."""

    data: str
    split: str
    values: Dict[str, float] = field(default_factory=dict)


@dataclass
class ModelCard:
    """Everything a stage must know about one model file.

    Construct it in code, ``save`` it beside the model file, and ``load`` it
    back; ``load`` validates everything and checks the model file's sha256.
    """

    name: str
    architecture: str
    input: InputSpec
    output: OutputSpec
    thresholds: Dict[str, float]
    model_file: str = ""
    model_bytes: int = 0
    sha256: str = ""
    quantisation: Quantisation = field(default_factory=Quantisation)
    parameters: int = 0
    flops_per_window: int = 0
    metrics: List[MetricSet] = field(default_factory=list)
    provenance: Dict[str, Any] = field(default_factory=dict)
    description: str = ""

    # ------------------------------------------------------------ checking
    def validate(self):
        """Raise :class:`CardError` naming the first impossible value."""
        if not self.name:
            raise CardError("name is empty; give the model a name")
        self.input.validate()
        self.output.validate(self.input.window_samples)
        self.quantisation.validate()
        phases = [lab for lab in self.output.labels if lab in ("P", "S")]
        for phase, thr in self.thresholds.items():
            _choice(phase, phases, "thresholds key")
            if not (0.0 < thr < 1.0):
                raise CardError("thresholds[%r] is %r; it must lie in (0, 1)" % (phase, thr))
        for phase in phases:
            if phase not in self.thresholds:
                raise CardError("thresholds has no entry for output label %r" % phase)
        _positive(self.model_bytes, "model_bytes", allow_zero=True)
        _positive(self.parameters, "parameters", allow_zero=True)
        _positive(self.flops_per_window, "flops_per_window", allow_zero=True)
        if self.sha256 and (len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256)):
            raise CardError("sha256 %r is not 64 lower-case hex digits" % self.sha256)
        return self

    # ------------------------------------------------------------ model file
    def attach(self, model_path):
        """Record ``model_path``'s name, size and sha256 in this card (returns self)."""
        self.model_file = os.path.basename(model_path)
        self.model_bytes = os.path.getsize(model_path)
        self.sha256 = sha256_file(model_path)
        return self

    def verify_file(self, model_path):
        """Check that ``model_path`` is the file this card describes."""
        if not os.path.exists(model_path):
            raise CardError(
                "card %r names model file %r, which does not exist" % (self.name, model_path)
            )
        size = os.path.getsize(model_path)
        if self.model_bytes and size != self.model_bytes:
            raise CardError(
                "model file %s has %d bytes but its card says %d: the file is truncated or "
                "replaced; re-export it or restore the file that matches the card"
                % (model_path, size, self.model_bytes)
            )
        digest = sha256_file(model_path)
        if self.sha256 and digest != self.sha256:
            raise CardError(
                "model file %s has sha256 %s but its card says %s: the card and the model "
                "do not belong together; re-export it or restore the matching file"
                % (model_path, digest[:16] + "...", self.sha256[:16] + "...")
            )
        return self

    def model_path(self, card_path):
        """The model file's path, relative to the card file ``card_path``."""
        if not self.model_file:
            raise CardError("card %r names no model_file" % self.name)
        return os.path.join(os.path.dirname(os.path.abspath(card_path)), self.model_file)

    # ------------------------------------------------------------ (de)serialising
    def to_dict(self):
        body = dataclasses.asdict(self)
        if not self.input.highpass_hz:  # cards without an input filter read as before
            for key in ("highpass_hz", "highpass_order"):
                body["input"].pop(key)
        out = {"format": CARD_FORMAT, "version": CARD_VERSION}
        out.update(body)
        return out

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    def save(self, path):
        """Validate and write the card as JSON (atomically: write, fsync, rename)."""
        self.validate()
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(self.to_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path

    @classmethod
    def from_dict(cls, data, where="card"):
        """Build and validate a card from its JSON object (format and version checked)."""
        if not isinstance(data, dict):
            raise CardError("%s is a JSON %s; expected an object" % (where, type(data).__name__))
        data = dict(data)
        fmt = data.pop("format", None)
        if fmt != CARD_FORMAT:
            raise CardError(
                "%s has format %r; expected %r (is this a fieldpick model card?)" % (where, fmt, CARD_FORMAT)
            )
        version = data.pop("version", None)
        if not isinstance(version, int) or isinstance(version, bool):
            raise CardError("%s has version %r; expected an integer" % (where, version))
        if version > CARD_VERSION:
            raise CardError(
                "%s is card version %d but this fieldpick reads up to version %d: "
                "upgrade fieldpick (pip install -U fieldpick)" % (where, version, CARD_VERSION)
            )
        if version < 1:
            raise CardError("%s has version %d; versions start at 1" % (where, version))
        return _build(cls, data, where).validate()

    @classmethod
    def from_json(cls, text, where="card"):
        return cls.from_dict(loads_json(text, where, CardError), where)

    @classmethod
    def load(cls, path, verify=True):
        """Read a card; with ``verify`` also check its model file's size and sha256."""
        _not_a_model(path)
        data = read_json(path, "model card", CardError)
        card = cls.from_dict(data, where=os.path.basename(path))
        if verify:
            card.verify_file(card.model_path(path))
        return card


def _not_a_model(path):
    """CardError when ``path`` is a model file (TFLite, ONNX) given where its card is expected."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return  # read_json reports it
    if head[4:8] == b"TFL3" or head[:2] == b"\x08\x07" or head[:2] == b"\x08\x08":
        raise CardError("%s is a model file, not its card; give the card (the .json beside the model)" % path)


# ---------------------------------------------------------------- strict builder
_SCALARS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _convert(tp, value, where):
    """Check ``value`` (parsed JSON) against the type hint ``tp``; return the typed value."""
    origin = typing.get_origin(tp) if hasattr(typing, "get_origin") else getattr(tp, "__origin__", None)
    args = getattr(tp, "__args__", ())
    if tp is Any:
        return value
    if origin is typing.Union:  # Optional[X]
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)][0]
        return _convert(inner, value, where)
    if origin in (list, List):
        if not isinstance(value, list):
            raise CardError("%s is %r; expected a list" % (where, value))
        return [_convert(args[0], v, "%s[%d]" % (where, i)) for i, v in enumerate(value)]
    if origin in (dict, Dict):
        if not isinstance(value, dict):
            raise CardError("%s is %r; expected an object" % (where, value))
        return {k: _convert(args[1], v, "%s[%r]" % (where, k)) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CardError("%s is %r; expected %s" % (where, value, _SCALARS[float]))
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise CardError("%s is %r; expected %s" % (where, value, _SCALARS[int]))
        return value
    if tp in (str, bool):
        if not isinstance(value, tp):
            raise CardError("%s is %r; expected %s" % (where, value, _SCALARS[tp]))
        return value
    raise TypeError("card field type %r is not supported by the builder" % (tp,))


def _build(cls, data, where):
    if not isinstance(data, dict):
        raise CardError("%s is %r; expected an object" % (where, data))
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise CardError(
            "%s has unknown key(s) %s; allowed: %s" % (where, ", ".join(map(repr, unknown)), ", ".join(fields))
        )
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], "%s.%s" % (where, name) if where != "card" else name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise CardError("%s has no %r; it is required" % (where, name))
    return cls(**kwargs)
