"""Augmentations as small composable callables (SeisBench-style: validate, transform, describe).

An *example* is a dict::

    {"waveform": (3, W) float32 ZNE, "p_idx": (k,) float64, "s_idx": (m,) float64, "fs": Hz}

``p_idx``/``s_idx`` list every arrival of the phase in the window (sample
indices, floats; empty when none), so superposed events keep all their
labels.  :func:`example` makes one from a WindowSet row and :func:`stack`
turns a list of them into the (B, 3, T) batch and (B,) first-arrival arrays
the label builders take.

Every augmentation validates its options in ``__init__``, returns a *new*
example from ``__call__(example, rng)`` (the input is never changed in
place) and describes itself in ``__str__``.  :class:`Compose` runs a list in
order.  All randomness comes from the ``rng`` passed in (a
``numpy.random.Generator``), so a seeded pipeline is reproducible.
"""

from __future__ import annotations

import math
from typing import Callable, List, Sequence

import numpy as np

from fieldpick.edge.errors import ConfigError, DataError

from .datasets import WindowSet

__all__ = [
    "example", "stack", "Compose", "RandomWindow", "AddNoise", "Gain", "ChannelDrop", "Gaps", "Superpose",
    "Resample", "SimulateRate", "snr_db",
]


def _labels(v):
    a = np.atleast_1d(np.asarray(v, dtype=np.float64)).ravel()
    return a[np.isfinite(a)]


def example(ws: WindowSet, i, extra_labels=True) -> dict:
    """Example ``i`` of a WindowSet (a copy).  With ``extra_labels``, meta 'p2_idx'/'s2_idx' join the labels."""
    p, s = [ws.p_idx[i]], [ws.s_idx[i]]
    if extra_labels:
        for key, out in (("p2_idx", p), ("s2_idx", s)):
            if key in ws.meta:
                out.append(float(ws.meta[key][i]))
    return {"waveform": np.array(ws.waveforms[i], dtype=np.float32), "p_idx": _labels(p), "s_idx": _labels(s),
            "fs": float(ws.fs)}


def stack(examples: Sequence[dict]):
    """(x (B, 3, T) float32, p (B,), s (B,)): the first arrival of each phase, NaN when none."""
    if not examples:
        raise DataError("stack needs at least one example")
    lengths = {e["waveform"].shape[-1] for e in examples}
    if len(lengths) != 1:
        raise DataError("examples have lengths %s samples; crop them to one length first (RandomWindow)" % sorted(lengths))
    x = np.stack([e["waveform"] for e in examples]).astype(np.float32)
    first = [(np.min(e["p_idx"]) if len(e["p_idx"]) else np.nan, np.min(e["s_idx"]) if len(e["s_idx"]) else np.nan)
             for e in examples]
    p, s = (np.array(v, dtype=np.float64) for v in zip(*first))
    return x, p, s


def _copy(ex, waveform=None, **changes):
    out = dict(ex)
    out["waveform"] = np.array(ex["waveform"] if waveform is None else waveform, dtype=np.float32)
    out["p_idx"] = np.array(ex["p_idx"], dtype=np.float64)
    out["s_idx"] = np.array(ex["s_idx"], dtype=np.float64)
    out.update(changes)
    return out


def _keep_inside(idx, T):
    idx = np.asarray(idx, dtype=np.float64)
    return idx[(idx >= 0) & (idx < T)]


def _range(name, r, lo=-math.inf, hi=math.inf):
    try:
        a, b = float(r[0]), float(r[1])
    except (TypeError, IndexError, ValueError):
        raise ConfigError("%s=%r; expected a (low, high) pair" % (name, r)) from None
    if not (lo <= a <= b <= hi):
        raise ConfigError("%s=%r; need %g <= low <= high <= %g" % (name, r, lo, hi))
    return a, b


def _prob(name, p):
    if not 0.0 <= float(p) <= 1.0:
        raise ConfigError("%s=%r; a probability must lie in [0, 1]" % (name, p))
    return float(p)


def snr_db(waveform, p_idx, noise, fs, signal_s=2.0):
    """10 log10(power of ``waveform`` on Z in ``signal_s`` after P / power of ``noise`` on Z).

    The same definition as :mod:`fieldpick.lab.synthetic` uses; without a P
    label the whole window is the signal.
    """
    z = np.asarray(waveform[0], dtype=np.float64)
    if len(p_idx):
        i0 = int(max(math.ceil(float(np.min(p_idx))), 0))
        z = z[i0: i0 + int(signal_s * fs)]
    zc = z - z.mean() if len(z) else z
    n = np.asarray(noise[0], dtype=np.float64)
    pn = np.mean((n - n.mean()) ** 2)
    ps = np.mean(zc ** 2) if len(zc) else 0.0
    return 10.0 * math.log10(max(ps, 1e-300) / max(pn, 1e-300))


class Compose:
    """Run augmentations in order: ``Compose([RandomWindow(3000), Gain()])(example, rng)``."""

    def __init__(self, steps: List[Callable]):
        for k, s in enumerate(steps):
            if not callable(s):
                raise ConfigError("step %d (%r) is not callable" % (k, s))
        self.steps = list(steps)

    def __call__(self, ex, rng):
        for s in self.steps:
            ex = s(ex, rng)
        return ex

    def __str__(self):
        return "Compose(\n  " + ",\n  ".join(str(s) for s in self.steps) + "\n)"


class RandomWindow:
    """Crop ``window_samples`` from a longer waveform.

    With an arrival to anchor on (P, else S), it lands uniformly within
    ``anchor_range`` (fractions of the window) where the record allows; else
    the crop is uniform.  Labels shift with the crop; those outside it go.
    A record shorter than the window is zero-padded at the end.
    """

    def __init__(self, window_samples=3000, anchor_range=(0.05, 0.9)):
        if int(window_samples) != window_samples or window_samples < 1:
            raise ConfigError("window_samples=%r; it must be a positive integer (samples)" % (window_samples,))
        self.window_samples = int(window_samples)
        self.anchor_range = _range("anchor_range", anchor_range, 0.0, 1.0)

    def __call__(self, ex, rng):
        x = ex["waveform"]
        T, W = self.window_samples, x.shape[-1]
        if W <= T:
            out = np.zeros((3, T), dtype=np.float32)
            out[:, :W] = x
            return _copy(ex, out)
        anchors = ex["p_idx"] if len(ex["p_idx"]) else ex["s_idx"]
        if len(anchors):
            a = float(rng.choice(anchors))
            start = int(round(a - rng.uniform(*self.anchor_range) * T))
        else:
            start = int(rng.integers(0, W - T + 1))
        start = min(max(start, 0), W - T)
        return _copy(ex, x[:, start: start + T], p_idx=_keep_inside(ex["p_idx"] - start, T),
                     s_idx=_keep_inside(ex["s_idx"] - start, T))

    def __str__(self):
        return "RandomWindow(window_samples=%d, anchor_range=%s)" % (self.window_samples, self.anchor_range)


class AddNoise:
    """Add real or synthetic noise so that the event's SNR (see :func:`snr_db`) hits a target.

    noise: a WindowSet of noise windows (e.g. ``load_ncedc_noise()``), or
    'synthetic' for :func:`fieldpick.lab.synthetic.noise_windows`.
    snr_db_range: the target, drawn uniformly (dB).  prob: chance of applying.
    A noise window shorter than the example is extended by reflection.
    On an example without arrivals the noise is added at the level that
    the same SNR would give relative to the whole window.
    """

    def __init__(self, noise="synthetic", snr_db_range=(0.0, 30.0), prob=1.0):
        if isinstance(noise, str) and noise != "synthetic":
            raise ConfigError("noise=%r; allowed: 'synthetic' or a WindowSet of noise windows" % (noise,))
        if not isinstance(noise, str) and (not isinstance(noise, WindowSet) or len(noise) == 0):
            raise ConfigError("noise must be 'synthetic' or a non-empty WindowSet, got %r" % (type(noise).__name__,))
        self.noise = noise
        self.snr_db_range = _range("snr_db_range", snr_db_range)
        self.prob = _prob("prob", prob)

    def _noise(self, rng, T, fs):
        if isinstance(self.noise, str):
            from fieldpick.lab.synthetic import noise_windows

            return noise_windows(1, int(rng.integers(0, 2 ** 31)), window_samples=T, fs=fs)["waveforms"][0]
        if abs(self.noise.fs - fs) > 1e-9:
            raise DataError("noise windows are at %g Hz, the example at %g Hz; resample one of them" % (self.noise.fs, fs))
        n = self.noise.waveforms[int(rng.integers(0, len(self.noise)))].astype(np.float64)
        if n.shape[-1] < T:
            n = np.pad(n, ((0, 0), (0, T - n.shape[-1])), mode="reflect")
        start = int(rng.integers(0, n.shape[-1] - T + 1))
        return n[:, start: start + T]

    def __call__(self, ex, rng):
        if rng.random() >= self.prob:
            return ex
        x = ex["waveform"].astype(np.float64)
        noise = self._noise(rng, x.shape[-1], ex["fs"]).astype(np.float64)
        noise = noise - noise.mean(axis=-1, keepdims=True)
        if not np.any(noise[0]):
            return ex
        target = rng.uniform(*self.snr_db_range)
        now = snr_db(x, ex["p_idx"], noise, ex["fs"])
        gain = 10.0 ** ((now - target) / 20.0)
        return _copy(ex, x + gain * noise)

    def __str__(self):
        src = "synthetic" if isinstance(self.noise, str) else "%d windows" % len(self.noise)
        return "AddNoise(noise=%s, snr_db_range=%s, prob=%g)" % (src, self.snr_db_range, self.prob)


class Gain:
    """Multiply by ``10**(g/20)``, g uniform in ``db_range`` (one gain, or one per channel)."""

    def __init__(self, db_range=(-20.0, 20.0), per_channel=False):
        self.db_range = _range("db_range", db_range)
        self.per_channel = bool(per_channel)

    def __call__(self, ex, rng):
        g = rng.uniform(*self.db_range, size=(3, 1) if self.per_channel else (1, 1))
        return _copy(ex, ex["waveform"] * (10.0 ** (g / 20.0)).astype(np.float32))

    def __str__(self):
        return "Gain(db_range=%s, per_channel=%s)" % (self.db_range, self.per_channel)


class ChannelDrop:
    """Zero channels, as dead channels and vertical-only stations do.

    mode: 'vertical_only' (N and E become zero) or 'one' (one random channel).
    """

    MODES = ("vertical_only", "one")

    def __init__(self, prob=0.15, mode="vertical_only"):
        if mode not in self.MODES:
            raise ConfigError("mode=%r; allowed: %s" % (mode, ", ".join(self.MODES)))
        self.prob = _prob("prob", prob)
        self.mode = mode

    def __call__(self, ex, rng):
        if rng.random() >= self.prob:
            return ex
        x = np.array(ex["waveform"], dtype=np.float32)
        if self.mode == "vertical_only":
            x[1:] = 0.0
        else:
            x[int(rng.integers(0, 3))] = 0.0
        return _copy(ex, x)

    def __str__(self):
        return "ChannelDrop(prob=%g, mode=%r)" % (self.prob, self.mode)


class Gaps:
    """Zero up to ``max_gaps`` stretches of ``length_s`` seconds on all channels (a telemetry gap
    filled with zeros).  Labels stay: the arrival happened even if a gap hides it."""

    def __init__(self, prob=0.1, length_s=(0.1, 3.0), max_gaps=1):
        self.prob = _prob("prob", prob)
        self.length_s = _range("length_s", length_s, 0.0)
        if int(max_gaps) != max_gaps or max_gaps < 1:
            raise ConfigError("max_gaps=%r; it must be an integer >= 1" % (max_gaps,))
        self.max_gaps = int(max_gaps)

    def __call__(self, ex, rng):
        if rng.random() >= self.prob:
            return ex
        x = np.array(ex["waveform"], dtype=np.float32)
        T = x.shape[-1]
        for _ in range(int(rng.integers(1, self.max_gaps + 1))):
            n = max(1, int(round(rng.uniform(*self.length_s) * ex["fs"])))
            a = int(rng.integers(0, max(T - n, 0) + 1))
            x[:, a: a + n] = 0.0
        return _copy(ex, x)

    def __str__(self):
        return "Gaps(prob=%g, length_s=%s, max_gaps=%d)" % (self.prob, self.length_s, self.max_gaps)


class Superpose:
    """Add a second event window, shifted and scaled, and keep both events' labels.

    events: a WindowSet of event windows at the example's rate.
    scale_db_range: amplitude of the added event relative to the example's
    peak (dB, after normalising both by their peak absolute value).
    The added window is shifted by a uniform number of samples in
    ``[-T/2, T/2]``; the part shifted out is dropped, with its labels.
    """

    def __init__(self, events: WindowSet, prob=0.1, scale_db_range=(-20.0, 0.0)):
        if not isinstance(events, WindowSet) or len(events) == 0:
            raise ConfigError("events must be a non-empty WindowSet, got %r" % (type(events).__name__,))
        self.events = events
        self.prob = _prob("prob", prob)
        self.scale_db_range = _range("scale_db_range", scale_db_range)

    def __call__(self, ex, rng):
        if rng.random() >= self.prob:
            return ex
        if abs(self.events.fs - ex["fs"]) > 1e-9:
            raise DataError("superposed events are at %g Hz, the example at %g Hz" % (self.events.fs, ex["fs"]))
        x = ex["waveform"].astype(np.float64)
        T = x.shape[-1]
        other = example(self.events, int(rng.integers(0, len(self.events))))
        y = np.zeros((3, T))
        src = other["waveform"].astype(np.float64)[:, :T]
        shift = int(rng.integers(-T // 2, T // 2 + 1))
        a, b = max(shift, 0), min(T, src.shape[-1] + shift)
        if b > a:
            y[:, a:b] = src[:, a - shift: b - shift]
        y -= y.mean(axis=-1, keepdims=True)
        peak_x, peak_y = np.abs(x).max(), np.abs(y).max()
        if peak_y == 0:
            return ex
        y *= (peak_x if peak_x > 0 else 1.0) / peak_y * 10.0 ** (rng.uniform(*self.scale_db_range) / 20.0)
        p = np.concatenate([ex["p_idx"], _keep_inside(other["p_idx"] + shift, T)])
        s = np.concatenate([ex["s_idx"], _keep_inside(other["s_idx"] + shift, T)])
        return _copy(ex, x + y, p_idx=np.sort(p), s_idx=np.sort(s))

    def __str__(self):
        return "Superpose(%d events, prob=%g, scale_db_range=%s)" % (len(self.events), self.prob, self.scale_db_range)


def _resample(x, fs_in, fs_out):
    """scipy's resample_poly: the same anti-alias filter as the station's Resampler, no delay."""
    from scipy.signal import resample_poly

    from fieldpick.edge.stream.resample import ratio

    up, down = ratio(fs_in, fs_out)
    return resample_poly(np.asarray(x, dtype=np.float64), up, down, axis=-1), up / down


class Resample:
    """Bring an example recorded at any rate (20, 40, 50, 200, 250 Hz...) to ``fs_out`` Hz.

    Output sample m sits at input time ``m * fs_in / fs_out``, so a label at
    input sample i moves to ``i * fs_out / fs_in``.
    """

    def __init__(self, fs_out=100.0):
        if not float(fs_out) > 0:
            raise ConfigError("fs_out=%r Hz; it must be > 0" % (fs_out,))
        self.fs_out = float(fs_out)

    def __call__(self, ex, rng=None):
        if abs(ex["fs"] - self.fs_out) < 1e-9:
            return ex
        y, k = _resample(ex["waveform"], ex["fs"], self.fs_out)
        T = y.shape[-1]
        return _copy(ex, y, p_idx=_keep_inside(ex["p_idx"] * k, T), s_idx=_keep_inside(ex["s_idx"] * k, T),
                     fs=self.fs_out)

    def __str__(self):
        return "Resample(fs_out=%g)" % self.fs_out


class SimulateRate:
    """Pretend the example was recorded at a random rate from ``rates`` and resampled back.

    Down to 20-50 Hz removes what lies above the lower Nyquist (as a 20 Hz
    station would); up to 200/250 Hz and back leaves the band intact but
    adds the resampling filter's ripple.  Length and labels are unchanged.
    """

    def __init__(self, rates=(20.0, 40.0, 50.0, 200.0, 250.0), prob=0.2):
        rates = tuple(float(r) for r in rates)
        if not rates or min(rates) <= 0:
            raise ConfigError("rates=%r; give one or more rates > 0 Hz" % (rates,))
        self.rates = rates
        self.prob = _prob("prob", prob)

    def __call__(self, ex, rng):
        if rng.random() >= self.prob:
            return ex
        r = float(rng.choice(self.rates))
        fs = ex["fs"]
        y, _ = _resample(ex["waveform"], fs, r)
        z, _ = _resample(y, r, fs)
        T = ex["waveform"].shape[-1]
        out = np.zeros((3, T))
        out[:, : min(T, z.shape[-1])] = z[:, :T]
        return _copy(ex, out)

    def __str__(self):
        return "SimulateRate(rates=%s, prob=%g)" % (self.rates, self.prob)

