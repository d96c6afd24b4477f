"""Phase association: P and S picks of many stations grouped into events, by grid search.

In the spirit of REAL (Zhang et al. 2019): every unassociated P pick in
turn is an anchor.  For every node of a coarse 3-D grid the anchor fixes
an origin time (anchor time minus the node's P travel time to the anchor's
station); a node's score is the number of (station, phase) pairs that have
a pick within a tolerance of the time that node predicts.  The best node
seeds an event when it scores at least ``min_picks`` with ``min_p`` P picks
on ``min_stations`` stations.  The event's picks (the best-fitting one per
station and phase) are then located (:class:`~fieldpick.network.locate.Locator`),
picks whose residual exceeds ``max(k * sigma, floor)`` are dropped and the
event relocated, unassociated picks that fit the new hypocentre are taken
in, and the event is kept only if it still meets the minimum counts.  Its
picks are then no longer candidates.

Times here are float seconds from the first pick (ns precision is kept by
the caller); sigma is the calibrated one-sigma pick uncertainty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from .locate import Locator, Solution

__all__ = ["AssociatorConfig", "Event", "Associator"]


@dataclass
class AssociatorConfig:
    grid_km: float = 5.0  # coarse grid spacing for association
    depth_step_km: float = 5.0
    tol_p_s: float = 1.0  # match tolerance on the coarse grid
    tol_s_s: float = 1.6
    min_picks: int = 6
    min_p: int = 3
    min_stations: int = 4
    reject_k: float = 4.0  # residual cut after location: max(k * sigma, floor)
    reject_floor_p_s: float = 0.5
    reject_floor_s_s: float = 0.8
    max_travel_s: float = 60.0
    merge_s: float = 3.0  # a new event this close to one found before is its remainder
    merge_km: float = 25.0


@dataclass
class Event:
    """An associated, located event: pick indices into the input, their residuals, the solution."""

    picks: np.ndarray
    solution: Solution
    score: int


class Associator(object):
    """Associate picks recorded by stations at ``sx``, ``sy`` (km)."""

    def __init__(self, locator: Locator, config: Optional[AssociatorConfig] = None):
        self.loc = locator
        self.cfg = config or AssociatorConfig()
        c = self.cfg
        sx, sy = locator.sx, locator.sy
        margin = min(locator.margin, 40.0)
        gx = np.arange(sx.min() - margin, sx.max() + margin + c.grid_km / 2, c.grid_km)
        gy = np.arange(sy.min() - margin, sy.max() + margin + c.grid_km / 2, c.grid_km)
        gz = np.arange(c.depth_step_km / 2, locator.max_depth, c.depth_step_km)
        X, Y, Z = np.meshgrid(gx, gy, gz, indexing="ij")
        self.nodes = np.column_stack([X.ravel(), Y.ravel(), Z.ravel()])
        n = len(sx)
        allsta = np.arange(n)
        self.ttp = locator.predict(X.ravel(), Y.ravel(), Z.ravel(), allsta, np.zeros(n, bool))
        self.tts = locator.predict(X.ravel(), Y.ravel(), Z.ravel(), allsta, np.ones(n, bool))
        self.max_travel = min(c.max_travel_s, float(self.tts.max()))

    def run(self, sta, is_s, t, sigma) -> List[Event]:
        """Events from picks (arrays: station index, S flag, time s, sigma s), in anchor order."""
        sta = np.asarray(sta, dtype=np.intp)
        is_s = np.asarray(is_s, dtype=bool)
        t = np.asarray(t, dtype=np.float64)
        sigma = np.asarray(sigma, dtype=np.float64)
        order = np.argsort(t, kind="stable")
        sta, is_s, t, sigma = sta[order], is_s[order], t[order], sigma[order]
        used = np.zeros(t.size, dtype=bool)
        events = []
        for a, need in self._anchors(is_s, used):
            ev = self._try_anchor(a, sta, is_s, t, sigma, used, need)
            if ev is None:
                continue
            used[ev.picks] = True
            twin = self._twin(ev, events)
            if twin is not None:  # the rest of an event found before: merge, relocate
                ev = self._merge(events[twin], ev, sta, is_s, t, sigma)
                used[ev.picks] = True
                events[twin] = ev
            else:
                events.append(ev)
        for ev in events:
            ev.picks = order[ev.picks]
        return events

    def _anchors(self, is_s, used):
        """(anchor, votes needed): passes with falling thresholds, so that well-recorded events take
        their picks before a sparse node elsewhere can claim a few of them."""
        c = self.cfg
        for need in sorted({c.min_picks * 4, c.min_picks * 2, c.min_picks}, reverse=True):
            for a in np.flatnonzero(~is_s):
                if not used[a]:
                    yield a, need

    def _twin(self, ev, events):
        c = self.cfg
        for i in range(len(events) - 1, -1, -1):
            o = events[i].solution
            if ev.solution.t0 - o.t0 > c.merge_s:
                break
            if (abs(ev.solution.t0 - o.t0) <= c.merge_s
                    and np.hypot(ev.solution.x - o.x, ev.solution.y - o.y) <= c.merge_km):
                return i
        return None

    def _merge(self, a, b, sta, is_s, t, sigma):
        both = np.union1d(a.picks, b.picks)
        pred = self.loc.predict(a.solution.x, a.solution.y, a.solution.z, sta[both], is_s[both])[0] + a.solution.t0
        keep = self._best_per_key(both, np.abs(t[both] - pred), sta[both] * 2 + is_s[both])
        sol = self.loc.refine(a.solution, sta[keep], is_s[keep], t[keep], sigma[keep])
        return Event(keep, sol, a.score + b.score)

    def _window(self, a, t, used):
        lo = np.searchsorted(t, t[a] - self.max_travel, "left")
        hi = np.searchsorted(t, t[a] + self.max_travel, "right")
        idx = np.arange(lo, hi)
        return idx[~used[idx]]

    def _try_anchor(self, a, sta, is_s, t, sigma, used, need) -> Optional[Event]:
        c = self.cfg
        cand = self._window(a, t, used)
        if cand.size < need:
            return None
        t0 = t[a] - self.ttp[:, sta[a]]  # (G,)
        pred = np.where(is_s[cand][None, :], self.tts[:, sta[cand]], self.ttp[:, sta[cand]])
        r = t[cand][None, :] - t0[:, None] - pred
        tol = np.where(is_s[cand], c.tol_s_s, c.tol_p_s)
        match = np.abs(r) <= tol[None, :]
        # one vote per (station, phase)
        key = sta[cand] * 2 + is_s[cand]
        ko = np.argsort(key, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(key[ko]) != 0])
        votes = np.maximum.reduceat(match[:, ko], starts, axis=1)
        p_votes = votes[:, (key[ko][starts] % 2) == 0]
        score = votes.sum(axis=1)
        ok = (score >= need) & (p_votes.sum(axis=1) >= c.min_p)
        if not ok.any():
            return None
        misfit = np.where(match, np.abs(r), 0.0).sum(axis=1)
        g = int(np.flatnonzero(ok)[np.lexsort((misfit[ok], -score[ok]))[0]])
        chosen = self._best_per_key(cand[match[g]], np.abs(r[g, match[g]]), key[match[g]])
        if a not in chosen:
            return None
        start = Solution(*self.nodes[g], t0[g])
        return self._locate_and_clean(chosen, start, sta, is_s, t, sigma, used, int(score[g]))

    @staticmethod
    def _best_per_key(idx, err, key):
        out = {}
        for i, e, k in zip(idx, err, key):
            if k not in out or e < out[k][1]:
                out[k] = (i, e)
        return np.array(sorted(v[0] for v in out.values()), dtype=np.intp)

    def _cut(self, is_s, sigma):
        c = self.cfg
        return np.maximum(c.reject_k * sigma, np.where(is_s, c.reject_floor_s_s, c.reject_floor_p_s))

    def _locate_and_clean(self, chosen, start, sta, is_s, t, sigma, used, score) -> Optional[Event]:
        sol = start
        for _ in range(3):
            if not self._enough(chosen, sta, is_s):
                return None
            sol = self.loc.refine(sol, sta[chosen], is_s[chosen], t[chosen], sigma[chosen])
            bad = np.abs(sol.residuals) > self._cut(is_s[chosen], sigma[chosen])
            if bad.any():
                worst = int(np.argmax(np.abs(sol.residuals) / self._cut(is_s[chosen], sigma[chosen])))
                chosen = np.delete(chosen, worst)
                continue
            # take in unassociated picks that fit this hypocentre (one per station and phase)
            cand = self._window(chosen[0], t, used)
            cand = np.setdiff1d(cand, chosen)
            have = set((sta[chosen] * 2 + is_s[chosen]).tolist())
            cand = cand[[k not in have for k in (sta[cand] * 2 + is_s[cand]).tolist()]] if cand.size else cand
            if cand.size == 0:
                break
            pred = self.loc.predict(sol.x, sol.y, sol.z, sta[cand], is_s[cand])[0] + sol.t0
            r = np.abs(t[cand] - pred)
            fit = r <= self._cut(is_s[cand], sigma[cand])
            if not fit.any():
                break
            extra = self._best_per_key(cand[fit], r[fit], (sta[cand] * 2 + is_s[cand])[fit])
            chosen = np.union1d(chosen, extra)
        if not self._enough(chosen, sta, is_s):
            return None
        sol = self.loc.refine(sol, sta[chosen], is_s[chosen], t[chosen], sigma[chosen])
        if np.any(np.abs(sol.residuals) > self._cut(is_s[chosen], sigma[chosen])):
            return None
        return Event(chosen, sol, score)

    def _enough(self, chosen, sta, is_s) -> bool:
        c = self.cfg
        return (chosen.size >= c.min_picks and int((~is_s[chosen]).sum()) >= c.min_p
                and np.unique(sta[chosen]).size >= c.min_stations)
