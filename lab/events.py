"""Synthetic earthquakes: a source drawn from the generator's config and its 3-component ground motion.

:func:`draw_event` draws magnitude, distance, depth, travel times, S/P ratio,
attenuation and coda; :func:`event_ground` renders the P and S phases (a
Brune source, t* attenuation, coda, polarisation) through the instrument.
"""

from __future__ import annotations

import math

import numpy as np

from .noise import instrument_response

__all__ = ["draw_event", "event_ground", "snr_db", "fft_len"]

_BETA_M_S = 3500.0  # shear velocity at the source, m/s (for the corner frequency)

def _min_phase(mag):
    """Minimum-phase spectrum with magnitude ``mag`` (rfft grid of an even length), by the cepstrum."""
    n = 2 * (len(mag) - 1)
    logmag = np.log(np.maximum(mag, mag.max() * 1e-9 + 1e-300))
    cep = np.fft.irfft(logmag, n)
    fold = np.zeros(n)
    fold[0] = 1.0
    fold[1:n // 2] = 2.0
    fold[n // 2] = 1.0
    return np.exp(np.fft.rfft(cep * fold))


def fft_len(n):
    return 1 << int(math.ceil(math.log2(max(n, 16))))


def _moment(mag):
    return 10.0 ** (1.5 * mag + 9.1)


def _corner_s(mag, stress_drop_pa):
    """Brune S-wave corner frequency (Hz)."""
    return 0.49 * _BETA_M_S * (stress_drop_pa / _moment(mag)) ** (1.0 / 3.0)


def draw_event(rng, cfg, max_sp_s=None):
    """Source and path parameters of one event (a dict of floats)."""
    # Gutenberg-Richter: truncated exponential in magnitude
    beta = cfg.b_value * math.log(10.0)
    span = cfg.magnitude_max - cfg.magnitude_min
    u = rng.random()
    mag = cfg.magnitude_min - math.log(1.0 - u * (1.0 - math.exp(-beta * span))) / beta if span > 0 else cfg.magnitude_min
    depth = rng.uniform(cfg.depth_km_min, cfg.depth_km_max)
    dmax = cfg.distance_km_max
    slowness_diff = (cfg.vp_vs - 1.0) / cfg.vp_km_s  # s/km of S-P per km hypocentral
    if max_sp_s is not None:
        rmax = max_sp_s / slowness_diff
        dmax = min(dmax, math.sqrt(max(rmax ** 2 - depth ** 2, 0.0)))
    dist = rng.uniform(min(cfg.distance_km_min, dmax), dmax)
    hyp = math.hypot(dist, depth)
    if max_sp_s is not None and hyp > rmax:  # a deep event near a short window: bring it closer
        dist, depth, hyp = dist * rmax / hyp, depth * rmax / hyp, rmax
    q = math.exp(rng.uniform(math.log(cfg.q_min), math.log(cfg.q_max)))
    stress = 1e6 * math.exp(rng.uniform(math.log(cfg.stress_drop_mpa_min), math.log(cfg.stress_drop_mpa_max)))
    fc_s = _corner_s(mag, stress)
    kappa = rng.uniform(cfg.kappa_s_min, cfg.kappa_s_max)  # near-site attenuation, s
    tp = hyp / cfg.vp_km_s
    ts = tp * cfg.vp_vs
    log_pgv = 0.8 * mag - 1.5 * math.log10(hyp) - 4.0 + rng.normal(0.0, 0.25)  # m/s
    duration = 10.0 ** ((mag + 0.87) / 2.0)  # s, coda duration
    ev = {
        "magnitude": mag, "distance_km": dist, "depth_km": depth, "hypocentral_km": hyp,
        "back_azimuth_deg": rng.uniform(0.0, 360.0), "tp_s": tp, "sp_s": ts - tp,
        "fc_p_hz": 1.5 * fc_s, "fc_s_hz": fc_s, "tstar_p_s": tp / (1.75 * q) + 0.6 * kappa, "tstar_s_s": ts / q + kappa, "kappa_s": kappa,
        # S/P peak ratio, lognormal; the S peak scales with the median so that P amplitudes, and with
        # them the SNR distribution (measured on P), stay those of the 4.0 this relation was tuned with
        "pgv_m_s": 10.0 ** log_pgv * cfg.sp_ratio_median / 4.0,
        "sp_ratio": math.exp(rng.normal(math.log(cfg.sp_ratio_median), cfg.sp_ratio_sigma)),
        "coda_tau_s": duration / 5.0 * math.exp(rng.uniform(-0.35, 0.35)),
        "p_scatter_gain": cfg.p_scatter_gain,
        "impulsive": bool(rng.random() < cfg.impulsive_fraction),
        "polarity": 1.0 if rng.random() < 0.5 else -1.0,
        "incidence_deg": rng.uniform(cfg.incidence_deg_min, cfg.incidence_deg_max),
    }
    ev["coda_tau_p_s"] = cfg.p_coda_ratio * ev["coda_tau_s"]
    # S leaves the same ray slower, so it meets the surface steeper (Snell: sin i_S = sin i_P / (vp/vs))
    ev["incidence_s_deg"] = (math.degrees(math.asin(math.sin(math.radians(ev["incidence_deg"])) / cfg.vp_vs))
                             if cfg.s_incidence_snell else ev["incidence_deg"])
    return ev


def _phase(rng, n_fft, fs, onset, fc, tstar, rise, tau, pulse, resp, freq):
    """One phase on 4 carriers (coherent + 3 scattered), causal, onset at ``onset`` samples.

    Returns (4, n_fft): row 0 is the coherent motion (with the first-motion
    pulse), rows 1-3 scattered energy for Z, N, E.
    """
    mag = freq / (1.0 + (freq / fc) ** 2) * np.exp(-np.pi * freq * tstar) * resp
    h = _min_phase(mag)
    t = np.arange(n_fft) / fs - onset / fs
    tp = np.maximum(t, 0.0)
    env = np.where(t >= 0, (1.0 - np.exp(-tp / rise)) * np.exp(-tp / tau), 0.0)
    env_scat = np.where(t >= 0, (1.0 - np.exp(-tp / (rise + 0.5))) * np.exp(-tp / (1.3 * tau)), 0.0)
    carriers = rng.standard_normal((4, n_fft))
    carriers[0] *= env
    carriers[1:] *= env_scat
    spec = np.fft.rfft(carriers, axis=-1) * h
    if pulse:
        # the first-motion pulse: the wavelet itself, delayed by a fractional number of samples and
        # scaled so that its peak is ``pulse`` times the standard deviation of the coherent carrier
        h_t = np.fft.irfft(h, n_fft)
        scale = np.sqrt(np.sum(h_t ** 2)) / max(np.abs(h_t).max(), 1e-300)
        spec[0] += pulse * scale * np.exp(-2j * np.pi * freq * onset / fs) * h
    out = np.fft.irfft(spec, n_fft, axis=-1)
    out[:, : max(int(math.floor(onset)), 0)] = 0.0  # minimum phase leaks ~1e-9; make causality exact
    return out


def event_ground(rng, ev, n, fs, p_sample, broadband):
    """(3, n) ground velocity (m/s, ZNE) of one event whose P onset is at ``p_sample``; S follows."""
    n_fft = fft_len(n + int(4 * fs))
    freq = np.fft.rfftfreq(n_fft, 1.0 / fs)
    resp = instrument_response(freq, fs, broadband)
    s_sample = p_sample + ev["sp_s"] * fs
    rise_p = rng.uniform(0.01, 0.05) if ev["impulsive"] else rng.uniform(0.3, 1.5)
    rise_s = rng.uniform(0.02, 0.1) if ev["impulsive"] else rng.uniform(0.1, 0.4)
    tau_p = ev["coda_tau_p_s"]
    tau_s = ev["coda_tau_s"]
    pulse = 3.0 * ev["polarity"] if ev["impulsive"] else 0.0
    P = _phase(rng, n_fft, fs, p_sample, ev["fc_p_hz"], ev["tstar_p_s"], rise_p, tau_p, pulse, resp, freq)[:, :n]
    S = _phase(rng, n_fft, fs, s_sample, ev["fc_s_hz"], ev["tstar_s_s"], rise_s, tau_s,
               pulse * 0.5 * rng.choice([-1.0, 1.0]), resp, freq)[:, :n]
    baz = math.radians(ev["back_azimuth_deg"])
    inc = math.radians(ev["incidence_deg"])
    # radial points away from the source: (N, E) = -(cos baz, sin baz)
    rn, re_ = -math.cos(baz), -math.sin(baz)
    tn, te = -re_, rn
    # P: Z and radial; S: SV (radial, some Z) and SH (transverse)
    p_dir = np.array([math.cos(inc), math.sin(inc) * rn, math.sin(inc) * re_])
    sh = rng.uniform(0.4, 1.0)
    sv = math.sqrt(max(1.0 - sh ** 2, 0.0)) + 0.2
    inc_s = math.radians(ev["incidence_s_deg"])
    s_dir = np.array([sv * math.sin(inc_s), sv * math.cos(inc_s) * rn + sh * tn,
                      sv * math.cos(inc_s) * re_ + sh * te])
    s_dir /= np.linalg.norm(s_dir)
    scat = rng.uniform(0.15, 0.35)
    p3 = p_dir[:, None] * P[0] + scat * ev["p_scatter_gain"] * P[1:]
    s3 = s_dir[:, None] * S[0] + scat * S[1:]
    a_s = ev["pgv_m_s"]
    a_p = a_s / ev["sp_ratio"]
    p3 *= a_p / max(np.abs(p3).max(), 1e-300)
    s3 *= a_s / max(np.abs(s3).max(), 1e-300)
    return p3 + s3, s_sample


def snr_db(signal_z, noise_z, p_sample, fs):
    """10 log10(mean power of the event on Z in the 2 s after P / mean noise power on Z)."""
    i0 = int(max(math.ceil(p_sample), 0))
    seg = signal_z[i0: i0 + int(2 * fs)]
    if len(seg) == 0:
        return float("nan")
    return 10.0 * math.log10(max(np.mean(seg.astype(np.float64) ** 2), 1e-300) / max(np.mean(noise_z.astype(np.float64) ** 2), 1e-300))
