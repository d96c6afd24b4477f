"""Augmentations: each one on a signal whose answer can be checked by hand."""

import numpy as np
import pytest

from fieldpick.edge.errors import ConfigError, DataError
from fieldpick.train.data import augment as A
from fieldpick.train.data.datasets import WindowSet


def _ex(W=10000, p=(5000.0,), s=(6000.0,), fs=100.0):
    x = np.tile(np.arange(W, dtype=np.float32), (3, 1))
    return {"waveform": x, "p_idx": np.array(p), "s_idx": np.array(s), "fs": fs}


@pytest.mark.parametrize(
    "anchor, start, p, s",
    [
        ((0.1, 0.1), 4700, [300.0], [1300.0]),  # P lands at 10 % of the window
        ((0.9, 0.9), 2300, [2700.0], []),  # S (at 3700) falls out of the window
    ],
)
def test_random_window_places_the_anchor(rng, anchor, start, p, s):
    out = A.RandomWindow(3000, anchor)(_ex(), rng)
    assert out["waveform"].shape == (3, 3000) and out["waveform"][0, 0] == start
    assert out["p_idx"].tolist() == p and out["s_idx"].tolist() == s


def test_random_window_pads_short_records_and_crops_noise(rng):
    out = A.RandomWindow(3000)(_ex(W=100, p=(), s=()), rng)
    assert out["waveform"].shape == (3, 3000) and np.all(out["waveform"][:, 100:] == 0)
    out = A.RandomWindow(3000)(_ex(p=(), s=()), rng)
    assert out["waveform"].shape == (3, 3000) and len(out["p_idx"]) == 0


def test_add_noise_hits_the_target_snr(rng):
    ev = np.zeros((3, 3000), dtype=np.float32)
    ev[:, 1000:1200] = np.sin(np.arange(200) * 0.3) * 100
    ex = {"waveform": ev, "p_idx": np.array([1000.0]), "s_idx": np.array([]), "fs": 100.0}
    noise = WindowSet(rng.normal(0, 5, (4, 3, 2900)).astype(np.float32), np.full(4, np.nan), np.full(4, np.nan),
                      np.array(["N.A"] * 4))
    out = A.AddNoise(noise, (10.0, 10.0))(ex, rng)
    added = out["waveform"].astype(np.float64) - ev
    assert A.snr_db(ev, ex["p_idx"], added, 100.0) == pytest.approx(10.0, abs=1e-3)
    assert np.all(ex["waveform"] == ev)  # the input is not changed in place
    synth = A.AddNoise("synthetic", (0.0, 0.0))(ex, rng)
    assert A.snr_db(ev, ex["p_idx"], synth["waveform"] - ev, 100.0) == pytest.approx(0.0, abs=1e-3)


def test_gain_channel_drop_and_gaps(rng):
    ex = _ex(W=3000)
    assert np.allclose(A.Gain((20.0, 20.0))(ex, rng)["waveform"], ex["waveform"] * 10.0)
    assert np.all(A.ChannelDrop(1.0)(ex, rng)["waveform"][1:] == 0)
    one = A.ChannelDrop(1.0, "one")(ex, rng)["waveform"]
    assert sum(np.all(one[c] == 0) for c in range(3)) == 1
    ex2 = dict(ex, waveform=ex["waveform"] + 1)  # no zeros before the gap
    g = A.Gaps(1.0, (1.0, 1.0))(ex2, rng)
    zero = np.all(g["waveform"] == 0, axis=0)
    assert zero.sum() == 100 and np.all(np.diff(np.flatnonzero(zero)) == 1)  # one 1 s stretch at 100 Hz
    assert g["p_idx"].tolist() == [5000.0]


def test_superpose_keeps_both_events_labels(rng):
    spike = np.zeros((1, 3, 3000), dtype=np.float32)
    spike[0, :, 1000] = 1.0
    events = WindowSet(spike, np.array([1000.0]), np.array([np.nan]), np.array(["X.Y"]))
    ex = {"waveform": np.zeros((3, 3000), np.float32), "p_idx": np.array([200.0]), "s_idx": np.array([]), "fs": 100.0}
    for _ in range(5):
        out = A.Superpose(events, 1.0, (0.0, 0.0))(ex, rng)
        if len(out["p_idx"]) == 2:
            where = int(np.argmax(out["waveform"][0]))
            assert out["p_idx"].tolist() == sorted([200.0, float(where)])
            break
    else:
        pytest.fail("the superposed P never stayed inside the window")


@pytest.mark.parametrize("fs_in, label_in, label_out", [(250.0, 500.0, 200.0), (20.0, 100.0, 500.0), (50.0, 10.0, 20.0)])
def test_resample_moves_labels_and_keeps_the_signal(fs_in, label_in, label_out):
    t = np.arange(int(30 * fs_in)) / fs_in
    x = np.tile(np.sin(2 * np.pi * 2.0 * t), (3, 1)).astype(np.float32)
    out = A.Resample(100.0)({"waveform": x, "p_idx": np.array([label_in]), "s_idx": np.array([]), "fs": fs_in})
    y = out["waveform"][0]
    assert out["fs"] == 100.0 and len(y) == 3000 and out["p_idx"].tolist() == [label_out]
    t_out = np.arange(3000) / 100.0
    np.testing.assert_allclose(y[300:2700], np.sin(2 * np.pi * 2.0 * t_out[300:2700]), atol=2e-3)


def test_simulate_rate_removes_what_a_slow_station_cannot_see(rng):
    t = np.arange(3000) / 100.0
    for f, rms in ((15.0, 0.0), (3.0, np.sqrt(0.5))):
        x = np.tile(np.sin(2 * np.pi * f * t), (3, 1)).astype(np.float32)
        out = A.SimulateRate((20.0,), 1.0)({"waveform": x, "p_idx": np.array([]), "s_idx": np.array([]), "fs": 100.0}, rng)
        assert out["waveform"].shape == (3, 3000)
        assert np.sqrt(np.mean(out["waveform"][0, 500:2500] ** 2)) == pytest.approx(rms, abs=0.02)


def test_compose_stack_and_description(rng):
    pipe = A.Compose([A.RandomWindow(3000, (0.1, 0.1)), A.Gain((0.0, 0.0)), A.ChannelDrop(0.0)])
    ex = _ex()
    batch = [pipe(ex, rng) for _ in range(2)]
    x, p, s = A.stack(batch + [dict(batch[0], p_idx=np.array([]))])
    assert x.shape == (3, 3, 3000) and p[0] == 300.0 and np.isnan(p[2]) and s[0] == 1300.0
    assert "RandomWindow(window_samples=3000" in str(pipe) and "Gain(db_range=(0.0, 0.0)" in str(pipe)
    assert ex["waveform"][0, 0] == 0  # input untouched


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: A.RandomWindow(0), "window_samples=0"),
        (lambda: A.AddNoise("pink"), "noise='pink'; allowed: 'synthetic' or a WindowSet"),
        (lambda: A.Gain((3, 1)), r"db_range=\(3, 1\); need"),
        (lambda: A.ChannelDrop(0.5, "two"), "mode='two'; allowed: vertical_only, one"),
        (lambda: A.Gaps(prob=2), r"prob=2; a probability must lie in \[0, 1\]"),
        (lambda: A.SimulateRate(()), r"rates=\(\); give one or more"),
        (lambda: A.Compose([1]), "step 0 \\(1\\) is not callable"),
    ],
)
def test_bad_options(build, message):
    with pytest.raises(ConfigError, match=message):
        build()


def test_stack_needs_one_length():
    with pytest.raises(DataError, match=r"lengths \[100, 200\] samples"):
        A.stack([_ex(W=100), _ex(W=200)])
