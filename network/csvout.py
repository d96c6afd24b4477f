"""Picks and events as CSV or JSON lines, for scripts and spreadsheets."""

from __future__ import annotations

import csv
import json
from typing import Dict, List, TextIO

from .calibration import Calibration, onset_weight
from .stations import pick_channel

__all__ = ["PICK_FIELDS", "pick_records", "write_picks", "EVENT_FIELDS", "write_events"]

PICK_FIELDS = ("id", "station", "channel", "phase", "time_utc", "time_ns", "probability", "uncertainty_s",
               "sigma_s", "weight", "amplitude", "snr_db", "polarity", "model_name", "model_sha256", "received_ns")
EVENT_FIELDS = ("event_id", "public_id", "time_utc", "latitude", "longitude", "depth_km", "time_err_s",
                "lat_err_km", "lon_err_km", "depth_err_km", "rms_s", "gap_deg", "n_p", "n_s", "n_stations",
                "magnitude", "magnitude_type")


def iso(ns: int) -> str:
    from fieldpick.edge.telemetry.receive import iso_utc

    return iso_utc(int(ns), 3)


def pick_records(rows: List[dict], stations: Dict[str, dict]) -> List[dict]:
    """Store rows with the reporting channel, UTC time, calibrated sigma and weight added."""
    out = []
    for r in rows:
        sigma = Calibration.for_model(r.get("model_sha256")).sigma(r["uncertainty_s"], r["phase"])
        d = {k: r.get(k) for k in PICK_FIELDS}
        d.update(channel=pick_channel(r["phase"], r["channel"], stations.get(r["station"])),
                 time_utc=iso(r["time_ns"]), sigma_s=round(sigma, 4), weight=onset_weight(sigma))
        out.append(d)
    return out


def _write_rows(rows: List[dict], fields, f: TextIO, fmt: str) -> None:
    """JSON lines (``fmt`` 'json') or CSV with a header row of ``fields``."""
    if fmt == "json":
        for d in rows:
            f.write(json.dumps(d, sort_keys=True) + "\n")
        return
    w = csv.DictWriter(f, fields, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)


def write_picks(records: List[dict], f: TextIO, fmt: str) -> None:
    _write_rows(records, PICK_FIELDS, f, fmt)


def write_events(events: List[dict], f: TextIO, fmt: str) -> None:
    rows = []
    for e in events:
        d = {k: e.get(k) for k in EVENT_FIELDS}
        d["time_utc"] = iso(e["time_ns"])
        rows.append(d)
    _write_rows(rows, EVENT_FIELDS, f, fmt)
