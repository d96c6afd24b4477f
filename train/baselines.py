"""Classic pickers through ObsPy, tuned on a validation split and scored by :mod:`fieldpick.lab.scoring`.

- :class:`StaLtaPicker` (P): band-pass, recursive STA/LTA (Withers et al.
  1998), ``trigger_onset``; every trigger is a P pick at its onset minus a
  tuned constant delay (``shift_s``: a trigger fires after the arrival).
- :class:`PkBaerPicker` (P): Baer & Kradolfer (1987) on the vertical.
- :class:`ArPicker` (P and S): Akazawa's AR-AIC picker (Leonard & Kennett
  1999) on Z, N, E.  Its C code reads out of bounds when the P pick comes
  earlier than ``lta_s`` seconds into the window, so in that case (and on
  windows whose horizontals are dead) S is not asked for.

Each picker has a ``Params`` dataclass (seconds and Hz in the names), a
``grid`` of values to tune over, and ``pick(waveform (3, T), fs) -> {"P":
[samples], "S": [samples]}``.  :func:`tune` picks the grid point with the
best validation F1; :func:`run` applies a picker to a WindowSet.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import warnings
from dataclasses import dataclass
from typing import Dict, List

import numpy as np

from fieldpick.edge.errors import ConfigError
from fieldpick.lab.scoring import Scores, evaluate_windows, mean_f1

from .data.datasets import WindowSet

__all__ = ["StaLtaPicker", "PkBaerPicker", "ArPicker", "BASELINES", "make", "run", "score", "tune", "station_halves",
           "run_stream"]

log = logging.getLogger(__name__)


def _bandpass(x, fs, fmin, fmax):
    from obspy.signal.filter import bandpass

    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean()
    return bandpass(x, fmin, min(fmax, 0.45 * fs), fs, corners=2, zerophase=False)


class _Picker:
    name = ""
    phases = ("P",)
    Params = None
    grid: Dict[str, list] = {}

    def __init__(self, params=None, **overrides):
        params = params if params is not None else self.Params()
        names = [f.name for f in dataclasses.fields(self.Params)]
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise ConfigError("%s has no parameter(s) %s; allowed: %s" % (self.name, ", ".join(unknown), ", ".join(names)))
        self.params = dataclasses.replace(params, **overrides)

    def __str__(self):
        return "%s(%s)" % (self.name, ", ".join("%s=%g" % kv for kv in dataclasses.asdict(self.params).items()))

    def pick(self, waveform, fs) -> Dict[str, List[float]]:
        raise NotImplementedError


class StaLtaPicker(_Picker):
    """Recursive STA/LTA on the band-passed vertical; one P pick per trigger."""

    name = "stalta"

    @dataclass
    class Params:
        sta_s: float = 0.5
        lta_s: float = 10.0
        on: float = 3.5
        off: float = 1.5
        freqmin_hz: float = 1.0
        freqmax_hz: float = 20.0
        shift_s: float = 0.0

    grid = {"sta_s": [0.2, 0.5, 1.0], "lta_s": [2.0, 5.0, 10.0], "on": [2.5, 3.5, 5.0, 8.0]}

    def pick(self, waveform, fs):
        from obspy.signal.trigger import recursive_sta_lta, trigger_onset

        p = self.params
        z = _bandpass(waveform[0], fs, p.freqmin_hz, p.freqmax_hz)
        cft = recursive_sta_lta(z, max(1, int(p.sta_s * fs)), max(2, int(p.lta_s * fs)))
        on = trigger_onset(cft, p.on, p.off)
        return {"P": [max(float(a) - p.shift_s * fs, 0.0) for a, _ in on], "S": []}


class PkBaerPicker(_Picker):
    """Baer-Kradolfer picker on the vertical; a pick inside the variance pre-set is no pick."""

    name = "pkbaer"

    @dataclass
    class Params:
        tdownmax_s: float = 0.2
        tupevent_s: float = 0.6
        thr1: float = 7.0
        thr2: float = 12.0
        preset_s: float = 1.0
        p_dur_s: float = 1.0
        freqmin_hz: float = 1.0
        freqmax_hz: float = 20.0

    grid = {"thr1": [3.0, 5.0, 7.0, 10.0, 15.0], "thr2": [8.0, 12.0, 20.0], "tupevent_s": [0.3, 0.6]}

    def pick(self, waveform, fs):
        from obspy.signal.trigger import pk_baer

        p = self.params
        z = _bandpass(waveform[0], fs, p.freqmin_hz, p.freqmax_hz).astype(np.float32)
        preset = max(1, int(p.preset_s * fs))
        t, _ = pk_baer(z, int(round(fs)), max(1, int(p.tdownmax_s * fs)), max(1, int(p.tupevent_s * fs)),
                       p.thr1, p.thr2, preset, max(1, int(p.p_dur_s * fs)))
        return {"P": [float(t)] if t > preset else [], "S": []}


class ArPicker(_Picker):
    """AR-AIC picker for P (on Z) and S (on N, E); S is skipped when P < lta_s or N and E are dead."""

    name = "arpick"
    phases = ("P", "S")

    @dataclass
    class Params:
        f1_hz: float = 1.0
        f2_hz: float = 20.0
        lta_p_s: float = 1.0
        sta_p_s: float = 0.1
        lta_s_s: float = 4.0
        sta_s_s: float = 1.0
        m_p: int = 2
        m_s: int = 8
        l_p_s: float = 0.1
        l_s_s: float = 0.2

    grid = {"lta_p_s": [1.0, 2.0], "sta_p_s": [0.1, 0.2], "lta_s_s": [2.0, 4.0], "sta_s_s": [0.5, 1.0],
            "m_s": [4, 8]}

    def pick(self, waveform, fs):
        from obspy.signal.trigger import ar_pick

        p = self.params
        z, n, e = (np.ascontiguousarray(waveform[k] - np.mean(waveform[k]), dtype=np.float32) for k in range(3))
        args = (fs, p.f1_hz, min(p.f2_hz, 0.45 * fs), p.lta_p_s, p.sta_p_s, p.lta_s_s, p.sta_s_s,
                int(p.m_p), int(p.m_s), p.l_p_s, p.l_s_s)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            t_p, _ = ar_pick(z, n, e, *args, s_pick=False)
            out = {"P": [], "S": []}
            # ar_pick answers about lta_p when it finds nothing: that is no pick
            if not (math.isfinite(t_p) and t_p > p.lta_p_s + 1.5 / fs):
                return out
            out["P"].append(float(t_p * fs))
            dead = not (np.any(n) and np.any(e))
            if t_p >= p.lta_s_s and not dead:
                _, t_s = ar_pick(z, n, e, *args, s_pick=True)
                if math.isfinite(t_s) and t_s > t_p:
                    out["S"].append(float(t_s * fs))
        return out


BASELINES = {c.name: c for c in (StaLtaPicker, PkBaerPicker, ArPicker)}


def make(name, **params):
    """A baseline picker by name ('stalta', 'pkbaer', 'arpick') with parameter overrides."""
    if name not in BASELINES:
        raise ConfigError("baseline %r; allowed: %s" % (name, ", ".join(BASELINES)))
    return BASELINES[name](**params)


def run(picker, ws: WindowSet) -> Dict[str, list]:
    """``{phase: per-window lists of pick samples}`` of ``picker`` on every window of ``ws``."""
    out = {"P": [], "S": []}
    for w in ws.waveforms:
        got = picker.pick(np.asarray(w, dtype=np.float64), ws.fs)
        for ph in out:
            out[ph].append(got.get(ph, []))
    return out


def run_stream(picker, data, fs, start_ns=0, window_s=30.0, hop_s=10.0, merge_s=1.0) -> Dict[str, np.ndarray]:
    """Slide ``picker`` over a continuous (3, N) record: ``{phase: pick times, int64 ns}``.

    Windows of ``window_s`` seconds every ``hop_s`` seconds (the last one
    flush with the end); picks of one phase closer than ``merge_s`` seconds
    to an earlier one are the same pick seen twice and are dropped.
    """
    if not (0 < hop_s <= window_s):
        raise ConfigError("hop_s=%r and window_s=%r seconds: need 0 < hop_s <= window_s" % (hop_s, window_s))
    data = np.asarray(data, dtype=np.float64)
    n, w, h = data.shape[1], int(round(window_s * fs)), int(round(hop_s * fs))
    starts = list(range(0, max(n - w, 0) + 1, h))
    if n > w and starts[-1] != n - w:
        starts.append(n - w)
    found = {"P": [], "S": []}
    for a in starts:
        got = picker.pick(data[:, a: a + w], fs)
        for ph in found:
            found[ph].extend(a + float(x) for x in got.get(ph, []))
    out = {}
    for ph, xs in found.items():
        kept = []
        for x in sorted(xs):
            if not kept or x - kept[-1] > merge_s * fs:
                kept.append(x)
        out[ph] = np.array([int(start_ns) + int(round(x * 1e9 / fs)) for x in kept], dtype=np.int64)
    return out


def score(picker, events: WindowSet, noise: WindowSet = None, **kwargs) -> Scores:
    """Run ``picker`` on labeled ``events`` (and ``noise`` windows) and score it."""
    picks = run(picker, events)
    noise_picks = noise_seconds = None
    if noise is not None and len(noise):
        noise_picks = run(picker, noise)
        noise_seconds = len(noise) * noise.window_samples / noise.fs
    phases = ("P", "S")
    return evaluate_windows({"P": events.p_idx, "S": events.s_idx}, picks, fs=events.fs, noise_picks=noise_picks,
                            noise_seconds=noise_seconds, phases=phases, **kwargs)


def tune(name, val: WindowSet, grid=None, max_points=None):
    """Grid search on the validation windows: returns ``(picker, best_objective, table)``.

    The objective is the F1 of the picker's phases (mean of P and S for
    arpick).  For 'stalta', the median P residual of the best point is then
    removed by setting ``shift_s`` (a trigger's constant delay).
    ``table`` lists (params dict, objective) for every point tried.
    """
    cls = BASELINES.get(name)
    if cls is None:
        raise ConfigError("baseline %r; allowed: %s" % (name, ", ".join(BASELINES)))
    grid = dict(cls.grid if grid is None else grid)
    keys = sorted(grid)
    points = list(itertools.product(*(grid[k] for k in keys)))
    if max_points is not None:
        points = points[: int(max_points)]
    best, best_obj, table = None, -1.0, []
    for values in points:
        picker = cls(**dict(zip(keys, values)))
        obj = mean_f1(score(picker, val), picker.phases)
        table.append((dict(zip(keys, values)), obj))
        log.debug("%s %.4f", picker, obj)
        if obj > best_obj:
            best, best_obj = picker, obj
    if name == "stalta" and best is not None:
        res = score(best, val)["P"]
        if res.matched:
            best = cls(best.params, shift_s=float(np.median(res.residuals_s)))
            best_obj = mean_f1(score(best, val), best.phases)
    return best, best_obj, table


def station_halves(stations, seed=0):
    """Split windows by station into two halves (validation, test): two boolean masks.

    Stations are shuffled with ``seed`` and dealt alternately, so no station
    is in both halves.
    """
    names = np.unique(np.asarray(stations))
    rng = np.random.default_rng(seed)
    names = names[rng.permutation(len(names))]
    first = set(names[0::2])
    mask = np.array([s in first for s in stations])
    return mask, ~mask
