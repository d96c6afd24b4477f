"""The pick: what the station reports, from the picker to the telemetry packet.

Times are integers, nanoseconds since 1970-01-01 UTC; seconds as floats only
at the edges of the API (``time_s``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Optional

__all__ = ["PHASES", "POLARITIES", "Pick", "CSV_HEADER", "format_pick"]

PHASES = ("P", "S")
#: first-motion polarity: up, down, or not clear
POLARITIES = ("U", "D", "?")


@dataclass(frozen=True)
class Pick:
    """One phase arrival.

    time_ns: arrival time, ns since the epoch (UTC).
    phase: 'P' or 'S'.
    probability: peak network probability in [0, 1].
    uncertainty_s: one-sigma timing uncertainty, seconds.
    amplitude: peak absolute amplitude after the pick, in input units (counts).
    snr_db: signal-to-noise ratio around the pick, dB.
    polarity: P first motion 'U', 'D' or '?'.
    station: 'NET.STA.LOC.CHA' (channel code of the vertical, e.g. 'HHZ').
    """

    time_ns: int
    phase: str
    probability: float
    uncertainty_s: float = 0.0
    amplitude: float = 0.0
    snr_db: float = 0.0
    polarity: str = "?"
    station: str = ""

    def __post_init__(self):
        from .errors import DataError

        if isinstance(self.time_ns, bool) or not isinstance(self.time_ns, int):
            raise DataError("pick time_ns %r must be an int (ns since the epoch)" % (self.time_ns,))
        if self.phase not in PHASES:
            raise DataError("pick phase %r; allowed: %s" % (self.phase, ", ".join(PHASES)))
        if self.polarity not in POLARITIES:
            raise DataError("pick polarity %r; allowed: %s" % (self.polarity, ", ".join(POLARITIES)))
        if not (0.0 <= self.probability <= 1.0):
            raise DataError("pick probability %r must lie in [0, 1]" % (self.probability,))
        if not (self.uncertainty_s >= 0.0):
            raise DataError("pick uncertainty_s %r must be >= 0 seconds" % (self.uncertainty_s,))

    @property
    def time_s(self) -> float:
        """Arrival time in seconds since the epoch (float; loses sub-microsecond detail)."""
        return self.time_ns / 1e9

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, station: Optional[str] = None) -> "Pick":
        d = dict(d)
        if station is not None:
            d["station"] = station
        return cls(**d)


# ---------------------------------------------------------------- output lines
CSV_HEADER = "time,station,phase,probability,uncertainty_s,amplitude,snr_db,polarity\n"


def _iso(time_ns):
    sec, ns = divmod(int(time_ns), 10 ** 9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + ".%06dZ" % (ns // 1000)


def format_pick(pick, fmt):
    """One output line (with newline) for a pick: 'csv' or 'jsonl'."""
    if fmt == "jsonl":
        d = pick.to_dict()
        d["time"] = _iso(pick.time_ns)
        return json.dumps(d, sort_keys=True) + "\n"
    return "%s,%s,%s,%.4f,%.4f,%.6g,%.2f,%s\n" % (
        _iso(pick.time_ns), pick.station, pick.phase, pick.probability, pick.uncertainty_s,
        pick.amplitude, pick.snr_db, pick.polarity)

