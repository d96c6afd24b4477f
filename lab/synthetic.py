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

from fieldpick.edge.errors import ConfigError

from .events import draw_event, event_ground, fft_len, snr_db
from .noise import instrument_response, noise_model_db, noise_params, noise_psd, shaped_noise

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

_KIND_EVENT, _KIND_NOISE, _KIND_STREAM = 1, 2, 3

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
    n = fft_len(int((duration * 2.0 + rise) * fs))
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
    level, cultural, pink = noise_params(rng, cfg)
    freq = np.fft.rfftfreq(T, 1.0 / fs)
    amp = np.sqrt(noise_psd(np.maximum(freq, freq[1] if T > 1 else 1.0), level, cultural, pink)) * instrument_response(freq, fs, broadband)
    noise = shaped_noise(rng, T, fs, amp)
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
        ev = draw_event(rng, cfg, max_sp)
        latest = dur - cfg.s_margin_s - ev["sp_s"] if cfg.require_s else dur - 1.0
        p_s = rng.uniform(cfg.p_min_s, max(latest, cfg.p_min_s))
        sig, s_sample = event_ground(rng, ev, T, fs, p_s * fs, broadband)
        snr = snr_db(sig[0], noise[0], p_s * fs, fs)
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
            ev2 = draw_event(rng, cfg)
            p2 = rng.uniform(0.0, dur - 1.0)
            sig2, s2 = event_ground(rng, ev2, T, fs, p2 * fs, broadband)
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

def _stream_noise(rng, cfg, n, fs, noise_level, broadband, chunk_samples):
    """(3, n) float64 ambient noise of one station, in chunks joined by equal-power
    cross-fades (cos^2 + sin^2 = 1)."""
    level, cultural, pink = noise_params(rng, cfg)
    if noise_level is not None:
        level = float(noise_level)
    chunk = int(min(max(int(chunk_samples), 1024), fft_len(n)))
    overlap = min(chunk // 8, 4096)
    step = chunk - overlap
    freq = np.fft.rfftfreq(chunk, 1.0 / fs)
    amp = np.sqrt(noise_psd(np.maximum(freq, freq[1]), level, cultural, pink)) * instrument_response(freq, fs, broadband)
    data = np.zeros((3, n), dtype=np.float64)
    theta = np.linspace(0.0, np.pi / 2, overlap)
    fade_in, fade_out = np.sin(theta), np.cos(theta)
    for start in range(0, max(n - overlap, 1), step):
        block = shaped_noise(rng, chunk, fs, amp)[:, : n - start]
        if start > 0:
            k = min(overlap, block.shape[1])
            block[:, :k] = data[:, start: start + k] * fade_out[:k] + block[:, :k] * fade_in[:k]
        data[:, start: start + block.shape[1]] = block
    return data


def _stream_events(erng, cfg, data, fs, duration_s, n_events, start_ns, broadband, noise_power_z):
    """Add ``n_events`` earthquakes at Poisson origin times to ``data`` (in place); returns
    the truth rows of the arrivals inside the stream."""
    n = data.shape[1]
    origins = np.sort(erng.uniform(-60.0, duration_s, n_events))  # events just before the start leave codas
    rows = []
    for eid, t0 in enumerate(origins):
        ev = draw_event(erng, cfg)
        p_time = t0 + ev["tp_s"]
        seg_s = 1.0 + ev["sp_s"] + 5.0 * ev["coda_tau_s"]
        seg_s = min(seg_s, 1.0 + ev["sp_s"] + 600.0)
        first = int(math.floor(p_time * fs)) - int(fs)  # one second of lead
        seg_n = int(seg_s * fs) + int(fs)
        if first + seg_n <= 0 or first >= n:
            continue
        sig, s_sample = event_ground(erng, ev, seg_n, fs, p_time * fs - first, broadband)
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
    return rows


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
    data = _stream_noise(np.random.default_rng(noise_ss), cfg, n, fs, noise_level, broadband, chunk_samples)
    noise_power_z = float(np.mean(data[0] ** 2))
    erng = np.random.default_rng(event_ss)
    n_events = int(erng.poisson(event_rate_per_hour * duration_s / 3600.0))
    rows = _stream_events(erng, cfg, data, fs, duration_s, n_events, start_ns, broadband, noise_power_z)
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
