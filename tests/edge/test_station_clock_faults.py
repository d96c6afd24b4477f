"""Clock and rate faults on a station: bounded work whatever the jump, clear refusals.

Each case used to hang the pipeline (minutes to hours), ask numpy for terabytes,
or crash it; here each must finish in well under a second of work."""

import numpy as np
import pytest

from fieldpick.edge.config import StationConfig
from fieldpick.edge.errors import ConfigError, DataError
from fieldpick.edge.limits import year_start_ns
from fieldpick.edge.sources.base import Record
from fieldpick.edge.station import Station, StationSet
from fieldpick.edge.stream.resample import ratio
from fieldpick.lab import synthetic

from .test_station_pipeline import CountingRunner, card

T0 = 1_700_000_000 * 10 ** 9
YEAR_NS = 365 * 86400 * 10 ** 9


@pytest.fixture(scope="module")
def stream():
    data, _ = synthetic.continuous(1200, seed=11, event_rate_per_hour=40, start_ns=T0)
    return data.astype(np.float64)


def station(mode="gated", **kw):
    cfg = dict(mode=mode)
    cfg.update(kw)
    return Station(CountingRunner(card()), StationConfig.from_dict(cfg), station="XX.STA..HHZ")


def feed(st, data, t0, fs=100.0, n=1000):
    out = []
    for a in range(0, data.shape[1], n):
        for c, name in enumerate("ZNE"):
            out += st.feed(name, t0 + int(round(a * 1e9 / fs)), data[c, a:a + n], fs)
    return out


@pytest.mark.parametrize("jump_ns", [10 * YEAR_NS, YEAR_NS, -5 * YEAR_NS])
@pytest.mark.parametrize("mode", ["gated", "continuous"])
def test_a_jump_of_years_is_a_gap_with_bounded_work(stream, jump_ns, mode):
    alone = station(mode).feed_array(stream, T0 + 20 * YEAR_NS, 100.0)
    st = station(mode)
    first = feed(st, stream, T0 + 20 * YEAR_NS)
    second = feed(st, stream, T0 + 20 * YEAR_NS + jump_ns) + st.flush()
    assert st.ring.stats["time_jumps"] == 1
    assert st.ring.stats["gap_samples"] <= 3 * st.ring.max_lag  # not years of samples
    assert st.stats["windows_total"] < 4 * stream.shape[1] / st.hop_samples  # no window for every hop of the gap
    edge = T0 + 20 * YEAR_NS + (stream.shape[1] - st.window_samples - 100) * 10 ** 7  # the last window differs at a flush
    after = [(p.time_ns - jump_ns, p.phase) for p in second
             if T0 + 20 * YEAR_NS + jump_ns <= p.time_ns < edge + jump_ns]
    key = [(p.time_ns, p.phase) for p in alone if p.time_ns < edge]
    assert len(key) > 2 and set(after) <= set(key) and len(after) >= len(key) - 2
    span = stream.shape[1] * 10 ** 7
    for p in first + second:  # each pick carries the time of its own side of the jump
        t = p.time_ns - T0 - 20 * YEAR_NS
        assert 0 <= t < span or 0 <= t - jump_ns < span


def test_one_packet_dated_2099_among_good_ones_does_not_stop_the_station(stream):
    alone = station("continuous").feed_array(stream, T0, 100.0)
    st = station("continuous")
    out = []
    n = 1000
    for a in range(0, stream.shape[1], n):
        for c, name in enumerate("ZNE"):
            t = T0 + a * 10 ** 7
            if a == 10000 and name == "N":
                out += st.feed(name, year_start_ns(2099), stream[c, a:a + n], 100.0)
            out += st.feed(name, t, stream[c, a:a + n], 100.0)
    out += st.flush()
    assert st.ring.stats["time_jumps"] == 2  # there and back
    late = [p for p in out if p.time_ns > T0 + 120 * 10 ** 9]
    assert len(late) >= len([p for p in alone if p.time_ns > T0 + 130 * 10 ** 9]) - 2
    assert all(p.time_ns < year_start_ns(2099) for p in out)


@pytest.mark.parametrize("t", [year_start_ns(10000), year_start_ns(2101), -10 ** 9, year_start_ns(1969)])
def test_a_start_outside_the_date_window_is_refused(t):
    st = station()
    with pytest.raises(DataError, match="plausible dates"):
        st.feed("Z", t, np.zeros(100), 100.0)


@pytest.mark.parametrize("fs", [1e-4, 1e-9, float("inf"), 1e9])
def test_implausible_rates_are_refused_at_the_first_packet(fs):
    st = station()
    with pytest.raises(DataError, match="plausible range"):
        st.feed("Z", T0, np.zeros(100), fs)


def test_a_rate_that_needs_a_huge_filter_is_refused():
    with pytest.raises(ConfigError, match="outside 1/1000"):
        ratio(0.01, 100.0)
    st = station()
    with pytest.raises(ConfigError, match="cannot resample"):
        st.feed("Z", T0, np.zeros(100), 0.01)


def test_station_set_refuses_a_bad_record_and_goes_on(stream):
    ss = StationSet(CountingRunner(card()), StationConfig.from_dict({"mode": "continuous"}))
    bad = Record("XX", "STA", "", "HHZ", year_start_ns(10000), 100.0, np.zeros(100, np.int32))
    assert ss.feed_record(bad) == []
    bad_rate = Record("XX", "STA", "", "HHZ", T0, 1e-9, np.zeros(100, np.int32))
    assert ss.feed_record(bad_rate) == []
    assert ss.rejected == 2
    out = []
    for a in range(0, stream.shape[1], 1000):
        for c, name in enumerate("ZNE"):
            out += ss.feed_record(Record("XX", "STA", "", "HH" + name, T0 + a * 10 ** 7, 100.0, stream[c, a:a + 1000]))
    out += ss.flush()
    assert len(out) > 2


def test_a_jump_back_in_resampled_input_is_a_gap_not_data_dropped_forever(stream):
    x = np.repeat(stream[:, :30000], 2, axis=1)  # 300 s at 200 Hz: the station resamples to 100 Hz
    st = station("continuous")
    t0 = T0 + 20 * YEAR_NS
    out = feed(st, x[:, :30000], t0, fs=200.0)
    out += feed(st, x[:, 30000:], t0 - 5 * YEAR_NS, fs=200.0) + st.flush()
    # each channel's resampler writes the tail of its old segment after another channel jumped:
    # a few jumps back and forth, each a bounded gap
    assert 1 <= st.ring.stats["time_jumps"] <= 6
    later = [p for p in out if p.time_ns < t0]
    assert later, "the data after the jump back was dropped"
    assert all(0 <= p.time_ns - (t0 - 5 * YEAR_NS) < 150 * 10 ** 9 for p in later)
