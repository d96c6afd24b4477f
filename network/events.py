"""Association and location over the store: picks in, events, origins and arrivals written back.

:func:`associate_store` reads the picks in a time span that no origin uses
yet, from stations with coordinates, calibrates their sigma (per model),
runs the :class:`~fieldpick.network.associate.Associator` and writes one
event per group with its origin (location, uncertainties, RMS, gap, local
magnitude where gains are known) and an arrival per pick.  Running it again
over the same span finds nothing new: associated picks are skipped.
"""

from __future__ import annotations

import logging
import math
from typing import List, Optional

import numpy as np

from .associate import Associator, AssociatorConfig
from .calibration import Calibration
from .locate import Locator, Projection
from .magnitude import event_ml
from .stations import station_coordinates
from .store import Store, now_ns
from .velocity import LayeredModel, TravelTimes

__all__ = ["associate_store", "load_events"]

log = logging.getLogger(__name__)


def associate_store(store: Store, since_ns: Optional[int] = None, until_ns: Optional[int] = None,
                    model: Optional[LayeredModel] = None, config: Optional[AssociatorConfig] = None,
                    agency: str = "fieldpick") -> List[int]:
    """Associate and locate the unassociated picks in [since, until); the new event ids."""
    coords = station_coordinates(store)
    if len(coords) < 3:
        log.warning("associate: %d stations with coordinates; import a station table first", len(coords))
        return []
    codes = sorted(coords)
    index = {c: i for i, c in enumerate(codes)}
    lat = np.array([coords[c]["latitude"] for c in codes])
    lon = np.array([coords[c]["longitude"] for c in codes])
    proj = Projection.around(lat, lon)
    sx, sy = proj.to_xy(lat, lon)
    extent = float(np.hypot(np.ptp(sx), np.ptp(sy)))
    tt = _travel_times(model, 50.0 * math.ceil((extent + 150.0) / 50.0))
    picks = [p for p in _unassociated(store, since_ns, until_ns) if p["station"] in index]
    if not picks:
        return []
    t_ref = min(p["time_ns"] for p in picks)
    sta = np.array([index[p["station"]] for p in picks])
    is_s = np.array([p["phase"] == "S" for p in picks])
    t = np.array([(p["time_ns"] - t_ref) / 1e9 for p in picks])
    sigma = np.array([Calibration.for_model(p["model_sha256"]).sigma(max(p["uncertainty_s"], 1e-3), p["phase"])
                      for p in picks])
    assoc = Associator(Locator(tt, sx, sy), config)
    events = assoc.run(sta, is_s, t, sigma)
    ids = []
    for ev in events:
        ids.append(_write_event(store, ev, picks, sta, proj, t_ref, coords, codes, tt.model.name, agency))
    log.info("associate: %d picks, %d events", len(picks), len(ids))
    return ids


_TABLES = {}


def _travel_times(model, max_dist_km):
    """Tables are reused across calls (the receiver associates every few seconds)."""
    key = (None if model is None else repr(model.to_dict()), max_dist_km)
    if key not in _TABLES:
        if len(_TABLES) > 8:
            _TABLES.clear()
        _TABLES[key] = TravelTimes(model, max_dist_km=max_dist_km, max_depth_km=40.0)
    return _TABLES[key]


def _unassociated(store, since_ns, until_ns):
    where, params = ["NOT EXISTS (SELECT 1 FROM arrivals a WHERE a.pick_id = p.id)"], []
    if since_ns is not None:
        where.append("p.time_ns >= ?")
        params.append(int(since_ns))
    if until_ns is not None:
        where.append("p.time_ns < ?")
        params.append(int(until_ns))
    return store.query_dicts("SELECT p.* FROM picks p WHERE %s ORDER BY p.time_ns" % " AND ".join(where), params)


def _write_event(store, ev, picks, sta, proj, t_ref, coords, codes, model_name, agency) -> int:
    s = ev.solution
    lat, lon = proj.to_latlon(s.x, s.y)
    created = now_ns()
    rows = [picks[i] for i in ev.picks]
    hypo = np.hypot(s.distances, s.z)
    ml, n_ml = event_ml([r["station"] for r in rows], [r["amplitude"] for r in rows],
                        [coords[r["station"]].get("gain") for r in rows], hypo)
    n_s = sum(r["phase"] == "S" for r in rows)
    origin_ns = t_ref + int(round(s.t0 * 1e9))
    public = "smi:local/fieldpick/event/%d" % origin_ns
    with store.transaction():
        store.execute("INSERT INTO events (public_id, created_ns, event_type) VALUES (?, ?, ?) "
                      "ON CONFLICT (public_id) DO NOTHING", (public, created, "earthquake"))
        event_id = int(store.execute("SELECT id FROM events WHERE public_id = ?", (public,)).fetchone()[0])
        e = [None if (v is None or math.isnan(v)) else float(v) for v in s.errors]
        store.execute("INSERT INTO origins (event_id, time_ns, latitude, longitude, depth_km, time_err_s, lat_err_km, "
                      "lon_err_km, depth_err_km, rms_s, gap_deg, n_p, n_s, n_stations, magnitude, magnitude_type, "
                      "magnitude_n, velocity_model, created_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                      "?, ?, ?)",
                      (event_id, origin_ns, float(lat), float(lon), float(s.z), e[3], e[1], e[0], e[2],
                       float(s.rms), float(s.gap), len(rows) - n_s, n_s, len(set(sta[ev.picks].tolist())), ml,
                       "ML" if ml is not None else None, n_ml, model_name, created))
        origin_id = int(store.execute("SELECT MAX(id) FROM origins WHERE event_id = ?", (event_id,)).fetchone()[0])
        store.execute("UPDATE events SET preferred_origin_id = ? WHERE id = ?", (origin_id, event_id))
        store.executemany("INSERT INTO arrivals (origin_id, pick_id, phase, residual_s, distance_km, azimuth_deg, "
                          "weight) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (origin_id, pick_id) DO NOTHING",
                          [(origin_id, r["id"], r["phase"], float(s.residuals[k]), float(s.distances[k]),
                            float(s.azimuths[k]), 1.0) for k, r in enumerate(rows)])
    return event_id


def load_events(store: Store, since_ns: Optional[int] = None, until_ns: Optional[int] = None) -> List[dict]:
    """Events with their preferred origin and its arrivals joined to their picks, in origin-time order."""
    where, params = [], []
    if since_ns is not None:
        where.append("o.time_ns >= ?")
        params.append(int(since_ns))
    if until_ns is not None:
        where.append("o.time_ns < ?")
        params.append(int(until_ns))
    sql = ("SELECT e.id AS event_id, e.public_id, e.event_type, e.created_ns AS event_created_ns, o.* FROM events e "
           "JOIN origins o ON o.id = e.preferred_origin_id")
    if where:
        sql += " WHERE " + " AND ".join(where)
    events = store.query_dicts(sql + " ORDER BY o.time_ns", params)
    for ev in events:
        ev["arrivals"] = store.query_dicts(
            "SELECT a.phase AS arrival_phase, a.residual_s, a.distance_km, a.azimuth_deg, a.weight, p.* "
            "FROM arrivals a JOIN picks p ON p.id = a.pick_id WHERE a.origin_id = ? ORDER BY p.time_ns", (ev["id"],))
    return events
