"""Training and evaluation windows cut from labeled traces.

Training windows are random crops of the long (90 s) NCEDC traces, so P
lands anywhere in ``p_range`` of the window; a share of them are real noise
windows, or have real noise added, or keep only their vertical component
(:class:`RandomWindows`).  Validation and test windows are the fixed 30 s
NCEDC crops (re-cut to the model's window length, :func:`eval_windows`) and
the pre-P noise windows.  Synthetic windows from ``fieldpick.lab.synthetic``
serve an optional pre-training stage (:func:`synthetic_source`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass

import numpy as np

from fieldpick.edge.card import Normalisation
from fieldpick.edge.errors import ConfigError, DataError
from fieldpick.edge.stream.windows import compress, normalise
from fieldpick.train.data.datasets import NCEDC_DIR, WindowSet, load_ncedc, load_ncedc_noise

__all__ = [
    "RealData", "load_real", "eval_windows", "pad_noise", "linear_part", "RandomWindows", "OnsetWindows",
    "station_split", "synthetic_source", "real_source",
]


@dataclass
class RealData:
    """The NCEDC set as the trainer uses it (all arrays share the trace order).

    events: 90 s traces (9001 samples, P at sample 3000) for random crops.
    crop_offset: (N,) where the published 30 s crop starts in each 90 s trace.
    noise: the 29 s pre-P noise windows of the same traces.
    """

    events: WindowSet
    crop_offset: np.ndarray
    noise: WindowSet

    def subset(self, index):
        return RealData(self.events.subset(index), self.crop_offset[index], self.noise.subset(index))

    @property
    def station(self):
        return self.events.station


def load_real(root=None) -> RealData:
    """Load the NCEDC 90 s traces, their 30 s crop offsets and the pre-P noise windows."""
    root = root or NCEDC_DIR
    events = load_ncedc(root, "90s")
    noise = load_ncedc_noise(root)
    path = os.path.join(root, "phasenet_ncedc_30s.npz")
    if not os.path.exists(path):
        raise DataError("NCEDC file %s is missing; point FIELDPICK_NCEDC at the NCEDC folder" % path)
    z = np.load(path, allow_pickle=False)
    if not np.array_equal(z["trace_name"], events.meta["trace_name"]):
        raise DataError("%s lists its traces in another order than the 90 s file" % path)
    return RealData(events, z["crop_offset_in_90s"].astype(np.int64), noise)


def eval_windows(data: RealData, window_samples) -> WindowSet:
    """The fixed evaluation windows: each 90 s trace cut at its published 30 s crop offset.

    With ``window_samples`` 3000 these are exactly the ``phasenet_ncedc_30s`` windows.
    """
    ev = data.events
    if int(data.crop_offset.max()) + window_samples > ev.window_samples:
        raise DataError("window_samples %d runs past the %d-sample traces" % (window_samples, ev.window_samples))
    idx = data.crop_offset[:, None] + np.arange(window_samples)[None, :]
    waves = np.take_along_axis(ev.waveforms, np.broadcast_to(idx[:, None, :], (len(ev), 3, window_samples)), -1)
    return WindowSet(waves, ev.p_idx - data.crop_offset, ev.s_idx - data.crop_offset, ev.station, ev.fs,
                     dict(ev.meta))


def pad_noise(noise: WindowSet, window_samples):
    """Noise windows cut or reflect-padded at the end to ``window_samples``; returns (waves, valid_samples)."""
    w = noise.waveforms
    valid = min(w.shape[-1], window_samples)
    if w.shape[-1] >= window_samples:
        return w[..., :window_samples].copy(), valid
    extra = window_samples - w.shape[-1]
    if extra >= w.shape[-1]:
        raise DataError("noise windows of %d samples cannot be padded to %d" % (w.shape[-1], window_samples))
    return np.pad(w, ((0, 0), (0, 0), (0, extra)), mode="reflect"), valid


def linear_part(norm: Normalisation) -> Normalisation:
    """``norm`` without its compression: the detrend and scaling, under which windows can be mixed."""
    return dataclasses.replace(norm, compress="none")


class RandomWindows:
    """Random training windows cut from long labeled traces, with real noise mixed in.

    Each call returns ``(x, p, s)``: x (B, 3, T) float32 normalised by
    ``norm`` (the model card's :class:`~fieldpick.edge.card.Normalisation`,
    :func:`fieldpick.edge.stream.windows.normalise`; noise is mixed in
    before its compression), p and s (B,) arrival samples in the window
    (NaN: absent or a noise window).
    P lands uniformly in ``p_range`` (fractions of T) where the trace allows.
    ``noise_fraction`` of the windows are pure noise windows, ``noise_add_fraction``
    of the event windows get a random noise window added at a random
    signal-to-noise ratio, and ``vertical_only_fraction`` of all windows
    lose their N and E components (as 39 of the NCEDC traces have).
    ``soft``: optional (N, 2, L) teacher P/S probabilities of the traces;
    then each call also returns their crops (zero for pure noise windows).
    """

    def __init__(self, events: WindowSet, noise=None, window_samples=3000, p_range=(0.1, 0.75),
                 noise_fraction=0.2, noise_add_fraction=0.2, vertical_only_fraction=0.15, norm=None, soft=None):
        if soft is not None and soft.shape[0] != len(events) or soft is not None and soft.shape[2] != \
                events.window_samples:
            raise DataError("soft targets of shape %s for %d traces of %d samples"
                            % (soft.shape, len(events), events.window_samples))
        self.soft = soft
        if events.window_samples < window_samples:
            raise DataError("event traces have %d samples; need >= window_samples %d"
                            % (events.window_samples, window_samples))
        if len(events) == 0:
            raise DataError("no event traces to train on")
        self.events = events
        self.noise = None
        if noise is not None and len(noise):
            self.noise, self.noise_valid = pad_noise(noise, window_samples)
        self.window_samples = window_samples
        self.p_range = p_range
        self.noise_fraction = noise_fraction if self.noise is not None else 0.0
        self.noise_add_fraction = noise_add_fraction if self.noise is not None else 0.0
        self.vertical_only_fraction = vertical_only_fraction
        self.norm = norm if norm is not None else Normalisation()
        self.norm.validate("RandomWindows norm")

    def crop_starts(self, rng, rows):
        t, n = self.window_samples, self.events.window_samples
        p = self.events.p_idx[rows]
        anchor = np.where(np.isnan(p), self.events.s_idx[rows], p)
        want = anchor - rng.uniform(self.p_range[0], self.p_range[1], len(rows)) * t
        want = np.where(np.isnan(want), rng.uniform(0, n - t, len(rows)), want)
        return np.clip(np.round(want), 0, n - t).astype(np.int64)

    def __call__(self, rng, batch, compressed=True):
        """``compressed=False``: the windows before the normalisation's compression step."""
        t = self.window_samples
        lin = linear_part(self.norm)
        rows = rng.integers(0, len(self.events), batch)
        start = self.crop_starts(rng, rows)
        idx = start[:, None] + np.arange(t)[None, :]
        x = np.take_along_axis(self.events.waveforms[rows], np.broadcast_to(idx[:, None, :], (batch, 3, t)), -1)
        x = normalise(x, lin)
        p = self.events.p_idx[rows] - start
        s = self.events.s_idx[rows] - start
        if self.noise is not None:
            pure = rng.random(batch) < self.noise_fraction
            added = ~pure & (rng.random(batch) < self.noise_add_fraction)
            picks = rng.integers(0, len(self.noise), batch)
            nz = normalise(self.noise[picks], lin)
            x[pure] = nz[pure]
            p[pure] = np.nan
            s[pure] = np.nan
            gain = 10 ** (-rng.uniform(0, 20, batch) / 20)[:, None, None]  # 0-20 dB below the event
            x[added] = normalise(x[added] + gain[added] * nz[added], lin)
        vertical = rng.random(batch) < self.vertical_only_fraction
        x[vertical, 1:] = 0.0
        if compressed:
            x = compress(x, self.norm)
        if self.soft is None:
            return x, p, s
        soft = np.take_along_axis(self.soft[rows], np.broadcast_to(idx[:, None, :], (batch, 2, t)), -1)
        soft = soft.astype(np.float32)
        if self.noise is not None:
            soft[pure] = 0.0
        return x, p, s, soft

    def __str__(self):
        squash = "" if self.norm.compress == "none" else ", %s %g" % (self.norm.compress, self.norm.compress_scale)
        return ("RandomWindows(%d traces, T=%d, P in %s of T, noise %.2f, noise added %.2f, vertical-only %.2f%s)"
                % (len(self.events), self.window_samples, self.p_range, self.noise_fraction,
                   self.noise_add_fraction, self.vertical_only_fraction, squash))


class OnsetWindows:
    """CPIC training windows: short windows with a P onset, an S onset or no onset at ``onset_sample``.

    Draws from :class:`RandomWindows` crops, so the same noise and
    vertical-only mixing applies.  Returns ``(x, cls)``: (B, 3, W) normalised
    and (B,) int64 classes 0 noise, 1 P, 2 S (a third each).  Positive windows
    are jittered by up to ``jitter`` samples; noise windows keep their
    candidate sample at least ``3 * jitter + 10`` samples from any arrival.
    """

    def __init__(self, source: RandomWindows, window_samples, onset_sample, jitter=3):
        self.source, self.w, self.onset, self.jitter = source, window_samples, onset_sample, jitter

    def __call__(self, rng, batch):
        x, p, s = self.source(rng, batch, compressed=False)
        t = x.shape[-1]
        cls = rng.integers(0, 3, batch)
        target = np.where(cls == 1, p, np.where(cls == 2, s, np.nan))
        ok = np.isfinite(target) & (target - self.onset - self.jitter >= 0) & \
            (target - self.onset + self.w + self.jitter <= t)
        cls = np.where(ok, cls, 0)
        onset = np.where(ok, target + rng.integers(-self.jitter, self.jitter + 1, batch), 0.0)
        for i in np.flatnonzero(cls == 0):  # noise: a candidate far from both arrivals
            for _ in range(20):
                c = rng.integers(self.onset, t - self.w + self.onset + 1)
                if all(not np.isfinite(a) or abs(c - a) > 3 * self.jitter + 10 for a in (p[i], s[i])):
                    break
            onset[i] = c
        start = (onset - self.onset).astype(np.int64)
        idx = start[:, None] + np.arange(self.w)[None, :]
        out = np.take_along_axis(x, np.broadcast_to(idx[:, None, :], (batch, 3, self.w)), -1)
        return normalise(out, self.source.norm), cls.astype(np.int64)

    def __str__(self):
        return "OnsetWindows(W=%d, onset at %d, jitter %d, from %s)" % (self.w, self.onset, self.jitter, self.source)


def station_split(stations, fraction, seed):
    """Boolean mask of the windows whose station falls in a seeded ``fraction`` of the stations."""
    names = np.unique(stations)
    rng = np.random.default_rng(seed)
    held = set(rng.choice(names, max(1, int(round(fraction * len(names)))), replace=False))
    return np.array([s in held for s in stations])


_SYNTHETIC = {}  # (windows, seed, samples, options) -> the generated event and noise windows, this process only


def synthetic_source(cfg, window_samples, norm=None):
    """Synthetic training windows from ``fieldpick.lab.synthetic`` (pre-training), normalised by ``norm``."""
    try:
        from fieldpick.lab import synthetic
    except ImportError:
        raise ConfigError("pretrain_windows needs fieldpick.lab.synthetic, which is not in this build") from None
    length = 2 * window_samples
    key = (cfg.pretrain_windows, cfg.seed, length, json.dumps(cfg.synthetic, sort_keys=True))
    if key not in _SYNTHETIC:  # generating thousands of windows takes minutes; folds share them
        _SYNTHETIC.clear()
        _SYNTHETIC[key] = (
            synthetic.event_windows(cfg.pretrain_windows, cfg.seed, window_samples=length, fs=100.0,
                                    **cfg.synthetic),
            synthetic.noise_windows(max(1, cfg.pretrain_windows // 4), cfg.seed + 1, window_samples=length, fs=100.0,
                                    **cfg.synthetic),
        )
    ev, nz = _SYNTHETIC[key]
    events = WindowSet(ev["waveforms"].astype(np.float32), ev["p_idx"].astype(float), ev["s_idx"].astype(float),
                       np.array(["SYN"] * len(ev["waveforms"])))
    noise = WindowSet(nz["waveforms"].astype(np.float32), nz["p_idx"].astype(float), nz["s_idx"].astype(float),
                      np.array(["SYN"] * len(nz["waveforms"])))
    return RandomWindows(events, noise, window_samples, cfg.p_range, cfg.noise_fraction,
                         cfg.noise_add_fraction, cfg.vertical_only_fraction, norm=norm)


def real_source(cfg, data: RealData, window_samples, norm=None):
    """Random crops of the real traces (:class:`RandomWindows`), normalised by ``norm`` (the model card's)."""
    return RandomWindows(data.events, data.noise, window_samples, cfg.p_range, cfg.noise_fraction,
                         cfg.noise_add_fraction, cfg.vertical_only_fraction, norm=norm)
