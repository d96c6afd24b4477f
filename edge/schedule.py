"""The window scheduler: where the network runs, from the trigger's spans.

:class:`TriggerGate` runs the STA/LTA trigger over one component in aligned
blocks and keeps the triggered spans ``[on, off)`` (sample numbers of the
stream).  :class:`FitPlanner` turns the spans into windows fitted to them
(``trigger.windows`` 'fit'): spans whose widened extents meet form a
:class:`Group`; a group that fits in one window gets one window centred on
it, a longer one windows a hop apart from its start until one reaches its
end.  Which windows run depends only on the spans (and, at the end of a
stream, on its last sample), never on packet sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

__all__ = ["Group", "TriggerGate", "FitPlanner"]


@dataclass
class Group:
    """A run of triggered spans whose widened extents ``[start, end)`` meet."""

    start: int              # the first span's onset, less pre_samples
    end: Optional[int]      # the last span's end plus post_samples; None while the trigger is on
    span: list              # the newest span taken into the group ([on, off], off None while on)
    next_start: int         # where the next window a hop apart starts
    chained: bool = False   # windows a hop apart were decided (else: one window centred on it)


class TriggerGate:
    """The trigger over one component, in aligned blocks, and the spans it triggered.

    trigger: a :class:`~fieldpick.edge.stream.trigger.Trigger` at the model
    rate / ``decimate``.  channel_index: the trigger component's row in the
    ring.  block_samples: the trigger runs on blocks ending on multiples of
    this (or on the remainder at the end of a stream).
    """

    def __init__(self, trigger, channel_index, block_samples, decimate):
        self.trigger = trigger
        self.channel_index = channel_index
        self.block_samples = block_samples
        self.decimate = decimate
        self.done = 0          # the trigger processed the samples below this one
        self._valid = False    # the previous trigger sample was valid data
        self.spans: List[list] = []  # [on, off) triggered spans (off None while on)

    def run(self, ring, upto):
        """Trigger over [done, upto) in aligned blocks (or the remainder at the end).

        With ``decimate`` q > 1 the trigger channel is first averaged over q
        samples (a boxcar anti-alias) and the trigger runs at fs / q; a
        decimated sample is valid only when all q input samples are.
        """
        q = self.decimate
        while self.done < upto:
            a = self.done
            b = min(upto, (a // self.block_samples + 1) * self.block_samples)
            x, valid = ring.view(a, b)
            xv, vv = x[self.channel_index], valid[self.channel_index]
            m = (b - a) // q  # whole decimated samples (a partial tail only at the end of a stream)
            full = bool(vv.all())
            if q > 1:  # boxcar: the mean of each q samples (summed in order, then divided)
                xd = xv[0: m * q: q].copy()
                for j in range(1, q):
                    xd += xv[j: m * q: q]
                xv = np.true_divide(xd, q, out=xd)
                vv = vv[: m * q].reshape(m, q).all(axis=1) if not full else None
            act = self._activity(xv, vv, m, full)
            if m:
                self._valid = full or bool(vv[-1])
            self._record(a, act, b - a)
            self.done = b

    def _activity(self, xv, vv, m, full):
        """The trigger's activity over ``m`` decimated samples, restarted around invalid ones."""
        if m and full:
            if not self._valid:
                self.trigger.reset()
            _, act = self.trigger.update(xv)
            return act
        if not m:
            return np.zeros(0, bool)
        act = np.zeros(m, bool)
        edges = np.flatnonzero(np.diff(np.concatenate([[False], vv, [False]]).astype(np.int8)))
        for s, e in zip(edges[0::2], edges[1::2]):
            if not (s == 0 and self._valid):
                self.trigger.reset()
            _, act[s:e] = self.trigger.update(xv[s:e])
            if e < len(vv):
                self.trigger.reset()
        return act

    def _record(self, a, act, n):
        """Spans from the activity ``act`` at samples ``a + i * decimate`` (each decimated
        sample stands for ``decimate`` samples; samples past ``len(act) * decimate`` up
        to ``n`` are inactive)."""
        q, m = self.decimate, len(act)
        if not n:
            return
        was = bool(self.spans and self.spans[-1][1] is None)
        if not was and not (m and act.any()):
            return
        if was and m * q == n and act.all():
            return
        flags = np.zeros(m + 2, np.int8)
        flags[0] = was
        flags[1:m + 1] = act
        d = np.diff(flags[: m + 1 + (m * q < n)])
        for i in np.flatnonzero(d):
            if d[i] > 0:
                self.spans.append([a + int(i) * q, None])
            else:
                self.spans[-1][1] = a + int(i) * q

    def meets(self, lo, hi):
        """Whether a span overlaps ``[lo, hi)``."""
        for on, off in self.spans:
            if on < hi and (off is None or off > lo):
                return True
        return False

    def forget_ending_by(self, sample):
        """Drop the spans that ended at or before ``sample`` (no window can meet them any more)."""
        self.spans = [sp for sp in self.spans if sp[1] is None or sp[1] > sample]


class FitPlanner:
    """Windows fitted to the triggered spans ('fit'), decided in start order.

    ``decided`` holds window starts (aligned to the output stride,
    increasing) waiting for their data; ``None`` ends a group, whose windows
    then run together.
    """

    def __init__(self, window_samples, hop_samples, stride_samples, pre_samples, post_samples):
        self.window_samples = window_samples
        self.hop_samples = hop_samples
        self.stride_samples = stride_samples
        self.pre_samples = pre_samples
        self.post_samples = post_samples
        self.group: Optional[Group] = None  # the group being planned
        self.decided: List[Optional[int]] = []
        self.last_start = -1  # start of the newest window decided
        self.extent = {}  # start of a centred window -> its group's [start, end) samples

    def align(self, s):
        return max(0, (int(s) // self.stride_samples) * self.stride_samples)

    def decide(self, s):
        """Queue a window start (aligned, increasing; a repeat or an older start is dropped)."""
        s = self.align(s)
        if s > self.last_start:
            self.decided.append(s)
            self.last_start = s

    def plan(self, spans, T, final):
        """Turn the triggered ``spans`` (consumed) into windows; the trigger has seen up to ``T``.

        A group is a run of spans whose widened extents ``[on - pre, off +
        post)`` meet.  A group that fits in one window gets one window centred
        on it; a longer one windows at ``start, start + hop, ...`` until one
        reaches its end (the onset, ``pre`` after the start, sits well inside
        the first window and in no window's first seconds).  Those are decided
        as soon as the group is known to need them; a centred one when the
        group is closed (the trigger has seen ``pre`` past its end with
        nothing new, or the stream ended).
        """
        pre, post = self.pre_samples, self.post_samples
        g = self.group
        i = 0
        while i < len(spans):
            sp = spans[i]
            if g is None or (g.span is not sp and g.end is not None and sp[0] - pre >= g.end):
                if g is not None:
                    self._close(g)
                g = self.group = Group(start=sp[0] - pre, end=None, span=sp, next_start=self.align(sp[0] - pre))
            g.span = sp
            if sp[1] is None:
                g.end = None
                break
            g.end = sp[1] + post
            i += 1
        del spans[:i]
        if g is None:
            return
        end_at_least = g.end if g.end is not None else T + post  # the trigger is on through T
        self._chain(g, end_at_least)
        if final and g.end is None:
            g.end = T + post
            del spans[:]
        if g.end is not None and (final or T >= g.end + pre):
            self._close(g)
            self.group = None

    def _chain(self, g, end_at_least):
        """Decide the group's windows a hop apart that are sure to be needed: the first
        when the group is longer than a window, each next one while the one
        before ends before the group does."""
        window, hop = self.window_samples, self.hop_samples
        while g.next_start + window - (hop if g.chained else 0) < end_at_least:
            self.decide(g.next_start)
            g.next_start += hop
            g.chained = True

    def _close(self, g):
        if g.chained:
            self._chain(g, g.end)
        else:  # fits in one window: centred on it
            self.decide((g.start + g.end - self.window_samples) // 2)
            self.extent[self.last_start] = (g.start, g.end)
        self.decided.append(None)

    def horizon(self, T, pending, done_cell):
        """No window can be added before this sample any more.

        T: the trigger has seen up to here.  pending: window starts waiting
        for a batch.  done_cell: the stacker's first cell not yet final.
        """
        S, window = self.stride_samples, self.window_samples
        pre, post = self.pre_samples, self.post_samples
        h = self.align(T - pre - max(0, window - pre - post) // 2) - S  # a group not begun yet
        g = self.group
        if g is not None:
            if g.chained:
                h = min(h, self.last_start + S)
            else:
                end_at_least = g.end if g.end is not None else T + post
                h = min(h, self.align(g.start), self.align((g.start + end_at_least - window) // 2))
        for s in self.decided:  # in start order, except a window moved past a gap
            if s is not None:
                h = min(h, s)
        if pending:
            h = min(h, pending[0])
        return max(h, done_cell * S)
