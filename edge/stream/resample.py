"""Rational resampling with an anti-alias filter, packet by packet (numpy only).

Input at ``fs_in`` becomes output at ``fs_out`` through a polyphase FIR:
upsample by ``up``, low-pass, keep every ``down``-th sample, where
``fs_out / fs_in = up / down`` in lowest terms.  The filter is the one
``scipy.signal.resample_poly`` designs by default (a Kaiser-windowed sinc,
beta 5, ``half_len = 10 * max(up, down)`` taps each side, cutoff at the
lower Nyquist), and it is centred, so output sample ``m`` lies at input time
``m * down / up`` samples: no delay.  The tests check the interior of a
stream against scipy (the edges differ: scipy zero-pads both ends, a stream
has no end).

Output sample ``m`` needs input up to ``(m * down + half_len) / up``, so the
output trails the input by ``half_len / up`` input samples (e.g. 0.5 s for
250 -> 100 Hz).  ``reset()`` starts a new segment (after a gap).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from ..errors import ConfigError

__all__ = ["design_filter", "ratio", "Resampler", "resample_reference"]


def ratio(fs_in, fs_out, max_den=1000):
    """(up, down) with ``fs_out / fs_in = up / down`` in lowest terms."""
    if not (fs_in > 0 and fs_out > 0 and math.isfinite(fs_in) and math.isfinite(fs_out)):
        raise ConfigError("sampling rates %r -> %r Hz must be > 0 and finite" % (fs_in, fs_out))
    q = fs_out / fs_in
    if not (1.0 / max_den <= q <= max_den):
        raise ConfigError("cannot resample %r Hz to %r Hz: the ratio %.3g is outside 1/%d .. %d"
                          % (fs_in, fs_out, q, max_den, max_den))
    fr = Fraction(q).limit_denominator(max_den)
    if abs(float(fr) - fs_out / fs_in) > 1e-9 * fs_out / fs_in:
        raise ConfigError(
            "cannot resample %r Hz to %r Hz: the ratio is not a fraction with denominator <= %d"
            % (fs_in, fs_out, max_den)
        )
    if fr.numerator > max_den or fr.denominator > max_den:
        raise ConfigError("cannot resample %r Hz to %r Hz: %d/%d needs a filter longer than this reader "
                          "allows (both terms <= %d)" % (fs_in, fs_out, fr.numerator, fr.denominator, max_den))
    return fr.numerator, fr.denominator


def design_filter(up, down, half_len=None, beta=5.0):
    """Anti-alias FIR (length ``2 * half_len + 1``), gain ``up``, as scipy's resample_poly."""
    max_rate = max(up, down)
    half_len = 10 * max_rate if half_len is None else int(half_len)
    n = 2 * half_len + 1
    cutoff = 1.0 / max_rate  # fraction of the upsampled Nyquist
    m = np.arange(n) - half_len
    h = cutoff * np.sinc(cutoff * m) * np.kaiser(n, beta)
    h /= h.sum()
    return h * up


class Resampler:
    """Streaming polyphase resampler for one channel.

    fs_in, fs_out: Hz.  ``push(x)`` returns the output samples that are now
    complete (float64); the first output sample is at the time of the first
    input sample.  Concatenated pushes equal one push of the whole segment.
    """

    def __init__(self, fs_in, fs_out):
        self.fs_in, self.fs_out = float(fs_in), float(fs_out)
        self.up, self.down = ratio(fs_in, fs_out)
        self.h = design_filter(self.up, self.down)
        self.half_len = (len(self.h) - 1) // 2
        up, hl = self.up, self.half_len
        # weights by residue r = (-(m*down - hl)) mod up: y[m] = sum_t W[r, t] x[k_lo(m) + t]
        self.taps = (2 * hl) // up + 1
        W = np.zeros((up, self.taps))
        for r in range(up):
            idx = 2 * hl - r - np.arange(self.taps) * up
            ok = (idx >= 0) & (idx <= 2 * hl)
            W[r, ok] = self.h[idx[ok]]
        self._W = W
        self.reset()

    def reset(self):
        """Start a new segment: zeros before its first sample (like scipy)."""
        self._buf = np.zeros(0)
        self._buf_start = 0  # input index of _buf[0]
        self._n_in = 0       # input samples received in this segment
        self._m = 0          # next output index

    def _k_lo(self, m):
        return -((self.half_len - m * self.down) // self.up)  # ceil((m*down - hl) / up)

    def push(self, x, final=False):
        """Feed input samples; return the finished output samples.

        final: also return the outputs that need input beyond the end (as
        zeros), closing the segment (then call ``reset()`` to reuse).
        """
        x = np.asarray(x, dtype=np.float64)
        self._n_in += len(x)
        self._buf = np.concatenate([self._buf, x])
        up, down, hl = self.up, self.down, self.half_len
        if final:
            m_end = -(-self._n_in * up // down)  # ceil(n_in * up / down), as scipy
        else:
            # outputs whose last tap k_lo + taps - 1 < n_in
            m_end = max(self._m, ((self._n_in - self.taps) * up + hl) // down + 1)
            while m_end > self._m and self._k_lo(m_end - 1) + self.taps > self._n_in:
                m_end -= 1
        count = m_end - self._m
        if count <= 0:
            return np.zeros(0)
        first_k = self._k_lo(self._m)
        last_k = self._k_lo(m_end - 1) + self.taps
        lo_pad = max(0, self._buf_start - first_k)
        hi_pad = max(0, last_k - (self._buf_start + len(self._buf)))
        seg = self._buf
        if lo_pad or hi_pad:
            seg = np.concatenate([np.zeros(lo_pad), seg, np.zeros(hi_pad)])
        seg_start = self._buf_start - lo_pad
        out = np.empty(count)
        ms = np.arange(self._m, m_end)
        for r0 in range(min(up, count)):
            mm = ms[r0::up]
            k0 = self._k_lo(int(mm[0])) - seg_start
            r = (-(int(mm[0]) * down - hl)) % up
            J = len(mm)
            view = np.lib.stride_tricks.as_strided(
                seg[k0:], shape=(J, self.taps), strides=(seg.strides[0] * down, seg.strides[0]),
                writeable=False,
            )
            out[r0::up] = view @ self._W[r]
        self._m = m_end
        # keep the input the next output still needs
        keep_from = self._k_lo(self._m)
        drop = min(len(self._buf), max(0, keep_from - self._buf_start))
        self._buf = self._buf[drop:]
        self._buf_start += drop
        return out

    def output_count(self):
        """Output samples produced in this segment so far."""
        return self._m


def resample_reference(x, fs_in, fs_out):
    """Direct (slow) evaluation of the same filter: zero-padded ends, scipy's length."""
    up, down = ratio(fs_in, fs_out)
    h = design_filter(up, down)
    hl = (len(h) - 1) // 2
    n_out = int(math.ceil(len(x) * up / down))
    y = np.zeros(n_out)
    for m in range(n_out):
        acc = 0.0
        for k in range(len(x)):
            j = hl + m * down - k * up
            if 0 <= j < len(h):
                acc += h[j] * x[k]
        y[m] = acc
    return y
