"""The multi-channel ring buffer: alignment by time, holes, overlaps, late data, gaps."""

import logging

import numpy as np
import pytest

from fieldpick.edge.errors import ConfigError, DataError
from fieldpick.edge.stream.ring import RingBuffer
from fieldpick.edge.stream.windows import hop_samples, normalise, to_layout, window_starts

T0 = 1_700_000_000 * 10 ** 9
MS10 = 10_000_000  # one sample at 100 Hz, ns


def ring(**kw):
    opts = dict(channels=["Z", "N", "E"], fs=100.0, capacity=1000, max_lag=200, gap_fill="zero")
    opts.update(kw)
    return RingBuffer(**opts)


def test_components_align_by_time_whatever_the_order():
    r = ring()
    r.write("Z", T0, np.arange(10.0))
    assert r.frontier == 0  # N and E still missing
    r.write("E", T0 + 5 * MS10, np.arange(5.0, 10.0))   # a hole at 0..4 on E
    r.write("N", T0, np.arange(10.0))
    assert r.frontier == 0
    r.write("E", T0, np.arange(5.0))                      # fills the hole: out of order is fine
    assert r.frontier == 10
    data, valid = r.read(0, 10)
    assert data.tolist() == [list(range(10))] * 3 and valid.all()


def test_times_round_to_the_nearest_sample():
    r = ring()
    r.write("Z", T0, np.zeros(3))
    assert r.index_of(T0 + 3 * MS10 + 4_000_000) == (3, pytest.approx(0.4))
    assert r.time_of(123) == T0 + 123 * MS10


def test_overlap_keeps_the_first_samples(caplog):
    r = ring(channels=["Z"])
    r.write("Z", T0, np.ones(10))
    with caplog.at_level(logging.WARNING):
        r.write("Z", T0 + 5 * MS10, np.full(10, 2.0))
    data, _ = r.read(0, 15)
    assert data[0].tolist() == [1.0] * 10 + [2.0] * 5
    assert r.stats["overlap_samples"] == 0  # the first 5 were late (behind the frontier), not overlaps
    assert r.stats["late_samples"] == 5


def test_overlap_above_the_frontier_is_counted_and_logged(caplog):
    r = ring(channels=["Z", "N"])
    r.write("Z", T0, np.ones(10))
    with caplog.at_level(logging.WARNING):
        r.write("Z", T0 + 5 * MS10, np.full(10, 2.0))
    assert r.stats["overlap_samples"] == 5
    assert "differs" in caplog.text
    r.write("N", T0, np.zeros(15))
    data, _ = r.read(0, 15)
    assert data[0].tolist() == [1.0] * 10 + [2.0] * 5


@pytest.mark.parametrize("fill, expected", [("zero", [5.0, 0.0, 0.0, 0.0, 7.0]), ("hold", [5.0, 5.0, 5.0, 5.0, 7.0])])
def test_a_channel_lagging_past_max_lag_becomes_a_marked_gap(fill, expected):
    r = ring(channels=["Z", "N"], max_lag=40, gap_fill=fill)
    r.write("Z", T0, np.full(30, 5.0))
    r.write("N", T0, np.full(30, 5.0))
    assert r.frontier == 30
    r.write("Z", T0 + 30 * MS10, np.full(100, 7.0))        # N goes silent for a while
    assert r.frontier == 130 - 40                          # forced: Z is 40 samples ahead at most
    data, valid = r.read(29, 90)
    assert valid[0].all() and not valid[1, 1:].any() and valid[1, 0]
    assert r.stats["gap_samples"] == 60
    r.write("Z", T0, np.zeros(3))                          # late: dropped, data kept
    assert r.read(0, 3)[0][0].tolist() == [5.0] * 3
    # fill value: N after its last sample
    z = ring(channels=["N"], max_lag=2, gap_fill=fill)
    z.write("N", T0, np.array([5.0]))
    z.write("N", T0 + 4 * MS10, np.array([7.0, 7.0, 7.0]))
    assert z.read(0, 5)[0][0].tolist() == expected
    assert z.read(0, 5)[1][0].tolist() == [True, False, False, False, True]


def test_release_compacts_and_memory_stays_fixed():
    r = ring(channels=["Z"], capacity=100, max_lag=50)
    ids = (id(r.data), r.data.nbytes)
    for k in range(50):
        r.write("Z", T0 + k * 10 * MS10, np.full(10, float(k)))
        r.release(r.frontier - 20)
    assert (id(r.data), r.data.nbytes) == ids
    assert r.read(490, 500)[0][0].tolist() == [49.0] * 10
    with pytest.raises(DataError, match="outside the final part"):
        r.read(0, 10)


def test_release_after_a_gap_forced_past_every_channel_compacts():
    # the frontier forced beyond the newest sample of every channel (a long outage), then
    # released up to it: the buffer compacts (this raised a broadcast ValueError before)
    r = ring(channels=["Z"], capacity=100, max_lag=50)
    r.write("Z", T0, np.ones(10))
    r.force(90)
    r.release(90)
    assert (r.base, r.frontier, r.released) == (90, 90, 90)
    assert not r.have.any()
    r.write("Z", T0 + 150 * MS10, np.full(10, 2.0))
    r.force(160)
    assert r.read(150, 160)[0][0].tolist() == [2.0] * 10
    assert r.read(140, 150)[1][0].tolist() == [False] * 10


def test_a_packet_beyond_the_buffer_is_refused_without_losing_data():
    r = ring(channels=["Z"], capacity=100, max_lag=50)
    r.write("Z", T0, np.ones(10))
    with pytest.raises(DataError, match="beyond the buffer"):
        r.write("Z", T0 + 95 * MS10, np.ones(10))
    assert r.read(0, 10)[0][0].tolist() == [1.0] * 10


def test_nan_packets_are_refused():
    r = ring(channels=["Z"])
    with pytest.raises(DataError, match="NaN"):
        r.write("Z", T0, np.array([1.0, np.nan]))


@pytest.mark.parametrize("kw, message", [({"gap_fill": "spline"}, "allowed: zero, hold"), ({"max_lag": 2000}, "max_lag 2000")])
def test_bad_options(kw, message):
    with pytest.raises(ConfigError, match=message):
        ring(**kw)


def test_window_grid_and_hop():
    assert hop_samples(3001, 0.5) == 1500
    assert hop_samples(3072, 0.5, multiple=16) == 1536
    assert hop_samples(3072, 0.3, multiple=16) == 2144
    assert window_starts(10, 4, 3).tolist() == [0, 3, 6]
    with pytest.raises(ConfigError, match="overlap 1.0"):
        hop_samples(100, 1.0)


def test_normalise_demean_std_per_channel():
    from fieldpick.edge.card import Normalisation

    x = np.array([[[1.0, 3.0, 1.0, 3.0], [0.0, 0.0, 0.0, 0.0]]])
    y = normalise(x, Normalisation("demean", "std", True, 1e-10))
    assert y.dtype == np.float32
    assert np.allclose(y[0, 0], [-1, 1, -1, 1]) and np.allclose(y[0, 1], 0.0)
    assert x[0, 0, 0] == 1.0  # input unchanged
    assert to_layout(y, "NTC").shape == (1, 4, 2)


@pytest.mark.parametrize("compress", ["none", "asinh"])
def test_normalise_writes_the_time_major_layout_directly(rng, compress):
    from fieldpick.edge.card import Normalisation

    norm = Normalisation("demean", "std", True, 1e-10, compress=compress, compress_scale=0.2)
    x = rng.standard_normal((4, 3, 500)) * 300 + 7
    y = normalise(x, norm, "NTC")
    assert y.shape == (4, 500, 3) and y.dtype == np.float32 and y.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(y, to_layout(normalise(x, norm), "NTC"))
    np.testing.assert_array_equal(normalise(x[0], norm, "NTC"), normalise(x[0], norm).T)  # one window
    with pytest.raises(ConfigError, match="layout 'TNC'; allowed"):
        normalise(x, norm, "TNC")


@pytest.mark.parametrize("detrend", ["none", "demean", "linear"])
@pytest.mark.parametrize("scale", ["none", "std", "peak"])
@pytest.mark.parametrize("per_channel", [True, False])
def test_normalise_equals_a_float64_reference(rng, detrend, scale, per_channel):
    from fieldpick.edge.card import Normalisation

    x = rng.normal(size=(3, 3, 500)) * 50 + rng.normal(size=(3, 3, 1)) * 1e4 + np.linspace(0, 300, 500)
    z = x.copy()
    if detrend == "demean":
        z -= z.mean(-1, keepdims=True)
    elif detrend == "linear":
        t = np.arange(500) - 249.5
        z -= z.mean(-1, keepdims=True) + ((z * t).sum(-1, keepdims=True) / (t @ t)) * t
    axes = (-1,) if per_channel else (-2, -1)
    if scale == "std":
        z /= z.std(axis=axes, keepdims=True) + 1e-10
    elif scale == "peak":
        z /= np.abs(z).max(axis=axes, keepdims=True) + 1e-10
    got = normalise(x, Normalisation(detrend, scale, per_channel, 1e-10))
    assert got.dtype == np.float32
    assert np.allclose(got, z, rtol=1e-5, atol=1e-5 * np.abs(z).max())
