"""fieldpick.lab.synthetic: determinism, physics that can be checked by hand, troubles, streams."""

import math

import numpy as np
import pytest

from fieldpick.edge.errors import ConfigError
from fieldpick.lab import synthetic as syn
from fieldpick.lab.events import draw_event, event_ground

CLEAN = dict(spike_prob=0.0, gap_prob=0.0, clip_prob=0.0, dead_channel_prob=0.0, vertical_only_prob=0.0,
             dc_offset_prob=0.0, second_event_prob=0.0, burst_prob=0.0)


def _welch(x, fs, nseg):
    """Mean one-sided PSD of Hann-windowed, half-overlapping segments (units^2/Hz)."""
    win = np.hanning(nseg)
    step = nseg // 2
    segs = [x[i: i + nseg] for i in range(0, len(x) - nseg + 1, step)]
    spec = np.mean([np.abs(np.fft.rfft((s - s.mean()) * win)) ** 2 for s in segs], axis=0)
    return np.fft.rfftfreq(nseg, 1 / fs), 2 * spec / (fs * np.sum(win ** 2))


def test_deterministic_and_window_i_independent_of_n():
    a = syn.event_windows(6, seed=11)
    b = syn.event_windows(3, seed=11)
    c = syn.event_windows(3, seed=12)
    np.testing.assert_array_equal(a["waveforms"][:3], b["waveforms"])
    np.testing.assert_array_equal(a["p_idx"][:3], b["p_idx"])
    assert not np.array_equal(b["waveforms"], c["waveforms"])
    assert a["waveforms"].dtype == np.float32 and a["waveforms"].shape == (6, 3, 3000)
    assert a["p_idx"].dtype == np.float64


def test_s_minus_p_follows_distance_exactly():
    # depth 10 km, epicentre 30 km: hypocentral sqrt(1000) km; S-P = R (vp/vs - 1) / vp
    d = syn.event_windows(4, 1, distance_km_min=30, distance_km_max=30, depth_km_min=10, depth_km_max=10, **CLEAN)
    expected_s = math.sqrt(1000.0) * 0.73 / 6.0  # 3.848 s
    np.testing.assert_allclose((d["s_idx"] - d["p_idx"]) / 100.0, expected_s, rtol=1e-12)
    assert np.all(d["p_idx"] >= 200) and np.all(d["s_idx"] <= 2800)  # p_min_s=2, s_margin_s=2


def test_event_is_causal_and_starts_at_the_label():
    rng = np.random.default_rng(3)
    ev = draw_event(rng, syn.config(), None)
    sig, s_sample = event_ground(rng, ev, 3000, 100.0, 1234.4, True)
    assert np.all(sig[:, :1234] == 0.0)  # nothing before the onset sample
    assert np.abs(sig[:, 1235:1300]).max() > 0.01 * np.abs(sig).max()  # and energy within 0.65 s after it
    assert s_sample == pytest.approx(1234.4 + ev["sp_s"] * 100.0)


def _polarisation(**options):
    d = syn.event_windows(40, 5, snr_db_min=40, snr_db_max=40, **dict(CLEAN, **options))
    zp, hs, sp = [], [], []
    for w, p, s in zip(d["waveforms"].astype(np.float64), d["p_idx"], d["s_idx"]):
        p, s = int(p), int(s)
        seg_p = w[:, p: min(p + 50, s)]
        seg_s = w[:, s: s + 200]
        zp.append(np.sum(seg_p[0] ** 2) / np.sum(seg_p[1:] ** 2) * 2)  # Z energy / mean horizontal
        hs.append(np.sum(seg_s[1:] ** 2) / 2 / np.sum(seg_s[0] ** 2))
        sp.append(np.abs(w[:, s:]).max() / np.abs(w[:, p:s]).max())
    return np.median(zp), np.median(hs), np.median(sp), min(sp)


def test_p_leads_on_vertical_s_on_horizontals():
    # matched to the NCEDC windows (tests/train/test_synthetic_realism.py): P's first 0.5 s carries
    # about twice the energy on Z as on each horizontal, S about 3x on each horizontal as on Z, and
    # the S peak is about 2.2x the P peak, sometimes below it (as in about 1 real window in 10)
    zp, hs, sp, _ = _polarisation()
    assert 1.2 < zp < 4.0 and hs > 2.0
    assert 1.5 < sp < 3.5


def test_legacy_event_shape_is_kept_for_old_recipes():
    # before the NCEDC match: P nearly vertical, S well above P and never below it
    zp, hs, sp, sp_min = _polarisation(**syn.LEGACY_EVENT_SHAPE)
    assert zp > 3.0 and hs > 3.0
    assert 2.5 < sp < 6.0 and sp_min > 1.0
    assert syn.SynthConfig.legacy().p_coda_ratio == 0.6
    with pytest.raises(ConfigError, match="incidence_deg_max=95"):
        syn.config(incidence_deg_max=95.0)
    with pytest.raises(ConfigError, match="sp_ratio_median=0"):
        syn.config(sp_ratio_median=0.0)


def test_s_arrives_in_the_p_coda():
    # the S onset rises out of P's coda, not out of silence: the 0.5 s before S hold a good part
    # of P's energy (legacy: P's coda had decayed, so S looked like a first arrival)
    def coda_over_p(**options):
        d = syn.event_windows(40, 9, snr_db_min=40, snr_db_max=40, **dict(CLEAN, **options))
        r = []
        for w, p, s in zip(d["waveforms"].astype(np.float64), d["p_idx"], d["s_idx"]):
            p, s = int(p), int(s)
            if s - p >= 150:
                r.append(np.sqrt(np.mean(w[:, s - 50:s] ** 2) / np.mean(w[:, p:p + 100] ** 2)))
        return np.median(r)

    assert coda_over_p() > 2 * coda_over_p(**syn.LEGACY_EVENT_SHAPE)


def test_bigger_events_have_lower_corner_and_more_energy_at_low_frequency():
    kw = dict(distance_km_min=20, distance_km_max=20, snr_db_min=50, snr_db_max=50, **CLEAN)
    small = syn.event_windows(20, 7, magnitude_min=1.0, magnitude_max=1.0, **kw)
    large = syn.event_windows(20, 7, magnitude_min=4.0, magnitude_max=4.0, **kw)
    # Brune: fc ~ M0^(-1/3), M0 ~ 10^(1.5 M): three magnitude units lower fc by 10^1.5
    ratio = small["fc_s_hz"] / large["fc_s_hz"]
    np.testing.assert_allclose(ratio, 10 ** 1.5 * (small["fc_s_hz"] / small["fc_s_hz"]), rtol=0.9)

    def centroid(d):
        out = []
        for w, s in zip(d["waveforms"].astype(np.float64), d["s_idx"]):
            seg = w[1, int(s): int(s) + 256]
            spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg)))) ** 2
            f = np.fft.rfftfreq(len(seg), 0.01)
            out.append(np.sum(f * spec) / np.sum(spec))
        return np.median(out)

    assert centroid(large) < 0.7 * centroid(small)


@pytest.mark.slow  # importing ObsPy's spectral_estimation (matplotlib) takes ~5 s
def test_noise_spectrum_lies_between_peterson_models_with_microseism_peak():
    pytest.importorskip("obspy", reason="ObsPy provides the Peterson noise models (workstation env)")
    from obspy.signal.spectral_estimation import get_nhnm, get_nlnm

    fs, T = 20.0, 1 << 14  # 819 s windows at 20 Hz reach the microseism band well
    for level in (0.0, 0.5, 1.0):
        d = syn.noise_windows(3, 2, window_samples=T, fs=fs, noise_level_min=level, noise_level_max=level,
                              cultural_prob=0.0, broadband_fraction=1.0, **CLEAN)
        psds = []
        for w, sens in zip(d["waveforms"].astype(np.float64), d["sensitivity"]):
            f, pv = _welch(w[0] / sens, fs, 1024)
            psds.append(pv)
        pv = np.mean(psds, axis=0)
        band = (f >= 0.1) & (f <= 6.0)
        acc_db = 10 * np.log10(pv[band] * (2 * np.pi * f[band]) ** 2)
        per, lo = get_nlnm()
        per_h, hi = get_nhnm()
        lo_db = np.interp(np.log10(1 / f[band]), np.log10(per[::-1]), lo[::-1])
        hi_db = np.interp(np.log10(1 / f[band]), np.log10(per_h[::-1]), hi[::-1])
        assert np.all(acc_db > lo_db - 3.0) and np.all(acc_db < hi_db + 3.0)
        expected = lo_db + level * (hi_db - lo_db)
        assert np.median(np.abs(acc_db - expected)) < 1.5  # dB
        # the ocean microseism: the acceleration PSD peaks between 0.1 and 0.3 Hz below 1 Hz
        low = f[band] < 1.0
        assert 0.1 <= f[band][low][np.argmax(acc_db[low])] <= 0.3


def test_noise_psd_is_clipped_to_the_models():
    f = np.array([0.2, 2.0, 5.0])
    loud = syn.noise_psd(f, 1.0, cultural=[(2.0, 30.0)], pink_db=-100.0) * (2 * np.pi * f) ** 2
    quiet = syn.noise_psd(f, 0.0) * (2 * np.pi * f) ** 2
    np.testing.assert_allclose(10 * np.log10(loud), syn.noise_model_db(f, 1.0), atol=1e-9)
    np.testing.assert_allclose(10 * np.log10(quiet), syn.noise_model_db(f, 0.0), atol=1e-9)


def test_requested_snr_is_what_the_window_shows():
    d = syn.event_windows(20, 9, snr_db_min=20.0, snr_db_max=20.0, **CLEAN)
    np.testing.assert_allclose(d["snr_db"], 20.0)
    measured = []
    for w, p in zip(d["waveforms"].astype(np.float64), d["p_idx"]):
        p = int(math.ceil(p))
        measured.append(10 * np.log10(np.mean(w[0, p: p + 200] ** 2) / np.mean(w[0, : p - 10] ** 2)))
    # signal + noise over noise: 10 log10(1 + 100) = 20.04 dB, give or take the noise estimate
    assert abs(np.median(measured) - 20.0) < 1.5


@pytest.mark.parametrize("trouble", ["vertical_only", "dead_channel", "gap", "clipped", "dc_offset", "spikes", "second_event"])
def test_each_trouble_does_what_its_flag_says(trouble):
    opts = dict(CLEAN)
    opts[{"clipped": "clip_prob", "spikes": "spike_prob"}.get(trouble, trouble + "_prob")] = 1.0
    d = syn.event_windows(5, 4, **opts)
    assert d[trouble].all()
    for i, w in enumerate(d["waveforms"]):
        dead = [bool(np.all(w[c] == 0)) for c in range(3)]
        if trouble == "vertical_only":
            assert dead == [False, True, True]
        elif trouble == "dead_channel":
            assert sum(dead) == 1
        elif trouble == "gap":
            a, b = d["gap_start"][i], d["gap_stop"][i]
            assert b - a >= 50 and np.all(w[:, a:b] == 0) and np.any(w[:, max(a - 5, 0):a] != 0) | (a == 0)
        elif trouble == "clipped":
            peak = np.abs(w).max()
            assert np.sum(np.abs(w) >= peak * (1 - 1e-6)) >= 3  # a flat top, not one sample
        elif trouble == "dc_offset":
            assert np.max(np.abs(np.median(w, axis=1))) > 50.0
        elif trouble == "spikes":
            x = np.abs(np.diff(w, axis=1))
            assert x.max() > 10 * np.median(x)
        elif trouble == "second_event":
            assert np.isfinite(d["p2_idx"][i])


def test_bursts_are_band_limited_transients_on_top_of_the_same_noise():
    quiet = syn.noise_windows(6, 8, burst_prob=0.0, **{k: v for k, v in CLEAN.items() if k != "burst_prob"})
    loud = syn.noise_windows(6, 8, burst_prob=1.0, **{k: v for k, v in CLEAN.items() if k != "burst_prob"})
    assert loud["burst"].all() and not quiet["burst"].any()
    diff = loud["waveforms"].astype(np.float64) - quiet["waveforms"]
    f = np.fft.rfftfreq(3000, 0.01)
    for d, w in zip(diff, quiet["waveforms"].astype(np.float64)):
        spec = np.abs(np.fft.rfft(d[1])) ** 2
        assert 1.5 < np.sum(f * spec) / np.sum(spec) < 20.0  # energy between 2 and 15 Hz, not broadband
        seg = np.sqrt(np.mean(d.reshape(3, 15, 200) ** 2, axis=-1))  # RMS per 2 s
        assert seg.max() > 0.5 * w.std(axis=-1).max()


def test_noise_windows_have_no_labels():
    d = syn.noise_windows(3, 1, second_event_prob=1.0)
    assert np.isnan(d["p_idx"]).all() and np.isnan(d["s_idx"]).all() and not d["second_event"].any()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(colour="red"), r"unknown synthetic option\(s\) colour; allowed: magnitude_min"),
        (dict(magnitude_min=5, magnitude_max=4), "magnitude_min=5 and magnitude_max=4"),
        (dict(gap_prob=1.5), r"gap_prob=1.5; a probability must lie in \[0, 1\]"),
        (dict(snr_db_min=3), "give both snr_db_min and snr_db_max"),
        (dict(window_samples=300), "window of 3.0 s cannot hold P"),
    ],
)
def test_bad_options_are_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        syn.event_windows(1, 0, **kwargs)


def test_continuous_truth_table_is_consistent():
    start = 1_600_000_000 * 10 ** 9
    data, truth = syn.continuous(1800.0, 21, start_ns=start, event_rate_per_hour=40.0, snr_db_min=25, snr_db_max=25)
    data2, truth2 = syn.continuous(1800.0, 21, start_ns=start, event_rate_per_hour=40.0, snr_db_min=25, snr_db_max=25)
    np.testing.assert_array_equal(data, data2)
    assert data.shape == (3, 180000) and data.dtype == np.float32
    assert truth.dtype == syn.TRUTH_DTYPE and np.all(np.diff(truth["time_ns"]) >= 0)
    np.testing.assert_array_equal(truth["time_ns"], start + np.round(truth["sample"] * 1e7).astype(np.int64))
    assert 5 <= len(np.unique(truth["event_id"])) <= 40  # Poisson, mean 20
    for eid in np.unique(truth["event_id"]):
        rows = truth[truth["event_id"] == eid]
        if len(rows) == 2:
            p, s = rows[rows["phase"] == "P"][0], rows[rows["phase"] == "S"][0]
            r = math.hypot(p["distance_km"], p["depth_km"])
            assert (s["sample"] - p["sample"]) / 100 == pytest.approx(r * 0.73 / 6.0)
    # at 25 dB every P stands out of the noise on Z; the noise has its own seed, so the same
    # stream without events is exactly the noise under them
    quiet, none = syn.continuous(1800.0, 21, start_ns=start, event_rate_per_hour=0.0)
    assert len(none) == 0
    noise = np.std(quiet[0])
    for row in truth[truth["phase"] == "P"]:
        i = int(math.ceil(row["sample"]))
        assert np.std(data[0, i: i + 200]) > 3 * noise


def test_continuous_noise_is_stationary_across_chunks():
    small, truth = syn.continuous(600.0, 5, event_rate_per_hour=0.0, chunk_samples=4096, noise_level=0.3)
    whole, _ = syn.continuous(600.0, 5, event_rate_per_hour=0.0, noise_level=0.3)
    assert len(truth) == 0 and np.all(np.isfinite(small))
    # differences weight the (many-cycle) high frequencies, so 10 s pieces estimate their power well;
    # 16 cross-fades must neither dent nor raise the power
    d_small, d_whole = np.diff(small[0].astype(np.float64)), np.diff(whole[0].astype(np.float64))
    assert np.std(d_small) == pytest.approx(np.std(d_whole), rel=0.05)
    sd = np.std(d_small[:59_000].reshape(-1, 1000), axis=1)
    assert sd.max() / sd.min() < 1.5


def test_legacy_event_shape_reproduces_the_windows_made_before_the_ncedc_match():
    # sha1 of event_windows(20, seed=3) as generated before the event-shape options existed
    # (commit 2520144; the same on numpy 1.26 and 2.4): recipes that pin the legacy shape, such as
    # configs/default.toml's pre-training, keep making the same windows
    import hashlib

    d = syn.event_windows(20, seed=3, **syn.LEGACY_EVENT_SHAPE)
    assert hashlib.sha1(d["waveforms"].tobytes()).hexdigest() == "e28b2a827bc7560db8cc2432c6a41aeda356bbfd"
