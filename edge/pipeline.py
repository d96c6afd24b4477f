"""The station pipeline: packets in, picks out.

::

    feed(channel, start_ns, samples, fs)
      -> Resampler (to the card's rate, when the input differs)
      -> RingBuffer (components aligned by time, gaps marked)
      -> Trigger (bandpass + recursive STA/LTA on one component), gated mode only
      -> windows: fitted to the triggered spans (gated, trigger.windows 'fit') or on a
         fixed grid (hop = window * (1 - overlap)), normalised per the card
      -> runner.run(batch)  (anything with that method: the TFLite interpreter, a test double)
      -> Stacker (avg/max of overlapping windows) -> PeakFinder per phase -> Pick

Every step works on absolute sample numbers of the stream and on fixed,
aligned blocks (the trigger on blocks of ``trigger.block_s`` rounded to whole
hops, the network on grid windows or on windows that depend only on the
triggered spans), so feeding a day in packets of any size gives exactly the
picks of one offline pass (:meth:`Station.feed_array`).

In 'gated' mode each triggered span is widened by ``pre_s`` before and
``post_s`` after; spans whose widened extents meet form a group.  With
``trigger.windows`` 'fit' (the default) a group that fits in one window gets
one window centred on it, a longer one windows a hop apart from its start
until one reaches its end (see :class:`~fieldpick.edge.schedule.FitPlanner`); with 'grid' every grid
window that overlaps a widened span runs, decided once the trigger has seen
``pre_s`` past the window's end.  In 'continuous' mode every grid window runs.
Windows that contain a gap never run, so no pick is made across one.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np

from .config import StationConfig
from .errors import ConfigError, DataError
from .limits import check_rate, check_time
from .picker import PeakFinder, Stacker, measure, output_traces, phase_columns
from .picks import Pick
from .schedule import FitPlanner, TriggerGate
from .stream.resample import Resampler
from .stream.ring import RingBuffer
from .stream.trigger import HighpassInput, Trigger
from .stream.windows import hop_samples, normalise

__all__ = ["Station", "StationSet"]

log = logging.getLogger(__name__)

_ALIASES = {"1": "N", "2": "E", "N": "1", "E": "2"}

#: weight, in the mean of overlapping windows, of a window centred on a trigger at the cells
#: beyond its trigger's extent (onset - pre_s, end + post_s): there it looks at another
#: event's onset near its own edge; a cell no other window covers keeps this window's value
OUTSIDE_WEIGHT = 1e-3


@dataclass
class _Input:
    """Per-component input state: rate, resampler, where the next sample is due."""

    fs: Optional[float] = None
    resampler: Optional[Resampler] = None
    seg_t0: int = 0        # ns of the current resampled segment's first input sample
    next_ns: Optional[int] = None
    highpass: Optional[HighpassInput] = None  # the card's input filter, at the model rate
    filtered_ns: Optional[int] = None         # where the next filtered sample is due (None: restart)


class Station:
    """One 3-component station through the whole pipeline.

    runner: see :class:`Runner` (its ``card`` says rate, window, channels,
    outputs, thresholds).  config: a :class:`~fieldpick.edge.config.StationConfig`
    (defaults when None).  station: 'NET.STA.LOC.CHA' written into picks.
    Picks come back from :meth:`feed`, :meth:`feed_array` and :meth:`flush`.
    """

    def __init__(self, runner, config=None, station=""):
        self.runner = runner
        self.card = card = runner.card
        self.config = cfg = config if config is not None else StationConfig()
        self.station = station
        self.fs = fs = float(card.input.sampling_rate_hz)
        self.channels = list(card.input.channels)
        self.window_samples = window = int(card.input.window_samples)
        self.stride_samples = stride = int(card.output.stride_samples)
        self.hop_samples = hop = hop_samples(window, cfg.overlap, stride)
        self.gated = cfg.mode == "gated"
        tc = cfg.trigger
        decimate = int(tc.decimate)
        if self.gated and tc.band_hz and tc.band_hz[1] >= fs / (2.0 * decimate):
            raise ConfigError("trigger.band_hz high corner %r Hz is not below the trigger's Nyquist %r Hz "
                              "(model rate %r Hz / trigger.decimate %d / 2); lower it or the decimation"
                              % (tc.band_hz[1], fs / (2.0 * decimate), fs, decimate))
        unit = hop * decimate // math.gcd(hop, decimate)  # blocks hold whole hops and whole decimated samples
        self.block_samples = block = max(1, int(round(tc.block_s * fs / unit))) * unit
        self.pre_samples = pre = int(round(tc.pre_s * fs))
        self.post_samples = post = int(round(tc.post_s * fs))
        if self.gated and tc.channel not in self.channels:
            raise ConfigError("trigger.channel is %r; allowed: the card's channels %s" % (tc.channel, self.channels))
        thr = dict(card.thresholds)
        thr.update(cfg.picker.thresholds)
        self.phases = phase_columns(card)
        min_sep = int(round(cfg.picker.min_separation_s * fs / stride))
        self.finders = {ph: PeakFinder(thr[ph], stride, min_sep) for ph, _ in self.phases}
        self.chunk = block if self.gated else max(1, int(round(60.0 * fs / hop))) * hop
        self.fit = self.gated and tc.windows == "fit"
        latency = window + hop + (pre + block if self.gated else 0)
        if self.fit:  # a fitted window may start up to pre + 1.5 windows + a hop before the trigger's end
            latency += pre + post + 2 * window + hop
        self.lookback = int((cfg.picker.noise_s + cfg.picker.min_separation_s + 30.0) * fs)
        max_lag = int(round(cfg.buffer.max_lag_s * fs))
        capacity = max_lag + latency + self.lookback + 2 * self.chunk + window + cfg.batch * hop
        self.ring = RingBuffer(self.channels, fs, capacity, max_lag, cfg.buffer.gap_fill)
        cells = window + (cfg.batch + 2) * hop + self.lookback
        if self.fit:
            cells += latency + block
        self.stacking = cfg.stacking if cfg.stacking != "auto" else ("avg" if self.fit else "taper")
        self.stacker = Stacker(len(card.output.labels), cells // stride + 2, self.stacking,
                               window_cells=window // stride)
        self._fin_step = max(1, cfg.batch * hop // stride)  # cells a pending batch may span before it runs
        self.gate = None  # the trigger and its spans ('gated')
        if self.gated:
            trigger = Trigger(fs / decimate, tuple(tc.band_hz) if tc.band_hz else None, tc.order, tc.sta_s,
                              tc.lta_s, tc.on, tc.off, tc.warmup)
            self.gate = TriggerGate(trigger, self.channels.index(tc.channel), block, decimate)
        self.planner = FitPlanner(window, hop, stride, pre, post) if self.fit else None
        self._next_grid = 0      # next grid window to decide
        self._pending = []       # window starts decided to run, not yet run
        self._ran_upto = -1      # 'fit': start of the newest window taken from the queue
        self._flushed = False
        self._seen_frontier = -1
        self._inputs = {c: _Input() for c in self.channels}
        if card.input.highpass_hz:
            for st in self._inputs.values():
                st.highpass = HighpassInput(card.input.highpass_hz, fs, card.input.highpass_order)
        self.stats = {"windows_total": 0, "windows_run": 0, "windows_gap": 0, "batches": 0,
                      "samples": 0, "picks": 0, "rate_changes": 0}

    # ------------------------------------------------------------ input
    def _component(self, channel):
        comp = str(channel)[-1:].upper()
        if comp in self.channels:
            return comp
        if _ALIASES.get(comp) in self.channels:
            return _ALIASES[comp]
        raise DataError("channel %r is not one of the model's components %s" % (channel, self.channels))

    def accepts(self, channel):
        """Whether ``channel`` (a code like 'HHZ') is one of the model's components."""
        comp = str(channel)[-1:].upper()
        return comp in self.channels or _ALIASES.get(comp) in self.channels

    def feed(self, channel, start_ns, samples, fs):
        """Feed one packet of one channel.

        channel: component letter or channel code ('Z', 'HHZ', 'BH1').
        start_ns: time of the first sample (int ns since the epoch).
        samples: 1-D array (counts).  fs: its sampling rate, Hz.
        Returns the picks that became final (list of :class:`Pick`).
        """
        if self._flushed:
            raise DataError("station was flushed (end of stream); create a new Station to go on")
        if isinstance(start_ns, bool) or not isinstance(start_ns, (int, np.integer)):
            raise DataError("start_ns %r must be an int (ns since the epoch)" % (start_ns,))
        if not (isinstance(fs, (int, float)) and fs > 0):
            raise DataError("sampling rate %r Hz must be a number > 0" % (fs,))
        check_rate(fs, "channel %s: sampling rate" % (channel,), self.config.limits)
        check_time(start_ns, "channel %s: packet start" % (channel,), self.config.limits)
        comp = self._component(channel)
        x = np.asarray(samples, dtype=np.float64)
        if x.ndim != 1:
            raise DataError("samples have shape %s; expected 1-D" % (x.shape,))
        if len(x) == 0:
            return []
        if not np.all(np.isfinite(x)):
            raise DataError("packet of %s at %d ns holds NaN or infinite samples; refused" % (channel, start_ns))
        st = self._inputs[comp]
        start_ns = int(start_ns)
        out = []
        fs = float(fs)
        if st.fs is not None and fs != st.fs:
            self.stats["rate_changes"] += 1
            log.warning("channel %s: sampling rate changed from %g Hz to %g Hz at %d ns", comp, st.fs, fs, start_ns)
            out += self._close_segment(comp)
            st.resampler = None
        st.fs = fs
        if fs == self.fs:
            st.next_ns = start_ns + int(round(len(x) * 1e9 / fs))
            out += self._write(comp, start_ns, x)
            return out
        if st.resampler is None:
            st.resampler = Resampler(fs, self.fs)
            st.next_ns = None
        period = 1e9 / fs
        if st.next_ns is not None:
            lag = start_ns - st.next_ns
            if -self.ring.jump_after * 1e9 / self.fs < lag < -period / 2:  # overlaps what came before: keep the first
                skip = int(round(-lag / period))
                if skip >= len(x):
                    log.warning("channel %s: packet at %d ns repeats or precedes data already received "
                                "at %g Hz; dropped", comp, start_ns, fs)
                    return out
                x, start_ns = x[skip:], start_ns + int(round(skip * period))
                lag = start_ns - st.next_ns
            if abs(lag) > period / 2:
                out += self._close_segment(comp)
        if st.next_ns is None:
            st.resampler.reset()
            st.seg_t0 = start_ns
        m0 = st.resampler.output_count()
        y = st.resampler.push(x)
        st.next_ns = start_ns + int(round(len(x) * period))
        out += self._write(comp, st.seg_t0 + int(round(m0 * 1e9 / self.fs)), y)
        return out

    def _close_segment(self, comp):
        st = self._inputs[comp]
        if st.resampler is None or st.next_ns is None:
            return []
        m0 = st.resampler.output_count()
        y = st.resampler.push(np.zeros(0), final=True)
        st.next_ns = None
        return self._write(comp, st.seg_t0 + int(round(m0 * 1e9 / self.fs)), y)

    def feed_record(self, record):
        """Feed a :class:`~fieldpick.edge.sources.base.Record`."""
        if not self.station:
            self.station = "%s.%s.%s.%s" % (record.network, record.station, record.location,
                                            record.channel[:-1] + "Z")
        return self.feed(record.channel, record.start_ns, record.samples, record.sampling_rate)

    def feed_array(self, data, start_ns, fs, flush=True):
        """Offline: a (C, N) array in the card's channel order, all components at once."""
        data = np.asarray(data)
        if data.ndim != 2 or data.shape[0] != len(self.channels):
            raise DataError("data has shape %s; expected (%d, N) in order %s" % (data.shape, len(self.channels), self.channels))
        out = []
        # whole processing chunks (one ring write and one pass per packet), within half the lag allowed
        lag = int(self.config.buffer.max_lag_s * fs) // 2
        step = max(self.chunk, lag // self.chunk * self.chunk) if fs == self.fs else max(self.chunk, lag)
        period = 1e9 / fs
        for a in range(0, data.shape[1], step):
            t = int(start_ns) + int(round(a * period))
            for c, name in enumerate(self.channels):
                out += self.feed(name, t, data[c, a:a + step], fs)
        if flush:
            out += self.flush()
        return out

    def _write(self, comp, t_ns, y):
        st = self._inputs[comp]
        if st.highpass is not None and len(y):
            # the card's input filter; it starts afresh after any break in the samples
            if st.filtered_ns is None or abs(t_ns - st.filtered_ns) > 5e8 / self.fs:
                st.highpass.reset()
            y = st.highpass.filter(y)
            st.filtered_ns = t_ns + int(round(len(y) * 1e9 / self.fs))
        out = []
        ring = self.ring
        for a in range(0, len(y), self.chunk):
            piece = y[a:a + self.chunk]
            t = t_ns + int(round(a * 1e9 / self.fs))
            if ring.t0_ns is not None:
                ring.jump_if_far(t)  # a clock jump or a stream resumed after years: a gap, bounded work
                i0, _ = ring.index_of(t)
                end = i0 + len(piece)
                if end > ring.room():
                    out += self._process()
                # a packet beyond the buffer (a long gap: a missing day file, a link down for
                # hours): what lies more than the allowed lag before it is declared a gap and
                # processed, a buffer at a time, until it fits
                while end > ring.room():
                    room = ring.room()
                    ring.force(i0 - ring.max_lag)
                    out += self._process()
                    if ring.room() <= room:
                        raise DataError("cannot make room for a packet at %d ns (buffer stuck at sample %d)"
                                        % (t, room))
            ring.write(comp, t, piece, check=False)  # feed() refused non-finite input
            self.stats["samples"] += len(piece)
            out += self._process()
        return out

    # ------------------------------------------------------------ processing
    def _window_wanted(self, s):
        """A grid window starting at ``s`` runs: always (continuous), or when a triggered
        span widened by post before and pre after meets it (gated)."""
        if not self.gated:
            return True
        return self.gate.meets(s - self.post_samples, s + self.window_samples + self.pre_samples)

    def _process(self, final=False):
        ring = self.ring
        F = ring.frontier
        if F == self._seen_frontier and not final:
            return []
        self._seen_frontier = F
        if self.fit:
            return self._process_fit(F, final)
        block, hop = self.block_samples, self.hop_samples
        # nothing can change until a whole trigger block (gated) or the next grid window
        # (continuous) is final: skip the bookkeeping (most small packets stop here)
        if not final:
            if self.gated:
                idle = (F // block) * block <= self.gate.done
            else:
                idle = self._next_grid * hop + self.window_samples > F
            if idle:
                return []
        known = None
        if self.gated:
            self.gate.run(ring, F if final else (F // block) * block)
            known = self.gate.done
        out = self._grid_windows(F, final, known)
        if final:
            self._run_pending()
        # cells before the first window still waiting for a batch are final
        out += self._finalize((self._pending[0] if self._pending else self._next_grid * hop) // self.stride_samples)
        # drop spans that no future window can meet
        nxt = self._next_grid * hop
        if self.gated:
            self.gate.forget_ending_by(nxt - self.post_samples)
        need = min(nxt, self._pending[0] if self._pending else nxt, self.gate.done if self.gated else nxt)
        ring.release(max(ring.base, need - self.lookback))
        return out

    def _grid_windows(self, F, final, known):
        """Decide the grid windows whose data (and, gated, whose trigger) is in; run full batches."""
        window, hop, stride = self.window_samples, self.hop_samples, self.stride_samples
        out = []
        while True:
            s = self._next_grid * hop
            if s + window > F:
                break
            if self.gated and not final and s + window + self.pre_samples > known:
                break
            self.stats["windows_total"] += 1
            if self._window_wanted(s):
                _, valid = self.ring.view(s, s + window)
                if valid.all():
                    self._pending.append(s)
                else:
                    self.stats["windows_gap"] += 1
            self._next_grid += 1
            oldest = self._pending[0] // stride if self._pending else self.stacker.done
            if len(self._pending) >= self.config.batch or self._next_grid * hop // stride - oldest > self._fin_step:
                self._run_pending()
                out += self._finalize(self._next_grid * hop // stride)
        return out

    # ------------------------------------------------------------ gated, fitted windows
    def _process_fit(self, F, final):
        """'fit' placement: trigger, plan windows from the spans, run those whose data is in.

        Which windows run depends only on the spans (and, at the end of the
        stream, on its last sample), and they are stacked in start order and
        batched per group, so packet sizes do not change the picks.
        """
        block, window, decided = self.block_samples, self.window_samples, self.planner.decided
        if not final and (F // block) * block <= self.gate.done and not (
                decided and decided[0] is not None and decided[0] + window <= F):
            return []
        ring = self.ring
        self.gate.run(ring, F if final else (F // block) * block)
        T = self.gate.done
        self._plan(T, final)
        self._take_decided(F, final)
        if final:
            self._run_pending()
        self.stats["windows_total"] = (F - window) // self.hop_samples + 1 if F >= window else 0
        horizon = self.planner.horizon(T, self._pending, self.stacker.done)
        out = self._finalize(horizon // self.stride_samples) if not final else []
        ring.release(max(ring.base, min(horizon, T) - self.lookback))
        return out

    def _plan(self, T, final):
        """Turn the triggered spans into window starts (see :class:`~fieldpick.edge.schedule.FitPlanner`)."""
        self.planner.plan(self.gate.spans, T, final)

    def _take_decided(self, F, final):
        """Queue the decided windows whose data is in (run a group's when it is complete);
        a window with a gap does not run, one that starts in a short gap starts after it."""
        window, stride, dec = self.window_samples, self.stride_samples, self.planner.decided
        i = 0
        while i < len(dec):
            s = dec[i]
            if s is None:  # a group's windows are all decided: run them together
                self._run_pending()
                i += 1
                continue
            if s + window > F:
                if not final:
                    break
                s = ((F - window) // stride) * stride  # the stream ended inside the window: the last one that fits
                if s < 0 or s <= self._ran_upto:
                    i += 1
                    continue
            _, valid = self.ring.view(s, s + window)
            if valid.all():
                i += 1
                self._ran_upto = s
                self._pending.append(s)
                if len(self._pending) >= self.config.batch:
                    self._run_pending()
                continue
            ok = valid.all(axis=0)
            bad = np.flatnonzero(~ok)
            shifted = -(-(s + int(bad[-1]) + 1) // stride) * stride
            if not ok[0] and bad[-1] < window // 2 and (not final or shifted + window <= F):
                # it starts in a gap that ends in its first half (the trigger restarts after
                # a gap, so a span shortly after one): start it after the gap instead
                dec[i] = shifted
                continue
            i += 1
            self._ran_upto = s
            self.stats["windows_gap"] += 1
        del dec[:i]

    def _run_pending(self):
        if not self._pending:
            return
        window = self.window_samples
        batch = np.stack([self.ring.view(s, s + window)[0] for s in self._pending])  # (B, C, T)
        x = normalise(batch, self.card.input.normalisation, self.card.input.layout)
        probs, offsets = output_traces(self.runner.run(x), self.card)
        done, stride = self.stacker.done, self.stride_samples
        extent = self.planner.extent if self.planner is not None else {}
        for i, s in enumerate(self._pending):
            c = s // stride
            k = max(0, done - c)  # a window clamped to the stream's end may reach back into final cells
            weight = None
            if s in extent:  # a centred window: beyond its group's extent it yields to other windows
                lo, hi = extent.pop(s)
                at = s + stride * np.arange(k, len(probs[i]))
                weight = np.where((at >= lo) & (at < hi), 1.0, OUTSIDE_WEIGHT)
            self.stacker.add(c + k, probs[i, k:], None if offsets is None else offsets[i, k:], first=k,
                             weight=weight)
        for s in [s for s in extent if s + window <= done * stride]:  # windows a gap dropped
            del extent[s]
        self.stats["windows_run"] += len(self._pending)
        self.stats["batches"] += 1
        self._pending = []

    def _finalize(self, upto_cell, final=False):
        if upto_cell <= self.stacker.done and not final:
            return []
        start, probs, offs = self.stacker.finalize(upto_cell)
        out = []
        for ph, col in self.phases:
            for pk in self.finders[ph].process(start, probs[:, col], offs[:, col], final=final):
                out.append(self._make_pick(ph, pk))
        out.sort(key=lambda p: (p.time_ns, p.phase))
        self.stats["picks"] += len(out)
        return out

    def _make_pick(self, phase, pk):
        ring, fs, pc = self.ring, self.fs, self.config.picker
        i = int(np.floor(pk.position))
        lo = max(ring.base, i - int(pc.noise_s * fs) - 1)
        hi = min(ring.frontier, i + int(pc.signal_s * fs) + 2)
        amp, snr, pol = 0.0, 0.0, "?"
        if hi > lo:
            wave, valid = ring.view(lo, hi)
            amp, snr, pol = measure(wave, valid, self.channels, pk.position - lo, fs, phase,
                                    pc.noise_s, pc.signal_s)
        t = ring.time_of(i) + int(round((pk.position - i) * 1e9 / fs))
        return Pick(time_ns=int(t), phase=phase, probability=pk.probability, uncertainty_s=pk.sigma / fs,
                    amplitude=amp, snr_db=snr, polarity=pol if phase == "P" else "?", station=self.station)

    def flush(self):
        """End of stream: finish resamplers, treat what is missing as a gap, pick to the end."""
        if self._flushed:
            return []
        out = []
        for comp in self.channels:
            out += self._close_segment(comp)
        ring = self.ring
        if ring.t0_ns is None:
            self._flushed = True
            return out
        ring.force(max(ring.ends))
        out += self._process(final=True)
        F = ring.frontier
        short = self._short_record(F)
        # a last window ending at the last sample, when the grid left a tail
        window, hop, stride = self.window_samples, self.hop_samples, self.stride_samples
        s_tail = ((F - window) // stride) * stride
        last = (self._next_grid - 1) * hop
        if self.fit:  # its windows are placed to the end already; the tail counts as a grid window
            self.stats["windows_total"] += int(F >= window and s_tail > ((F - window) // hop) * hop)
        elif s_tail > last and s_tail >= 0 and self._window_wanted(s_tail):
            self.stats["windows_total"] += 1
            _, valid = ring.view(s_tail, s_tail + window)
            if valid.all():  # the pending batch ran in _process(final=True); this one runs alone
                self._pending.append(s_tail)
                self._run_pending()
        out += self._finalize((F + stride - 1) // stride if F >= window or short else self.stacker.done,
                              final=True)
        self._flushed = True
        return out

    def _short_record(self, F):
        """A stream that ended before one whole window: run one window, padded, over what there is.

        The tail is filled with each channel's mean (flat after the card's
        demeaning, as a gap the model was trained on); picks beyond the data
        are not made.  Records under an eighth of a window, or with gaps, are
        left alone.  Returns whether the window ran.
        """
        size, ring, stride = self.window_samples, self.ring, self.stride_samples
        a = -(-ring.base // stride) * stride
        if F >= size or F - a < size // 8:
            return False
        data, valid = ring.view(a, F)
        if not valid.all():
            log.warning("%s: a %.1f s record shorter than the model window (%.2f s) has gaps; not picked",
                        self.station, (F - a) / self.fs, size / self.fs)
            return False
        log.warning("%s: a %.1f s record is shorter than the model window (%.2f s): padded to one window",
                    self.station, (F - a) / self.fs, size / self.fs)
        window = np.empty((1, data.shape[0], size), np.float64)
        window[0, :, : F - a] = data
        window[0, :, F - a:] = data.mean(axis=1, keepdims=True)
        x = normalise(window, self.card.input.normalisation, self.card.input.layout)
        probs, offsets = output_traces(self.runner.run(x), self.card)
        c = a // stride
        self.stacker.add(c, probs[0], None if offsets is None else offsets[0])
        self.stats["windows_run"] += 1
        self.stats["windows_padded"] = self.stats.get("windows_padded", 0) + 1
        return True

    @property
    def duty_cycle(self):
        """Fraction of grid windows the network ran on."""
        t = self.stats["windows_total"]
        return self.stats["windows_run"] / float(t) if t else 0.0


# ---------------------------------------------------------------- output
CSV_HEADER = "time,station,phase,probability,uncertainty_s,amplitude,snr_db,polarity\n"


class StationSet:
    """Stations created on first sight of each 'NET.STA.LOC.BAND' group of records."""

    def __init__(self, runner, config):
        self.runner, self.config = runner, config
        self.stations: Dict[str, Station] = {}
        self._ignored = set()
        self.rejected = 0  # records a station refused (logged)

    def feed_record(self, rec):
        key = "%s.%s.%s.%s" % (rec.network, rec.station, rec.location, rec.channel[:-1])
        st = self.stations.get(key)
        if st is None:
            st = self.stations[key] = Station(self.runner, self.config)
            log.info("new station %s", key)
        if not st.accepts(rec.channel):
            if (key, rec.channel) not in self._ignored:
                self._ignored.add((key, rec.channel))
                log.info("%s: channel %s is not a component of the model %s; ignored", key, rec.channel, st.channels)
            return []
        try:
            return st.feed_record(rec)
        except (DataError, ConfigError) as exc:  # one bad record (a clock fault, a bad rate) stops nothing else
            self.rejected += 1
            log.error("%s: record refused: %s", key, exc)
            return []

    def flush(self):
        out = []
        for st in self.stations.values():
            out += st.flush()
        return out

