"""A synthetic seismic network with known hypocentres, for tests and benchmarks.

Stations are scattered over a square; events at random epicentres inside
it, depths 2-20 km, origin times spaced over a span.  Each station records
P and S at the model's travel times plus an error drawn from ``residuals``
(measured pick residuals, resampled) or a Gaussian; a fraction of arrivals
is missed and false picks are added at random times.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence

import numpy as np

from .locate import Locator, Projection
from .velocity import TravelTimes

__all__ = ["SyntheticNetwork", "make_network", "score_events"]


@dataclass
class SyntheticNetwork:
    codes: list  # 'XX.Snn.' station codes
    lat: np.ndarray
    lon: np.ndarray
    sx: np.ndarray
    sy: np.ndarray
    events: np.ndarray  # (n, 4): x km, y km, depth km, origin time s
    sta: np.ndarray  # per pick
    is_s: np.ndarray
    t: np.ndarray
    sigma: np.ndarray
    truth: np.ndarray  # event index per pick, -1 for a false pick
    projection: Projection


def make_network(n_stations: int = 24, n_events: int = 100, size_km: float = 120.0, span_s: float = 3600.0,
                 residuals: Optional[Dict[str, Sequence[float]]] = None, sigma: Optional[Dict[str, float]] = None,
                 missed: float = 0.1, false: float = 0.1, seed: int = 0, tt: Optional[TravelTimes] = None,
                 min_gap_s: float = 20.0) -> SyntheticNetwork:
    rng = np.random.default_rng(seed)
    tt = tt or TravelTimes(max_dist_km=size_km * 1.6, max_depth_km=40.0)
    proj = Projection(36.0, -117.6)
    sx, sy = rng.uniform(-size_km / 2, size_km / 2, n_stations), rng.uniform(-size_km / 2, size_km / 2, n_stations)
    lat, lon = proj.to_latlon(sx, sy)
    loc = Locator(tt, sx, sy)
    ot = np.sort(rng.uniform(0, span_s, n_events))
    for i in range(1, n_events):  # keep origins apart so the truth is unambiguous
        ot[i] = max(ot[i], ot[i - 1] + min_gap_s)
    ev = np.column_stack([rng.uniform(-0.4, 0.4, (n_events, 2)) * size_km, rng.uniform(2.0, 20.0, n_events), ot])
    sigma = sigma or {"P": 0.03, "S": 0.11}
    sta, is_s, t, sg, truth = [], [], [], [], []
    for k, (x, y, z, t0) in enumerate(ev):
        for ph in ("P", "S"):
            s_flag = ph == "S"
            arr = loc.predict(x, y, z, np.arange(n_stations), np.full(n_stations, s_flag))[0] + t0
            keep = rng.random(n_stations) >= missed
            if residuals and len(residuals.get(ph, ())):
                err = rng.choice(np.asarray(residuals[ph], dtype=np.float64), n_stations)
            else:
                err = rng.normal(0.0, sigma[ph], n_stations)
            for j in np.flatnonzero(keep):
                sta.append(j)
                is_s.append(s_flag)
                t.append(arr[j] + err[j])
                sg.append(sigma[ph])
                truth.append(k)
    n_false = int(round(false * len(t) / (1.0 - false)))
    for _ in range(n_false):
        s_flag = bool(rng.random() < 0.5)
        sta.append(int(rng.integers(n_stations)))
        is_s.append(s_flag)
        t.append(float(rng.uniform(0, span_s + 60.0)))
        sg.append(sigma["S" if s_flag else "P"])
        truth.append(-1)
    codes = ["XX.S%02d." % i for i in range(n_stations)]
    return SyntheticNetwork(codes, lat, lon, sx, sy, ev, np.array(sta), np.array(is_s), np.array(t),
                            np.array(sg), np.array(truth), proj)


def score_events(net: SyntheticNetwork, events):
    """Associated ``events`` against the network's truth: (true events found, false or duplicate
    events, epicentre errors km, depth errors km).

    An event is true when more than half of its picks belong to one true event
    (the first event matched to a true one; later ones are duplicates).
    """
    found, false, eh, ez = set(), 0, [], []
    for e in events:
        good = net.truth[e.picks]
        good = good[good >= 0]
        if good.size == 0 or (good == np.bincount(good).argmax()).sum() < len(e.picks) / 2:
            false += 1
            continue
        k = int(np.bincount(good).argmax())
        if k in found:
            false += 1
            continue
        found.add(k)
        x, y, z, _ = net.events[k]
        eh.append(float(np.hypot(e.solution.x - x, e.solution.y - y)))
        ez.append(float(abs(e.solution.z - z)))
    return found, false, np.array(eh), np.array(ez)
