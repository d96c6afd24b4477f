"""Windows for the network: where they start, and how each is normalised.

Windows lie on a fixed grid: window ``k`` covers samples
``[k * hop, k * hop + window)`` of the stream (model rate), so a stream fed
in any packet sizes meets the same windows.  Normalisation follows the model
card (``input.normalisation``) and is applied to a copy.  This is the one
implementation: training, evaluation, int8 calibration, export parity checks
and the station all call :func:`normalise` with the model card's
normalisation.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

__all__ = ["hop_samples", "window_starts", "normalise", "compress", "to_layout"]


def hop_samples(window, overlap, multiple=1):
    """Hop (samples) between windows of ``window`` samples overlapping by ``overlap``
    (a fraction in [0, 1)), rounded down to a multiple of ``multiple`` (the
    model's output stride) and at least one stride."""
    if not (0.0 <= overlap < 1.0):
        raise ConfigError("overlap %r; allowed: a fraction in [0, 1)" % (overlap,))
    hop = int(round(window * (1.0 - overlap)))
    hop = max(multiple, hop - hop % multiple)
    return hop


def window_starts(n, window, hop):
    """Start indices of the grid windows that fit in ``n`` samples."""
    if n < window:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, n - window + 1, hop, dtype=np.int64)


def normalise(windows, norm, layout="NCT"):
    """Normalise a batch ``(B, C, T)`` per the card's :class:`Normalisation`.

    The trend is removed in float64 (counts can carry large offsets), the
    scaling is done in float32, then the optional compression
    (:func:`compress`).  Returns a new contiguous float32 array in
    ``layout``: 'NCT' (as given) or 'NTC' (what :func:`to_layout` would
    make, but written by the last pass instead of a transposing copy, which
    for 3 channels costs more than the compression itself); the input is
    not changed.
    """
    if layout not in ("NCT", "NTC"):
        raise ConfigError("layout %r; allowed: 'NTC', 'NCT'" % (layout,))
    x = np.asarray(windows, dtype=np.float64)
    T = x.shape[-1]
    y = np.empty(x.shape, np.float32)
    if norm.detrend == "demean":
        np.subtract(x, x.mean(axis=-1, keepdims=True), out=y, casting="unsafe")
    elif norm.detrend == "linear":
        t = np.arange(T, dtype=np.float64) - (T - 1) / 2.0
        slope = (x @ t)[..., None] / max(float(t @ t), 1e-300)
        np.subtract(x, x.mean(axis=-1, keepdims=True) + slope * t, out=y, casting="unsafe")
    else:
        y[...] = x
    if norm.scale != "none":
        if norm.scale == "std":
            ms = np.einsum("...t,...t->...", y, y, dtype=np.float64) / T  # (B, C) mean square
            mu = y.mean(axis=-1, dtype=np.float64) if norm.detrend == "none" else np.zeros(ms.shape)
            if not norm.per_channel:
                ms, mu = ms.mean(axis=-1, keepdims=True), mu.mean(axis=-1, keepdims=True)
            s = np.sqrt(np.maximum(ms - mu * mu, 0.0))
        else:
            s = np.abs(y).max(axis=-1)
            if not norm.per_channel:
                s = s.max(axis=-1, keepdims=True)
        y *= (1.0 / (s + norm.epsilon)).astype(np.float32)[..., None]
    if layout == "NCT" or y.ndim < 2:
        return _compress(y, norm)
    out = np.empty(y.shape[:-2] + (y.shape[-1], y.shape[-2]), np.float32)
    _compress(y, norm, out=np.swapaxes(out, -1, -2))
    return out


def compress(windows, norm):
    """The compression step of :func:`normalise` alone, on windows already detrended and scaled.

    ``'asinh'``: ``asinh(x / compress_scale)``, linear for ``|x|`` well below
    ``compress_scale`` and ``sign(x) * log(2 |x| / compress_scale)`` far
    above; ``'none'``: the windows as float32.  Returns a new float32 array.
    """
    return _compress(np.array(windows, dtype=np.float32), norm)


def _compress(y, norm, out=None):
    """Compress float32 ``y`` in place (it is the caller's own copy), or into ``out`` (a float32 array or
    view of ``y``'s shape); returns the result."""
    kind = getattr(norm, "compress", "none")
    if kind not in ("asinh", "none"):
        raise ConfigError("normalisation compress %r; allowed: 'none', 'asinh'" % (kind,))
    out = y if out is None else out
    if kind == "asinh":
        y *= np.float32(1.0 / float(norm.compress_scale))
        np.arcsinh(y, out=out)
    elif out is not y:
        np.copyto(out, y)
    return out


def to_layout(batch_bct, layout):
    """(B, C, T) -> the card's input layout ('NCT' as is, 'NTC' transposed), contiguous."""
    if layout == "NCT":
        return np.ascontiguousarray(batch_bct)
    if layout == "NTC":
        return np.ascontiguousarray(np.transpose(batch_bct, (0, 2, 1)))
    raise ConfigError("layout %r; allowed: 'NTC', 'NCT'" % (layout,))
