"""A 1-D layered velocity model and its first-arrival travel times.

The model is a stack of constant-velocity layers over a half-space
(``tops_km``, ``vp``, ``vs``).  First arrivals at a surface receiver from a
source at depth are the faster of the direct ray (upgoing, found by a sweep
of ray parameters) and the head waves along each interface below the source
that is faster than everything above it.  :class:`TravelTimes` tabulates
them on a (depth, epicentral distance) grid once and interpolates
bilinearly, which is what the associator and the locator call millions of
times.  Distances are in km on a flat Earth (good to a few tenths of a
percent within 300 km); station elevations are ignored.

The default is a simple layered crust of the kind used for southern
California (P 5.5 / 6.3 / 6.7 / 7.8 km/s with tops at 0 / 5.5 / 16 / 32 km,
Vp/Vs 1.73).  A model file is JSON: ``{"name": ..., "tops_km": [...],
"vp": [...], "vs": [...]}`` (``vs`` may be left out for ``vp_vs``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from fieldpick.edge.errors import ConfigError

__all__ = ["LayeredModel", "TravelTimes", "DEFAULT_MODEL"]


@dataclass
class LayeredModel:
    name: str
    tops_km: List[float]
    vp: List[float]
    vs: List[float] = field(default_factory=list)
    vp_vs: float = 1.73

    def __post_init__(self):
        if not self.vs:
            self.vs = [v / self.vp_vs for v in self.vp]
        n = len(self.tops_km)
        if n == 0 or len(self.vp) != n or len(self.vs) != n:
            raise ConfigError("velocity model %r: tops_km, vp and vs need one value per layer (got %d, %d, %d)"
                              % (self.name, n, len(self.vp), len(self.vs)))
        if self.tops_km[0] != 0 or any(b <= a for a, b in zip(self.tops_km, self.tops_km[1:])):
            raise ConfigError("velocity model %r: tops_km %r must start at 0 and increase" % (self.name, self.tops_km))
        if min(self.vp + self.vs) <= 0:
            raise ConfigError("velocity model %r: velocities must be > 0" % self.name)

    @classmethod
    def load(cls, path: str) -> "LayeredModel":
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
            return cls(name=str(d.get("name", path)), tops_km=[float(x) for x in d["tops_km"]],
                       vp=[float(x) for x in d["vp"]], vs=[float(x) for x in d.get("vs", [])],
                       vp_vs=float(d.get("vp_vs", 1.73)))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError("velocity model %s: %s; expected JSON with tops_km, vp (and vs or vp_vs)"
                              % (path, exc)) from None

    def to_dict(self) -> dict:
        return {"name": self.name, "tops_km": self.tops_km, "vp": self.vp, "vs": self.vs}

    def velocities(self, phase: str) -> np.ndarray:
        return np.asarray(self.vp if phase == "P" else self.vs, dtype=np.float64)


DEFAULT_MODEL = LayeredModel("layered crust 5.5/6.3/6.7/7.8", [0.0, 5.5, 16.0, 32.0], [5.5, 6.3, 6.7, 7.8])


def _legs(tops, depth):
    """Thickness of each layer between the surface and ``depth`` (km)."""
    bottoms = np.append(tops[1:], np.inf)
    return np.clip(np.minimum(bottoms, depth) - tops, 0.0, None)


def first_arrivals(model: LayeredModel, phase: str, depth_km: float, dist_km: np.ndarray) -> np.ndarray:
    """First-arrival times (s) at surface distances ``dist_km`` from a source at ``depth_km``."""
    v = model.velocities(phase)
    tops = np.asarray(model.tops_km, dtype=np.float64)
    x = np.asarray(dist_km, dtype=np.float64)
    h = _legs(tops, depth_km)  # the direct ray crosses these
    above = h > 0
    vmax = v[above].max() if above.any() else v[0]
    # direct ray: sweep ray parameter p in [0, 1/vmax)
    q = np.sin(np.linspace(0.0, np.pi / 2, 4000, endpoint=False)) / vmax
    pv = q[:, None] * v[None, above]
    root = np.sqrt(1.0 - pv ** 2)
    X = (h[above][None, :] * pv / root).sum(axis=1)
    T = (h[above][None, :] / (v[None, above] * root)).sum(axis=1)
    if not above.any():  # a source at the surface
        X, T = np.array([0.0, 1e4]), np.array([0.0, 1e4 / v[0]])
    best = np.interp(x, X, T, right=np.inf)
    far = x > X[-1]
    if far.any():  # beyond the sweep: the grazing ray in the source layer
        best[far] = T[-1] + (x[far] - X[-1]) / vmax
    # head waves along each interface below the source
    for k in range(1, len(tops)):
        if tops[k] < depth_km or v[k] <= v[:k].max():
            continue
        p = 1.0 / v[k]
        up = _legs(tops, tops[k])[:k]  # surface to the interface
        down = up - _legs(tops, depth_km)[:k]  # source to the interface
        cos_ = np.sqrt(1.0 - (p * v[:k]) ** 2)
        tau = ((up + down) * cos_ / v[:k]).sum()
        xcrit = ((up + down) * p * v[:k] / cos_).sum()
        t = x * p + tau
        best = np.where(x >= xcrit, np.minimum(best, t), best)
    return best


class TravelTimes(object):
    """Tabulated first arrivals for P and S: ``time(phase, depth_km, dist_km)`` by bilinear interpolation."""

    def __init__(self, model: Optional[LayeredModel] = None, max_dist_km: float = 400.0,
                 max_depth_km: float = 60.0, step_km: float = 0.5):
        self.model = model or DEFAULT_MODEL
        self.step = float(step_km)
        self.dists = np.arange(0.0, max_dist_km + step_km, step_km)
        self.depths = np.arange(0.0, max_depth_km + step_km, step_km)
        self.tables = {ph: np.stack([first_arrivals(self.model, ph, z, self.dists) for z in self.depths])
                       for ph in ("P", "S")}

    def time(self, phase: str, depth_km, dist_km) -> np.ndarray:
        tab = self.tables[phase]
        zi = np.clip(np.asarray(depth_km, dtype=np.float64) / self.step, 0, len(self.depths) - 1.000001)
        xi = np.clip(np.asarray(dist_km, dtype=np.float64) / self.step, 0, len(self.dists) - 1.000001)
        z0, x0 = np.floor(zi).astype(np.intp), np.floor(xi).astype(np.intp)
        fz, fx = zi - z0, xi - x0
        a = tab[z0, x0] * (1 - fx) + tab[z0, x0 + 1] * fx
        b = tab[z0 + 1, x0] * (1 - fx) + tab[z0 + 1, x0 + 1] * fx
        return a * (1 - fz) + b * fz
