"""The synthetic events against the real NCEDC windows: amplitude and polarisation ratios of P and S."""

import numpy as np
import pytest

from fieldpick.lab.synthetic import LEGACY_EVENT_SHAPE
from fieldpick.train.data.synthetic import SHAPE_STATS, event_windows, shape_stats

MATCHED = ("s_over_p_h", "v_over_h_p", "v_over_h_s", "s_over_coda", "freq_p", "freq_s")


def _synthetic(**options):
    d = event_windows(200, 5, window_samples=6000, **options)
    return shape_stats(d["waveforms"], d["p_idx"], d["s_idx"], d["fs"])


def test_shape_stats_by_hand():
    fs, w = 100.0, np.zeros((1, 3, 1000))
    rng = np.random.default_rng(0)
    w[0] += 0.01 * rng.standard_normal((3, 1000))
    wave = np.sin(0.7 * np.arange(1000))
    w[0, 0, 300:] += 1.0 * wave[300:]  # P on the vertical ...
    w[0, 1:, 300:] += 0.5 * wave[300:]  # ... with half its amplitude on each horizontal
    w[0, 1:, 500:] += 4.0 * wave[500:]  # S on the horizontals, in phase with P's motion there
    st = shape_stats(w, [300.0], [500.0], fs)
    assert set(st) == set(SHAPE_STATS)
    assert st["v_over_h_p"][0] == pytest.approx(np.log10(2.0), abs=0.02)
    assert st["s_over_p_h"][0] == pytest.approx(np.log10(9.0), abs=0.02)  # 0.5 + 4.0 over 0.5
    assert 10 ** st["freq_p"][0] == pytest.approx(0.7 / (2 * np.pi) * fs, rel=0.05)  # sin(0.7 n): 11.1 Hz
    # windows without S, or with S too close to P, are left out
    assert len(shape_stats(w, [300.0], [np.nan], fs)["s_over_coda"]) == 0
    assert len(shape_stats(w, [300.0], [330.0], fs)["s_over_coda"]) == 0


def test_synthetic_events_match_the_ncedc_windows(ncedc_dir):
    from fieldpick.train.data.windows import load_real

    data = load_real(ncedc_dir)
    real = shape_stats(data.events.waveforms, data.events.p_idx, data.events.s_idx, data.events.fs)
    assert len(real["s_over_coda"]) >= 80
    new, old = _synthetic(), _synthetic(**LEGACY_EVENT_SHAPE)
    for k in MATCHED:  # medians within 0.1 (a factor 1.26) of the real ones (the frequencies within 0.05)
        tol = 0.05 if k.startswith("freq") else 0.1
        assert abs(np.median(new[k]) - np.median(real[k])) < tol, (k, np.median(new[k]), np.median(real[k]))
    # the legacy shape's S rose out of a P coda ten times weaker than S; the real one is about 2.5x weaker
    assert np.median(old["s_over_coda"]) > np.median(real["s_over_coda"]) + 0.4
    assert np.median(old["v_over_h_p"]) > np.median(real["v_over_h_p"]) + 0.15
    assert np.median(old["freq_s"]) < np.median(real["freq_s"]) - 0.07  # and S was low-pitched
