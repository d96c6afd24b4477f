"""Records from an SDS archive (SeisComP Data Structure), selected by code and time.

Layout: ``ROOT/YEAR/NET/STA/CHA.TYPE/NET.STA.LOC.CHA.TYPE.YEAR.DOY`` (day files
of miniSEED).  Codes take shell wildcards (``HH?``, ``*``); the time window
[start_ns, end_ns) trims the records at its edges.  Files are read day by day
(all selected channels of a day, then the next day).
"""

from __future__ import annotations

import fnmatch
import logging
import os
import time
from typing import Iterator, List, Optional, Tuple

from ..errors import ConfigError, DataError
from .base import Record, Source
from .mseed import DecodeStats, MseedFileSource, btime_to_ns

__all__ = ["SdsSource", "sds_files", "trim_record"]

log = logging.getLogger(__name__)

_DAY_NS = 86400 * 1_000_000_000


def _year_bounds(start_ns: Optional[int], end_ns: Optional[int]) -> Tuple[int, int]:
    lo = time.gmtime(start_ns // 1_000_000_000).tm_year if start_ns is not None else 0
    hi = time.gmtime((end_ns - 1) // 1_000_000_000).tm_year if end_ns is not None else 9999
    return lo, hi


def _day_start_ns(year: int, doy: int) -> int:
    return btime_to_ns(year, doy, 0, 0, 0, 0)


def sds_files(root: str, network: str = "*", station: str = "*", location: str = "*",
              channel: str = "*", start_ns: Optional[int] = None, end_ns: Optional[int] = None,
              data_type: str = "D") -> List[str]:
    """The day files under ``root`` that match, sorted by (day, NET.STA.LOC.CHA)."""
    if not os.path.isdir(root):
        raise DataError("SDS root %r is not a directory" % root)
    lo, hi = _year_bounds(start_ns, end_ns)
    found = []
    for year in sorted(os.listdir(root)):
        if not (len(year) == 4 and year.isdigit() and lo <= int(year) <= hi):
            continue
        ydir = os.path.join(root, year)
        for net in sorted(d for d in os.listdir(ydir) if fnmatch.fnmatchcase(d, network)):
            for sta in sorted(d for d in os.listdir(os.path.join(ydir, net)) if fnmatch.fnmatchcase(d, station)):
                sdir = os.path.join(ydir, net, sta)
                for chadir in sorted(os.listdir(sdir)):
                    cha, _, typ = chadir.partition(".")
                    if typ != data_type or not fnmatch.fnmatchcase(cha, channel):
                        continue
                    for name in os.listdir(os.path.join(sdir, chadir)):
                        parts = name.split(".")
                        if len(parts) != 7 or not (parts[5].isdigit() and parts[6].isdigit()):
                            continue
                        if not fnmatch.fnmatchcase(parts[2], location):
                            continue
                        day0 = _day_start_ns(int(parts[5]), int(parts[6]))
                        if start_ns is not None and day0 + _DAY_NS <= start_ns:
                            continue
                        if end_ns is not None and day0 >= end_ns:
                            continue
                        found.append(((int(parts[5]), int(parts[6]), ".".join(parts[:4])),
                                      os.path.join(sdir, chadir, name)))
    return [path for _, path in sorted(found)]


def trim_record(rec: Record, start_ns: Optional[int], end_ns: Optional[int]) -> Optional[Record]:
    """The part of ``rec`` whose samples fall in [start_ns, end_ns); None if nothing does."""
    n = len(rec.samples)
    period = 1e9 / rec.sampling_rate
    i0 = 0 if start_ns is None else max(0, -int(-(start_ns - rec.start_ns) // period))
    i1 = n if end_ns is None else min(n, -int(-(end_ns - rec.start_ns) // period))
    if i0 >= i1:
        return None
    if i0 == 0 and i1 == n:
        return rec
    return Record(rec.network, rec.station, rec.location, rec.channel,
                  rec.start_ns + int(round(i0 * period)), rec.sampling_rate, rec.samples[i0:i1])


class SdsSource(Source):
    """Records of the selected channels and time window of an SDS archive (see module doc)."""

    def __init__(self, root: str, network: str = "*", station: str = "*", location: str = "*",
                 channel: str = "*", start_ns: Optional[int] = None, end_ns: Optional[int] = None,
                 data_type: str = "D"):
        if start_ns is not None and end_ns is not None and end_ns <= start_ns:
            raise ConfigError("SDS window: end_ns %d is not after start_ns %d" % (end_ns, start_ns))
        self.start_ns, self.end_ns = start_ns, end_ns
        self.files = sds_files(root, network, station, location, channel, start_ns, end_ns, data_type)
        if not self.files:
            log.warning("SDS %s: no day files match %s.%s.%s.%s", root, network, station, location, channel)
        self._inner = MseedFileSource(self.files) if self.files else None
        self.stats = self._inner.stats if self._inner else DecodeStats()

    def __iter__(self) -> Iterator[Record]:
        if self._inner is None:
            return
        for rec in self._inner:
            part = trim_record(rec, self.start_ns, self.end_ns)
            if part is not None:
                yield part

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()
