"""Ambient seismic noise between Peterson's (1993) low and high noise models.

:func:`noise_psd` is the ground-velocity PSD of a station's noise (a level
between NLNM and NHNM, cultural bumps, a 1/f part); :func:`shaped_noise`
draws 3-component Gaussian noise with that PSD.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["noise_model_db", "noise_psd", "instrument_response", "noise_params", "shaped_noise"]

# Peterson (1993) new low / high noise models, acceleration PSD in dB re
# 1 (m/s^2)^2/Hz, sampled at the periods (s) where the models change slope.
_MODEL_PERIODS_S = np.array(
    [0.1, 0.17, 0.22, 0.32, 0.4, 0.8, 1.24, 2.4, 3.8, 4.3, 4.6, 5.0, 6.3, 7.9, 10.0, 12.0,
     15.4, 20.0, 21.9, 31.6, 45.0, 70.0, 101.0, 154.0, 328.0, 354.8, 600.0, 1000.0]
)
_NLNM_DB = np.array(
    [-168.0, -166.7, -166.7, -166.7, -166.7, -169.1, -163.7, -148.7, -142.7, -141.1, -141.1,
     -141.2, -150.4, -156.9, -163.7, -166.1, -162.3, -173.4, -177.5, -185.0, -187.5, -187.5,
     -185.0, -185.0, -187.5, -187.1, -184.4, -178.5]
)
_NHNM_DB = np.array(
    [-91.5, -95.5, -97.4, -110.5, -112.8, -119.9, -113.8, -104.5, -98.0, -97.0, -96.5, -97.7,
     -101.1, -113.4, -115.8, -117.6, -120.2, -138.2, -138.1, -136.5, -135.0, -133.1, -131.5,
     -129.6, -126.3, -126.0, -118.8, -111.8]
)
_LOG_P = np.log10(_MODEL_PERIODS_S)


def noise_model_db(freq_hz, level):
    """Acceleration PSD (dB re 1 (m/s^2)^2/Hz) at ``level`` between NLNM (0) and NHNM (1).

    freq_hz: array of frequencies (Hz, > 0).  Interpolated linearly in
    log-period; flat beyond the tabulated 0.1-1000 s.
    """
    logp = np.log10(1.0 / np.asarray(freq_hz, dtype=np.float64))
    lo = np.interp(logp, _LOG_P, _NLNM_DB)
    hi = np.interp(logp, _LOG_P, _NHNM_DB)
    return lo + float(level) * (hi - lo)


def instrument_response(freq, fs, broadband):
    """|response| of a velocity sensor (0.707 damping) times an anti-alias low-pass."""
    f0 = 1.0 / 120.0 if broadband else 1.0
    h = 0.707
    resp = freq ** 2 / np.sqrt((f0 ** 2 - freq ** 2) ** 2 + (2.0 * h * f0 * freq) ** 2 + 1e-300)
    return resp / np.sqrt(1.0 + (freq / (0.4 * fs)) ** 16)


def noise_psd(freq_hz, level, cultural=(), pink_db=None):
    """Ground-velocity PSD ((m/s)^2/Hz) of the ambient noise.

    level: position between NLNM (0) and NHNM (1) in dB.
    cultural: ``(centre_hz, height_db)`` bumps (0.15 decade wide) added to
    the acceleration PSD.  pink_db: level (dB re 1 (m/s)^2/Hz at 1 Hz) of a
    1/f velocity component.  The total is clipped to the two models.
    """
    f = np.maximum(np.asarray(freq_hz, dtype=np.float64), 1e-6)
    db = noise_model_db(f, level)
    for centre, height in cultural:
        db = db + height * np.exp(-0.5 * ((np.log10(f) - math.log10(centre)) / 0.15) ** 2)
    acc = 10.0 ** (db / 10.0)
    if pink_db is not None:
        acc = acc + 10.0 ** (pink_db / 10.0) / f * (2 * np.pi * f) ** 2
    acc = np.clip(acc, 10.0 ** (noise_model_db(f, 0.0) / 10.0), 10.0 ** (noise_model_db(f, 1.0) / 10.0))
    return acc / (2.0 * np.pi * f) ** 2


def noise_params(rng, cfg):
    level = rng.uniform(cfg.noise_level_min, cfg.noise_level_max)
    cultural = []
    if rng.random() < cfg.cultural_prob:
        for _ in range(rng.integers(1, 3)):
            cultural.append((10.0 ** rng.uniform(0.0, 1.0), rng.uniform(3.0, 15.0)))
    pink_db = None
    if rng.random() < 0.3:
        pink_db = noise_model_db(np.array([1.0]), level)[0] - 36.0 + rng.uniform(-6, 6)
    return level, tuple(cultural), pink_db


def shaped_noise(rng, n, fs, amp):
    """(3, n) real Gaussian noise whose one-sided PSD is ``amp**2`` on the rfft grid of n.

    amp: sqrt(PSD) on ``np.fft.rfftfreq(n, 1/fs)`` (with the response applied).
    """
    scale = amp * np.sqrt(n * fs / 4.0)  # E|X_k|^2 = PSD * n * fs / 2 split over re and im
    spec = (rng.standard_normal((3, len(amp))) + 1j * rng.standard_normal((3, len(amp)))) * scale
    spec[:, 0] = 0.0
    if n % 2 == 0:
        spec[:, -1] = spec[:, -1].real * math.sqrt(2.0)
    return np.fft.irfft(spec, n, axis=-1)
