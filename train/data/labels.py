"""Label builders: arrival indices -> the targets each kind of network learns.

Each builder is a small callable class: it validates its options in
``__init__``, turns a batch of arrival indices into targets in ``__call__``
and describes itself in ``__str__``.  Inputs are sample indices (float, NaN
where a phase is absent) of shape (B,) and a window length in samples.

- :class:`ProbabilityLabeller`: per-sample noise / P / S probability traces
  with Gaussian or triangular peaks (PhaseNet; Zhu & Beroza 2019).
- :class:`DetectionLabeller`: a 0/1 event mask from P to S plus a coda
  margin (EQTransformer; Mousavi et al. 2020), with P and S traces beside it.
- :class:`StrideLabeller`: one class per stride of S samples (noise / P / S)
  and the arrival's offset inside the stride in [0, 1) (LPPN; Yu et al. 2022).
"""

from __future__ import annotations

import numpy as np

from fieldpick.edge.errors import ConfigError, DataError

__all__ = ["ProbabilityLabeller", "DetectionLabeller", "StrideLabeller", "NOISE", "P", "S"]

#: class indices shared by every builder (and by the model cards' label order N, P, S)
NOISE, P, S = 0, 1, 2

SHAPES = ("gaussian", "triangle")


def _indices(p_idx, s_idx):
    p = np.atleast_1d(np.asarray(p_idx, dtype=np.float64))
    s = np.atleast_1d(np.asarray(s_idx, dtype=np.float64))
    if p.shape != s.shape or p.ndim != 1:
        raise DataError("p_idx has shape %s and s_idx %s; expected two (B,) arrays" % (p.shape, s.shape))
    return p, s


def _window(window_samples):
    if isinstance(window_samples, bool) or not isinstance(window_samples, (int, np.integer)) or window_samples < 1:
        raise DataError("window_samples is %r; expected a positive integer (samples)" % (window_samples,))
    return int(window_samples)


class ProbabilityLabeller:
    """Per-sample probability traces, output (B, 3, T) float32 in class order N, P, S.

    shape: 'gaussian' (exp(-d^2 / (2 sigma^2))) or 'triangle' (1 - |d| / width).
    width_samples: the Gaussian's sigma, or the triangle's half width, in samples.
    The noise trace is 1 - P - S clipped to [0, 1], so each sample sums to 1
    unless P and S overlap (they then both keep their peaks; noise is 0).
    An arrival outside the window still puts its tail inside it.
    """

    def __init__(self, shape="gaussian", width_samples=10.0):
        if shape not in SHAPES:
            raise ConfigError("label shape %r; allowed: %s" % (shape, ", ".join(SHAPES)))
        if not (float(width_samples) > 0):
            raise ConfigError("label width_samples is %r; it must be > 0 samples" % (width_samples,))
        self.shape = shape
        self.width_samples = float(width_samples)

    def peak(self, idx, window_samples):
        """(B, T) float32 peaks centred on ``idx`` (NaN rows are all zero)."""
        t = np.arange(_window(window_samples), dtype=np.float64)
        idx = np.atleast_1d(np.asarray(idx, dtype=np.float64))
        d = t[None, :] - np.where(np.isnan(idx), -1e12, idx)[:, None]
        if self.shape == "gaussian":
            y = np.exp(-0.5 * (d / self.width_samples) ** 2)
        else:
            y = np.clip(1.0 - np.abs(d) / self.width_samples, 0.0, 1.0)
        return y.astype(np.float32)

    def __call__(self, p_idx, s_idx, window_samples):
        p, s = _indices(p_idx, s_idx)
        out = np.empty((len(p), 3, _window(window_samples)), dtype=np.float32)
        out[:, P] = self.peak(p, window_samples)
        out[:, S] = self.peak(s, window_samples)
        out[:, NOISE] = np.clip(1.0 - out[:, P] - out[:, S], 0.0, 1.0)
        return out

    def __str__(self):
        return "ProbabilityLabeller(%s, width=%g samples; classes N, P, S)" % (self.shape, self.width_samples)


class DetectionLabeller:
    """EQTransformer-style targets, output (B, 3, T) float32 in order D, P, S.

    D is 1 from P to ``S + coda_factor * (S - P)`` (the end of the event's
    coda, Mousavi et al. 2020 use 1.4), clipped to the window; without an S
    the event is taken to last ``default_samples`` after P.  P and S are the
    peaks of a :class:`ProbabilityLabeller`.
    """

    def __init__(self, coda_factor=1.4, default_samples=400, shape="gaussian", width_samples=10.0):
        if not (float(coda_factor) >= 0):
            raise ConfigError("coda_factor is %r; it must be >= 0" % (coda_factor,))
        if not (int(default_samples) > 0):
            raise ConfigError("default_samples is %r; it must be > 0 samples" % (default_samples,))
        self.coda_factor = float(coda_factor)
        self.default_samples = int(default_samples)
        self.peaks = ProbabilityLabeller(shape, width_samples)

    def mask(self, p_idx, s_idx, window_samples):
        """(B, T) float32 detection mask."""
        p, s = _indices(p_idx, s_idx)
        t = np.arange(_window(window_samples), dtype=np.float64)
        end = np.where(np.isnan(s), p + self.default_samples, s + self.coda_factor * (s - p))
        start = np.where(np.isnan(p), s, p)
        m = (t[None, :] >= start[:, None]) & (t[None, :] <= end[:, None])
        return m.astype(np.float32)  # NaN start/end compare False: no event, no mask

    def __call__(self, p_idx, s_idx, window_samples):
        p, s = _indices(p_idx, s_idx)
        out = np.empty((len(p), 3, _window(window_samples)), dtype=np.float32)
        out[:, 0] = self.mask(p, s, window_samples)
        out[:, 1] = self.peaks.peak(p, window_samples)
        out[:, 2] = self.peaks.peak(s, window_samples)
        return out

    def __str__(self):
        return "DetectionLabeller(mask P..S+%g*(S-P), %s; channels D, P, S)" % (self.coda_factor, self.peaks)


class StrideLabeller:
    """LPPN targets for stride S: ``(cls, offset)``, each (B, T // S).

    cls: int64 class of each stride (0 noise, 1 P, 2 S): the class of the
    arrival that falls inside it.  offset: float32 position of that arrival
    inside its stride, ``(idx - k * S) / S`` in [0, 1); 0 for noise strides.
    Arrivals outside the window are dropped.  If P and S fall in the same
    stride (S - P < S samples) P wins: the earlier arrival is the one a
    station must not miss.
    """

    def __init__(self, stride_samples):
        if isinstance(stride_samples, bool) or not isinstance(stride_samples, (int, np.integer)) or stride_samples < 1:
            raise ConfigError("stride_samples is %r; expected a positive integer" % (stride_samples,))
        self.stride_samples = int(stride_samples)

    def __call__(self, p_idx, s_idx, window_samples):
        p, s = _indices(p_idx, s_idx)
        t = _window(window_samples)
        if t % self.stride_samples:
            raise DataError(
                "window_samples %d is not a multiple of stride_samples %d" % (t, self.stride_samples)
            )
        steps = t // self.stride_samples
        cls = np.zeros((len(p), steps), dtype=np.int64)
        offset = np.zeros((len(p), steps), dtype=np.float32)
        rows = np.arange(len(p))
        for phase, idx in ((S, s), (P, p)):  # P last, so it wins a shared stride
            ok = np.isfinite(idx) & (idx >= 0) & (idx < t)
            k = np.floor(idx[ok] / self.stride_samples).astype(np.int64)
            cls[rows[ok], k] = phase
            offset[rows[ok], k] = (idx[ok] - k * self.stride_samples) / self.stride_samples
        return cls, offset

    def __str__(self):
        return "StrideLabeller(stride=%d samples; classes N, P, S + in-stride offset)" % self.stride_samples
