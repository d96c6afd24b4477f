"""The station pipeline: packets in, picks out; and ``fieldpick run``.

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
until one reaches its end (see :meth:`Station._plan`); with 'grid' every grid
window that overlaps a widened span runs, decided once the trigger has seen
``pre_s`` past the window's end.  In 'continuous' mode every grid window runs.
Windows that contain a gap never run, so no pick is made across one.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np

from .card import ModelCard
from .config import StationConfig
from .errors import BackendError, ConfigError, DataError
from .limits import check_rate, check_time
from .picker import PeakFinder, Stacker, measure, output_traces, phase_columns
from .picks import Pick
from .stream.resample import Resampler
from .stream.ring import RingBuffer
from .stream.trigger import HighpassInput, Trigger
from .stream.windows import hop_samples, normalise

__all__ = ["Runner", "InterpreterRunner", "EnergyRatioRunner", "Station", "StationSet", "format_pick", "load_runner",
           "default_card_path", "DEFAULT_CARD", "records_in_time_order", "join_seconds", "main"]

log = logging.getLogger(__name__)

_ALIASES = {"1": "N", "2": "E", "N": "1", "E": "2"}


class Runner:
    """The model seam: anything with ``card`` and ``run(batch) -> outputs``.

    batch: float32 windows in the card's input layout (``(B, T, C)`` for
    'NTC').  outputs: an array or a list of arrays with B first, as
    :func:`~fieldpick.edge.picker.output_traces` reads them.
    """

    card: ModelCard

    def run(self, batch):  # pragma: no cover - interface
        raise NotImplementedError


class InterpreterRunner(Runner):
    """The TFLite interpreter (any back end) behind the runner seam."""

    def __init__(self, model_path, card, backend="numpy"):
        from .tflite.interpreter import Interpreter

        self.card = card
        self.interpreter = Interpreter(model_path, backend=backend)

    def run(self, batch):
        return self.interpreter.run(batch, dequantize=True)


class EnergyRatioRunner(Runner):
    """A classic, untrained picker behind the runner seam (tests, benchmarks, baselines).

    For each window (B, T, C) it computes, per sample, the log10 ratio of the
    mean energy in the ``after_s`` seconds from the sample on to the mean
    energy in the ``before_s`` seconds before it, on Z for P and on the
    horizontals for S (S only where the horizontals carry most of the energy
    after the sample).  The ratio peaks at an onset; it is mapped to a
    "probability" by ``clip((log10 ratio - lo) / (hi - lo), 0, 1)``.  Outputs
    are per-sample traces in the card's label order and output layout.  It is
    deterministic and needs only numpy; it is NOT a trained network.
    """

    def __init__(self, card, before_s=3.0, after_s=0.5, lo=0.7, hi=1.7):
        if card.output.kind != "probabilities":
            raise ConfigError("EnergyRatioRunner writes per-sample 'probabilities'; card kind is %r"
                              % card.output.kind)
        self.card = card
        fs = card.input.sampling_rate_hz
        self.nb, self.na = max(1, int(before_s * fs)), max(1, int(after_s * fs))
        self.lo, self.hi = lo, hi
        self._z = card.input.channels.index("Z") if "Z" in card.input.channels else 0
        self._h = [i for i, c in enumerate(card.input.channels) if c != "Z"]

    def _ratio(self, e):
        """log10(mean e[t:t+na] / mean e[t-nb:t]) along the last axis, (B, T); 0 where a
        window would leave the data.  Also the mean energy after each sample."""
        B, T = e.shape
        nb, na = self.nb, self.na
        c = np.zeros((B, T + 1))
        np.cumsum(e, axis=1, out=c[:, 1:])
        r = np.zeros((B, T))
        after = np.zeros((B, T))
        hi = T - na + 1
        if hi > nb:
            mid = c[:, nb:hi]
            after[:, nb:hi] = (c[:, nb + na:T + 1] - mid) / na
            before = (mid - c[:, 0:hi - nb]) / nb
            r[:, nb:hi] = np.log10((after[:, nb:hi] + 1e-12) / (before + 1e-12))
        return r, after

    def run(self, batch):
        x = np.asarray(batch, dtype=np.float64)
        if self.card.input.layout == "NTC":
            x = np.transpose(x, (0, 2, 1))
        x = x - x.mean(axis=-1, keepdims=True)
        e = x * x
        rp, ez = self._ratio(e[:, self._z])
        p = np.clip((rp - self.lo) / (self.hi - self.lo), 0.0, 1.0)
        if self._h:
            rs, eh = self._ratio(e[:, self._h].sum(axis=1))
            horiz = eh / (eh + ez * len(self._h) + 1e-12)
            s_ = np.clip((rs - self.lo) / (self.hi - self.lo), 0.0, 1.0) * (horiz > 0.8)
        else:
            s_ = np.zeros_like(p)
        p = p * (1.0 - s_)
        out = []
        for lab in self.card.output.labels:
            out.append(p if lab == "P" else s_ if lab == "S" else np.clip(1.0 - p - s_, 0.0, 1.0))
        y = np.stack(out, axis=1).astype(np.float32)  # (B, K, T)
        return y if self.card.output.layout == "NCT" else np.ascontiguousarray(np.transpose(y, (0, 2, 1)))


DEFAULT_CARD = "fieldpick-default.json"


def default_card_path(models_dir=None):
    """The bundled model's card, or None when edge/models/ holds no card.

    Which card is the default is said, never guessed from file order: the
    file ``DEFAULT`` in the folder names it (one line, a card file name);
    without it, the card named :data:`DEFAULT_CARD`; without that, the only
    card there.  Several cards and nothing naming one is a ConfigError.
    models_dir: the folder (edge/models/ when None).
    """
    here = models_dir or os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
    if not os.path.isdir(here):
        return None
    cards = sorted(n for n in os.listdir(here) if n.endswith(".json"))
    marker = os.path.join(here, "DEFAULT")
    if os.path.isfile(marker):
        with open(marker, encoding="utf-8") as f:
            name = f.read().strip()
        if name not in cards:
            raise ConfigError("%s names the default card %r, which is not there; allowed: %s"
                              % (marker, name, ", ".join(cards) or "(no .json card in the folder)"))
        return os.path.join(here, name)
    if DEFAULT_CARD in cards:
        return os.path.join(here, DEFAULT_CARD)
    if len(cards) > 1:
        raise ConfigError("%s holds %d cards (%s) and none is named %r; write the default's file name "
                          "into %s or give the card path" % (here, len(cards), ", ".join(cards), DEFAULT_CARD, marker))
    return os.path.join(here, cards[0]) if cards else None


_BACKEND_NAMES = {"numpy": "numpy", "litert": "litert", "tflite-runtime": "tflite", "onnxruntime": "onnx"}


#: what ``backend: "auto"`` tries, fastest first; numpy is always there
AUTO_ORDER = ("litert", "tflite-runtime", "numpy")


def load_runner(model, backend="numpy"):
    """Card + interpreter from a card path (or 'default'); returns an :class:`InterpreterRunner`.

    backend 'auto': ai-edge-litert where it is installed, else tflite-runtime,
    else the numpy runtime (the choice is logged).  The optimised TFLite
    kernels may differ from the reference (and numpy) by a few output steps.
    """
    path = default_card_path() if model == "default" else model
    if path is None:
        raise ConfigError("model is 'default' but no model is bundled in edge/models/; give a card path")
    if backend == "auto":
        for name in AUTO_ORDER:
            try:
                runner = load_runner(path, name)
            except BackendError as exc:
                log.debug("backend auto: %s not available (%s)", name, exc)
                continue
            log.info("backend auto: using %s", name)
            return runner
    card = ModelCard.load(path)
    model_path = card.model_path(path)
    if backend == "onnxruntime":
        model_path = os.path.splitext(model_path)[0] + ".onnx"
    return InterpreterRunner(model_path, card, _BACKEND_NAMES[backend])


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
        self.W = W = int(card.input.window_samples)
        self.S = S = int(card.output.stride_samples)
        self.H = H = hop_samples(W, cfg.overlap, S)
        self.gated = cfg.mode == "gated"
        tc = cfg.trigger
        self.q = q = int(tc.decimate)
        if self.gated and tc.band_hz and tc.band_hz[1] >= fs / (2.0 * q):
            raise ConfigError("trigger.band_hz high corner %r Hz is not below the trigger's Nyquist %r Hz "
                              "(model rate %r Hz / trigger.decimate %d / 2); lower it or the decimation"
                              % (tc.band_hz[1], fs / (2.0 * q), fs, q))
        unit = H * q // math.gcd(H, q)  # blocks hold whole hops and whole decimated samples
        self.block = max(1, int(round(tc.block_s * fs / unit))) * unit
        self.pre = int(round(tc.pre_s * fs))
        self.post = int(round(tc.post_s * fs))
        if self.gated and tc.channel not in self.channels:
            raise ConfigError("trigger.channel is %r; allowed: the card's channels %s" % (tc.channel, self.channels))
        thr = dict(card.thresholds)
        thr.update(cfg.picker.thresholds)
        self.phases = phase_columns(card)
        min_sep = int(round(cfg.picker.min_separation_s * fs / S))
        self.finders = {ph: PeakFinder(thr[ph], S, min_sep) for ph, _ in self.phases}
        self.chunk = self.block if self.gated else max(1, int(round(60.0 * fs / H))) * H
        self.fit = self.gated and tc.windows == "fit"
        latency = W + H + (self.pre + self.block if self.gated else 0)
        if self.fit:  # a fitted window may start up to pre + 1.5 windows + a hop before the trigger's end
            latency += self.pre + self.post + 2 * W + H
        self.lookback = int((cfg.picker.noise_s + cfg.picker.min_separation_s + 30.0) * fs)
        max_lag = int(round(cfg.buffer.max_lag_s * fs))
        capacity = max_lag + latency + self.lookback + 2 * self.chunk + W + cfg.batch * H
        self.ring = RingBuffer(self.channels, fs, capacity, max_lag, cfg.buffer.gap_fill)
        cells = W + (cfg.batch + 2) * H + self.lookback
        if self.fit:
            cells += latency + self.block
        self.stacking = cfg.stacking if cfg.stacking != "auto" else ("avg" if self.fit else "taper")
        self.stacker = Stacker(len(card.output.labels), cells // S + 2, self.stacking, window_cells=W // S)
        self._fin_step = max(1, cfg.batch * H // S)  # cells a pending batch may span before it runs
        self.trigger = (Trigger(fs / q, tuple(tc.band_hz) if tc.band_hz else None, tc.order, tc.sta_s, tc.lta_s,
                                tc.on, tc.off, tc.warmup) if self.gated else None)
        self._trig_c = self.channels.index(tc.channel) if self.gated else 0
        self._tdone = 0          # trigger processed below this sample
        self._trig_valid = False  # previous trigger sample was valid data
        self._spans = []         # [on, off) triggered spans (off None while on)
        self._k = 0              # next grid window to decide
        self._pending = []       # window starts decided to run, not yet run
        self._g = None           # 'fit': the triggered group being planned (see _plan)
        self._decided = []       # 'fit': window starts decided, waiting for their data; None ends a group
        self._last_start = -1    # 'fit': start of the newest window decided
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
    def _run_trigger(self, upto):
        """Trigger over [tdone, upto) in aligned blocks (or the remainder at the end).

        With ``trigger.decimate`` q > 1 the trigger channel is first averaged over
        q samples (a boxcar anti-alias) and the trigger runs at fs / q; a decimated
        sample is valid only when all q input samples are.
        """
        q = self.q
        while self._tdone < upto:
            a = self._tdone
            b = min(upto, (a // self.block + 1) * self.block)
            x, valid = self.ring.view(a, b)
            xv, vv = x[self._trig_c], valid[self._trig_c]
            m = (b - a) // q  # whole decimated samples (a partial tail only at the end of a stream)
            full = bool(vv.all())
            if q > 1:  # boxcar: the mean of each q samples (summed in order, then divided)
                xd = xv[0: m * q: q].copy()
                for j in range(1, q):
                    xd += xv[j: m * q: q]
                xv = np.true_divide(xd, q, out=xd)
                vv = vv[: m * q].reshape(m, q).all(axis=1) if not full else None
            if m and full:
                if not self._trig_valid:
                    self.trigger.reset()
                _, act = self.trigger.update(xv)
            elif m:
                act = np.zeros(m, bool)
                edges = np.flatnonzero(np.diff(np.concatenate([[False], vv, [False]]).astype(np.int8)))
                for s, e in zip(edges[0::2], edges[1::2]):
                    if not (s == 0 and self._trig_valid):
                        self.trigger.reset()
                    _, act[s:e] = self.trigger.update(xv[s:e])
                    if e < len(vv):
                        self.trigger.reset()
            else:
                act = np.zeros(0, bool)
            if m:
                self._trig_valid = full or bool(vv[-1])
            self._record_spans(a, act, q, b - a)
            self._tdone = b

    def _record_spans(self, a, act, q=1, n=None):
        """Spans from the trigger's activity ``act`` at samples ``a + i * q``
        (each decimated sample stands for ``q`` samples; samples past
        ``len(act) * q`` up to ``n`` are inactive)."""
        m = len(act)
        n = m * q if n is None else n
        if not n:
            return
        was = bool(self._spans and self._spans[-1][1] is None)
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
                self._spans.append([a + int(i) * q, None])
            else:
                self._spans[-1][1] = a + int(i) * q

    def _window_wanted(self, s):
        if not self.gated:
            return True
        lo, hi = s - self.post, s + self.W + self.pre
        for on, off in self._spans:
            if on < hi and (off is None or off > lo):
                return True
        return False

    def _process(self, final=False):
        ring = self.ring
        F = ring.frontier
        if F == self._seen_frontier and not final:
            return []
        self._seen_frontier = F
        if self.fit:
            return self._process_fit(F, final)
        # nothing can change until a whole trigger block (gated) or the next grid window
        # (continuous) is final: skip the bookkeeping (most small packets stop here)
        if not final:
            idle = (F // self.block) * self.block <= self._tdone if self.gated else self._k * self.H + self.W > F
            if idle:
                return []
        if self.gated:
            upto = F if final else (F // self.block) * self.block
            self._run_trigger(upto)
            known = self._tdone
        out = []
        W, H = self.W, self.H
        while True:
            s = self._k * H
            if s + W > F:
                break
            if self.gated and not final and s + W + self.pre > known:
                break
            self.stats["windows_total"] += 1
            if self._window_wanted(s):
                _, valid = ring.view(s, s + W)
                if valid.all():
                    self._pending.append(s)
                else:
                    self.stats["windows_gap"] += 1
            self._k += 1
            oldest = self._pending[0] // self.S if self._pending else self.stacker.done
            if len(self._pending) >= self.config.batch or self._k * H // self.S - oldest > self._fin_step:
                self._run_pending()
                out += self._finalize(self._k * H // self.S)
        if final:
            self._run_pending()
        # cells before the first window still waiting for a batch are final
        out += self._finalize((self._pending[0] if self._pending else self._k * H) // self.S)
        # drop spans that no future window can meet
        nxt = self._k * H
        self._spans = [sp for sp in self._spans if sp[1] is None or sp[1] + self.post > nxt]
        need = min(nxt, self._pending[0] if self._pending else nxt, self._tdone if self.gated else nxt)
        ring.release(max(ring.base, need - self.lookback))
        return out

    # ------------------------------------------------------------ gated, fitted windows
    def _process_fit(self, F, final):
        """'fit' placement: trigger, plan windows from the spans, run those whose data is in.

        Which windows run depends only on the spans (and, at the end of the
        stream, on its last sample), and they are stacked in start order and
        batched per group, so packet sizes do not change the picks.
        """
        if not final and (F // self.block) * self.block <= self._tdone and not (
                self._decided and self._decided[0] is not None and self._decided[0] + self.W <= F):
            return []
        ring, W, S = self.ring, self.W, self.S
        self._run_trigger(F if final else (F // self.block) * self.block)
        T = self._tdone
        self._plan(T, final)
        dec = self._decided
        i = 0
        while i < len(dec):
            s = dec[i]
            if s is None:  # a group's windows are all decided: run them together
                self._run_pending()
                i += 1
                continue
            if s + W > F:
                if not final:
                    break
                s = ((F - W) // S) * S  # the stream ended inside the window: the last one that fits
                if s < 0 or s <= self._ran_upto:
                    i += 1
                    continue
            _, valid = ring.view(s, s + W)
            if valid.all():
                i += 1
                self._ran_upto = s
                self._pending.append(s)
                if len(self._pending) >= self.config.batch:
                    self._run_pending()
                continue
            ok = valid.all(axis=0)
            bad = np.flatnonzero(~ok)
            shifted = -(-(s + int(bad[-1]) + 1) // S) * S
            if not ok[0] and bad[-1] < W // 2 and (not final or shifted + W <= F):
                # it starts in a gap that ends in its first half (the trigger restarts after
                # a gap, so a span shortly after one): start it after the gap instead
                dec[i] = shifted
                continue
            i += 1
            self._ran_upto = s
            self.stats["windows_gap"] += 1
        del dec[:i]
        if final:
            self._run_pending()
        self.stats["windows_total"] = (F - W) // self.H + 1 if F >= W else 0
        horizon = self._horizon(T)
        out = self._finalize(horizon // S) if not final else []
        ring.release(max(ring.base, min(horizon, T) - self.lookback))
        return out

    def _align(self, s):
        return max(0, (int(s) // self.S) * self.S)

    def _decide(self, s):
        """Queue a window start (aligned, increasing; a repeat or an older start is dropped)."""
        s = self._align(s)
        if s > self._last_start:
            self._decided.append(s)
            self._last_start = s

    def _plan(self, T, final):
        """Turn triggered spans into windows.

        A group is a run of spans whose widened extents ``[a, b) = [on - pre,
        off + post)`` meet.  A group that fits in one window gets one window
        centred on it; a longer one windows at ``a, a + hop, ...`` until one
        reaches ``b`` (the onset, ``pre`` after ``a``, sits well inside the first
        window and in no window's first seconds).  Those are decided as soon
        as the group is known to need them; a centred one when the group is
        closed (the trigger has seen ``pre`` past ``b`` with nothing new, or
        the stream ended).
        """
        pre, post = self.pre, self.post
        spans, g = self._spans, self._g
        i = 0
        while i < len(spans):
            sp = spans[i]
            if g is None or (g["span"] is not sp and g["b"] is not None and sp[0] - pre >= g["b"]):
                if g is not None:
                    self._close(g)
                g = self._g = {"a": sp[0] - pre, "b": None, "span": sp, "next": self._align(sp[0] - pre),
                               "chained": False}
            g["span"] = sp
            if sp[1] is None:
                g["b"] = None
                break
            g["b"] = sp[1] + post
            i += 1
        del spans[:i]
        if g is None:
            return
        b_lb = g["b"] if g["b"] is not None else T + post  # the trigger is on through T
        self._chain(g, b_lb)
        if final and g["b"] is None:
            g["b"] = T + post
            del spans[:]
        if g["b"] is not None and (final or T >= g["b"] + pre):
            self._close(g)
            self._g = None

    def _chain(self, g, b_lb):
        """Decide the group's windows a hop apart that are sure to be needed: the first
        when the group is longer than a window, each next one while the one
        before ends before the group does."""
        W, H = self.W, self.H
        while g["next"] + W - (H if g["chained"] else 0) < b_lb:
            self._decide(g["next"])
            g["next"] += H
            g["chained"] = True

    def _close(self, g):
        if g["chained"]:
            self._chain(g, g["b"])
        else:  # fits in one window: centred on it
            self._decide((g["a"] + g["b"] - self.W) // 2)
        self._decided.append(None)

    def _horizon(self, T):
        """No window can be added before this sample any more."""
        S, W = self.S, self.W
        h = self._align(T - self.pre - max(0, W - self.pre - self.post) // 2) - S  # a group not begun yet
        g = self._g
        if g is not None:
            if g["chained"]:
                h = min(h, self._last_start + S)
            else:
                b_lb = g["b"] if g["b"] is not None else T + self.post
                h = min(h, self._align(g["a"]), self._align((g["a"] + b_lb - W) // 2))
        for s in self._decided:  # in start order, except a window moved past a gap
            if s is not None:
                h = min(h, s)
        if self._pending:
            h = min(h, self._pending[0])
        return max(h, self.stacker.done * S)

    def _run_pending(self):
        if not self._pending:
            return
        W = self.W
        batch = np.stack([self.ring.view(s, s + W)[0] for s in self._pending])  # (B, C, T)
        x = normalise(batch, self.card.input.normalisation, self.card.input.layout)
        probs, offsets = output_traces(self.runner.run(x), self.card)
        done = self.stacker.done
        for i, s in enumerate(self._pending):
            c = s // self.S
            k = max(0, done - c)  # a window clamped to the stream's end may reach back into final cells
            self.stacker.add(c + k, probs[i, k:], None if offsets is None else offsets[i, k:], first=k)
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
        s_tail = ((F - self.W) // self.S) * self.S
        last = (self._k - 1) * self.H
        if self.fit:  # its windows are placed to the end already; the tail counts as a grid window
            self.stats["windows_total"] += int(F >= self.W and s_tail > ((F - self.W) // self.H) * self.H)
        elif s_tail > last and s_tail >= 0 and self._window_wanted(s_tail):
            self.stats["windows_total"] += 1
            _, valid = ring.view(s_tail, s_tail + self.W)
            if valid.all():  # the pending batch ran in _process(final=True); this one runs alone
                self._pending.append(s_tail)
                self._run_pending()
        out += self._finalize((F + self.S - 1) // self.S if F >= self.W or short else self.stacker.done,
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
        W, ring = self.W, self.ring
        a = -(-ring.base // self.S) * self.S
        if F >= W or F - a < W // 8:
            return False
        data, valid = ring.view(a, F)
        if not valid.all():
            log.warning("%s: a %.1f s record shorter than the model window (%.2f s) has gaps; not picked",
                        self.station, (F - a) / self.fs, W / self.fs)
            return False
        log.warning("%s: a %.1f s record is shorter than the model window (%.2f s): padded to one window",
                    self.station, (F - a) / self.fs, W / self.fs)
        window = np.empty((1, data.shape[0], W), np.float64)
        window[0, :, : F - a] = data
        window[0, :, F - a:] = data.mean(axis=1, keepdims=True)
        x = normalise(window, self.card.input.normalisation, self.card.input.layout)
        probs, offsets = output_traces(self.runner.run(x), self.card)
        c = a // self.S
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


def _iso(time_ns):
    sec, ns = divmod(int(time_ns), 10 ** 9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + ".%06dZ" % (ns // 1000)


def format_pick(pick, fmt):
    """One output line (with newline) for a pick: 'csv' or 'jsonl'."""
    if fmt == "jsonl":
        d = pick.to_dict()
        d["time"] = _iso(pick.time_ns)
        return json.dumps(d, sort_keys=True) + "\n"
    return "%s,%s,%s,%.4f,%.4f,%.6g,%.2f,%s\n" % (
        _iso(pick.time_ns), pick.station, pick.phase, pick.probability, pick.uncertainty_s,
        pick.amplitude, pick.snr_db, pick.polarity)


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


# bytes per read and decode of a channel's runs: about 64 records a pass, within 64-256 KiB.  Decoding
# 1 MiB of Steim-2 at once costs ~27 MB of working arrays; 16 records a pass (64 KiB of 4096-byte
# records) is ~1.7x slower than 64; 512 records a pass (256 KiB of 512-byte ones) costs ~10 MB more
_READ_BYTES = 1 << 16
_READ_MAX = 1 << 18
_READ_RECORDS = 64
_SCAN_BYTES = 1 << 20  # bytes per read of the header scan (nothing decoded: large reads, fewer passes)


def _channel_runs(path, stats):
    """Scan one file's record headers (no samples decoded): for each channel (seed
    id), the byte ranges ``[a, b)`` of its runs of consecutive records, in file
    order, and its first start time.  The scan's counts go to ``stats``."""
    from .sources.mseed import MseedDecoder

    dec = MseedDecoder(name=path, headers_only=True)
    runs, first = {}, {}
    last = None  # the open run: [a, b] of the latest record's channel
    prev = None
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(_SCAN_BYTES)
            for sid, start, a, _ in (dec.feed(chunk) if chunk else dec.flush()):
                if last is not None:
                    last[1] = a  # a run ends where the next record begins
                if sid != prev:
                    last = [a, a, 0]
                    runs.setdefault(sid, []).append(last)
                    first[sid] = min(first.get(sid, start), start)
                last[2] += 1  # records in the run
                prev = sid
            if not chunk:
                break
        size = fh.tell()
    if last is not None:
        last[1] = size
    if stats is not None:
        _add_stats(stats, dec.stats)
    return runs, first


def _merge_lazily(streams):
    """Merge record iterators by ``(start_ns, channel)``, opening each only when the
    merge reaches its first record (files of later days stay closed and use no
    memory until then).  streams: ``(first start ns, callable returning an
    iterator)``; each iterator yields records in time order."""
    import heapq

    pending = sorted(streams, key=lambda st: st[0])
    heap, i, n = [], 0, 0
    while True:
        while i < len(pending) and (not heap or pending[i][0] <= heap[0][0][0]):
            it = iter(pending[i][1]())
            i += 1
            rec = next(it, None)
            if rec is not None:
                heapq.heappush(heap, ((rec.start_ns, rec.channel), n, rec, it))
                n += 1
        if not heap:
            return
        _, _, rec, it = heapq.heappop(heap)
        yield rec
        nxt = next(it, None)
        if nxt is not None:
            heapq.heappush(heap, ((nxt.start_ns, nxt.channel), n, nxt, it))
            n += 1


def join_seconds(cfg):
    """Seconds of contiguous records a file reader may join into one packet for a
    station config: 30 s, or less when ``buffer.max_lag_s`` is short (the
    components interleave in pieces of this length and must stay within the lag)."""
    return min(30.0, cfg.buffer.max_lag_s / 4.0)


def _joined(records, join_s):
    """Contiguous records (same rate, each starting where the last ended, within half
    a sample) concatenated into records of at least ``join_s`` seconds; fewer, larger
    packets make the same stream (the station's per-packet work is then paid less often)."""
    from .sources.base import Record

    parts, n, want = [], 0, 0
    for rec in records:
        if parts:
            last = parts[-1]
            period = 1e9 / last.sampling_rate
            expect = last.start_ns + len(last.samples) * period
            if rec.sampling_rate != last.sampling_rate or abs(rec.start_ns - expect) > period / 2:
                yield _concat(parts, Record)
                parts, n = [], 0
        if not parts:
            want = join_s * rec.sampling_rate
        parts.append(rec)
        n += len(rec.samples)
        if n >= want:
            yield _concat(parts, Record)
            parts, n = [], 0
    if parts:
        yield _concat(parts, Record)


def _concat(parts, Record):
    if len(parts) == 1:
        return parts[0]
    r = parts[0]
    return Record(r.network, r.station, r.location, r.channel, r.start_ns, r.sampling_rate,
                  np.concatenate([p.samples for p in parts]))


def _one_channel(path, seed_id, runs, start_ns=None, end_ns=None, join_s=0.0, stats=None):
    """The records of one channel of a file, decoding only the byte ranges ``runs``;
    contiguous ones joined to ``join_s`` seconds when > 0.  The scan counted the
    records; a record whose Steim frames fail to decode is taken back out of
    ``stats`` here and counted as skipped."""
    if join_s > 0:
        for rec in _joined(_one_channel(path, seed_id, runs, start_ns, end_ns, stats=stats), join_s):
            yield rec
        return
    from .sources.mseed import MseedDecoder
    from .sources.sds import trim_record

    with open(path, "rb") as fh:
        for a, b, nrec in runs:
            fh.seek(a)
            dec = MseedDecoder(name=path)  # the rest of its counts were taken by the scan
            dec.failures = _Failures(stats)
            left = b - a
            size = min(_READ_MAX, max(_READ_BYTES, (b - a) // max(nrec, 1) * _READ_RECORDS))
            recs = []
            while True:
                chunk = fh.read(min(left, size)) if left > 0 else b""
                left -= len(chunk)
                recs = dec.feed(chunk) if chunk else dec.flush()
                for rec in recs:
                    if rec.seed_id != seed_id:
                        continue
                    if start_ns is not None or end_ns is not None:
                        rec = trim_record(rec, start_ns, end_ns)
                        if rec is None:
                            continue
                    yield rec
                if not chunk:
                    break


class _Failures(list):
    """A decoder's list of Steim failures that also takes each back out of the scan's counts."""

    def __init__(self, stats):
        super().__init__()
        self.stats = stats

    def append(self, item):
        super().append(item)
        if self.stats is not None:
            reason, nbytes, nsamples = item
            self.stats.records -= 1
            self.stats.samples -= nsamples
            self.stats.bytes_skipped += nbytes
            self.stats.skipped[reason] = self.stats.skipped.get(reason, 0) + 1


def _add_stats(total, part):
    total.records += part.records
    total.samples += part.samples
    total.no_data += part.no_data
    total.bytes_skipped += part.bytes_skipped
    for k, v in part.skipped.items():
        total.skipped[k] = total.skipped.get(k, 0) + v


def records_in_time_order(paths, start_ns=None, end_ns=None, stats=None, join_s=0.0):
    """Records of miniSEED files merged lazily in start-time order (bounded memory).

    A file usually holds one channel after another (or one channel per file,
    as in an SDS archive); the station needs its components together.  Each
    file is scanned once (now) for where each channel's records lie, then
    each channel's byte ranges are read and decoded (lazily, once), and the
    per-channel streams are merged by start time, each opened only when the
    merge reaches it: memory holds one read buffer per channel being merged
    and the list of ranges, never a whole file.  The scan reads headers only,
    so every sample is decoded once.

    paths: files or folders.  start_ns, end_ns: keep only samples in
    [start_ns, end_ns) (None: no limit).  stats: a
    :class:`~fieldpick.edge.sources.mseed.DecodeStats` that receives the
    counts of the scan (each record counted once, before the first record
    comes; a record whose Steim frames then fail to decode is moved from
    ``records`` to ``skipped`` when its channel is read).  join_s: when > 0,
    contiguous records of a channel come joined into records of at least
    that many seconds (see :func:`join_seconds`).
    """
    from functools import partial

    from .sources.mseed import MseedFileSource

    streams = []
    for path in paths:
        for name in MseedFileSource(path).paths:
            try:
                runs, first = _channel_runs(name, stats)
            except OSError as exc:  # one unreadable file does not stop the others
                if stats is not None:
                    stats.skip("unreadable file", 0, name, exc.strerror or str(exc))
                continue
            streams += [(first[sid], partial(_one_channel, name, sid, r, start_ns, end_ns, join_s, stats))
                        for sid, r in sorted(runs.items())]
    return _merge_lazily(streams)


def _sds_records(spec, join_s=0.0):
    """An SDS root or ``sds://`` URL: its selected day files, day by day, each day's
    channels merged in time order and trimmed to the selected window."""
    from itertools import groupby

    from .sources import open_source

    src = open_source(spec)  # checks the selection options; an SdsSource
    files, t0, t1 = list(src.files), src.start_ns, src.end_ns
    src.close()
    for _, day in groupby(files, key=lambda f: os.path.basename(f).split(".")[-2:]):
        for rec in records_in_time_order(list(day), t0, t1, join_s=join_s):
            yield rec


def _open_sources(specs, join_s=0.0):
    """Record iterators for the config's source specs.

    An SDS root or ``sds://`` URL: selected and trimmed as
    :func:`fieldpick.edge.sources.open_source` does, merged in time order day
    by day.  Other existing paths (files, folders of files): merged in time
    order.  Anything else (``seedlink://``, ``-``): ``open_source(spec)``.
    join_s: file records joined to this many seconds (see :func:`join_seconds`).
    """
    from .sources import _is_sds_root, open_source

    out, files = [], []
    for spec in specs:
        if spec.startswith("sds://") or (os.path.isdir(spec) and _is_sds_root(spec)):
            out.append(_sds_records(spec, join_s))
        elif os.path.exists(spec):
            files.append(spec)
        else:
            out.append(open_source(spec))
    if files:
        out.insert(0, records_in_time_order(files, join_s=join_s))
    return out


POLL_S = 1.0  # seconds of wall clock between uplink polls in the run loop


def _uplink(cfg):
    """The telemetry uplink of the config's ``telemetry`` block (None when absent)."""
    if not cfg.telemetry:
        return None
    from .telemetry.uplink import from_config

    return from_config(cfg.telemetry)


def main(argv):
    """``fieldpick run --config station.json``: sources -> picks -> output (and telemetry)."""
    parser = argparse.ArgumentParser(prog="fieldpick run", allow_abbrev=False,
                                     description="Run a station from a JSON config (live sources, telemetry).")
    parser.add_argument("--config", required=True, help="station config JSON (see docs/station.md)")
    parser.add_argument("--check", action="store_true", help="validate the config and the model, then exit")
    ns = parser.parse_args(argv)
    cfg = StationConfig.load(ns.config)
    if not cfg.sources:
        raise ConfigError("sources is empty; list at least one source spec (a miniSEED path or seedlink://...)")
    runner = load_runner(cfg.model, cfg.backend)
    if ns.check:
        sys.stdout.write("config %s: ok (model %s, mode %s)\n" % (ns.config, runner.card.name, cfg.mode))
        return 0
    uplink = _uplink(cfg)
    stations = StationSet(runner, cfg)
    path = cfg.output.path
    out = None if path == "" else sys.stdout if path == "-" else open(path, "a", encoding="utf-8")
    n = 0
    records = 0

    def emit(picks):
        if out is not None:
            for p in picks:
                out.write(format_pick(p, cfg.output.format))
        if uplink is not None and picks:
            uplink.submit(picks)  # journaled (fsync) before it returns

    try:
        if out is not None and cfg.output.format == "csv" and (out is sys.stdout or out.tell() == 0):
            out.write(CSV_HEADER)
        polled = time.monotonic()
        for src in _open_sources(cfg.sources, join_seconds(cfg)):
            for rec in src:
                picks = stations.feed_record(rec)
                n += len(picks)
                emit(picks)
                records += 1
                # acks, late partial packets, retransmissions: at least every POLL_S of wall
                # clock, not only when a pick arrives
                if uplink is not None and (records % 100 == 0 or time.monotonic() - polled >= POLL_S):
                    uplink.poll(0.0)
                    polled = time.monotonic()
            if hasattr(src, "close"):
                src.close()
        picks = stations.flush()
        n += len(picks)
        emit(picks)
        if out is not None:
            out.flush()
        if uplink is not None:
            # end of a finite stream: pack what waits for a fuller packet and send it now
            # (what stays unacknowledged is journaled for the next start)
            uplink.flush()
            uplink.poll(0.0)
    finally:
        if out is not None and out is not sys.stdout:
            out.close()
        if uplink is not None:
            uplink.close()
    log.info("%d picks from %d station(s)", n, len(stations.stations))
    return 0
