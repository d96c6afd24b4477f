"""Resampling to the model's rate: equal to scipy's resample_poly, any packets."""

import numpy as np
import pytest

from fieldpick.edge.errors import ConfigError
from fieldpick.edge.stream.resample import Resampler, design_filter, ratio, resample_reference

pytest.importorskip("scipy", reason="scipy is the reference for the resampler (workstation env)")
from scipy import signal  # noqa: E402


@pytest.mark.parametrize("fs_in, up, down", [(20, 5, 1), (40, 5, 2), (50, 2, 1), (200, 1, 2), (250, 2, 5), (100, 1, 1)])
def test_ratio(fs_in, up, down):
    assert ratio(fs_in, 100.0) == (up, down)


@pytest.mark.parametrize("fs_in", [20.0, 40.0, 50.0, 200.0, 250.0])
@pytest.mark.parametrize("packet", [1, 13, 256, 5000])
def test_streaming_equals_scipy_resample_poly(rng, fs_in, packet):
    x = rng.normal(size=5000)
    r = Resampler(fs_in, 100.0)
    parts = [r.push(x[a:a + packet]) for a in range(0, len(x), packet)]
    got = np.concatenate(parts + [r.push(np.zeros(0), final=True)])
    want = signal.resample_poly(x, *ratio(fs_in, 100.0))
    assert got.shape == want.shape
    assert np.allclose(got, want, rtol=1e-10, atol=1e-12)


def test_filter_equals_scipy_firwin():
    up, down = 2, 5
    want = signal.firwin(2 * 10 * 5 + 1, 1.0 / 5, window=("kaiser", 5.0)) * up
    assert np.allclose(design_filter(up, down), want, rtol=1e-12, atol=1e-15)


def test_reference_twin_agrees(rng):
    x = rng.normal(size=200)
    r = Resampler(250.0, 100.0)
    got = np.concatenate([r.push(x), r.push(np.zeros(0), final=True)])
    assert np.allclose(got, resample_reference(x, 250.0, 100.0), rtol=1e-10, atol=1e-12)


def test_anti_alias_filter_removes_energy_above_the_new_nyquist():
    # 70 Hz at 200 Hz input would alias to 30 Hz at 100 Hz; the filter must remove it
    t = np.arange(20000) / 200.0
    r = Resampler(200.0, 100.0)
    y = r.push(np.sin(2 * np.pi * 70.0 * t))
    assert np.abs(y[200:-200]).max() < 0.01
    # while 10 Hz passes with unit gain (RMS of a unit sine: 1 / sqrt(2))
    y = Resampler(200.0, 100.0).push(np.sin(2 * np.pi * 10.0 * t))
    assert abs(np.sqrt(np.mean(y[200:-200] ** 2)) - np.sqrt(0.5)) < 0.005


def test_output_is_aligned_in_time():
    # a 2 Hz sine resampled 50 -> 100 Hz lands on the same sine at the new times
    t_in = np.arange(2000) / 50.0
    y = Resampler(50.0, 100.0).push(np.sin(2 * np.pi * 2.0 * t_in))
    t_out = np.arange(len(y)) / 100.0
    mid = slice(200, len(y) - 200)
    # the Kaiser filter ripples by ~1e-3; a shift of one output sample would err by 0.13
    assert np.abs(y[mid] - np.sin(2 * np.pi * 2.0 * t_out[mid])).max() < 5e-3


@pytest.mark.parametrize("fs_in, message", [(0.0, "must be > 0"), (100.0 / 3.0001, "not a fraction")])
def test_bad_rates(fs_in, message):
    with pytest.raises(ConfigError, match=message):
        Resampler(fs_in, 100.0)
