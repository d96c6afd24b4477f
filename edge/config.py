"""The station configuration: one JSON file, validated on load.

Unknown keys, wrong types and impossible values raise
:class:`~fieldpick.edge.errors.ConfigError` naming the key (as a dotted path)
and what is allowed.  ``docs/station.md`` is the reference of every key.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .errors import ConfigError
from .limits import Limits, loads_json, read_json

__all__ = [
    "CONFIG_FORMAT",
    "CONFIG_VERSION",
    "MODES",
    "BACKENDS",
    "TriggerConfig",
    "BufferConfig",
    "PickerConfig",
    "OutputConfig",
    "StationConfig",
]

CONFIG_FORMAT = "fieldpick-station-config"
CONFIG_VERSION = 1
MODES = ("gated", "continuous")
BACKENDS = ("numpy", "auto", "litert", "tflite-runtime", "onnxruntime")
STACKING = ("auto", "avg", "max", "taper")
GAP_FILLS = ("zero", "hold")
OUTPUT_FORMATS = ("csv", "jsonl")
TRIGGER_WINDOWS = ("fit", "grid")
TRIGGER_WARMUPS = ("growing", "blind", "open")  # what the trigger does while its LTA fills


def _check(cond, key, value, allowed):
    if not cond:
        raise ConfigError("%s is %r; allowed: %s" % (key, value, allowed))


@dataclass
class TriggerConfig:
    """Bandpass + recursive STA/LTA gate (used in 'gated' mode).

    channel: component the trigger watches.  band_hz: [low, high] Hz, or
    null for no filter.  order: poles per corner.  sta_s, lta_s: seconds.
    on, off: STA/LTA thresholds.  pre_s, post_s: seconds of margin kept
    before a trigger turns on and after it turns off.  block_s: seconds the
    trigger processes at a time (a multiple of the window hop is used).
    decimate: the trigger runs at the model rate / decimate.  windows:
    where the network's windows go in gated mode: 'fit' (each triggered
    span plus margins, spans whose margins meet merged, covered by as few
    windows as fit it: one when it fits in a window, else windows a hop
    apart and one ending at its end) or 'grid' (every window of the
    continuous grid that overlaps it).  warmup: the first ``lta_s``
    seconds of a stream and of the data after each gap, where ObsPy's
    STA/LTA is zero while its LTA fills: 'blind' is ObsPy's (no trigger
    there); 'growing' divides the STA by the mean so far (from ``3 * sta_s``
    on), so an arrival a few seconds into a record triggers (short event
    records); 'open' counts the whole warm-up as triggered.
    """

    channel: str = "Z"
    band_hz: Optional[List[float]] = field(default_factory=lambda: [1.0, 20.0])
    order: int = 2
    sta_s: float = 0.5
    lta_s: float = 10.0
    on: float = 5.0
    off: float = 1.5
    pre_s: float = 8.0
    post_s: float = 12.0
    block_s: float = 60.0
    decimate: int = 2
    windows: str = "fit"
    warmup: str = "blind"

    def validate(self, w="trigger"):
        if self.band_hz is not None:
            _check(len(self.band_hz) == 2 and 0 < self.band_hz[0] < self.band_hz[1], w + ".band_hz",
                   self.band_hz, "[low, high] with 0 < low < high (Hz), or null")
        _check(1 <= self.order <= 8, w + ".order", self.order, "an integer 1-8")
        _check(0 < self.sta_s < self.lta_s, w + ".sta_s", self.sta_s, "0 < sta_s < lta_s (%r s)" % self.lta_s)
        _check(self.lta_s <= 3600, w + ".lta_s", self.lta_s, "seconds in (sta_s, 3600]")
        _check(0 < self.off <= self.on, w + ".off", self.off, "0 < off <= on (%r)" % self.on)
        _check(self.on <= 1e6, w + ".on", self.on, "a ratio in [off, 1e6]")
        _check(0 <= self.pre_s <= 600, w + ".pre_s", self.pre_s, "seconds in [0, 600]")
        _check(0 <= self.post_s <= 600, w + ".post_s", self.post_s, "seconds in [0, 600]")
        _check(0 < self.block_s <= 3600, w + ".block_s", self.block_s, "seconds in (0, 3600]")
        _check(1 <= self.decimate <= 8, w + ".decimate", self.decimate, "an integer 1-8")
        _check(self.windows in TRIGGER_WINDOWS, w + ".windows", self.windows, ", ".join(map(repr, TRIGGER_WINDOWS)))
        _check(self.warmup in TRIGGER_WARMUPS, w + ".warmup", self.warmup, ", ".join(map(repr, TRIGGER_WARMUPS)))


@dataclass
class BufferConfig:
    """gap_fill: 'zero' or 'hold'.  max_lag_s: seconds a component may trail
    the newest before its missing samples are declared a gap."""

    gap_fill: str = "zero"
    max_lag_s: float = 150.0

    def validate(self, w="buffer"):
        _check(self.gap_fill in GAP_FILLS, w + ".gap_fill", self.gap_fill, ", ".join(map(repr, GAP_FILLS)))
        _check(0 < self.max_lag_s <= 3600, w + ".max_lag_s", self.max_lag_s, "seconds in (0, 3600]")


@dataclass
class PickerConfig:
    """thresholds: per-phase overrides of the card's ({"P": 0.4}).
    min_separation_s: picks of one phase closer than this merge.  noise_s,
    signal_s: seconds before / after a pick used for SNR and amplitude."""

    thresholds: Dict[str, float] = field(default_factory=dict)
    min_separation_s: float = 1.0
    noise_s: float = 5.0
    signal_s: float = 3.0

    def validate(self, w="picker"):
        for k, v in self.thresholds.items():
            _check(k in ("P", "S"), w + ".thresholds key", k, "'P', 'S'")
            _check(0 < v < 1, "%s.thresholds[%r]" % (w, k), v, "a probability in (0, 1)")
        _check(0 <= self.min_separation_s <= 600, w + ".min_separation_s", self.min_separation_s,
               "seconds in [0, 600]")
        _check(0 < self.noise_s <= 60, w + ".noise_s", self.noise_s, "seconds in (0, 60]")
        _check(0 < self.signal_s <= 60, w + ".signal_s", self.signal_s, "seconds in (0, 60]")


@dataclass
class OutputConfig:
    """path: where picks go ('-' is standard output, '' none).  format: 'csv' or 'jsonl'."""

    path: str = "-"
    format: str = "csv"

    def validate(self, w="output"):
        _check(self.format in OUTPUT_FORMATS, w + ".format", self.format, ", ".join(map(repr, OUTPUT_FORMATS)))


@dataclass
class StationConfig:
    """Everything ``fieldpick run`` needs.

    model: path of the model card (``.json`` beside the model), or 'default'
    for the bundled model.  backend: the interpreter back end ('auto': the
    fastest installed, see :func:`fieldpick.edge.runners.load_runner`).  mode: 'gated'
    (the network runs only around STA/LTA triggers) or 'continuous'.
    overlap: fraction of a window shared with the next.  stacking: how
    overlapping windows combine: 'avg', 'max', 'taper' (a Hann-weighted mean,
    see :class:`fieldpick.edge.picker.Stacker`) or 'auto' ('avg' for gated
    windows fitted around each trigger, 'taper' for grid windows: continuous
    mode or ``trigger.windows`` 'grid').  batch: windows per network call.  sources: source specs (see
    ``fieldpick.edge.sources``).  telemetry: passed to the uplink as given
    (null: none).  limits: the plausible date window and sampling rates
    (:class:`fieldpick.edge.limits.Limits`); records outside are refused.
    """

    model: str = "default"
    backend: str = "numpy"
    mode: str = "gated"
    overlap: float = 0.5
    stacking: str = "auto"
    batch: int = 8
    trigger: TriggerConfig = field(default_factory=TriggerConfig)
    buffer: BufferConfig = field(default_factory=BufferConfig)
    picker: PickerConfig = field(default_factory=PickerConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    sources: List[str] = field(default_factory=list)
    telemetry: Optional[Dict[str, Any]] = None
    limits: Limits = field(default_factory=Limits)
    format: str = CONFIG_FORMAT
    version: int = CONFIG_VERSION

    def validate(self):
        _check(self.format == CONFIG_FORMAT, "format", self.format, repr(CONFIG_FORMAT))
        if self.version > CONFIG_VERSION:
            raise ConfigError("version is %r but this fieldpick reads up to %d: upgrade fieldpick"
                              % (self.version, CONFIG_VERSION))
        _check(self.version >= 1, "version", self.version, "1")
        _check(bool(self.model), "model", self.model, "a model card path or 'default'")
        _check(self.backend in BACKENDS, "backend", self.backend, ", ".join(map(repr, BACKENDS)))
        _check(self.mode in MODES, "mode", self.mode, ", ".join(map(repr, MODES)))
        _check(0 <= self.overlap < 1, "overlap", self.overlap, "a fraction in [0, 1)")
        _check(self.stacking in STACKING, "stacking", self.stacking, ", ".join(map(repr, STACKING)))
        _check(1 <= self.batch <= 256, "batch", self.batch, "an integer 1-256")
        self.trigger.validate()
        self.buffer.validate()
        self.picker.validate()
        self.output.validate()
        return self

    # ------------------------------------------------------------ loading
    @classmethod
    def from_dict(cls, data):
        return _build(cls, data, "").validate()

    @classmethod
    def from_json(cls, text, where="config"):
        return cls.from_dict(loads_json(text, where, ConfigError))

    @classmethod
    def load(cls, path):
        return cls.from_dict(read_json(path, "station config", ConfigError))

    def to_dict(self):
        return dataclasses.asdict(self)


_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _convert(tp, value, key):
    origin = getattr(tp, "__origin__", None)
    args = getattr(tp, "__args__", ())
    if tp is Any:
        return value
    if origin is typing.Union:
        if value is None and type(None) in args:
            return None
        return _convert([a for a in args if a is not type(None)][0], value, key)
    if origin in (list, List):
        if not isinstance(value, list):
            raise ConfigError("%s is %r; expected a list" % (key, value))
        return [_convert(args[0], v, "%s[%d]" % (key, i)) for i, v in enumerate(value)]
    if origin in (dict, Dict):
        if not isinstance(value, dict):
            raise ConfigError("%s is %r; expected an object" % (key, value))
        return {k: _convert(args[1], v, "%s[%r]" % (key, k)) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError("%s is %r; expected %s" % (key, value, _NAMES[float]))
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError("%s is %r; expected %s" % (key, value, _NAMES[int]))
        return value
    if not isinstance(value, tp):
        raise ConfigError("%s is %r; expected %s" % (key, value, _NAMES.get(tp, tp.__name__)))
    return value


def _build(cls, data, where):
    if not isinstance(data, dict):
        raise ConfigError("%s is %r; expected an object" % (where or "config", data))
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError("unknown key %s%s; allowed: %s" % (
            (where + ".") if where else "", unknown[0], ", ".join(fields)))
    return cls(**{k: _convert(hints[k], v, (where + "." + k) if where else k) for k, v in data.items()})
