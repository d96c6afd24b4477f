"""Synthetic training data as :class:`~fieldpick.train.data.datasets.WindowSet` (workstation side).

The generator itself is :mod:`fieldpick.lab.synthetic` (numpy only, so
the station demo can use it); this module re-exports it and adds what
training wants: WindowSets, a mixed event/noise set, and held-out splits
whose seeds never overlap the training ones.
"""

from __future__ import annotations

import numpy as np

from fieldpick.edge.errors import ConfigError
from fieldpick.lab.synthetic import (  # noqa: F401  (re-exported)
    TRUTH_DTYPE,
    SynthConfig,
    config,
    continuous,
    event_windows,
    noise_model_db,
    noise_psd,
    noise_windows,
)

from .datasets import WindowSet

__all__ = [
    "SynthConfig", "config", "event_windows", "noise_windows", "continuous", "noise_model_db", "noise_psd",
    "TRUTH_DTYPE", "to_windowset", "synthetic_set", "SPLIT_SEEDS", "SHAPE_STATS", "shape_stats",
]

#: seed offsets of the standard splits: a held-out set never shares a seed with training data
SPLIT_SEEDS = {"train": 0, "val": 1_000_003, "test": 2_000_003}

_LABEL_KEYS = ("waveforms", "p_idx", "s_idx", "fs")


def to_windowset(d, station="SYN") -> WindowSet:
    """A WindowSet from the dict of :func:`event_windows` / :func:`noise_windows`.

    Every other per-window array (magnitude, snr_db, p2_idx, flags...) goes
    into ``meta``.  station: one name for all windows, or an array of names.
    """
    n = len(d["waveforms"])
    stations = np.asarray([station] * n if isinstance(station, str) else station)
    meta = {k: np.asarray(v) for k, v in d.items() if k not in _LABEL_KEYS}
    return WindowSet(np.asarray(d["waveforms"], dtype=np.float32), np.asarray(d["p_idx"], dtype=np.float64),
                     np.asarray(d["s_idx"], dtype=np.float64), stations, float(d["fs"]), meta)


def synthetic_set(n, seed, split="train", noise_fraction=0.2, window_samples=3000, fs=100.0,
                  n_stations=20, **options) -> WindowSet:
    """``n`` windows, ``noise_fraction`` of them noise-only, shuffled, for one split.

    split: 'train', 'val' or 'test' (each adds its own offset to ``seed``, so
    the splits never share windows).  Windows get one of ``n_stations`` fake
    station names ('SY.S00'...), so code that splits by station works on
    synthetic data too.  options: :class:`SynthConfig` fields.
    """
    if split not in SPLIT_SEEDS:
        raise ConfigError("split %r; allowed: %s" % (split, ", ".join(SPLIT_SEEDS)))
    if not 0.0 <= noise_fraction <= 1.0:
        raise ConfigError("noise_fraction=%r; it must lie in [0, 1]" % (noise_fraction,))
    if n_stations < 1:
        raise ConfigError("n_stations=%r; it must be >= 1" % (n_stations,))
    base = int(seed) + SPLIT_SEEDS[split]
    n_noise = int(round(n * noise_fraction))
    ev = to_windowset(event_windows(n - n_noise, base, window_samples, fs, **options))
    nz = to_windowset(noise_windows(n_noise, base, window_samples, fs, **options))
    parts = [w for w in (ev, nz) if len(w)]  # an empty part has no metadata keys to share
    keys = sorted(set.intersection(*(set(w.meta) for w in parts))) if parts else []
    both = WindowSet(
        np.concatenate([ev.waveforms, nz.waveforms]), np.concatenate([ev.p_idx, nz.p_idx]),
        np.concatenate([ev.s_idx, nz.s_idx]), np.concatenate([ev.station, nz.station]), float(fs),
        {k: np.concatenate([w.meta[k] for w in parts]) for k in keys},
    )
    rng = np.random.default_rng(np.random.SeedSequence([base, 7]))
    order = rng.permutation(n)
    both = both.subset(order)
    both.station = np.array(["SY.S%02d" % k for k in rng.integers(0, n_stations, n)])
    return both


#: what :func:`shape_stats` measures on each window: log10 ratios of rms amplitudes (H: both horizontals)
#: and log10 of zero-crossing frequencies
SHAPE_STATS = {
    "s_over_p_h": "S over P on the horizontals (1 s after each onset; P's window ends at S)",
    "v_over_h_p": "vertical over horizontal in the P window",
    "v_over_h_s": "vertical over horizontal in the 1 s after S",
    "s_over_coda": "S (1 s, 3 components) over the 0.5 s before it (P coda)",
    "p_over_noise": "P (3 components) over the noise 2 s to 0.2 s before it",
    "freq_p": "zero crossings per second / 2 of P on the horizontals (Hz)",
    "freq_s": "the same for the 1 s after S (Hz)",
}


def shape_stats(waveforms, p_idx, s_idx, fs=100.0):
    """Per-window amplitude and polarisation ratios of P and S, to compare synthetic with real windows.

    waveforms (N, 3, T) ZNE; windows without both arrivals, with S less than
    0.6 s after P, too close to an edge, or with dead horizontals are left
    out.  Returns {name: (M,) array of log10 values} for the names of
    :data:`SHAPE_STATS`.
    """
    out = {k: [] for k in SHAPE_STATS}
    sec = int(round(fs))

    def rms(a):
        return float(np.sqrt(np.mean(np.square(a)))) + 1e-30

    def freq(a):
        return float(np.mean(np.diff(np.signbit(a), axis=1))) * fs / 2 + 1e-30

    for w, p, s in zip(waveforms, p_idx, s_idx):
        if not (np.isfinite(p) and np.isfinite(s)):
            continue
        p, s = int(p), int(s)
        if p - 2 * sec < 0 or s + sec > w.shape[1] or s - p < int(0.6 * fs):
            continue
        x = np.asarray(w, np.float64)
        x = x - x[:, p - 2 * sec:p - int(0.2 * fs)].mean(axis=1, keepdims=True)
        if not np.any(x[1:]):
            continue  # vertical-only station
        pw, sw = x[:, p:p + min(sec, s - p)], x[:, s:s + sec]
        out["s_over_p_h"].append(np.log10(rms(sw[1:]) / rms(pw[1:])))
        out["v_over_h_p"].append(np.log10(rms(pw[:1]) / rms(pw[1:])))
        out["v_over_h_s"].append(np.log10(rms(sw[:1]) / rms(sw[1:])))
        out["s_over_coda"].append(np.log10(rms(sw) / rms(x[:, s - sec // 2:s])))
        out["p_over_noise"].append(np.log10(rms(pw) / rms(x[:, p - 2 * sec:p - int(0.2 * fs)])))
        out["freq_p"].append(np.log10(freq(pw[1:])))
        out["freq_s"].append(np.log10(freq(sw[1:])))
    return {k: np.asarray(v) for k, v in out.items()}
