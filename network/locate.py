"""Hypocentres from arrival times: a grid search, then damped least squares, with uncertainties.

Coordinates are km on a local tangent plane (:class:`Projection`, an
equirectangular projection about the network's centre: within 300 km the
distances are good to a few tenths of a percent, well below what a 1-D
model gets right).  Observations are (station index, phase, time in s from
a reference, one-sigma uncertainty in s).

:meth:`Locator.locate` searches a 3-D grid (origin time solved in closed
form at each node as the weighted mean of the observed minus predicted
times), then refines with Levenberg-Marquardt steps on (x, y, z, t0) using
numerical derivatives of the tabulated travel times.  The uncertainties
are the square roots of the diagonal of the covariance ``(J' W J)^-1``
(W = 1 / sigma^2) scaled by the reduced chi-square when that exceeds 1:
one-sigma errors in km and s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence, Tuple

import numpy as np

from .velocity import TravelTimes

__all__ = ["Projection", "Solution", "Locator", "azimuthal_gap"]

KM_PER_DEG = 111.19492664455873


class Projection(object):
    """lat/lon (degrees) <-> x east, y north (km) about (lat0, lon0)."""

    def __init__(self, lat0: float, lon0: float):
        self.lat0, self.lon0 = float(lat0), float(lon0)
        self.kx = KM_PER_DEG * math.cos(math.radians(self.lat0))

    @classmethod
    def around(cls, lats: Sequence[float], lons: Sequence[float]) -> "Projection":
        return cls(float(np.mean(lats)), float(np.mean(lons)))

    def to_xy(self, lat, lon):
        return (np.asarray(lon, dtype=np.float64) - self.lon0) * self.kx, \
            (np.asarray(lat, dtype=np.float64) - self.lat0) * KM_PER_DEG

    def to_latlon(self, x, y):
        return self.lat0 + np.asarray(y, dtype=np.float64) / KM_PER_DEG, \
            self.lon0 + np.asarray(x, dtype=np.float64) / self.kx


@dataclass
class Solution:
    """A located hypocentre: position in km, origin time in s (same reference as the observations)."""

    x: float
    y: float
    z: float
    t0: float
    errors: Tuple[float, float, float, float] = (float("nan"),) * 4  # x, y, z km; t0 s
    rms: float = float("nan")
    residuals: np.ndarray = field(default_factory=lambda: np.zeros(0))
    distances: np.ndarray = field(default_factory=lambda: np.zeros(0))
    azimuths: np.ndarray = field(default_factory=lambda: np.zeros(0))
    gap: float = float("nan")


def azimuthal_gap(azimuths_deg) -> float:
    a = np.sort(np.mod(np.asarray(azimuths_deg, dtype=np.float64), 360.0))
    if a.size == 0:
        return 360.0
    return float(np.max(np.diff(np.append(a, a[0] + 360.0))))


class Locator(object):
    """Locate events recorded by stations at ``sx``, ``sy`` (km) with travel times ``tt``."""

    def __init__(self, tt: TravelTimes, sx, sy, max_depth_km: float = 40.0, grid_km: float = 4.0,
                 margin_km: float = 40.0):
        self.tt = tt
        self.sx = np.asarray(sx, dtype=np.float64)
        self.sy = np.asarray(sy, dtype=np.float64)
        self.max_depth = min(max_depth_km, float(tt.depths[-1]))
        self.grid_km = grid_km
        self.margin = margin_km

    # predicted times for nodes (N,) x observations (M,)
    def predict(self, x, y, z, sta, phase_is_s):
        x, y, z = (np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in (x, y, z))
        d = np.hypot(x[:, None] - self.sx[sta][None, :], y[:, None] - self.sy[sta][None, :])
        zz = np.broadcast_to(z[:, None], d.shape)
        out = self.tt.time("P", zz, d)
        if np.any(phase_is_s):
            s = np.broadcast_to(np.asarray(phase_is_s, bool)[None, :], d.shape)
            out = np.where(s, self.tt.time("S", zz, d), out)
        return out

    def grid(self, sta, center=None, half_km=None, step=None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Nodes over the stations' box plus the margin, or a cube of half-width ``half_km`` about ``center``."""
        step = step or self.grid_km
        if center is None:
            xs, ys = self.sx[np.unique(sta)], self.sy[np.unique(sta)]
            lo = (xs.min() - self.margin, ys.min() - self.margin, 0.0)
            hi = (xs.max() + self.margin, ys.max() + self.margin, self.max_depth)
        else:
            lo = (center[0] - half_km, center[1] - half_km, max(0.0, center[2] - half_km))
            hi = (center[0] + half_km, center[1] + half_km, min(self.max_depth, center[2] + half_km))
        axes = [np.arange(a, b + step / 2, step) for a, b in zip(lo, hi)]
        X, Y, Z = np.meshgrid(*axes, indexing="ij")
        return X.ravel(), Y.ravel(), Z.ravel()

    def _best(self, X, Y, Z, sta, is_s, t, w):
        best = None
        for a in range(0, X.size, 20000):
            pred = self.predict(X[a:a + 20000], Y[a:a + 20000], Z[a:a + 20000], sta, is_s)
            t0 = ((t[None, :] - pred) * w[None, :]).sum(axis=1) / w.sum()
            m = (w[None, :] * (t[None, :] - pred - t0[:, None]) ** 2).sum(axis=1)
            i = int(np.argmin(m))
            if best is None or m[i] < best[0]:
                best = (float(m[i]), X[a + i], Y[a + i], Z[a + i], float(t0[i]))
        return best

    def search(self, sta, is_s, t, sigma) -> Solution:
        """The best node of a coarse grid, then of two finer grids about it (least weighted squares)."""
        w = 1.0 / np.asarray(sigma, dtype=np.float64) ** 2
        best = self._best(*self.grid(sta), sta, is_s, t, w)
        for half, step in ((2.0 * self.grid_km, self.grid_km / 4.0), (self.grid_km / 2.0, self.grid_km / 16.0)):
            b = self._best(*self.grid(sta, center=best[1:4], half_km=half, step=step), sta, is_s, t, w)
            if b[0] <= best[0]:
                best = b
        return Solution(best[1], best[2], best[3], best[4])

    def refine(self, start: Solution, sta, is_s, t, sigma, iterations: int = 12) -> Solution:
        w = 1.0 / np.asarray(sigma, dtype=np.float64) ** 2
        p = np.array([start.x, start.y, start.z, start.t0], dtype=np.float64)
        lam = 1e-2

        def resid(q):
            return t - self.predict(q[0], q[1], q[2], sta, is_s)[0] - q[3]

        r = resid(p)
        cost = float((w * r ** 2).sum())
        J = None
        for _ in range(iterations):
            J = self._jacobian(p, sta, is_s)
            A = J.T @ (J * w[:, None])
            g = J.T @ (w * r)
            improved = False
            for _ in range(6):
                try:
                    dp = np.linalg.solve(A + lam * np.diag(np.diag(A) + 1e-9), g)
                except np.linalg.LinAlgError:
                    break
                q = p + dp
                q[2] = min(max(q[2], 0.0), self.max_depth)
                rq = resid(q)
                cq = float((w * rq ** 2).sum())
                if cq <= cost:
                    p, r, cost, lam, improved = q, rq, cq, max(lam / 3.0, 1e-6), True
                    break
                lam *= 5.0
            if not improved or np.abs(dp[:3]).max() < 1e-3:
                break
        return self._finish(p, sta, is_s, t, w, r, cost)

    def _jacobian(self, p, sta, is_s, h=0.05):
        cols = []
        for k in range(3):
            a, b = p.copy(), p.copy()
            a[k] -= h
            b[k] += h
            if k == 2 and a[2] < 0:
                a[2] = 0.0
            pa = self.predict(a[0], a[1], a[2], sta, is_s)[0]
            pb = self.predict(b[0], b[1], b[2], sta, is_s)[0]
            cols.append((pb - pa) / (b[k] - a[k]))
        # r = t - T(x) - t0 ; J = d(prediction)/dp, so the step solves J dp = r
        return np.column_stack(cols + [np.ones_like(cols[0])])

    def _finish(self, p, sta, is_s, t, w, r, cost) -> Solution:
        n = len(t)
        J = self._jacobian(p, sta, is_s)
        free = [0, 1, 2, 3] if p[2] > 0.0 else [0, 1, 3]
        errors = [float("nan")] * 4
        dof = n - len(free)
        if dof > 0:
            Jf = J[:, free]
            try:
                cov = np.linalg.inv(Jf.T @ (Jf * w[:, None]))
                chi2 = cost / dof
                cov *= max(1.0, chi2)
                for i, k in enumerate(free):
                    errors[k] = float(math.sqrt(max(cov[i, i], 0.0)))
            except np.linalg.LinAlgError:
                pass
        dx, dy = p[0] - self.sx[sta], p[1] - self.sy[sta]
        az = np.degrees(np.arctan2(-dx, -dy)) % 360.0  # epicentre -> station, clockwise from north
        return Solution(float(p[0]), float(p[1]), float(p[2]), float(p[3]), tuple(errors),
                        float(np.sqrt(np.mean(r ** 2))), r, np.hypot(dx, dy), az,
                        azimuthal_gap(az[np.unique(sta, return_index=True)[1]]))

    def locate(self, sta, is_s, t, sigma, start: Optional[Solution] = None) -> Solution:
        sta = np.asarray(sta, dtype=np.intp)
        is_s = np.asarray(is_s, dtype=bool)
        t = np.asarray(t, dtype=np.float64)
        sigma = np.asarray(sigma, dtype=np.float64)
        if start is None:
            start = self.search(sta, is_s, t, sigma)
        return self.refine(start, sta, is_s, t, sigma)

