"""Station metadata into the store: a CSV table or StationXML (ObsPy, imported only then).

CSV columns (a header row; the first five required)::

    network,station,location,latitude,longitude[,elevation_m][,vertical][,horizontals][,gain]

``horizontals`` lists the horizontal channel codes separated by spaces
(``HHN HHE``, ``EH1 EH2``): S picks are reported on the first of them.
``gain`` is counts per m/s of ground velocity (the vertical's overall
sensitivity); where it is known, events get a local magnitude.

StationXML: every station's channels at the given time (default: now) give
the vertical (dip -90 or +90, or a code ending in Z), the horizontals of the
same band and instrument, and the vertical's sensitivity when its input
units are M/S.
"""

from __future__ import annotations

import csv
from typing import Dict, List, Optional

from fieldpick.edge.errors import ConfigError, DataError

from .store import Store

__all__ = ["read_station_csv", "read_stationxml", "import_stations", "station_coordinates", "pick_channel"]

REQUIRED = ("network", "station", "location", "latitude", "longitude")
OPTIONAL = ("elevation_m", "vertical", "horizontals", "gain")


def _float(value, where, lo=None, hi=None):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise DataError("%s: %r is not a number" % (where, value)) from None
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise DataError("%s: %r outside %s..%s" % (where, value, lo, hi))
    return v


def read_station_csv(path: str) -> List[dict]:
    """Rows of a station CSV, checked (lines starting with '#' are comments)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            lines = [ln for ln in f if not ln.lstrip().startswith("#")]
    except OSError as exc:
        raise ConfigError("cannot read station table %s: %s" % (path, exc)) from None
    reader = csv.DictReader(lines)
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise ConfigError("station table %s lacks columns %s; needs %s (optional: %s)"
                          % (path, missing, ", ".join(REQUIRED), ", ".join(OPTIONAL)))
    out = []
    for n, row in enumerate(reader, 2):
        where = "%s line %d" % (path, n)
        d = {"code": "%s.%s.%s" % (row["network"].strip(), row["station"].strip(), (row["location"] or "").strip()),
             "latitude": _float(row["latitude"], where + " latitude", -90, 90),
             "longitude": _float(row["longitude"], where + " longitude", -180, 180)}
        if not row["station"].strip():
            raise DataError("%s: empty station code" % where)
        if row.get("elevation_m"):
            d["elevation_m"] = _float(row["elevation_m"], where + " elevation_m")
        for k in ("vertical", "horizontals"):
            if row.get(k):
                d[k] = " ".join(row[k].split())
        if row.get("gain"):
            d["gain"] = _float(row["gain"], where + " gain", 0.0)
        out.append(d)
    return out


def read_stationxml(path: str, when: Optional[str] = None) -> List[dict]:
    """Rows from a StationXML file (needs ObsPy)."""
    try:
        from obspy import UTCDateTime, read_inventory
    except ImportError:
        raise ConfigError("reading StationXML needs ObsPy: pip install 'fieldpick[network]'") from None
    try:
        inv = read_inventory(path)
    except Exception as exc:  # ObsPy raises many kinds for a bad file
        raise ConfigError("cannot read StationXML %s: %s" % (path, exc)) from None
    t = UTCDateTime(when) if when else UTCDateTime()
    out = []
    for net in inv:
        for sta in net:
            chans = [c for c in sta.channels if c.is_active(t)] or list(sta.channels)
            by_loc: Dict[str, list] = {}
            for c in chans:
                by_loc.setdefault(c.location_code, []).append(c)
            for loc, cs in sorted(by_loc.items()):
                out.append(_xml_row(net.code, sta, loc, cs))
    return out


def _xml_row(net, sta, loc, chans):
    vert = [c for c in chans if c.code.endswith("Z") or (c.dip is not None and abs(abs(c.dip) - 90) < 1)]
    vert.sort(key=lambda c: ("HBSE".find(c.code[0]) if c.code[0] in "HBSE" else 9, c.code))
    d = {"code": "%s.%s.%s" % (net, sta.code, loc), "latitude": float(sta.latitude),
         "longitude": float(sta.longitude), "elevation_m": float(sta.elevation or 0.0)}
    if vert:
        v = vert[0]
        d["vertical"] = v.code
        hz = sorted(c.code for c in chans if c.code[:2] == v.code[:2] and c.code != v.code)
        if hz:
            d["horizontals"] = " ".join(hz)
        resp = v.response
        sens = getattr(resp, "instrument_sensitivity", None) if resp is not None else None
        if sens is not None and sens.value and str(sens.input_units or "").upper() in ("M/S", "M/SEC"):
            d["gain"] = float(sens.value)
    return d


def import_stations(store: Store, rows: List[dict]) -> int:
    for r in rows:
        store.upsert_station(r["code"], **{k: v for k, v in r.items() if k != "code"})
    return len(rows)


def station_coordinates(store: Store) -> Dict[str, dict]:
    """code -> station row, for stations whose coordinates are known."""
    return {r["code"]: r for r in store.stations() if r["latitude"] is not None and r["longitude"] is not None}


def pick_channel(phase: str, channel: str, station: Optional[dict]) -> str:
    """The channel to report a pick on: S on the station's first horizontal where it has one
    (the station table's ``horizontals``), otherwise the channel it was picked on."""
    if phase == "S" and station and station.get("horizontals"):
        return station["horizontals"].split()[0]
    return channel
