"""The receiver's replay window: which sequence numbers each station has delivered.

Kept across restarts in a state file written atomically (write, fsync,
rename, fsync of the folder), so a repeated packet is never written twice.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Dict

from ..errors import ConfigError
from ..limits import read_json
from .quarantine import write_atomic

__all__ = ["ReplayWindow"]

log = logging.getLogger(__name__)


class _Track(object):
    """One station's replay state: [first, floor) all received; ``seen`` above floor;
    ``early`` below first (down to ``low``), for a backlog older than the first contact."""

    __slots__ = ("first", "floor", "low", "seen", "early")

    def __init__(self, first, floor, low, seen=(), early=()):
        self.first, self.floor, self.low = first, floor, low
        self.seen, self.early = set(seen), set(early)


class ReplayWindow(object):
    """Which sequence numbers each station has delivered, so a repeat is never written twice.

    A station's first packet here starts a contiguous run [first, floor)
    that grows as packets arrive; numbers above the floor that arrived out
    of order wait in ``seen``.  Packets older than the first contact (a
    station's backlog, or early packets the link reordered) are accepted
    once each, down to ``span`` below it, and remembered in ``early``.
    Each set keeps at most ``max_seen`` numbers; past that the oldest gaps
    are given up (logged): a packet from such a gap would then be answered
    as a repeat.
    """

    def __init__(self, span: int = 1 << 20, max_seen: int = 65536):
        self.span = span
        self.max_seen = max_seen
        self.tracks: Dict[int, _Track] = {}

    def is_new(self, station_id: int, seq: int) -> bool:
        t = self.tracks.get(station_id)
        if t is None:
            return True
        if seq >= t.floor:
            return seq not in t.seen
        if seq >= t.first:
            return False
        return seq >= t.low and seq not in t.early

    def add(self, station_id: int, seq: int) -> None:
        t = self.tracks.get(station_id)
        if t is None:
            t = self.tracks[station_id] = _Track(seq, seq, max(0, seq - self.span))
        if seq >= t.floor:
            t.seen.add(seq)
            while t.floor in t.seen:
                t.seen.remove(t.floor)
                t.floor += 1
            if len(t.seen) > self.max_seen:
                jump = sorted(t.seen)[len(t.seen) - self.max_seen - 1]  # keep max_seen above it
                log.warning("station %d: giving up on missing packets %d..%d", station_id, t.floor, jump - 1)
                t.seen = set(x for x in t.seen if x > jump)
                t.floor = jump + 1
                while t.floor in t.seen:
                    t.seen.remove(t.floor)
                    t.floor += 1
        elif seq < t.first:
            t.early.add(seq)
            while t.first - 1 in t.early:  # the backlog joined the run: fold it in
                t.early.remove(t.first - 1)
                t.first -= 1
            if len(t.early) > self.max_seen:
                t.low = sorted(t.early)[len(t.early) - self.max_seen]
                log.warning("station %d: no longer accepting packets below %d", station_id, t.low)
                t.early = set(x for x in t.early if x >= t.low)

    def cumulative(self, station_id: int) -> int:
        """The floor: every number from the first contact up to it has arrived (informational)."""
        t = self.tracks.get(station_id)
        return 0 if t is None else t.floor

    def to_dict(self) -> dict:
        return {"version": 1, "stations": {
            str(k): {"first": t.first, "floor": t.floor, "low": t.low, "seen": sorted(t.seen), "early": sorted(t.early)}
            for k, t in self.tracks.items()}}

    def load(self, path: str) -> None:
        if not os.path.lexists(path):
            return
        if os.path.isdir(path):
            raise ConfigError("receiver state %s is a folder; give a file path" % path)
        try:
            d = read_json(path, "receiver state", ConfigError)
        except ConfigError as exc:
            raise ConfigError("%s; move it away to start afresh" % exc) from None
        if not isinstance(d, dict) or d.get("version") != 1:
            raise ConfigError("receiver state %s: version %r, expected 1"
                              % (path, d.get("version") if isinstance(d, dict) else None))
        try:
            for k, v in d["stations"].items():
                self.tracks[int(k)] = _Track(int(v["first"]), int(v["floor"]), int(v["low"]),
                                             (int(x) for x in v["seen"]), (int(x) for x in v["early"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError("receiver state %s is damaged (%r); move it away to start afresh" % (path, exc)) from None

    def save(self, path: str) -> None:
        """Write the state atomically (write, fsync, rename, fsync of the folder)."""
        write_atomic(path, json.dumps(self.to_dict()).encode("utf-8"))
