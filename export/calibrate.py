"""Windows that look like the station's data: for int8 calibration and parity checks.

int8 scales are set by the activations the calibration windows produce, so
the windows must span what the station will see: events at many SNRs (weak
ones set the resolution near the noise floor, strong ones the clipping
range), pure noise, vertical-only records, and real NCEDC windows when the
team's data folder is present.  Calibration and parity sets are drawn with
different seeds, so parity is measured on windows the quantiser never saw.

Synthetic events and noise come from :mod:`fieldpick.lab.synthetic`
(Brune sources, Peterson noise, station troubles).
"""

from __future__ import annotations

import logging
import os

import numpy as np

from fieldpick.edge.errors import DataError
from fieldpick.edge.stream.windows import normalise as _station_normalise

__all__ = ["normalise", "synthetic_windows", "ncedc_windows", "export_windows"]

log = logging.getLogger(__name__)

#: SNR range (dB, as :func:`fieldpick.lab.synthetic.event_windows` measures it) of the
#: events rescaled to a uniform SNR
SNR_DB_RANGE = (-5.0, 40.0)


def normalise(windows, spec):
    """Normalise (N, C, T) windows as the model card's ``input.normalisation`` says.

    The station's own function (:func:`fieldpick.edge.stream.windows.normalise`),
    so calibration and parity windows cannot drift from what the station
    feeds the model.  Returns a new float32 array; the input is not changed.
    ``spec`` is a :class:`~fieldpick.edge.card.Normalisation`.
    """
    x = np.asarray(windows)
    if x.ndim != 3:
        raise DataError("windows have shape %s; expected (N, C, T)" % (x.shape,))
    return _station_normalise(x, spec)


def synthetic_windows(n, window_samples, fs, seed, noise_fraction=0.2):
    """``n`` synthetic (3, T) windows from :mod:`fieldpick.lab.synthetic`.

    Half of the events keep the generator's default amplitudes (an SNR
    distribution close to the NCEDC windows'), half are rescaled to an SNR
    drawn uniformly from ``SNR_DB_RANGE``; ``noise_fraction`` of the windows
    hold noise only.  Windows shorter than 10 s let S fall outside.
    Returns ``(windows, p_idx, s_idx)``: (n, 3, T) float32 counts (not
    normalised) and sample indices, NaN where a phase is absent.
    """
    from fieldpick.lab.synthetic import event_windows, noise_windows

    n_noise = int(round(n * noise_fraction))
    n_flat = (n - n_noise) // 2
    n_default = n - n_noise - n_flat
    dur = window_samples / float(fs)
    opts = {} if dur >= 10.0 else dict(p_min_s=0.1 * dur, s_margin_s=0.1 * dur, require_s=False)
    parts = [
        event_windows(n_default, seed, window_samples, fs, **opts),
        event_windows(n_flat, seed + 1, window_samples, fs, snr_db_min=SNR_DB_RANGE[0],
                      snr_db_max=SNR_DB_RANGE[1], **opts),
        noise_windows(n_noise, seed + 2, window_samples, fs),
    ]
    parts = [q for q in parts if len(q["waveforms"])]
    x = np.concatenate([q["waveforms"] for q in parts]).astype(np.float32)
    p = np.concatenate([q["p_idx"] for q in parts]).astype(np.float64)
    s = np.concatenate([q["s_idx"] for q in parts]).astype(np.float64)
    return x, p, s


def ncedc_windows(root, window_samples, seed, half=None, highpass=None):
    """Real NCEDC windows of ``window_samples``: crops of the 90 s traces with P at a random place.

    half: None for all 154 traces; 0 or 1 for the traces of every other
    station (sorted by name), so that calibration (0) and parity (1) never
    share a station.  highpass: optional (corner Hz, order) of the card's
    input filter, applied to each whole 90 s trace before cutting, as the
    station filters its stream.  Returns ``(windows, p_idx, s_idx)`` (not
    normalised) or None when the data folder is absent.
    """
    path = os.path.join(root or "", "phasenet_ncedc_90s.npz")
    if not root or not os.path.exists(path):
        return None
    if half not in (None, 0, 1):
        raise DataError("half %r; allowed: None, 0, 1" % (half,))
    z = np.load(path, allow_pickle=False)
    w, p_all, s_all = z["waveforms"], z["p_idx"].astype(np.float64), z["s_idx"].astype(np.float64)
    if half is not None:
        names = np.array(["%s.%s" % (a, b) for a, b in zip(z["network"], z["station"])])
        rank = {name: k for k, name in enumerate(sorted(set(names)))}
        keep = np.array([rank[name] % 2 == half for name in names])
        w, p_all, s_all = w[keep], p_all[keep], s_all[keep]
    if highpass:
        from fieldpick.edge.stream.trigger import highpass_traces

        w = highpass_traces(w, highpass[0], 100.0, highpass[1])
    rng = np.random.default_rng(seed)
    total = w.shape[-1]
    out = np.zeros((len(w), w.shape[1], window_samples), dtype=np.float32)
    p = np.full(len(w), np.nan)
    s = np.full(len(w), np.nan)
    for i in range(len(w)):
        before = int(rng.uniform(0.1, 0.5) * window_samples)
        start = int(np.clip(p_all[i] - before, 0, max(total - window_samples, 0)))
        seg = w[i, :, start:start + window_samples]
        out[i, :, : seg.shape[-1]] = seg
        for src, dst in ((p_all, p), (s_all, s)):
            k = src[i] - start
            if np.isfinite(k) and 0 <= k < window_samples:
                dst[i] = k
    return out, p, s


def export_windows(card, n_synthetic, seed, ncedc_root=None, half=None):
    """Normalised (N, C, T) windows for one model card, with labels and a source tag.

    Returns ``(windows, p_idx, s_idx, source)``; ``source`` is an (N,) array
    of 'synthetic' or 'ncedc'.  The NCEDC part (the stations of ``half``,
    see :func:`ncedc_windows`) is added when ``ncedc_root`` holds the data.
    """
    spec = card.input
    if len(spec.channels) != 3:
        raise DataError("export windows are 3-component; card %r has channels %s" % (card.name, spec.channels))
    x, p, s = synthetic_windows(n_synthetic, spec.window_samples, spec.sampling_rate_hz, seed)
    hp = (spec.highpass_hz, spec.highpass_order) if spec.highpass_hz else None
    if hp:  # the card's input filter, as the station applies it (each synthetic window from its start)
        from fieldpick.edge.stream.trigger import highpass_traces

        x = highpass_traces(x, hp[0], spec.sampling_rate_hz, hp[1])
    src = ["synthetic"] * len(x)
    real = ncedc_windows(ncedc_root, spec.window_samples, seed + 1, half, hp) if ncedc_root else None
    if real is not None:
        if spec.sampling_rate_hz != 100.0:
            raise DataError("NCEDC windows are 100 Hz; card %r expects %g Hz" % (card.name, spec.sampling_rate_hz))
        x = np.concatenate([x, real[0]])
        p = np.concatenate([p, real[1]])
        s = np.concatenate([s, real[2]])
        src += ["ncedc"] * len(real[0])
    return normalise(x, spec.normalisation), p, s, np.array(src)
