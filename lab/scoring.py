"""Scoring picks against labels: the one evaluation used by training, benchmarks and the demo.

The rules (numpy only, so the station demo can score itself):

- a label is matched by the closest pick of the same phase within
  ``tolerance_s`` (0.5 s); matching is one-to-one, closest pairs first, so
  one pick never counts for two labels;
- per phase: precision = matched / picks, recall = matched / labels,
  F1 = 2 P R / (P + R); precision counts every pick of that phase in a
  labeled window (a window with at least one label of any phase);
- residual = pick - label in seconds (positive: the pick is late): mean,
  standard deviation and mean absolute value over the matched pairs, and the
  fraction of matched pairs within ``within_s`` (0.1 s);
- false picks per hour on noise: picks on noise-only windows (or unmatched
  picks on a stream) divided by the hours of data.

Two entry points: :func:`evaluate_windows` (lists of picks per window, in
samples or seconds) and :func:`evaluate_stream` (pick times against truth
times, integer ns).  Both return a :class:`Scores` with ``to_dict()`` and
``table()``.  Undefined ratios (no labels, no picks) are NaN, shown as '-'.
:func:`score` is :func:`evaluate_windows` for ``(phase, sample,
probability)`` pick lists as a flat dict (undefined ratios 0), the form
training, export and the benchmarks tabulate; :func:`s_as_p`,
:func:`s_as_p_nearer` and :func:`near_count` count the confusions and
agreements they report beside it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Dict, Tuple

import numpy as np

from fieldpick.edge.errors import ConfigError, DataError

__all__ = ["TOLERANCE_S", "WITHIN_S", "match", "PhaseScore", "Scores", "evaluate_windows", "evaluate_stream",
           "by_phase", "score", "mean_f1", "s_as_p", "s_as_p_nearer", "near_count"]

log = logging.getLogger(__name__)

#: a label is matched by a pick within this many seconds
TOLERANCE_S = 0.5
#: the residual that counts as "accurate", seconds
WITHIN_S = 0.1


def _nan_div(a, b):
    return a / b if b else float("nan")


def match(true_s, pick_s, tolerance_s=TOLERANCE_S) -> Tuple[np.ndarray, np.ndarray]:
    """One-to-one matching of labels to picks, closest pairs first.

    true_s, pick_s: 1-D arrays of times (any one unit, e.g. seconds or ns).
    tolerance_s: the largest |pick - label| that still matches, same unit.
    Returns ``(label_index, pick_index)``, int arrays of the matched pairs,
    sorted by label index.  Ties in distance go to the earlier label, then
    the earlier pick.
    """
    t = np.asarray(true_s, dtype=np.float64).ravel()
    p = np.asarray(pick_s, dtype=np.float64).ravel()
    t_idx = np.flatnonzero(np.isfinite(t))
    p_idx = np.flatnonzero(np.isfinite(p))
    if len(t_idx) == 0 or len(p_idx) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = p_idx[np.argsort(p[p_idx], kind="stable")]
    ps = p[order]
    lo = np.searchsorted(ps, t[t_idx] - tolerance_s, side="left")
    hi = np.searchsorted(ps, t[t_idx] + tolerance_s, side="right")
    counts = hi - lo
    if counts.sum() == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    li = np.repeat(t_idx, counts)
    pj = np.concatenate([order[a:b] for a, b in zip(lo, hi) if b > a])
    dist = np.abs(p[pj] - t[li])
    keep = dist <= tolerance_s
    li, pj, dist = li[keep], pj[keep], dist[keep]
    pairs = np.lexsort((pj, li, dist))
    used_t, used_p = set(), set()
    out_t, out_p = [], []
    for k in pairs:
        a, b = int(li[k]), int(pj[k])
        if a in used_t or b in used_p:
            continue
        used_t.add(a)
        used_p.add(b)
        out_t.append(a)
        out_p.append(b)
    o = np.argsort(out_t, kind="stable")
    return np.asarray(out_t, dtype=np.int64)[o], np.asarray(out_p, dtype=np.int64)[o]


@dataclass
class PhaseScore:
    """Counts and residuals of one phase.

    n_true: labels; n_picks: picks that count for precision; matched: pairs.
    residuals_s: pick - label of each matched pair, seconds.
    noise_picks, noise_hours: picks on noise and the hours of noise they came from.
    """

    phase: str
    n_true: int = 0
    n_picks: int = 0
    residuals_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    noise_picks: int = 0
    noise_hours: float = 0.0
    within_s: float = WITHIN_S

    @property
    def matched(self):
        return int(len(self.residuals_s))

    @property
    def false_picks(self):
        return self.n_picks - self.matched

    @property
    def missed(self):
        return self.n_true - self.matched

    @property
    def precision(self):
        return _nan_div(self.matched, self.n_picks)

    @property
    def recall(self):
        return _nan_div(self.matched, self.n_true)

    @property
    def f1(self):
        p, r = self.precision, self.recall
        if math.isnan(p) or math.isnan(r):
            return float("nan")
        return 0.0 if p + r == 0 else 2.0 * p * r / (p + r)

    @property
    def residual_mean_s(self):
        return float(np.mean(self.residuals_s)) if self.matched else float("nan")

    @property
    def residual_std_s(self):
        return float(np.std(self.residuals_s)) if self.matched else float("nan")

    @property
    def residual_mae_s(self):
        return float(np.mean(np.abs(self.residuals_s))) if self.matched else float("nan")

    @property
    def within_fraction(self):
        """Fraction of matched picks with |residual| <= within_s."""
        return float(np.mean(np.abs(self.residuals_s) <= self.within_s + 1e-12)) if self.matched else float("nan")

    @property
    def false_per_hour(self):
        return _nan_div(self.noise_picks, self.noise_hours)

    def to_dict(self):
        def clean(v):
            return None if isinstance(v, float) and math.isnan(v) else v

        return {
            "phase": self.phase, "labels": self.n_true, "picks": self.n_picks, "matched": self.matched,
            "false_picks": self.false_picks, "missed": self.missed,
            "precision": clean(self.precision), "recall": clean(self.recall), "f1": clean(self.f1),
            "residual_mean_s": clean(self.residual_mean_s), "residual_std_s": clean(self.residual_std_s),
            "residual_mae_s": clean(self.residual_mae_s), "within_s": self.within_s,
            "within_fraction": clean(self.within_fraction),
            "noise_picks": self.noise_picks, "noise_hours": self.noise_hours,
            "false_per_hour": clean(self.false_per_hour),
        }


_COLUMNS = [
    ("phase", "%-5s", "phase"), ("labels", "%6d", "labels"), ("picks", "%6d", "picks"), ("matched", "%7d", "matched"),
    ("precision", "%9.3f", "precision"), ("recall", "%6.3f", "recall"), ("f1", "%6.3f", "F1"),
    ("residual_mean_s", "%+7.3f", "mean_s"), ("residual_std_s", "%6.3f", "std_s"),
    ("residual_mae_s", "%6.3f", "MAE_s"), ("within_fraction", "%6.3f", "<=0.1s"),
    ("false_per_hour", "%8.2f", "noise/h"),
]


@dataclass
class Scores:
    """The result of one evaluation: a :class:`PhaseScore` per phase plus the rules used."""

    phases: Dict[str, PhaseScore]
    tolerance_s: float = TOLERANCE_S
    within_s: float = WITHIN_S
    kind: str = "windows"
    unlabeled_window_picks: int = 0

    def __getitem__(self, phase):
        return self.phases[phase]

    def to_dict(self):
        """Plain, JSON-ready dict (NaN becomes None)."""
        return {
            "kind": self.kind, "tolerance_s": self.tolerance_s, "within_s": self.within_s,
            "unlabeled_window_picks": self.unlabeled_window_picks,
            "phases": {k: v.to_dict() for k, v in self.phases.items()},
        }

    def table(self, title=None) -> str:
        """A fixed-width text table, one row per phase ('-' for undefined values)."""
        heads = ["<=%gs" % self.within_s if key == "within_fraction" else h for key, _, h in _COLUMNS]
        rows = []
        for ps in self.phases.values():
            d = ps.to_dict()
            rows.append(["-" if d[key] is None else fmt % d[key] for key, fmt, _ in _COLUMNS])
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(heads)]
        lines = []
        if title:
            lines.append(title)
        lines.append("  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(heads, widths))))
        for r in rows:
            lines.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))
        lines.append("(match within %g s; residual = pick - label; noise/h = false picks per hour of noise)" % self.tolerance_s)
        return "\n".join(lines)

    def __str__(self):
        return self.table()


def _as_list(x) -> np.ndarray:
    """One window's labels or picks as a 1-D float array (a scalar NaN means none)."""
    if x is None:
        return np.zeros(0)
    a = np.atleast_1d(np.asarray(x, dtype=np.float64)).ravel()
    return a[np.isfinite(a)]


def _per_window(name, phase, values, n):
    if values is None:
        return [np.zeros(0)] * n if n is not None else None
    values = list(values) if not isinstance(values, np.ndarray) or values.ndim > 0 else [values]
    if n is not None and len(values) != n:
        raise DataError("%s[%r] has %d windows; expected %d (one entry per window)" % (name, phase, len(values), n))
    return [_as_list(v) for v in values]


def _check_phases(phases, *maps):
    phases = tuple(phases)
    for name, m in maps:
        if m is None:
            continue
        unknown = sorted(set(m) - set(phases))
        if unknown:
            raise DataError("%s has phase(s) %s; allowed: %s" % (name, ", ".join(map(repr, unknown)), ", ".join(phases)))
    return phases


def _check_tol(tolerance_s, within_s):
    if not (tolerance_s > 0 and math.isfinite(tolerance_s)):
        raise DataError("tolerance_s=%r; it must be a finite number of seconds > 0" % (tolerance_s,))
    if not (0 <= within_s <= tolerance_s):
        raise DataError("within_s=%r; it must lie in [0, tolerance_s=%r] seconds" % (within_s, tolerance_s))


def evaluate_windows(true, picks, fs=None, noise_picks=None, noise_seconds=None, tolerance_s=TOLERANCE_S,
                     within_s=WITHIN_S, phases=("P", "S")) -> Scores:
    """Score picks on labeled windows (and optionally on noise-only windows).

    true: ``{phase: per-window labels}``; each entry a number (NaN: no
    label) or a sequence of numbers (several events in a window), e.g.
    ``{"P": p_idx, "S": s_idx}`` of a WindowSet.
    picks: ``{phase: per-window picks}``; each entry a sequence of numbers.
    A phase missing from ``picks`` means the picker never picks it.
    fs: Hz when labels and picks are sample indices; None when in seconds.
    noise_picks: ``{phase: per-noise-window picks}`` (only counted);
    noise_seconds: total seconds of those noise windows (required with them).
    tolerance_s, within_s: seconds.
    A window of ``true`` without any label counts for no phase; its picks
    are only counted in ``Scores.unlabeled_window_picks`` (pass noise
    windows as ``noise_picks`` to score them).
    """
    _check_tol(tolerance_s, within_s)
    phases = _check_phases(phases, ("true", true), ("picks", picks), ("noise_picks", noise_picks))
    if fs is not None and not (fs > 0 and math.isfinite(fs)):
        raise DataError("fs=%r Hz; it must be a finite number > 0 (or None for seconds)" % (fs,))
    scale = 1.0 / fs if fs is not None else 1.0
    n = None
    for ph in phases:
        if ph in true:
            n = len(true[ph])
            break
    if n is None:
        raise DataError("true has no labels for any of the phases %s" % ", ".join(phases))
    labels = {ph: _per_window("true", ph, true.get(ph), n) for ph in phases}
    got = {ph: _per_window("picks", ph, picks.get(ph), n) for ph in phases}
    labeled = np.array([any(len(labels[ph][i]) for ph in phases) for i in range(n)], dtype=bool)
    if noise_picks is not None and noise_seconds is None:
        raise DataError("noise_picks given without noise_seconds (total seconds of the noise windows)")
    if noise_seconds is not None and not noise_seconds > 0:
        raise DataError("noise_seconds=%r; it must be > 0 seconds" % (noise_seconds,))
    out = {}
    unlabeled = 0
    for ph in phases:
        residuals = []
        n_true = n_picks = 0
        for i in range(n):
            t, p = labels[ph][i], got[ph][i]
            if not labeled[i]:
                unlabeled += len(p)
                continue
            n_true += len(t)
            n_picks += len(p)
            li, pj = match(t * scale, p * scale, tolerance_s)
            residuals.append((p[pj] - t[li]) * scale)
        score = PhaseScore(ph, n_true, n_picks, np.concatenate(residuals) if residuals else np.zeros(0), within_s=within_s)
        if noise_picks is not None:
            per = noise_picks.get(ph)
            score.noise_picks = int(sum(len(_as_list(v)) for v in per)) if per is not None else 0
            score.noise_hours = float(noise_seconds) / 3600.0
        out[ph] = score
    if unlabeled:
        log.debug("%d picks fell in windows without labels; they count for no phase", unlabeled)
    return Scores(out, tolerance_s, within_s, "windows", unlabeled)


def by_phase(items, phases=("P", "S")) -> Dict[str, np.ndarray]:
    """``{phase: int64 ns times}`` from a dict, a truth structured array, dicts or Pick objects."""
    if isinstance(items, dict):
        return {ph: np.asarray(items.get(ph, []), dtype=np.int64).ravel() for ph in phases}
    if isinstance(items, np.ndarray) and items.dtype.names:
        if "phase" not in items.dtype.names or "time_ns" not in items.dtype.names:
            raise DataError("structured array has fields %s; it needs 'phase' and 'time_ns'" % (items.dtype.names,))
        return {ph: items["time_ns"][items["phase"] == ph].astype(np.int64) for ph in phases}
    acc = {ph: [] for ph in phases}
    for it in items:
        ph = it["phase"] if isinstance(it, dict) else it.phase
        t = it["time_ns"] if isinstance(it, dict) else it.time_ns
        if ph not in acc:
            raise DataError("phase %r; allowed: %s" % (ph, ", ".join(phases)))
        acc[ph].append(int(t))
    return {ph: np.asarray(v, dtype=np.int64) for ph, v in acc.items()}


def evaluate_stream(true, picks, duration_s, tolerance_s=TOLERANCE_S, within_s=WITHIN_S,
                    phases=("P", "S")) -> Scores:
    """Score picks on a continuous stream against its truth table.

    true, picks: anything :func:`by_phase` takes (``{phase: ns array}``, the
    truth array of :func:`fieldpick.lab.synthetic.continuous`, a list of
    :class:`~fieldpick.edge.picks.Pick`); times are integer ns since the epoch.
    duration_s: seconds of data scored; unmatched picks per hour of it are
    the false picks per hour.  Every pick counts for precision.
    """
    _check_tol(tolerance_s, within_s)
    if not (duration_s > 0 and math.isfinite(duration_s)):
        raise DataError("duration_s=%r; it must be a finite number of seconds > 0" % (duration_s,))
    t_all, p_all = by_phase(true, phases), by_phase(picks, phases)
    out = {}
    for ph in phases:
        t, p = t_all[ph], p_all[ph]
        # subtract a common origin in integer ns first so float64 keeps sub-microsecond detail
        origin = int(min(t.min() if len(t) else 0, p.min() if len(p) else 0)) if (len(t) or len(p)) else 0
        ts, psec = (t - origin) / 1e9, (p - origin) / 1e9
        li, pj = match(ts, psec, tolerance_s)
        res = ((p[pj] - t[li]).astype(np.float64)) / 1e9
        score = PhaseScore(ph, len(t), len(p), res, within_s=within_s)
        score.noise_picks = score.false_picks
        score.noise_hours = float(duration_s) / 3600.0
        out[ph] = score
    return Scores(out, tolerance_s, within_s, "stream", 0)


# ---------------------------------------------------------------- flat scores of (phase, sample, probability) picks
PHASES = ("P", "S")


def score(picks, p_idx, s_idx, fs, tolerance_s=0.5, noise_picks=None, noise_seconds=0.0):
    """Score per-window picks with :func:`evaluate_windows`, as a flat dict.

    picks: list (one per event window) of [(phase, sample, probability)].
    p_idx, s_idx: (N,) true arrival samples (NaN: absent).  fs: Hz.
    noise_picks: optional list of pick lists on noise windows whose total
    length is ``noise_seconds``.  Returns a flat dict: ``P_precision,
    P_recall, P_f1, P_matched, P_picks, P_mae_s, P_mean_s, P_std_s`` (residual
    = pick - truth, seconds, over matches), the same for S, ``f1`` (mean of
    the P and S F1; 0 where undefined) and ``false_picks_per_hour``.
    """
    if len(picks) != len(p_idx):
        raise ConfigError("%d pick lists for %d windows" % (len(picks), len(p_idx)))

    def per_phase(lists):
        return {ph: [[pos for q, pos, _ in w if q == ph] for w in lists] for ph in PHASES}

    noise = None
    if noise_picks is not None and noise_seconds > 0:
        noise = per_phase(noise_picks)
    result = evaluate_windows({"P": np.asarray(p_idx, float), "S": np.asarray(s_idx, float)}, per_phase(picks),
                              fs=fs, noise_picks=noise, noise_seconds=noise_seconds if noise else None,
                              tolerance_s=tolerance_s)
    out = {}
    for ph in PHASES:
        d = result[ph]
        out.update({
            ph + "_precision": _num(d.precision), ph + "_recall": _num(d.recall), ph + "_f1": _num(d.f1),
            ph + "_matched": d.matched, ph + "_picks": d.n_picks, ph + "_labels": d.n_true,
            ph + "_mae_s": d.residual_mae_s, ph + "_mean_s": d.residual_mean_s, ph + "_std_s": d.residual_std_s,
            ph + "_within_0.1s": d.within_fraction,
        })
    out["f1"] = 0.5 * (out["P_f1"] + out["S_f1"])
    if noise is not None:
        count = sum(len(w) for w in noise_picks)
        out["noise_picks"] = count
        out["noise_hours"] = noise_seconds / 3600.0
        out["false_picks_per_hour"] = count / out["noise_hours"]
    return out


def _num(v):
    """0 for an undefined ratio (no picks): a model that picks nothing scores 0, not NaN."""
    return 0.0 if v is None or (isinstance(v, float) and np.isnan(v)) else float(v)


def mean_f1(scores, phases=PHASES):
    """The mean F1 of ``phases`` in a :class:`Scores` (an undefined F1 counts 0): what tuning maximises."""
    return float(np.mean([_num(scores[ph].f1) for ph in phases]))


def s_as_p(picks, s_idx, fs, tolerance_s=0.5):
    """How many labelled S arrivals have a P pick within ``tolerance_s`` and no S pick there."""
    n = 0
    for w, s in zip(picks, s_idx):
        if not np.isfinite(s):
            continue
        near = [ph for ph, pos, _ in w if abs(pos - s) <= tolerance_s * fs]
        n += ("P" in near) and ("S" not in near)
    return n


def s_as_p_nearer(picks, p_idx, s_idx, fs, tolerance_s=0.5):
    """How many labelled S arrivals have a P pick within ``tolerance_s``, nearer the S
    than the P (an S pick there or not: an upper bound of S called P)."""
    tol = tolerance_s * fs
    n = 0
    for w, pt, st in zip(picks, p_idx, s_idx):
        if np.isnan(st):
            continue
        for ph, pos, _ in w:
            if ph == "P" and abs(pos - st) <= tol and (np.isnan(pt) or abs(pos - st) < abs(pos - pt)):
                n += 1
                break
    return n


def near_count(times, others, tolerance):
    """How many of ``times`` have one of ``others`` within ``tolerance`` (same units;
    not one-to-one: two times may share one of the others)."""
    others = np.asarray(others)
    return int(sum(bool(len(others)) and np.abs(others - t).min() <= tolerance for t in times))
