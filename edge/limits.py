"""Plausibility limits every decoder checks before it allocates or loops.

- the date window: times outside ``[min_year, max_year]`` (default
  1970 .. 2100, UTC) are refused by the miniSEED reader, the station, the
  packet decoder and the receiver; ns since the epoch then always fit an
  int64 and every calendar routine;
- the sampling-rate range: ``[min_rate_hz, max_rate_hz]`` (default
  0.001 .. 100000 Hz) for miniSEED records and station input (the station
  also needs the rate to resample to the model's rate, see
  :func:`fieldpick.edge.stream.resample.ratio`);
- JSON files (cards, configs, station tables, receiver state): at most
  ``MAX_JSON_BYTES`` bytes and ``MAX_JSON_DEPTH`` levels of nesting, UTF-8.

:data:`DEFAULT` is what every reader uses unless given other limits; a
station config may narrow or widen it (its ``limits`` block).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

from .errors import ConfigError, DataError

__all__ = ["writable_folder", "Limits", "DEFAULT", "year_start_ns", "check_time", "check_rate", "loads_json", "read_json",
           "MAX_JSON_BYTES", "MAX_JSON_DEPTH"]

MAX_JSON_BYTES = 16 << 20
MAX_JSON_DEPTH = 64
_NS = 10 ** 9


def year_start_ns(year: int) -> int:
    """ns since 1970-01-01 of January 1st, 00:00 UTC of ``year`` (proleptic Gregorian)."""
    y = year - 1
    days = 365 * (year - 1970) + (y // 4 - 1969 // 4) - (y // 100 - 1969 // 100) + (y // 400 - 1969 // 400)
    return days * 86400 * _NS


@dataclass(frozen=True)
class Limits:
    """min_year, max_year: the plausible date window (inclusive, UTC; 1970 .. 2200 at most,
    so that ns times fit an int64).  min_rate_hz, max_rate_hz: plausible sampling rates."""

    min_year: int = 1970
    max_year: int = 2100
    min_rate_hz: float = 1e-3
    max_rate_hz: float = 1e5

    def __post_init__(self):
        for name in ("min_year", "max_year"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 1970 <= v <= 2200:
                raise ConfigError("limits.%s is %r; allowed: an integer year 1970-2200" % (name, v))
        if self.min_year > self.max_year:
            raise ConfigError("limits.min_year %d is after limits.max_year %d" % (self.min_year, self.max_year))
        for name in ("min_rate_hz", "max_rate_hz"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (1e-6 <= v <= 1e7):
                raise ConfigError("limits.%s is %r; allowed: a number 1e-6 .. 1e7 (Hz)" % (name, v))
        if self.min_rate_hz > self.max_rate_hz:
            raise ConfigError("limits.min_rate_hz %r exceeds limits.max_rate_hz %r"
                              % (self.min_rate_hz, self.max_rate_hz))

    @property
    def min_ns(self) -> int:
        return year_start_ns(self.min_year)

    @property
    def max_ns(self) -> int:
        """Exclusive: the first ns of the year after ``max_year``."""
        return year_start_ns(self.max_year + 1)

    def time_ok(self, time_ns) -> bool:
        return self.min_ns <= time_ns < self.max_ns

    def rate_ok(self, rate_hz) -> bool:
        return isinstance(rate_hz, (int, float)) and math.isfinite(rate_hz) and \
            self.min_rate_hz <= rate_hz <= self.max_rate_hz


DEFAULT = Limits()


def check_time(time_ns, what: str = "time", limits: Limits = None) -> int:
    """``time_ns`` as int, or DataError when it lies outside the date window."""
    lim = limits or DEFAULT
    if isinstance(time_ns, bool) or not isinstance(time_ns, int):
        try:
            time_ns = int(time_ns)
        except (TypeError, ValueError, OverflowError):
            raise DataError("%s %r is not an integer number of ns" % (what, time_ns)) from None
    if not lim.time_ok(time_ns):
        raise DataError("%s %d ns lies outside the plausible dates %d-01-01 .. %d-12-31 (UTC)"
                        % (what, time_ns, lim.min_year, lim.max_year))
    return time_ns


def check_rate(rate_hz, what: str = "sampling rate", limits: Limits = None) -> float:
    """``rate_hz`` as float, or DataError when it lies outside the plausible range."""
    lim = limits or DEFAULT
    if not lim.rate_ok(rate_hz):
        raise DataError("%s %r Hz is outside the plausible range %g .. %g Hz"
                        % (what, rate_hz, lim.min_rate_hz, lim.max_rate_hz))
    return float(rate_hz)


def _depth(text: str) -> int:
    """Deepest nesting of [ and { outside strings (a linear scan)."""
    depth = best = 0
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > best:
                best = depth
                if best > MAX_JSON_DEPTH:
                    return best
        elif ch in "]}":
            depth -= 1
    return best


def loads_json(data, where: str, error=ConfigError):
    """Parse JSON bytes or text with bounded size and depth; ``error`` names ``where``."""
    if isinstance(data, (bytes, bytearray)):
        if len(data) > MAX_JSON_BYTES:
            raise error("%s is %d bytes; a JSON file here is at most %d" % (where, len(data), MAX_JSON_BYTES))
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise error("%s is not UTF-8 JSON text (byte %d is 0x%02x): is it a binary file?"
                        % (where, exc.start, data[exc.start])) from None
    if len(data) > MAX_JSON_BYTES:
        raise error("%s is %d characters; a JSON file here is at most %d" % (where, len(data), MAX_JSON_BYTES))
    if "\x00" in data:
        raise error("%s holds NUL characters; it is not JSON text (a binary file?)" % where)
    if ("[" in data or "{" in data) and _depth(data) > MAX_JSON_DEPTH:
        raise error("%s nests deeper than %d levels; not a fieldpick JSON file" % (where, MAX_JSON_DEPTH))
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise error("%s is not valid JSON: %s" % (where, exc)) from None


def read_json(path: str, what: str, error=ConfigError):
    """Read and parse a JSON file; any OS or decode failure becomes ``error`` naming the file."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_JSON_BYTES + 1)
    except OSError as exc:
        raise error("cannot read %s %s: %s" % (what, path, exc.strerror or exc)) from None
    return loads_json(data, "%s %s" % (what, path), error)


def writable_folder(directory: str, what: str, error=ConfigError) -> str:
    """Create ``directory`` if needed and check that it is a folder this process can write.

    what: its role in messages ('journal', 'quarantine').  Raises ``error``
    naming the folder and what is wrong; returns ``directory``.
    """
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise error("%s folder %s is a file; give a folder" % (what, directory))
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise error("cannot create %s folder %s: %s" % (what, directory, exc.strerror or exc)) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise error("%s folder %s is not writable" % (what, directory))
    return directory
