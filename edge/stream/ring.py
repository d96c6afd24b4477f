"""A multi-channel buffer of fixed memory that keeps components aligned by time.

Sample ``i`` of every channel is at ``t0_ns + i / fs``; packets land at the
index their start time rounds to, so components stay aligned however they
arrive.  The buffer holds ``capacity`` samples per channel (allocated once);
old samples are discarded only up to the point the consumer has
``release()``d.

Three indices describe the state (all absolute sample numbers):

- ``base``: the oldest sample still held;
- ``frontier``: every channel is final before it (received, or declared a
  gap); the consumer reads only below it;
- per channel, ``ends[c]``: just after the newest sample received.

Overlaps keep the samples received first (a differing duplicate is logged).
Out-of-order packets fill holes above the frontier; a packet older than the
frontier is late and dropped with a warning (the consumer has moved on).
When a channel falls more than ``max_lag`` samples behind the newest one, or
the buffer must make room, the frontier is moved on and the missing samples
become a gap: filled by ``gap_fill`` ('zero' or 'hold': the last value
before it) and marked invalid in ``valid`` so that no pick is made across it.
"""

from __future__ import annotations

import logging
from fractions import Fraction

import numpy as np

from ..errors import ConfigError, DataError

__all__ = ["GAP_FILLS", "RingBuffer"]

log = logging.getLogger(__name__)

GAP_FILLS = ("zero", "hold")


class RingBuffer:
    """channels: names (e.g. ``["Z", "N", "E"]``).  fs: Hz.  capacity: samples per
    channel.  max_lag: samples a channel may trail the newest before its
    missing part is declared a gap.  gap_fill: one of :data:`GAP_FILLS`.
    """

    def __init__(self, channels, fs, capacity, max_lag, gap_fill="zero"):
        if gap_fill not in GAP_FILLS:
            raise ConfigError("gap_fill %r; allowed: %s" % (gap_fill, ", ".join(GAP_FILLS)))
        if not (0 < max_lag < capacity):
            raise ConfigError("max_lag %r samples must lie in (0, capacity=%r)" % (max_lag, capacity))
        self.channels = list(channels)
        self.fs = float(fs)
        frac = Fraction(self.fs).limit_denominator(1000)
        self._num, self._den = frac.numerator, frac.denominator
        self.capacity = int(capacity)
        self.max_lag = int(max_lag)
        self.gap_fill = gap_fill
        C = len(self.channels)
        self.data = np.zeros((C, self.capacity), np.float64)
        self.have = np.zeros((C, self.capacity), bool)
        self.t0_ns = None
        self.base = 0
        self.frontier = 0
        self.released = 0
        self.ends = [0] * C
        self._cend = [0] * C  # per channel: received without a hole from the frontier up to here
        self.stats = {"late_samples": 0, "overlap_samples": 0, "gap_samples": 0, "misaligned_packets": 0,
                      "time_jumps": 0}
        self.jump_after = max(self.capacity, int(86400 * self.fs))  # samples: see jump_if_far
        self._breaks = []  # (index, time_ns) from which times map to indices anew (after a time jump)

    # ------------------------------------------------------------ time <-> index
    def index_of(self, time_ns):
        """Nearest sample index of ``time_ns`` (and the misalignment in samples); integer arithmetic.

        After a time jump (:meth:`jump_if_far`) times map to indices from the jump on."""
        b_index, b_ns = self._breaks[-1] if self._breaks else (0, self.t0_ns)
        numer = (int(time_ns) - b_ns) * self._num
        denom = self._den * 10 ** 9
        i = (2 * numer + denom) // (2 * denom)  # round half up
        return b_index + i, (numer - i * denom) / denom

    def time_of(self, index):
        """ns time of sample ``index`` (exact integer arithmetic, rounded to the nearest ns)."""
        b_index, b_ns = 0, self.t0_ns
        for bi, bt in reversed(self._breaks):
            if bi <= index:
                b_index, b_ns = bi, bt
                break
        numer = (int(index) - b_index) * 10 ** 9 * self._den
        return b_ns + (2 * numer + self._num) // (2 * self._num)

    def jump_if_far(self, time_ns):
        """Whether ``time_ns`` lies more than ``jump_after`` samples (a day, or the capacity if
        longer) beyond the buffer, or before its oldest sample (a clock jump, a stream resumed
        after years); if so, the stream goes on
        at ``time_ns`` after a gap of ``max_lag`` samples, whatever the jump (bounded work),
        and the jump is counted in ``stats['time_jumps']``."""
        if self.t0_ns is None:
            return False
        i0, _ = self.index_of(time_ns)
        newest = max(max(self.ends), self.frontier)
        if self.base - self.jump_after <= i0 <= self.room() + self.jump_after:
            return False
        at = newest + self.max_lag
        log.warning("time jump of %.0f s at %d ns (sample %d); the stream goes on after a gap",
                    (int(time_ns) - self.time_of(newest)) / 1e9, time_ns, at)
        self._breaks = [b for b in self._breaks if b[0] < at] + [(at, int(time_ns))]
        self.stats["time_jumps"] += 1
        return True

    # ------------------------------------------------------------ writing
    def room(self):
        """Absolute index one past the last sample that fits now."""
        return self.base + self.capacity

    def write(self, channel, start_ns, samples, check=True):
        """Place one packet; return the absolute index of its first sample.

        The packet must fit below :meth:`room` (the caller makes room with
        :meth:`release` and :meth:`force`); samples before the frontier are
        late and dropped.  check: refuse NaN and infinity (False when the
        caller has already checked the samples).
        """
        c = self.channels.index(channel)
        x = np.asarray(samples, dtype=np.float64)
        if x.ndim != 1:
            raise DataError("samples for channel %r have shape %s; expected 1-D" % (channel, x.shape))
        if check and not np.all(np.isfinite(x)):
            raise DataError("samples for channel %r contain NaN or infinity; refusing the packet" % channel)
        if self.t0_ns is None:
            self.t0_ns = int(start_ns)
        i0, off = self.index_of(start_ns)
        if abs(off) > 0.25:
            self.stats["misaligned_packets"] += 1
            log.debug("channel %s packet at %d ns is %.2f samples off the grid; rounded", channel, start_ns, off)
        i1 = i0 + len(x)
        if i1 > self.room():
            raise DataError(
                "packet for %s ends at sample %d beyond the buffer (%d); release or force first"
                % (channel, i1, self.room())
            )
        if i0 < self.frontier:
            late = min(len(x), self.frontier - i0)
            self.stats["late_samples"] += late
            log.warning("channel %s: %d samples arrived after the pipeline moved on; dropped", channel, late)
            x = x[late:]
            i0 += late
        if len(x) == 0:
            return i0
        a, b = i0 - self.base, i1 - self.base
        seen = self.have[c, a:b]
        if seen.any():
            self.stats["overlap_samples"] += int(seen.sum())
            if not np.array_equal(self.data[c, a:b][seen], x[seen]):
                log.warning("channel %s: overlapping packet differs from data already received; kept the first", channel)
            new = ~seen
            self.data[c, a:b][new] = x[new]
        else:
            self.data[c, a:b] = x
        self.have[c, a:b] = True
        self.ends[c] = max(self.ends[c], i1)
        self._contiguous_end(c)
        self._advance()
        return i0

    def _contiguous_end(self, c):
        """First index >= frontier not yet received on channel ``c`` (cached in ``_cend``:
        samples at or above the frontier are never un-received, so the search resumes
        where the last one stopped)."""
        start = max(self.frontier, self._cend[c])
        a = start - self.base
        b = self.ends[c] - self.base
        if b <= a:
            end = start
        else:
            seg = self.have[c, a:b]
            end = start + (b - a) if seg.all() else start + int(np.argmin(seg))  # the first sample not received
        self._cend[c] = end
        return end

    def _advance(self):
        newest = max(self.ends)
        target = min(max(self.frontier, e) for e in self._cend)  # only the written channel changed
        if newest - target > self.max_lag:
            self.force(newest - self.max_lag)
        elif target > self.frontier:
            self.frontier = target

    def force(self, index):
        """Move the frontier to ``index``: what is missing below it becomes a gap."""
        index = min(int(index), self.room())
        if index <= self.frontier:
            return
        a, b = self.frontier - self.base, index - self.base
        for c, name in enumerate(self.channels):
            miss = ~self.have[c, a:b]
            n = int(miss.sum())
            if not n:
                continue
            self.stats["gap_samples"] += n
            log.info("channel %s: %d samples missing before sample %d; marked as a gap", name, n, index)
            seg = self.data[c, a:b]
            if self.gap_fill == "zero":
                seg[miss] = 0.0
            else:  # hold the last received value
                before = self.data[c, a - 1] if a > 0 and self.have[c, a - 1] else 0.0
                idx = np.where(~miss, np.arange(b - a), -1)
                last = np.maximum.accumulate(idx)
                seg[:] = np.where(last >= 0, seg[np.maximum(last, 0)], before)
        self.frontier = index
        # a channel that now is contiguous beyond the forced point moves it further
        target = min(self._contiguous_end(c) for c in range(len(self.channels)))
        self.frontier = max(self.frontier, target)

    # ------------------------------------------------------------ reading
    def read(self, start, stop):
        """(data (C, n) float64 copy, valid (C, n) bool) for absolute [start, stop) below the frontier."""
        if start < self.base or stop > self.frontier or start > stop:
            raise DataError(
                "read [%d, %d) outside the final part of the buffer [%d, %d)" % (start, stop, self.base, self.frontier)
            )
        a, b = start - self.base, stop - self.base
        return self.data[:, a:b].copy(), self.have[:, a:b].copy()

    def view(self, start, stop):
        """Like :meth:`read` but read-only views (no copy); valid until the next write."""
        if start < self.base or stop > self.frontier or start > stop:
            raise DataError(
                "read [%d, %d) outside the final part of the buffer [%d, %d)" % (start, stop, self.base, self.frontier)
            )
        a, b = start - self.base, stop - self.base
        d, h = self.data[:, a:b], self.have[:, a:b]
        d.flags.writeable = False
        return d, h

    def release(self, index):
        """The consumer no longer needs samples before ``index``; compact if useful."""
        index = min(int(index), self.frontier)
        if index <= self.released:
            return
        self.released = index
        shift = self.released - self.base
        if shift >= self.capacity // 4:
            # what is held reaches the newest sample received or, after a gap was forced
            # past every channel's newest sample, the frontier; never less than the shift
            keep = max(max(self.ends), self.frontier) - self.base
            n = keep - shift
            self.data[:, :n] = self.data[:, shift:keep]
            self.have[:, :n] = self.have[:, shift:keep]
            self.have[:, n:] = False
            self.base += shift
            while len(self._breaks) > 1 and self._breaks[1][0] <= self.base:  # no sample before it is held
                del self._breaks[0]
