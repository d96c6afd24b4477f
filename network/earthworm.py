"""Earthworm TYPE_PICK_SCNL lines with ids the operator sets and sequence numbers kept in the store.

``TYPE MOD INST SEQ STA.CHA.NET.LOC FW YYYYMMDDHHMMSS.SS AMP1 AMP2 AMP3 PHASE``
as pick_ew writes them (see :class:`fieldpick.edge.telemetry.receive.EarthwormWriter`),
with three differences: the module and installation ids are arguments
(Earthworm's ``earthworm.d`` assigns them; 0 and 255 are only defaults);
the sequence number (0-9999, wrapping) comes from a counter in the store,
per (installation, module), so it continues across receiver restarts
instead of starting at 0; and the weight W (0-4) is computed from the
calibrated sigma (:mod:`fieldpick.network.calibration`), not the reported
one.  S picks are written on the station's horizontal where it has one.
"""

from __future__ import annotations

import datetime
import os
from typing import Dict, List, Optional, Sequence

from fieldpick.edge.errors import ConfigError

from .calibration import Calibration, onset_weight
from .stations import pick_channel
from .store import Store

__all__ = ["EarthwormWriter", "pick_line", "format_lines"]

TYPE_PICK_SCNL = 8


def _check_id(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
        raise ConfigError("Earthworm %s id %r must be an integer 0..255" % (name, value))
    return value


def pick_line(row: dict, seq: int, module_id: int, installation_id: int, station: Optional[dict] = None) -> str:
    """One TYPE_PICK_SCNL line for a pick row of the store."""
    net, sta, loc = row["station"].split(".")
    cha = pick_channel(row["phase"], row["channel"], station)
    sigma = Calibration.for_model(row.get("model_sha256")).sigma(row["uncertainty_s"], row["phase"])
    hundredths = (int(row["time_ns"]) + 5000000) // 10000000
    t = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=hundredths // 100)
    return "%d %d %d %d %s.%s.%s.%s %s%d %s.%02d %d 0 0 %s" % (
        TYPE_PICK_SCNL, module_id, installation_id, seq, sta, cha, net, loc or "--", row["polarity"],
        onset_weight(sigma), t.strftime("%Y%m%d%H%M%S"), hundredths % 100, int(round(row["amplitude"])),
        row["phase"])


def format_lines(store: Store, rows: List[dict], module_id: int = 0, installation_id: int = 255) -> List[str]:
    """Lines for ``rows``, taking their sequence numbers from the store's counter."""
    _check_id(module_id, "module")
    _check_id(installation_id, "installation")
    if not rows:
        return []
    stations = {s["code"]: s for s in store.stations()}
    seqs = store.next_counter("earthworm/%d/%d" % (installation_id, module_id), len(rows), modulo=10000)
    return [pick_line(r, q, module_id, installation_id, stations.get(r["station"])) for r, q in zip(rows, seqs)]


class EarthwormWriter(object):
    """The receiver's Earthworm writer when a store is given: appends lines, fsync per commit."""

    def __init__(self, path: str, store: Store, module_id: int = 0, installation_id: int = 255,
                 model_sha256: Optional[str] = None):
        self.path = path
        self.store = store
        self.ids = (_check_id(module_id, "module"), _check_id(installation_id, "installation"))
        self.model_sha256 = model_sha256
        self._stations: Dict[str, dict] = {}
        self._picks: List = []
        self._f = open(path, "a", encoding="ascii")

    def write(self, entry, seq: int, picks: Sequence) -> None:
        self._picks.extend(picks)

    def flush(self) -> None:
        """Number the picks written since the last flush (one counter transaction), append, fsync."""
        picks, self._picks = self._picks, []
        if picks:
            if not self._stations:
                self._stations = {s["code"]: s for s in self.store.stations()}
            seqs = self.store.next_counter("earthworm/%d/%d" % (self.ids[1], self.ids[0]), len(picks), modulo=10000)
            for p, q in zip(picks, seqs):
                net, sta, loc, cha = p.station.split(".")
                row = {"station": "%s.%s.%s" % (net, sta, loc), "channel": cha, "phase": p.phase,
                       "time_ns": p.time_ns, "uncertainty_s": p.uncertainty_s, "polarity": p.polarity,
                       "amplitude": p.amplitude, "model_sha256": self.model_sha256}
                self._f.write(pick_line(row, q, self.ids[0], self.ids[1], self._stations.get(row["station"])) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self.flush()
        self._f.close()
