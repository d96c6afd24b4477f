"""From network outputs to picks: stacking, peaks, refinement, measurements.

Two output kinds are read, as the model card says (``output.kind``):

- ``probabilities`` (PhaseNet; also ``detection_probabilities``, EQTransformer,
  whose 'D' trace is ignored here): one probability per sample and label;
- ``stride_class_offset`` (LPPN, Yu et al. 2022): per stride of ``S`` samples
  the label probabilities plus one extra channel, the arrival offset inside
  the stride in [0, 1); an arrival in stride ``k`` lies at ``(k + offset) * S``
  (a model without the offset channel is read as offset 0.5, the stride centre).

Both become per-"cell" traces (a cell is one sample, or one stride).
Overlapping windows are combined by :class:`Stacker` (mean or max of the
windows covering a cell, as SeisBench's ``annotate`` stacks, or a mean
weighted by a Hann taper over each window, so that a cell is read mostly from
the window that holds it nearest its middle), and
:class:`PeakFinder` turns each phase's trace into peaks: one per run of
cells at or above the card's threshold, refined to sub-sample time by a
parabola through the peak and its neighbours (per-sample kind) or by the
offset (stride kind), with a one-sigma uncertainty from the peak's full width
at half maximum (``FWHM / 2.355``, never below ``S / sqrt(12)`` samples), and
peaks of one phase closer than ``min_separation`` merged (the larger wins).
Both are streaming objects with explicit state; fed in pieces they give the
same peaks as one pass.

:func:`extract_picks` does all of it for one window's raw output.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import List

import numpy as np

from .errors import ConfigError, DataError
from .picks import Pick

__all__ = [
    "STACKING",
    "output_traces",
    "Stacker",
    "Peak",
    "PeakFinder",
    "measure",
    "extract_picks",
]

log = logging.getLogger(__name__)

STACKING = ("avg", "max", "taper")
#: weight of a window's first and last cells under 'taper' (never 0: a cell only
#: one window covers keeps that window's value exactly)
TAPER_FLOOR = 1e-3
_FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


def _dequantise(arr, card, index):
    if np.issubdtype(arr.dtype, np.floating):
        return arr.astype(np.float32, copy=False)
    outs = [t for t in card.quantisation.tensors if t.role == "output"]
    if index >= len(outs) or outs[index].scale is None:
        raise DataError(
            "output %d is %s but card %r gives no scale/zero_point for it" % (index, arr.dtype, card.name)
        )
    t = outs[index]
    return ((arr.astype(np.float32) - t.zero_point) * t.scale).astype(np.float32)


def output_traces(outputs, card):
    """Raw model output(s) -> ``(probs (B, n_cells, K), offsets (B, n_cells) or None)``.

    outputs: one array (or a one- or two-element list: probabilities and,
    for the stride kind, offsets) in the card's output layout, with or
    without the batch axis; integer outputs are dequantised with the card's
    output tensor scale and zero point.  K = number of card labels.
    """
    kind = card.output.kind
    if kind == "window_class":
        raise ConfigError("output kind 'window_class' gives no arrival times; the picker needs "
                          "'probabilities', 'detection_probabilities' or 'stride_class_offset'")
    arrs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    arrs = [_dequantise(np.asarray(a), card, i) for i, a in enumerate(arrs)]
    K = len(card.output.labels)
    n_cells = card.input.window_samples // card.output.stride_samples
    first = arrs[0]
    if first.ndim == 2:
        first = first[None]
    if first.ndim != 3:
        raise DataError("model output has shape %s; expected (B, cells, labels) or (B, labels, cells)" % (first.shape,))
    if card.output.layout == "NCT":
        first = np.transpose(first, (0, 2, 1))
    offsets = None
    if kind == "stride_class_offset":
        if len(arrs) > 1:
            offsets = np.asarray(arrs[1], dtype=np.float32).reshape(first.shape[0], -1)
        elif first.shape[-1] == K + 1:
            offsets = first[..., K]
            first = first[..., :K]
        elif first.shape[-1] == K:  # a per-stride classifier without offsets: stride centres
            offsets = np.full(first.shape[:2], 0.5, np.float32)
        else:
            raise DataError(
                "stride_class_offset output has %d channels; expected %d labels + 1 offset" % (first.shape[-1], K)
            )
    if first.shape[-1] != K or first.shape[1] != n_cells:
        raise DataError(
            "model output has shape %s after layout; the card says (B, %d cells, %d labels %s)"
            % (first.shape, n_cells, K, card.output.labels)
        )
    return first, offsets


class Stacker:
    """Combines overlapping windows' cell traces at absolute cell positions.

    n_labels: K.  capacity: cells held (fixed memory).  method: 'avg' (mean
    of the windows covering a cell), 'max', or 'taper': a mean weighted by a
    Hann taper over each window's ``window_cells`` cells (floored at
    ``TAPER_FLOOR``).  A picker is trained with the onset well inside its
    window and sees little context near the window's ends, so where two
    windows overlap the taper trusts the one holding the cell nearer its
    middle; a cell covered by one window only keeps that window's value.
    Cells no window covered read 0.  ``add()`` a window's traces;
    ``finalize(upto)`` hands back cells ``[done, upto)`` once no further
    window can touch them.
    """

    def __init__(self, n_labels, capacity, method="avg", window_cells=None):
        if method not in STACKING:
            raise ConfigError("stacking %r; allowed: %s" % (method, ", ".join(STACKING)))
        if method == "taper" and not window_cells:
            raise ConfigError("stacking 'taper' needs window_cells (cells per window), got %r" % (window_cells,))
        self.method = method
        self.K = int(n_labels)
        self.capacity = int(capacity)
        self._p = np.zeros((self.capacity, self.K))
        self._o = np.zeros((self.capacity, self.K))
        self._n = np.zeros(self.capacity)
        self.base = 0  # absolute cell of row 0
        self.done = 0  # cells before this are handed back
        self._w = None
        if method == "taper":
            n = int(window_cells)
            self._w = np.maximum(np.hanning(n + 2)[1:-1], TAPER_FLOOR)

    def add(self, start, probs, offsets=None, first=0, weight=None):
        """Add one window: probs (n, K), offsets (n,) or None, from absolute cell ``start``.

        ``first``: the index within its window of ``probs[0]`` (a window whose
        leading cells were already handed back is added from there on); only
        'taper' uses it.  ``weight``: optional (n,) factors on this window's
        cells in the means ('avg', 'taper'); a cell only this window covers
        keeps its value whatever the factor.
        """
        n = len(probs)
        if start < self.done:
            raise DataError("window at cell %d is older than the stacked output (%d)" % (start, self.done))
        if start + n - self.base > self.capacity:
            self._compact()
            if start + n - self.base > self.capacity:
                raise DataError("stacker capacity %d cells too small for a window at %d" % (self.capacity, start))
        a, b = start - self.base, start - self.base + n
        p = np.asarray(probs, dtype=np.float64)
        po = p * (np.asarray(offsets, dtype=np.float64)[:, None] if offsets is not None else 0.0)
        if self.method == "max":
            better = p > self._p[a:b]
            self._p[a:b] = np.where(better, p, self._p[a:b])
            self._o[a:b] = np.where(better, po, self._o[a:b])
            self._n[a:b] += 1
            return
        if self.method == "taper":
            if first < 0 or first + n > len(self._w):
                raise DataError("window cells %d..%d outside a window of %d cells" % (first, first + n, len(self._w)))
            w = self._w[first:first + n]
        else:
            w = np.ones(n)
        if weight is not None:
            w = w * np.asarray(weight, dtype=np.float64)
        p = p * w[:, None]
        po = po * w[:, None]
        self._p[a:b] += p
        self._o[a:b] += po
        self._n[a:b] += w

    def _compact(self):
        shift = self.done - self.base
        if shift <= 0:
            return
        for arr in (self._p, self._o, self._n):
            arr[: self.capacity - shift] = arr[shift:]
            arr[self.capacity - shift:] = 0
        self.base = self.done

    def finalize(self, upto):
        """(start, probs (n, K), offsets (n, K)) for cells [done, upto); those cells are dropped."""
        upto = int(upto)
        a, b = self.done - self.base, upto - self.base
        if b <= a:
            return self.done, np.zeros((0, self.K)), np.zeros((0, self.K))
        if b > self.capacity and a > 0:
            self._compact()
            a, b = 0, upto - self.base
        tail = max(0, b - self.capacity)  # cells beyond the buffer: no window reached them, zeros
        b -= tail
        p, o, n = self._p[a:b], self._o[a:b], self._n[a:b]
        if not n.any():  # no window reached these cells (gated mode, mostly)
            probs = np.zeros((b - a, self.K))
            off = probs
        else:
            off = o / np.where(p > 0, p, 1.0)  # o is 0 wherever p is
            if self.method == "max":
                probs = p.copy()
            else:  # the (weighted) mean; a cell no window reached has p = n = 0
                probs = p / np.where(n > 0, n, 1.0)[:, None]
        if tail:
            probs = np.concatenate([probs, np.zeros((tail, self.K))])
            off = np.concatenate([off, np.zeros((tail, self.K))])
            self._p[:] = 0
            self._o[:] = 0
            self._n[:] = 0
            self.base = upto
        start = self.done
        self.done = upto
        if self.done - self.base > self.capacity // 2:
            self._compact()
        return start, probs, off


@dataclass(frozen=True)
class Peak:
    """A peak of one phase trace.  position: absolute sample (float, model rate);
    probability: trace value at the peak; sigma: one-sigma uncertainty, samples."""

    position: float
    probability: float
    sigma: float


class PeakFinder:
    """Peaks of one phase's cell trace, streaming.

    threshold: probability in (0, 1).  stride: samples per cell (1 for
    per-sample traces).  min_separation: cells; peaks closer than this merge.
    ``process(start, values, offsets)`` takes the next finalised cells and
    returns the peaks now certain; ``process(..., final=True)`` closes.
    """

    def __init__(self, threshold, stride=1, min_separation=0):
        if not (0.0 < threshold < 1.0):
            raise ConfigError("threshold %r; allowed: a probability in (0, 1)" % (threshold,))
        self.threshold = float(threshold)
        self.stride = int(stride)
        self.min_separation = int(min_separation)
        self.reset()

    def reset(self):
        self._vals = np.zeros(0)
        self._offs = np.zeros(0)
        self._start = None  # absolute cell of _vals[0]
        self._held = None   # (cell, Peak) awaiting the separation test

    def _peak(self, vals, offs, a, b, origin):
        p = a + int(np.argmax(vals[a:b]))
        y1 = float(vals[p])
        if self.stride == 1:
            delta = 0.0
            if 0 < p < len(vals) - 1:
                y0, y2 = float(vals[p - 1]), float(vals[p + 1])
                den = y0 - 2.0 * y1 + y2
                if den < 0:
                    delta = min(0.5, max(-0.5, 0.5 * (y0 - y2) / den))
            pos = origin + p + delta
        else:
            pos = (origin + p + float(min(max(offs[p], 0.0), 1.0))) * self.stride
        # full width at half maximum, in cells, by linear interpolation, looked for only
        # within the run and one cell either side (so streaming sees what one pass sees)
        half = y1 / 2.0
        lo, hi = max(a - 1, 0), min(b, len(vals) - 1)
        i = p
        while i > lo and vals[i - 1] >= half:
            i -= 1
        left = (i - p) - ((vals[i] - half) / (vals[i] - vals[i - 1]) if i > lo and vals[i] != vals[i - 1] else 0.5)
        j = p
        while j < hi and vals[j + 1] >= half:
            j += 1
        right = (j - p) + ((vals[j] - half) / (vals[j] - vals[j + 1]) if j < hi and vals[j] != vals[j + 1] else 0.5)
        sigma = max((right - left) * self.stride * _FWHM_TO_SIGMA, self.stride / math.sqrt(12.0))
        return origin + p, Peak(float(pos), min(1.0, max(0.0, y1)), float(sigma))

    def _hold(self, cell, peak, out):
        if self._held is not None:
            hc, hp = self._held
            if cell - hc < self.min_separation:
                if peak.probability > hp.probability:
                    self._held = (cell, peak)
                return
            out.append(hp)
        self._held = (cell, peak)

    def process(self, start, values, offsets=None, final=False):
        """Take cells [start, start + n); return the finished peaks (list of :class:`Peak`)."""
        values = np.asarray(values, dtype=np.float64)
        offsets = np.zeros(len(values)) if offsets is None else np.asarray(offsets, dtype=np.float64)
        if (not final and self._held is None and len(values) and len(self._vals) <= 1
                and not (len(self._vals) and self._vals[0] >= self.threshold)
                and self._start is not None and self._start + len(self._vals) == start
                and float(values.max()) < self.threshold):
            # quiet cells and nothing open: keep the last cell for the next refinement, as below
            self._vals, self._offs = values[-1:], offsets[-1:]
            self._start = int(start) + len(values) - 1
            return []
        if self._start is None or len(self._vals) == 0:
            self._start = int(start)
        elif self._start + len(self._vals) != start:
            raise DataError("cells must follow on: expected cell %d, got %d"
                            % (self._start + len(self._vals), start))
        vals = np.concatenate([self._vals, values])
        offs = np.concatenate([self._offs, offsets])
        origin = self._start
        out: List[Peak] = []
        above = vals >= self.threshold
        edges = np.flatnonzero(np.diff(np.concatenate([[False], above, [False]]).astype(np.int8)))
        keep_from = max(0, len(vals) - 1)
        for a, b in zip(edges[0::2], edges[1::2]):
            if b == len(vals) and not final:
                keep_from = max(0, a - 1)  # still open: keep it (and one cell before) for next time
                break
            cell, peak = self._peak(vals, offs, int(a), int(b), origin)
            self._hold(cell, peak, out)
        end_cell = origin + len(vals)
        if self._held is not None and (final or (keep_from == len(vals) - 1 and end_cell - self._held[0] >= self.min_separation)):
            out.append(self._held[1])
            self._held = None
        self._vals = vals[keep_from:]
        self._offs = offs[keep_from:]
        self._start = origin + keep_from
        if final:
            self.reset()
        return out


def measure(wave, valid, channels, index, fs, phase, noise_s=5.0, signal_s=3.0, polarity_s=0.5):
    """Amplitude, SNR (dB) and P polarity of a pick from raw samples.

    wave: (C, n) input units, channels named as ``channels``; valid: (C, n)
    bool (gaps False) or None.  index: pick position in ``wave`` (samples,
    float).  Noise is ``[index - noise_s, index - 0.1 s)``, signal is
    ``[index, index + signal_s)``.  Amplitude: peak |x - noise mean| over the
    signal window (Z for P, horizontals for S when present).  SNR: ratio of
    mean squares, dB.  Polarity: sign of the first sample after the pick that
    leaves the noise by more than 4 noise standard deviations within
    ``polarity_s``; '?' when none does or for S.
    """
    wave = np.asarray(wave, dtype=np.float64)
    if valid is None:
        valid = np.ones(wave.shape, bool)
    i = int(round(index))
    n_noise, guard = int(noise_s * fs), max(1, int(0.1 * fs))
    n_sig, n_pol = int(signal_s * fs), max(1, int(polarity_s * fs))
    if phase == "P" or not any(c in channels for c in ("N", "E", "1", "2")):
        comps = [channels.index("Z")] if "Z" in channels else [0]
    else:
        comps = [k for k, c in enumerate(channels) if c != "Z"]
    amp, p_sig, p_noise = 0.0, 0.0, 0.0
    polarity = "?"
    for k in comps:
        lo, hi = max(0, i - n_noise), max(0, i - guard)
        noise = wave[k, lo:hi][valid[k, lo:hi]]
        sig = wave[k, max(0, i):i + n_sig][valid[k, max(0, i):i + n_sig]]
        if len(noise) < 2 or len(sig) == 0:
            continue
        mu, sd = float(noise.mean()), float(noise.std())
        d = sig - mu
        amp = max(amp, float(np.abs(d).max()))
        p_sig += float(np.mean(d * d))
        p_noise += float(sd * sd)
        if phase == "P" and channels[k] == "Z" and sd > 0:
            first = d[:n_pol]
            big = np.flatnonzero(np.abs(first) > 4.0 * sd)
            if len(big):
                polarity = "U" if first[big[0]] > 0 else "D"
    snr = 10.0 * math.log10(p_sig / p_noise) if p_noise > 0 and p_sig > 0 else 0.0
    return amp, snr, polarity


def phase_columns(card):
    """[(phase, label index)] for the P and S labels of the card, in label order."""
    return [(lab, i) for i, lab in enumerate(card.output.labels) if lab in ("P", "S")]


def extract_picks(outputs, card, start_ns=0, waveform=None, station="", thresholds=None,
                  min_separation_s=1.0, valid=None):
    """Picks from one window's raw model output.

    outputs: the runner's output for ONE window (batch axis of 1 or none).
    card: the :class:`~fieldpick.edge.card.ModelCard`.  start_ns: time of the
    window's first sample (ns since the epoch).  waveform: optional (C, T)
    raw window in the card's channel order (input units) for amplitude, SNR
    and polarity.  thresholds: per-phase overrides of the card's.
    Returns picks sorted by time.
    """
    probs, offsets = output_traces(outputs, card)
    if probs.shape[0] != 1:
        raise DataError("extract_picks takes one window; got a batch of %d" % probs.shape[0])
    fs = card.input.sampling_rate_hz
    stride = card.output.stride_samples
    thr = dict(card.thresholds)
    thr.update(thresholds or {})
    picks = []
    for phase, col in phase_columns(card):
        finder = PeakFinder(thr[phase], stride, int(round(min_separation_s * fs / stride)))
        offs = offsets[0] if offsets is not None else None
        for pk in finder.process(0, probs[0, :, col], offs, final=True):
            amp = snr = 0.0
            pol = "?"
            if waveform is not None:
                amp, snr, pol = measure(waveform, valid, list(card.input.channels), pk.position, fs, phase)
            picks.append(Pick(
                time_ns=int(start_ns) + int(round(pk.position * 1e9 / fs)),
                phase=phase, probability=pk.probability, uncertainty_s=pk.sigma / fs,
                amplitude=amp, snr_db=snr, polarity=pol if phase == "P" else "?", station=station,
            ))
    picks.sort(key=lambda p: (p.time_ns, p.phase))
    return picks
