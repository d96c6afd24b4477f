"""What every teacher shares: input checks, resampling to 100 Hz, and fixed-window scanning.

A teacher turns waveforms ``(N, 3, T)`` (Z, N, E, raw units, any ``T >= 1``)
into per-sample P and S probabilities ``(N, 2, T)`` on the input's own
samples.  Subclasses implement :meth:`Teacher._predict100`, which sees the
waveforms at 100 Hz; :class:`FixedWindowTeacher` adds the scan over
overlapping windows for models with a fixed input length.
"""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np

from fieldpick.edge.errors import ConfigError, DataError

__all__ = ["Teacher", "FixedWindowTeacher", "check_waves", "unitless", "window_starts", "scan_windows", "edge_taper",
           "to_rate", "from_rate", "teacher_file", "ENV", "COMBINE"]

#: environment variable naming the teachers folder
ENV = "FIELDPICK_TEACHERS"

FS = 100.0  # every teacher here was trained at 100 Hz

#: how overlapping window outputs are combined (see :func:`scan_windows`)
COMBINE = ("taper", "mean", "max")


def check_waves(waves):
    """``waves`` as a float32 array (N, 3, T), or a :class:`DataError` naming what is wrong."""
    x = np.asarray(waves)
    if x.ndim != 3 or x.shape[1] != 3:
        raise DataError("waves of shape %r; a teacher takes (N, 3, T) in Z, N, E order" % (x.shape,))
    if x.shape[2] < 1:
        raise DataError("waves of %d samples; a teacher needs T >= 1" % x.shape[2])
    if not np.issubdtype(x.dtype, np.number):
        raise DataError("waves of dtype %s; give real numbers" % x.dtype)
    x = x.astype(np.float32, copy=False)
    bad = ~np.isfinite(x)
    if bad.any():
        raise DataError("waves hold %d NaN or infinite samples (first in trace %d); fill or drop the gaps first"
                        % (int(bad.sum()), int(np.argwhere(bad)[0][0])))
    return x


def unitless(x):
    """Each trace divided by the largest per-channel standard deviation of its samples (traces of zeros
    unchanged).  Every teacher normalises each window itself, so one factor per trace changes nothing
    but the small constants those normalisations add (1e-10, 1e-6): recordings in m/s peak near 1e-13
    to 1e-6, where such a constant would swamp the signal."""
    scale = x.astype(np.float64).std(axis=-1).max(axis=-1)
    scale = np.where(scale > 0, scale, 1.0)
    return (x / scale[:, None, None]).astype(np.float32)


def _ratio(fs):
    """up / down, a rational approximation of FS / fs."""
    fs = float(fs)
    if not np.isfinite(fs) or fs <= 0:
        raise ConfigError("fs %r Hz; give the sampling rate in Hz, > 0" % (fs,))
    r = Fraction(FS / fs).limit_denominator(1000)
    return r.numerator, r.denominator


def to_rate(x, fs):
    """Resample ``x`` (N, C, T) from ``fs`` to 100 Hz (polyphase, scipy); unchanged when fs is 100."""
    up, down = _ratio(fs)
    if up == down:
        return x
    from scipy.signal import resample_poly

    x = x - x.mean(axis=-1, keepdims=True)  # the anti-alias filter pads with zeros
    return resample_poly(x, up, down, axis=-1).astype(np.float32)


def from_rate(p, fs, length):
    """Probabilities ``p`` (N, C, T100) at 100 Hz back onto ``length`` samples at ``fs`` (linear)."""
    up, down = _ratio(fs)
    if up == down:
        return p[..., :length]
    pos = np.arange(length) * (up / down)
    lo = np.clip(np.floor(pos).astype(np.int64), 0, p.shape[-1] - 1)
    hi = np.minimum(lo + 1, p.shape[-1] - 1)
    w = (pos - lo).astype(np.float32)
    return p[..., lo] * (1 - w) + p[..., hi] * w


def teacher_file(root, *parts):
    """The path of a teacher's file under ``root``; a :class:`DataError` naming it when absent."""
    if not os.path.isdir(root):
        raise DataError("teachers folder %s not found; set %s to the folder that holds the pretrained "
                        "pickers (it is never part of the project)" % (root, ENV))
    path = os.path.join(root, *parts)
    if not os.path.exists(path):
        raise DataError("teacher file %s not found; set %s to the folder that holds %s/" % (path, ENV, parts[0]))
    return path


class Teacher:
    """A pretrained picker behind one interface: :meth:`predict` (N, 3, T) ZNE -> (N, 2, T) P, S."""

    name = ""
    family = ""
    trained_on = ""
    licence = ""

    def __init__(self, threads=1):
        if int(threads) < 1:
            raise ConfigError("threads %r; give 1 or more" % (threads,))
        self.threads = int(threads)

    def predict(self, waves, fs=100.0):
        """Per-sample probabilities of P (row 0) and S (row 1), (N, 2, T) float32, on the input's samples.

        waves: (N, 3, T), channel order Z, N, E, raw units (counts, m/s: see
        :func:`unitless`), any T >= 1; resampled to 100 Hz for the model and
        mapped back when ``fs`` differs.
        """
        x = check_waves(waves)
        n, _, length = x.shape
        if n == 0:
            return np.zeros((0, 2, length), np.float32)
        x100 = to_rate(unitless(x), fs)
        p = self._predict100(x100)
        p = from_rate(p, fs, length)
        return np.clip(np.nan_to_num(p, nan=0.0), 0.0, 1.0).astype(np.float32)

    def _predict100(self, x):  # (N, 3, T) float32 at 100 Hz -> (N, 2, T)
        raise NotImplementedError

    def __repr__(self):
        return "<%s %r: %s, trained on %s, %s>" % (type(self).__name__, self.name, self.family,
                                                  self.trained_on, self.licence)


def window_starts(length, window, hop):
    """Start samples of windows of ``window`` samples every ``hop`` over ``length >= window`` samples;
    the last window ends at the last sample."""
    if hop < 1 or hop > window:
        raise ConfigError("hop %r; allowed: 1 .. window (%d)" % (hop, window))
    starts = list(range(0, length - window + 1, hop))
    if starts[-1] != length - window:
        starts.append(length - window)
    return np.asarray(starts, dtype=np.int64)


def edge_taper(distance, ramp):
    """Weight of a window's output at ``distance`` samples from its nearer edge: rises linearly from
    1/ramp at the edge to 1 at ``ramp - 1`` samples inside, never below 1e-3 (so a sample that only a
    window's edge covers still gets that window's output)."""
    return np.clip((np.asarray(distance, dtype=np.float32) + 1.0) / float(ramp), 1e-3, 1.0)


def scan_windows(run, x, window, hop, combine="taper", batch=64):
    """Run a fixed-window model over every trace of ``x`` (N, C, T) and combine the overlaps.

    run: (B, C, window) float32 -> (B, K, window).  Each trace is first
    demeaned per channel (which does not change a model that demeans each
    window) and then, when shorter than the window, zero-padded at its end.
    Windows start every ``hop`` samples, the last one flush with the end, so
    every sample is seen.  combine: 'taper' (the default) is the mean of
    every window that covers a sample weighted by :func:`edge_taper` with a
    ramp of a quarter window, so that a sample near one window's edge, where
    the model sees least context, takes its value from the window that has
    it in its middle (a plain mean would halve a clear P that sits on a
    window boundary); 'mean' is the unweighted mean; 'max' keeps the largest.
    Returns (N, K, T) float32.
    """
    if combine not in COMBINE:
        raise ConfigError("combine %r; allowed: %s" % (combine, ", ".join(COMBINE)))
    n, c, length = x.shape
    x = x - x.mean(axis=-1, keepdims=True)
    padded = max(length, window)
    if padded > length:
        x = np.concatenate([x, np.zeros((n, c, padded - length), np.float32)], axis=-1)
    starts = window_starts(padded, window, hop)
    acc = None
    count = np.zeros(padded, np.float32)
    offsets = np.arange(window)
    weight = (edge_taper(np.minimum(offsets, window - 1 - offsets), max(1, window // 4)) if combine == "taper"
              else np.ones(window, np.float32))
    per_block = max(1, batch // n)
    for b in range(0, len(starts), per_block):
        block = starts[b:b + per_block]
        segs = x[:, :, block[:, None] + offsets]                      # (N, C, k, W)
        segs = np.ascontiguousarray(segs.transpose(0, 2, 1, 3).reshape(-1, c, window))
        out = np.asarray(run(segs), dtype=np.float32)
        out = out.reshape(n, len(block), out.shape[1], window)
        if acc is None:
            fill = -np.inf if combine == "max" else 0.0
            acc = np.full((n, out.shape[2], padded), fill, np.float32)
        for j, s in enumerate(block):
            if combine == "max":
                np.maximum(acc[:, :, s:s + window], out[:, j], out=acc[:, :, s:s + window])
            else:
                acc[:, :, s:s + window] += out[:, j] * weight
            count[s:s + window] += weight
    if combine != "max":
        acc /= count
    return acc[:, :, :length]


class FixedWindowTeacher(Teacher):
    """A teacher whose model takes exactly ``window`` samples: scanned with :func:`scan_windows`."""

    window = 3000
    overlap = 0.5     # fraction of a window shared by neighbours
    combine = "taper"
    batch = 64        # windows per model call

    def _predict100(self, x):
        hop = max(1, int(round(self.window * (1.0 - self.overlap))))
        return scan_windows(self._run, x, self.window, hop, self.combine, self.batch)

    def _run(self, segs):  # (B, 3, window) demeaned ZNE -> (B, 2, window) P, S
        raise NotImplementedError
