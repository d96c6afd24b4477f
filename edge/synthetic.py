"""Synthetic labeled 3-component seismograms (numpy only; runs on the station).

Deterministic per seed.  Everything is built in the frequency domain with
numpy's FFT; there is no scipy here because the station demo synthesises its
demo hour on a Raspberry Pi.

The physics, kept simple but in the right units:

- source: Brune (1970) omega-square spectrum; seismic moment from magnitude
  (Hanks & Kanamori 1979, ``M0 = 10**(1.5 M + 9.1)`` N m), S corner
  frequency ``fc = 0.49 beta (stress_drop / M0)**(1/3)`` and a P corner 1.5
  times higher (Madariaga 1976), so a small event is a short click and a
  large one a long low rumble;
- path: travel times from a constant-velocity half space (vp, vp/vs), hence
  S-P grows with distance (about 0.12 s per km); anelastic attenuation
  ``exp(-pi f t*)`` with ``t* = travel_time / Q`` (Qp = 1.75 Qs) removes
  high frequencies with distance, and near-site attenuation kappa
  (Anderson & Hough 1984; 0.01-0.04 s for S, 0.6 of that for P) removes
  them at every distance, so S is lower-pitched than P; peak ground velocity falls as
  ``R**-1.5`` (a generic small-magnitude relation, lognormal scatter);
- wavelets are minimum-phase (causal: no energy before the onset), so the
  label is the true first sample of the arrival; impulsive onsets carry a
  first-motion pulse of random polarity, emergent ones ramp up over 0.3-1.5 s;
  both decay into an exponential coda whose length grows with magnitude
  (duration magnitude, Lee et al. 1972);
- polarisation: P leads on Z (incidence 25-55 degrees), S mostly on the
  horizontals (SH and SV mixed, SV leaving steeper by Snell's law),
  rotated to N/E by a random back azimuth, plus incoherent scattered energy
  on every component (P's 2.5x S's share); the S peak is a lognormal 2.2x
  the P peak, and P's coda decays half as fast as S's, so S rises out of
  it.  These were matched to the NCEDC windows' amplitude and polarisation
  ratios (``train/data/synthetic.shape_stats``); :data:`LEGACY_EVENT_SHAPE`
  gives the older shape, whose S rose out of near-silence like a first
  arrival and was picked as P by models trained on real data;
- noise: Gaussian noise with an acceleration power spectral density between
  Peterson's (1993) low and high noise models (so with the ocean microseism
  peak near 0.2 Hz), plus optional cultural bands between 1 and 10 Hz and a
  1/f component, clipped to stay between the two models;
- recording: a velocity sensor (broadband, 120 s corner, or short period,
  1 Hz geophone) with an anti-alias low-pass at 0.4 fs, and a sensitivity in
  counts per m/s.  Output units are counts.
- station troubles, each with its own probability: spikes, gaps (filled with
  zeros, as ObsPy's merge does), clipping, a dead channel, vertical-only
  stations (N and E all zero), DC offsets, a second event in the window,
  and non-seismic transients (band-limited bursts of traffic or machinery
  noise, 1-6 s long, that fool a naive trigger).

Channel order is always Z, N, E.  Sample indices of labels are floats
(sub-sample onsets); NaN marks a phase that is absent from the window.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np

from .errors import ConfigError

__all__ = [
    "SynthConfig",
    "config",
    "noise_model_db",
    "noise_psd",
    "event_windows",
    "noise_windows",
    "continuous",
    "TRUTH_DTYPE",
]

log = logging.getLogger(__name__)

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

_KIND_EVENT, _KIND_NOISE, _KIND_STREAM = 1, 2, 3
_BETA_M_S = 3500.0  # shear velocity at the source, m/s (for the corner frequency)

#: the truth table of :func:`continuous`: one row per phase arrival
TRUTH_DTYPE = np.dtype(
    [
        ("event_id", np.int64),
        ("phase", "U1"),
        ("time_ns", np.int64),
        ("sample", np.float64),
        ("magnitude", np.float64),
        ("distance_km", np.float64),
        ("depth_km", np.float64),
        ("back_azimuth_deg", np.float64),
        ("snr_db", np.float64),
    ]
)


@dataclass
class SynthConfig:
    """Everything the generator draws from; ranges are sampled per window.

    Units are in the names.  Magnitudes follow Gutenberg-Richter with
    ``b_value`` between the two limits; distances (epicentral, km) are
    uniform; noise_level is a position between the low (0) and high (1)
    noise models in dB.  ``snr_db_min``/``snr_db_max``: when both are set,
    each event is rescaled so that its SNR (see :func:`event_windows`) is
    drawn uniformly from that range; otherwise the amplitude follows from
    magnitude and distance.  ``require_s``: place P so that S lies inside the
    window (distance is capped to make that possible).  The ``*_prob``
    fields are per-window probabilities of each station trouble.

    The defaults give an SNR distribution close to the NCEDC windows'
    (median about 23 dB, 5th percentile about -2 dB; NCEDC: 22.5 and 3.3).

    Event shape: ``sp_ratio_median``/``sp_ratio_sigma`` (the S/P peak ratio,
    lognormal; sigma in natural log), ``p_coda_ratio`` (P's coda decay time
    over S's), ``p_scatter_gain`` (P's incoherent scattered energy relative
    to S's), ``incidence_deg_min/max`` (P at the surface) and
    ``s_incidence_snell`` (S steeper by Snell's law, else P's angle).  Their
    defaults and kappa's were matched to the NCEDC windows (docs/synthetic.md);
    :data:`LEGACY_EVENT_SHAPE` holds the earlier values.
    """

    magnitude_min: float = 1.0
    magnitude_max: float = 4.5
    b_value: float = 1.0
    distance_km_min: float = 3.0
    distance_km_max: float = 60.0
    depth_km_min: float = 2.0
    depth_km_max: float = 20.0
    vp_km_s: float = 6.0
    vp_vs: float = 1.73
    stress_drop_mpa_min: float = 1.0
    stress_drop_mpa_max: float = 10.0
    q_min: float = 150.0
    q_max: float = 600.0
    kappa_s_min: float = 0.01
    kappa_s_max: float = 0.04
    noise_level_min: float = 0.1
    noise_level_max: float = 0.45
    cultural_prob: float = 0.5
    snr_db_min: Optional[float] = None
    snr_db_max: Optional[float] = None
    impulsive_fraction: float = 0.5
    p_min_s: float = 2.0
    s_margin_s: float = 2.0
    require_s: bool = True
    broadband_fraction: float = 0.5
    sensitivity_min: float = 1e8
    sensitivity_max: float = 1e9
    spike_prob: float = 0.03
    gap_prob: float = 0.03
    clip_prob: float = 0.02
    dead_channel_prob: float = 0.03
    vertical_only_prob: float = 0.05
    dc_offset_prob: float = 0.3
    second_event_prob: float = 0.05
    burst_prob: float = 0.1
    sp_ratio_median: float = 2.2
    sp_ratio_sigma: float = 0.6
    p_coda_ratio: float = 2.0
    p_scatter_gain: float = 2.5
    incidence_deg_min: float = 25.0
    incidence_deg_max: float = 55.0
    s_incidence_snell: bool = True

    def validate(self):
        pairs = [
            ("magnitude_min", "magnitude_max"),
            ("distance_km_min", "distance_km_max"),
            ("depth_km_min", "depth_km_max"),
            ("stress_drop_mpa_min", "stress_drop_mpa_max"),
            ("q_min", "q_max"),
            ("kappa_s_min", "kappa_s_max"),
            ("noise_level_min", "noise_level_max"),
            ("sensitivity_min", "sensitivity_max"),
            ("incidence_deg_min", "incidence_deg_max"),
        ]
        for lo, hi in pairs:
            a, b = getattr(self, lo), getattr(self, hi)
            if not (math.isfinite(a) and math.isfinite(b) and a <= b):
                raise ConfigError("%s=%r and %s=%r: need finite numbers with %s <= %s" % (lo, a, hi, b, lo, hi))
        for name in ("distance_km_min", "depth_km_min", "stress_drop_mpa_min", "q_min", "sensitivity_min",
                     "vp_km_s", "b_value", "sp_ratio_median", "p_coda_ratio"):
            if not getattr(self, name) > 0:
                raise ConfigError("%s=%r; it must be > 0" % (name, getattr(self, name)))
        if not self.vp_vs > 1.0:
            raise ConfigError("vp_vs=%r; it must be > 1" % (self.vp_vs,))
        if (self.snr_db_min is None) != (self.snr_db_max is None):
            raise ConfigError("give both snr_db_min and snr_db_max, or neither (got %r, %r)" % (self.snr_db_min, self.snr_db_max))
        if self.snr_db_min is not None and not self.snr_db_min <= self.snr_db_max:
            raise ConfigError("snr_db_min=%r > snr_db_max=%r" % (self.snr_db_min, self.snr_db_max))
        for f in dataclasses.fields(self):
            if f.name.endswith("_prob") or f.name.endswith("_fraction"):
                v = getattr(self, f.name)
                if not 0.0 <= v <= 1.0:
                    raise ConfigError("%s=%r; a probability must lie in [0, 1]" % (f.name, v))
        if not (0.0 <= self.incidence_deg_min and self.incidence_deg_max <= 90.0):
            raise ConfigError("incidence_deg_min=%r, incidence_deg_max=%r; allowed: 0 <= min <= max <= 90 degrees"
                              % (self.incidence_deg_min, self.incidence_deg_max))
        if not (self.sp_ratio_sigma >= 0 and self.p_scatter_gain >= 0):
            raise ConfigError("sp_ratio_sigma=%r and p_scatter_gain=%r must be >= 0"
                              % (self.sp_ratio_sigma, self.p_scatter_gain))
        if not (self.p_min_s >= 0 and self.s_margin_s >= 0):
            raise ConfigError("p_min_s=%r and s_margin_s=%r must be >= 0 seconds" % (self.p_min_s, self.s_margin_s))
        return self

    @classmethod
    def legacy(cls, **options):
        """The event shapes before the NCEDC match (fieldpick <= 2026-12-05): P with a short coda, mostly
        vertical, and S 4x P, so S rose out of near-silence on the horizontals like a first arrival."""
        return config(cls(**LEGACY_EVENT_SHAPE), **options)

    @classmethod
    def clean(cls):
        """A config with every station trouble switched off (clean events, clean noise)."""
        return cls(spike_prob=0.0, gap_prob=0.0, clip_prob=0.0, dead_channel_prob=0.0,
                   vertical_only_prob=0.0, dc_offset_prob=0.0, second_event_prob=0.0, burst_prob=0.0)


# The event-shape options before they were matched to the NCEDC windows (SynthConfig.legacy); a
# recipe that pinned them (TrainConfig.synthetic) reproduces windows made before the change.
LEGACY_EVENT_SHAPE = {"kappa_s_min": 0.02, "kappa_s_max": 0.06, "sp_ratio_median": 4.0, "sp_ratio_sigma": 0.35,
                      "p_coda_ratio": 0.6, "p_scatter_gain": 1.0, "incidence_deg_min": 10.0,
                      "incidence_deg_max": 35.0, "s_incidence_snell": False}


def config(base=None, **options) -> SynthConfig:
    """A validated :class:`SynthConfig`: ``base`` (default: the defaults) with ``options`` replaced.

    An unknown option is an error that lists the allowed ones.
    """
    base = base if base is not None else SynthConfig()
    names = [f.name for f in dataclasses.fields(SynthConfig)]
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise ConfigError("unknown synthetic option(s) %s; allowed: %s" % (", ".join(unknown), ", ".join(names)))
    return dataclasses.replace(base, **options).validate()


# --------------------------------------------------------------------------- noise

def noise_model_db(freq_hz, level):
    """Acceleration PSD (dB re 1 (m/s^2)^2/Hz) at ``level`` between NLNM (0) and NHNM (1).

    freq_hz: array of frequencies (Hz, > 0).  Interpolated linearly in
    log-period; flat beyond the tabulated 0.1-1000 s.
    """
    logp = np.log10(1.0 / np.asarray(freq_hz, dtype=np.float64))
    lo = np.interp(logp, _LOG_P, _NLNM_DB)
    hi = np.interp(logp, _LOG_P, _NHNM_DB)
    return lo + float(level) * (hi - lo)


def _instrument(freq, fs, broadband):
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


def _noise_params(rng, cfg):
    level = rng.uniform(cfg.noise_level_min, cfg.noise_level_max)
    cultural = []
    if rng.random() < cfg.cultural_prob:
        for _ in range(rng.integers(1, 3)):
            cultural.append((10.0 ** rng.uniform(0.0, 1.0), rng.uniform(3.0, 15.0)))
    pink_db = None
    if rng.random() < 0.3:
        pink_db = noise_model_db(np.array([1.0]), level)[0] - 36.0 + rng.uniform(-6, 6)
    return level, tuple(cultural), pink_db


def _shaped_noise(rng, n, fs, amp):
    """(3, n) real Gaussian noise whose one-sided PSD is ``amp**2`` on the rfft grid of n.

    amp: sqrt(PSD) on ``np.fft.rfftfreq(n, 1/fs)`` (with the response applied).
    """
    scale = amp * np.sqrt(n * fs / 4.0)  # E|X_k|^2 = PSD * n * fs / 2 split over re and im
    spec = (rng.standard_normal((3, len(amp))) + 1j * rng.standard_normal((3, len(amp)))) * scale
    spec[:, 0] = 0.0
    if n % 2 == 0:
        spec[:, -1] = spec[:, -1].real * math.sqrt(2.0)
    return np.fft.irfft(spec, n, axis=-1)


# --------------------------------------------------------------------------- events

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


def _fft_len(n):
    return 1 << int(math.ceil(math.log2(max(n, 16))))


def _moment(mag):
    return 10.0 ** (1.5 * mag + 9.1)


def _corner_s(mag, stress_drop_pa):
    """Brune S-wave corner frequency (Hz)."""
    return 0.49 * _BETA_M_S * (stress_drop_pa / _moment(mag)) ** (1.0 / 3.0)


def _draw_event(rng, cfg, max_sp_s=None):
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


def _event_ground(rng, ev, n, fs, p_sample, broadband):
    """(3, n) ground velocity (m/s, ZNE) of one event whose P onset is at ``p_sample``; S follows."""
    n_fft = _fft_len(n + int(4 * fs))
    freq = np.fft.rfftfreq(n_fft, 1.0 / fs)
    resp = _instrument(freq, fs, broadband)
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


def _snr_db(signal_z, noise_z, p_sample, fs):
    """10 log10(mean power of the event on Z in the 2 s after P / mean noise power on Z)."""
    i0 = int(max(math.ceil(p_sample), 0))
    seg = signal_z[i0: i0 + int(2 * fs)]
    if len(seg) == 0:
        return float("nan")
    return 10.0 * math.log10(max(np.mean(seg.astype(np.float64) ** 2), 1e-300) / max(np.mean(noise_z.astype(np.float64) ** 2), 1e-300))


# --------------------------------------------------------------------------- windows

_FLAGS = ("spikes", "gap", "clipped", "dead_channel", "vertical_only", "dc_offset", "second_event", "burst")


def _burst(rng, fs, sd):
    """One non-seismic transient (traffic, machinery, a gust): (3, L) ground units.

    Band-limited noise (centre 2-15 Hz, 0.2 decade wide) under an envelope
    that rises over 0.1-1 s and lasts 1-6 s; its RMS over the first
    ``duration / 2`` is 1.5-6 times ``sd`` (the ambient noise RMS, per channel);
    horizontals usually shake more than the vertical.
    """
    duration = rng.uniform(1.0, 6.0)
    rise = rng.uniform(0.1, 1.0)
    n = _fft_len(int((duration * 2.0 + rise) * fs))
    t = np.arange(n) / fs
    env = (1.0 - np.exp(-t / rise)) * np.exp(-t / (duration / 3.0))
    spec = np.fft.rfft(rng.standard_normal((3, n)) * env, axis=-1)
    f = np.fft.rfftfreq(n, 1.0 / fs)
    centre = 10.0 ** rng.uniform(math.log10(2.0), math.log10(min(15.0, 0.4 * fs)))
    spec *= np.exp(-0.5 * ((np.log10(np.maximum(f, 1e-3)) - math.log10(centre)) / 0.2) ** 2)
    x = np.fft.irfft(spec, n, axis=-1)
    head = x[:, : max(int(duration / 2 * fs), 1)]
    rms = np.sqrt(np.mean(head ** 2, axis=-1)) + 1e-300
    weight = np.array([rng.uniform(0.3, 1.0), rng.uniform(0.5, 1.5), rng.uniform(0.5, 1.5)])
    return x * (rng.uniform(1.5, 6.0) * weight * np.asarray(sd) / rms)[:, None]


def _add_bursts(rng, x, fs, sd, count):
    """Add ``count`` transients at uniform times into ``x`` (3, N) in place."""
    n = x.shape[1]
    for _ in range(count):
        b = _burst(rng, fs, sd)
        start = int(rng.integers(-b.shape[1] // 2, n))
        a, e = max(start, 0), min(start + b.shape[1], n)
        if e > a:
            x[:, a:e] += b[:, a - start: e - start]


def _troubles(rng, cfg, allow_second):
    """Decide the station troubles of one window (flags only; applied in _apply_troubles)."""
    return {
        "spikes": rng.random() < cfg.spike_prob,
        "gap": rng.random() < cfg.gap_prob,
        "clipped": rng.random() < cfg.clip_prob,
        "dead_channel": rng.random() < cfg.dead_channel_prob,
        "vertical_only": rng.random() < cfg.vertical_only_prob,
        "dc_offset": rng.random() < cfg.dc_offset_prob,
        "second_event": allow_second and rng.random() < cfg.second_event_prob,
        "burst": rng.random() < cfg.burst_prob,
    }


def _apply_troubles(rng, x, flags, fs):
    """Apply the flagged troubles to counts ``x`` (3, T) in place; returns gap (start, stop) or None."""
    T = x.shape[1]
    if flags["clipped"]:
        level = rng.uniform(0.2, 0.7) * np.abs(x).max()
        np.clip(x, -level, level, out=x)
    if flags["dc_offset"]:
        x += (rng.uniform(-1, 1, 3) * 10.0 ** rng.uniform(2, 5, 3))[:, None]
    if flags["spikes"]:
        peak = np.abs(x).max()
        for _ in range(rng.integers(1, 4)):
            x[rng.integers(0, 3), rng.integers(0, T)] += rng.choice([-1, 1]) * rng.uniform(0.3, 2.0) * peak
    if flags["vertical_only"]:
        x[1:] = 0.0
    elif flags["dead_channel"]:
        x[rng.integers(0, 3)] = 0.0
    gap = None
    if flags["gap"]:
        length = int(rng.uniform(0.5, 5.0) * fs)
        start = int(rng.integers(0, max(T - length, 1)))
        x[:, start: start + length] = 0.0
        gap = (start, min(start + length, T))
    return gap


def _window(ss, cfg, T, fs, with_event):
    rng = np.random.default_rng(ss)
    broadband = bool(rng.random() < cfg.broadband_fraction)
    sens = math.exp(rng.uniform(math.log(cfg.sensitivity_min), math.log(cfg.sensitivity_max)))
    level, cultural, pink = _noise_params(rng, cfg)
    freq = np.fft.rfftfreq(T, 1.0 / fs)
    amp = np.sqrt(noise_psd(np.maximum(freq, freq[1] if T > 1 else 1.0), level, cultural, pink)) * _instrument(freq, fs, broadband)
    noise = _shaped_noise(rng, T, fs, amp)
    noise[1:] *= rng.uniform(1.0, 1.4)  # horizontals a little noisier (tilt, wind)
    flags = _troubles(rng, cfg, with_event)
    out = {"noise_level": level, "broadband": broadband, "sensitivity": sens, "cultural": len(cultural) > 0}
    nan = float("nan")
    out.update(p_idx=nan, s_idx=nan, p2_idx=nan, s2_idx=nan, snr_db=nan)
    for k in ("magnitude", "distance_km", "depth_km", "back_azimuth_deg", "fc_p_hz", "fc_s_hz", "pgv_m_s"):
        out[k] = nan
    out["impulsive"] = False
    out["polarity"] = 0.0
    ground = noise
    if with_event:
        dur = T / fs
        max_sp = dur - cfg.p_min_s - cfg.s_margin_s if cfg.require_s else None
        if max_sp is not None and max_sp <= 0:
            raise ConfigError(
                "window of %.1f s cannot hold P after p_min_s=%.1f s and S before the last "
                "s_margin_s=%.1f s; lengthen the window or set require_s=False" % (dur, cfg.p_min_s, cfg.s_margin_s)
            )
        ev = _draw_event(rng, cfg, max_sp)
        latest = dur - cfg.s_margin_s - ev["sp_s"] if cfg.require_s else dur - 1.0
        p_s = rng.uniform(cfg.p_min_s, max(latest, cfg.p_min_s))
        sig, s_sample = _event_ground(rng, ev, T, fs, p_s * fs, broadband)
        snr = _snr_db(sig[0], noise[0], p_s * fs, fs)
        if cfg.snr_db_min is not None:
            target = rng.uniform(cfg.snr_db_min, cfg.snr_db_max)
            gain = 10.0 ** ((target - snr) / 20.0)
            sig *= gain
            ev["pgv_m_s"] *= gain
            snr = target
        ground = noise + sig
        out.update(p_idx=p_s * fs, s_idx=s_sample if s_sample < T else nan, snr_db=snr)
        for k in ("magnitude", "distance_km", "depth_km", "back_azimuth_deg", "fc_p_hz", "fc_s_hz",
                  "pgv_m_s", "impulsive", "polarity"):
            out[k] = ev[k]
        if flags["second_event"]:
            ev2 = _draw_event(rng, cfg)
            p2 = rng.uniform(0.0, dur - 1.0)
            sig2, s2 = _event_ground(rng, ev2, T, fs, p2 * fs, broadband)
            ground = ground + sig2
            out.update(p2_idx=p2 * fs, s2_idx=s2 if s2 < T else nan)
    if flags["burst"]:
        ground = ground + 0.0  # a copy: the noise array stays the clean reference
        _add_bursts(rng, ground, fs, noise.std(axis=-1), int(rng.integers(1, 4)))
    x = ground * sens
    gap = _apply_troubles(rng, x, flags, fs)
    out.update(flags)
    out["gap_start"], out["gap_stop"] = gap if gap else (-1, -1)
    return x.astype(np.float32), out


def _check_size(n, window_samples, fs):
    if isinstance(n, bool) or int(n) != n or n < 0:
        raise ConfigError("n=%r windows; it must be an integer >= 0" % (n,))
    if isinstance(window_samples, bool) or int(window_samples) != window_samples or window_samples < 16:
        raise ConfigError("window_samples=%r; it must be an integer >= 16" % (window_samples,))
    if not (isinstance(fs, (int, float)) and math.isfinite(fs) and fs > 0):
        raise ConfigError("fs=%r Hz; it must be a finite number > 0" % (fs,))


def _windows(kind, n, seed, window_samples, fs, options):
    _check_size(n, window_samples, fs)
    cfg = options.pop("config", None)
    cfg = config(cfg, **options)
    children = np.random.SeedSequence([int(seed), kind]).spawn(int(n))
    T = int(window_samples)
    waves = np.zeros((int(n), 3, T), dtype=np.float32)
    metas = []
    for i, ss in enumerate(children):
        waves[i], m = _window(ss, cfg, T, float(fs), kind == _KIND_EVENT)
        metas.append(m)
    result = {"waveforms": waves, "fs": float(fs)}
    keys = list(metas[0]) if metas else ["p_idx", "s_idx", "p2_idx", "s2_idx", "snr_db"]
    for k in keys:
        vals = [m[k] for m in metas]
        if k in _FLAGS or k in ("impulsive", "broadband", "cultural"):
            result[k] = np.array(vals, dtype=bool)
        elif k in ("gap_start", "gap_stop"):
            result[k] = np.array(vals, dtype=np.int64)
        else:
            result[k] = np.array(vals, dtype=np.float64)
    return result


def event_windows(n, seed, window_samples=3000, fs=100.0, **options) -> Dict[str, np.ndarray]:
    """``n`` labeled earthquake windows, deterministic per ``seed``.

    Window i depends only on (seed, i): the first 10 of 100 windows equal
    the 10 windows asked for alone.

    Returns a dict: "waveforms" (n, 3, T) float32 counts, ZNE; "p_idx",
    "s_idx" (n,) float64 sample indices of the onsets (NaN when absent: S
    beyond the window when ``require_s=False``); "p2_idx", "s2_idx" of a
    second event (NaN when none); "fs" (Hz); and per-window metadata:
    magnitude, distance_km, depth_km, back_azimuth_deg, fc_p_hz, fc_s_hz,
    pgv_m_s (peak ground velocity, m/s), impulsive, polarity (+1 when the
    first motion of P on Z is up, -1 down; 0 without an event),
    snr_db (10 log10 of the event's mean power on Z in the 2 s after P over
    the noise's mean power on Z, measured on the clean parts before any
    trouble), noise_level, broadband, cultural, sensitivity (counts per m/s),
    and one bool per trouble (spikes, gap, clipped, dead_channel,
    vertical_only, dc_offset, second_event, burst) with gap_start/gap_stop samples.

    options: fields of :class:`SynthConfig` (or ``config=SynthConfig(...)``
    as a base); unknown names are an error.
    """
    return _windows(_KIND_EVENT, n, seed, window_samples, fs, dict(options))


def noise_windows(n, seed, window_samples=3000, fs=100.0, **options) -> Dict[str, np.ndarray]:
    """``n`` windows of noise only (same keys as :func:`event_windows`; labels all NaN).

    The troubles (spikes, gaps, clipping, dead channels, DC offsets) are
    drawn as for event windows; there is never a second event.
    """
    return _windows(_KIND_NOISE, n, seed, window_samples, fs, dict(options))


# --------------------------------------------------------------------------- streams

def continuous(duration_s, seed, fs=100.0, start_ns=1_700_000_000 * 10 ** 9, event_rate_per_hour=20.0,
               noise_level=None, broadband=True, sensitivity=5e8, spikes_per_hour=0.0, bursts_per_hour=0.0,
               chunk_samples=1 << 18, **options) -> Tuple[np.ndarray, np.ndarray]:
    """A continuous 3-component stream with Poisson earthquakes and its truth table.

    duration_s: seconds (hours to a day are fine: memory is 12 bytes per sample).
    start_ns: time of the first sample, ns since the epoch (UTC).
    event_rate_per_hour: mean of the Poisson process of origin times.
    noise_level: between NLNM (0) and NHNM (1); default drawn from the config range.
    sensitivity: counts per m/s.  spikes_per_hour: rate of single-sample spikes.
    bursts_per_hour: rate of non-seismic transients (traffic, machinery; not in the truth).
    options: :class:`SynthConfig` fields for the events (magnitudes,
    distances, SNR...); window-only options (troubles, require_s) do not apply.

    Returns ``(data, truth)``: data (3, N) float32 counts, ZNE, sample i at
    ``start_ns + i * 1e9 / fs``; truth a structured array of dtype
    :data:`TRUTH_DTYPE` (fields event_id, phase 'P'/'S', time_ns, sample
    (float, in ``data``), magnitude, distance_km, depth_km,
    back_azimuth_deg, snr_db), sorted by time, holding every arrival that
    falls inside the stream.
    """
    cfg = options.pop("config", None)
    cfg = config(cfg, **options)
    if not (isinstance(duration_s, (int, float)) and math.isfinite(duration_s) and duration_s > 0):
        raise ConfigError("duration_s=%r; it must be a number of seconds > 0" % (duration_s,))
    _check_size(0, 16, fs)
    if event_rate_per_hour < 0:
        raise ConfigError("event_rate_per_hour=%r; it must be >= 0" % (event_rate_per_hour,))
    if isinstance(start_ns, bool) or not isinstance(start_ns, (int, np.integer)):
        raise ConfigError("start_ns=%r must be an int (ns since the epoch)" % (start_ns,))
    fs = float(fs)
    n = int(round(duration_s * fs))
    root = np.random.SeedSequence([int(seed), _KIND_STREAM])
    noise_ss, event_ss = root.spawn(2)
    rng = np.random.default_rng(noise_ss)
    level, cultural, pink = _noise_params(rng, cfg)
    if noise_level is not None:
        level = float(noise_level)
    # noise in chunks, joined by equal-power cross-fades (cos^2 + sin^2 = 1)
    chunk = int(min(max(int(chunk_samples), 1024), _fft_len(n)))
    overlap = min(chunk // 8, 4096)
    step = chunk - overlap
    freq = np.fft.rfftfreq(chunk, 1.0 / fs)
    amp = np.sqrt(noise_psd(np.maximum(freq, freq[1]), level, cultural, pink)) * _instrument(freq, fs, broadband)
    data = np.zeros((3, n), dtype=np.float64)
    theta = np.linspace(0.0, np.pi / 2, overlap)
    fade_in, fade_out = np.sin(theta), np.cos(theta)
    for start in range(0, max(n - overlap, 1), step):
        block = _shaped_noise(rng, chunk, fs, amp)[:, : n - start]
        if start > 0:
            k = min(overlap, block.shape[1])
            block[:, :k] = data[:, start: start + k] * fade_out[:k] + block[:, :k] * fade_in[:k]
        data[:, start: start + block.shape[1]] = block
    noise_power_z = float(np.mean(data[0] ** 2))
    erng = np.random.default_rng(event_ss)
    n_events = int(erng.poisson(event_rate_per_hour * duration_s / 3600.0))
    origins = np.sort(erng.uniform(-60.0, duration_s, n_events))  # events just before the start leave codas
    rows = []
    for eid, t0 in enumerate(origins):
        ev = _draw_event(erng, cfg)
        p_time = t0 + ev["tp_s"]
        seg_s = 1.0 + ev["sp_s"] + 5.0 * ev["coda_tau_s"]
        seg_s = min(seg_s, 1.0 + ev["sp_s"] + 600.0)
        first = int(math.floor(p_time * fs)) - int(fs)  # one second of lead
        seg_n = int(seg_s * fs) + int(fs)
        if first + seg_n <= 0 or first >= n:
            continue
        sig, s_sample = _event_ground(erng, ev, seg_n, fs, p_time * fs - first, broadband)
        z_seg = sig[0]
        i0 = int(math.ceil(p_time * fs - first))
        snr = 10.0 * math.log10(max(np.mean(z_seg[i0: i0 + int(2 * fs)] ** 2), 1e-300) / max(noise_power_z, 1e-300))
        if cfg.snr_db_min is not None:
            target = erng.uniform(cfg.snr_db_min, cfg.snr_db_max)
            sig *= 10.0 ** ((target - snr) / 20.0)
            snr = target
        a, b = max(first, 0), min(first + seg_n, n)
        data[:, a:b] += sig[:, a - first: b - first]
        for phase, sample in (("P", p_time * fs), ("S", s_sample + first)):
            if 0.0 <= sample < n:
                t_ns = int(start_ns) + int(round(sample * 1e9 / fs))
                rows.append((eid, phase, t_ns, sample, ev["magnitude"], ev["distance_km"], ev["depth_km"],
                             ev["back_azimuth_deg"], snr))
    if bursts_per_hour > 0:
        sd = np.sqrt(np.array([noise_power_z, noise_power_z, noise_power_z]))
        _add_bursts(erng, data, fs, sd, int(erng.poisson(bursts_per_hour * duration_s / 3600.0)))
    data *= sensitivity
    if spikes_per_hour > 0:
        k = int(erng.poisson(spikes_per_hour * duration_s / 3600.0))
        peak = float(np.abs(data).max()) if n else 0.0
        for _ in range(k):
            data[erng.integers(0, 3), erng.integers(0, n)] += erng.choice([-1, 1]) * erng.uniform(0.05, 0.5) * peak
    truth = np.array(rows, dtype=TRUTH_DTYPE)
    truth = truth[np.argsort(truth["time_ns"], kind="stable")]
    log.debug("continuous: %d samples, %d events, %d arrivals", n, n_events, len(truth))
    return data.astype(np.float32), truth
