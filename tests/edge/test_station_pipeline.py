"""The station pipeline end to end: streaming equals offline, gaps, resampling,
rate changes, channel names; with a deterministic runner in the model seam."""

import logging

import numpy as np
import pytest

from fieldpick.edge.card import InputSpec, ModelCard, OutputSpec
from fieldpick.edge.config import StationConfig
from fieldpick.edge.errors import ConfigError, DataError
from fieldpick.edge.station import EnergyRatioRunner, Station
from fieldpick.lab import synthetic

T0 = 1_700_000_000 * 10 ** 9


def card(T=3001):
    return ModelCard(name="er", architecture="energy-ratio", input=InputSpec(100.0, T),
                     output=OutputSpec("probabilities", ["N", "P", "S"]),
                     thresholds={"P": 0.5, "S": 0.5}).validate()


class CountingRunner(EnergyRatioRunner):
    """The energy-ratio runner, counting the windows it sees."""

    def __init__(self, c):
        super().__init__(c)
        self.windows = 0

    def run(self, batch):
        self.windows += len(batch)
        return super().run(batch)


@pytest.fixture(scope="module")
def stream():
    data, truth = synthetic.continuous(1200, seed=11, event_rate_per_hour=40, start_ns=T0)
    return data.astype(np.float64), truth


def station(mode="gated", **kw):
    cfg = dict(mode=mode)
    cfg.update(kw)
    return Station(CountingRunner(card()), StationConfig.from_dict(cfg), station="XX.STA..HHZ")


def feed_packets(st, data, sizes, seed=0, fs=100.0, names="ZNE"):
    rng = np.random.default_rng(seed)
    out, a, i, N = [], 0, 0, data.shape[1]
    while a < N:
        n = sizes[i % len(sizes)] or int(rng.integers(1, 1500))
        for c, name in enumerate(names):
            out += st.feed(name, T0 + int(round(a * 1e9 / fs)), data[c, a:a + n], fs)
        a += n
        i += 1
    return out + st.flush()


@pytest.mark.parametrize("mode", ["gated", "continuous"])
@pytest.mark.parametrize("sizes", [[100], [1499], [4096], [0], [7, 3001, 250]])
def test_streaming_equals_offline(stream, mode, sizes):
    data, _ = stream
    offline = station(mode).feed_array(data, T0, 100.0)
    got = feed_packets(station(mode), data, sizes)
    assert got == offline  # every field: time, probability, uncertainty, amplitude, SNR, polarity
    assert len(offline) > 5


@pytest.mark.parametrize("decimate", [1, 3])
def test_streaming_equals_offline_at_any_trigger_decimation(stream, decimate):
    data, _ = stream
    cfg = {"trigger": {"decimate": decimate, "band_hz": [1.0, 15.0]}}
    offline = station("gated", **cfg).feed_array(data, T0, 100.0)
    assert feed_packets(station("gated", **cfg), data, [0], seed=decimate) == offline


def test_trigger_band_must_fit_the_decimated_rate():
    with pytest.raises(ConfigError, match=r"trigger.band_hz high corner 30.0 Hz is not below the trigger's Nyquist 25.0 Hz"):
        station("gated", trigger={"band_hz": [1.0, 30.0], "decimate": 2})
    station("gated", trigger={"band_hz": [1.0, 30.0], "decimate": 1})


def test_gating_runs_fewer_windows_than_continuous(stream):
    data, _ = stream
    g, c = station("gated"), station("continuous")
    g.feed_array(data, T0, 100.0)
    c.feed_array(data, T0, 100.0)
    assert c.duty_cycle == 1.0 and c.runner.windows == c.stats["windows_run"] == c.stats["windows_total"]
    # 120000 samples, window 3001, hop 1500: starts 0..77 * 1500 (78 grid windows) and one tail window
    assert c.stats["windows_total"] == 79
    assert 0.0 < g.duty_cycle < 1.0 and g.runner.windows < c.runner.windows


@pytest.mark.parametrize("mode", ["continuous", "gated"])
def test_no_pick_is_made_across_a_gap(stream, mode):
    data, _ = stream
    gap = (40000, 46000)  # 400 s .. 460 s missing on every channel
    st = station(mode)
    out = []
    for a in range(0, data.shape[1], 500):
        if gap[0] <= a < gap[1]:
            continue
        for c, name in enumerate("ZNE"):
            out += st.feed(name, T0 + a * 10 ** 7, data[c, a:a + 500], 100.0)
    out += st.flush()
    assert st.ring.stats["gap_samples"] == 3 * (gap[1] - gap[0])
    assert st.stats["windows_gap"] > 0
    inside = [p for p in out if T0 + gap[0] * 10 ** 7 <= p.time_ns < T0 + gap[1] * 10 ** 7]
    assert inside == []
    if mode == "gated":
        return
    # the windows that could not run are those overlapping the gap: grid starts 255..450 s
    full = station("continuous")
    full.feed_array(data, T0, 100.0)
    assert st.stats["windows_run"] == full.stats["windows_run"] - st.stats["windows_gap"]


def _one_arrival(fs, t_arrival=40.0, duration=90.0, seed=5):
    """Noise plus a 5 Hz burst starting at t_arrival on Z (P) and at t+8 s on N and E (S)."""
    rng = np.random.default_rng(seed)
    n = int(duration * fs)
    t = np.arange(n) / fs
    x = rng.normal(0, 1.0, (3, n))
    for comp, onset, amp in ((0, t_arrival, 30.0), (1, t_arrival + 8, 40.0), (2, t_arrival + 8, 40.0)):
        on = t >= onset
        x[comp, on] += amp * np.sin(2 * np.pi * 5.0 * (t[on] - onset)) * np.exp(-(t[on] - onset) / 3.0)
    return x


def _picks_at(fs):
    picks = feed_packets(station("continuous"), _one_arrival(fs), [int(fs * 2.5)], fs=fs)
    return [q for q in picks if q.phase == "P"], [q for q in picks if q.phase == "S"]


@pytest.mark.parametrize("fs", [20.0, 40.0, 50.0, 200.0, 250.0])
def test_any_input_rate_picks_what_100_hz_picks(fs):
    (p100,), (s100,) = _picks_at(100.0)
    # the energy-ratio runner saturates ~0.4 s before the P onset and on the S onset
    assert abs(p100.time_ns - (T0 + 40 * 10 ** 9)) < 0.5e9 and abs(s100.time_ns - (T0 + 48 * 10 ** 9)) < 0.05e9
    p, s = _picks_at(fs)
    assert len(p) == 1 and len(s) == 1
    # resampled to 100 Hz, the same waveform (other noise): within two samples of either rate
    tol = 2e9 / min(fs, 100.0)
    assert abs(p[0].time_ns - p100.time_ns) <= tol
    assert abs(s[0].time_ns - s100.time_ns) <= tol
    assert p[0].snr_db > 20
    if fs >= 40.0:
        assert p[0].polarity == p100.polarity == "U"  # the burst starts upwards


def test_rate_change_is_detected_and_logged(caplog):
    a = _one_arrival(100.0, duration=60.0)
    b = _one_arrival(50.0, duration=60.0)
    st = station("continuous")
    with caplog.at_level(logging.WARNING):
        for c, name in enumerate("ZNE"):
            st.feed(name, T0, a[c], 100.0)
        for c, name in enumerate("ZNE"):
            st.feed(name, T0 + 60 * 10 ** 9, b[c], 50.0)
        picks = st.flush()
    assert st.stats["rate_changes"] == 3
    assert "sampling rate changed from 100 Hz to 50 Hz" in caplog.text
    assert st.ring.frontier == 12000 and st.ring.stats["gap_samples"] == 0
    assert isinstance(picks, list)


def test_channel_codes_and_aliases():
    st = station()
    assert [st._component(c) for c in ("HHZ", "BH1", "EH2", "z")] == ["Z", "N", "E", "Z"]
    with pytest.raises(DataError, match=r"channel 'HHX' is not one of the model's components \['Z', 'N', 'E'\]"):
        st.feed("HHX", T0, np.zeros(10), 100.0)


@pytest.mark.parametrize("kw, message", [
    (dict(start_ns=1.5e18), "must be an int"),
    (dict(samples=np.array([1.0, np.nan])), "NaN"),
    (dict(fs=0.0), "must be a number > 0"),
    (dict(samples=np.zeros((2, 2))), "expected 1-D"),
])
def test_bad_packets_are_refused_and_keep_accepted_data(kw, message):
    st = station()
    st.feed("Z", T0, np.arange(100.0), 100.0)
    args = dict(channel="Z", start_ns=T0 + 10 ** 9, samples=np.zeros(10), fs=100.0)
    args.update(kw)
    with pytest.raises(DataError, match=message):
        st.feed(**args)
    assert st.ring.ends[0] == 100 and st.ring.data[0, :100].tolist() == list(np.arange(100.0))


def test_feeding_after_flush_is_an_error():
    st = station()
    st.flush()
    with pytest.raises(DataError, match="flushed"):
        st.feed("Z", T0, np.zeros(10), 100.0)


def test_a_vertical_only_model_ignores_the_horizontals(caplog):
    from fieldpick.edge.sources.base import Record
    from fieldpick.edge.station import StationSet

    z_card = ModelCard(name="z", architecture="energy-ratio", input=InputSpec(100.0, 3001, channels=["Z"]),
                       output=OutputSpec("probabilities", ["N", "P", "S"]),
                       thresholds={"P": 0.5, "S": 0.5}).validate()
    x = _one_arrival(100.0)
    ss = StationSet(EnergyRatioRunner(z_card), StationConfig.from_dict({"mode": "continuous"}))
    picks = []
    with caplog.at_level(logging.INFO):
        for a in range(0, x.shape[1], 250):
            for c, comp in enumerate("ZNE"):
                picks += ss.feed_record(Record("XX", "V", "", "HH" + comp, T0 + a * 10 ** 7, 100.0, x[c, a:a + 250]))
        picks += ss.flush()
    assert "channel HHN is not a component of the model ['Z']; ignored" in caplog.text
    p = [q for q in picks if q.phase == "P"]
    assert len(p) == 1 and p[0].station == "XX.V..HHZ" and abs(p[0].time_ns - (T0 + 40 * 10 ** 9)) < 0.5e9


@pytest.mark.parametrize("sizes", [[100], [0], [7, 3001, 250]])
def test_streaming_equals_offline_with_grid_windows(stream, sizes):
    data, _ = stream
    cfg = {"trigger": {"windows": "grid"}}
    offline = station("gated", **cfg).feed_array(data, T0, 100.0)
    assert feed_packets(station("gated", **cfg), data, sizes) == offline
    assert len(offline) > 5


def _spy(st):
    """Record the triggered spans and the starts of the windows the station runs."""
    spans, runs = [], []
    plan, run = st._plan, st._run_pending

    def spy_plan(T, final):
        spans.extend((on, off) for on, off in st.gate.spans if off is not None and (on, off) not in spans)
        plan(T, final)

    def spy_run():
        runs.extend(st._pending)
        run()

    st._plan, st._run_pending = spy_plan, spy_run
    return spans, runs


def test_fitted_windows_cover_every_triggered_span_with_the_onset_inside(stream):
    data, _ = stream
    st = station("gated")
    spans, runs = _spy(st)
    st.feed_array(data, T0, 100.0)
    N, W, pre, post = data.shape[1], st.window_samples, st.pre_samples, st.post_samples
    assert len(spans) > 5 and runs == sorted(set(runs)) and all(s % st.stride_samples == 0 for s in runs)
    covered = np.zeros(N, bool)
    for s in runs:
        covered[s:s + W] = True
    prev_end = -10 ** 9
    for on, off in sorted(spans):
        assert covered[max(0, on - pre):min(N, off + post)].all(), (on, off)
        if on - pre >= prev_end and on >= pre:  # a group's first onset (later ones may sit anywhere)
            # at least pre into every window that holds it (never in a window's first seconds)
            assert all(on - s >= pre for s in runs if s <= on < s + W), (on, off)
        prev_end = off + post
    assert st.stats["windows_run"] == len(runs)


def test_fitted_windows_run_fewer_windows_than_the_grid_and_find_the_triggered_arrivals(stream):
    data, truth = stream
    fit, grid = station("gated"), station("gated", trigger={"windows": "grid"})
    spans, _ = _spy(fit)
    pf, pg = fit.feed_array(data, T0, 100.0), grid.feed_array(data, T0, 100.0)
    assert fit.stats["windows_total"] == grid.stats["windows_total"] == 79
    assert 0 < fit.stats["windows_run"] < grid.stats["windows_run"]
    # the P arrivals the trigger caught (a span turns on within 1 s of it); the grid also
    # finds some arrivals the trigger missed, by luck of a neighbour's window
    caught = [int(t["time_ns"]) for t in truth if t["phase"] == "P"
              and any(abs(T0 + on * 10 ** 7 - int(t["time_ns"])) < 1e9 for on, _ in spans)]

    def found(picks, times, phase="P"):
        return sum(any(abs(p.time_ns - t) < 0.5e9 for p in picks if p.phase == phase) for t in times)

    # the arrivals the runner can pick at all: those it finds when every window runs
    pc = station("continuous").feed_array(data, T0, 100.0)
    reachable = [t for t in caught if found(pc, [t])]
    assert len(caught) > 5 and len(reachable) >= len(caught) - 1
    assert found(pf, reachable) == len(reachable) and found(pf, caught) >= found(pg, caught)
    s_times = [int(t["time_ns"]) for t in truth if t["phase"] == "S"]
    assert found(pf, s_times, "S") >= found(pg, s_times, "S") - 1


@pytest.mark.parametrize("sizes", [[0], [500]])
def test_a_fitted_window_starting_in_a_gap_moves_past_it(sizes):
    """An onset 11 s after a gap: the trigger restarts at the gap's end, the fitted window
    centred on the span would start inside the gap; it starts after the gap instead."""
    x = _one_arrival(100.0, t_arrival=71.0, duration=140.0, seed=3)
    gap = (3000, 6000)  # 30-60 s missing on every channel
    x[:, gap[0]:gap[1]] = np.nan

    def fed(st):
        rng = np.random.default_rng(1)
        out, a = [], 0
        while a < x.shape[1]:
            n = sizes[0] or int(rng.integers(50, 2000))
            for c, name in enumerate("ZNE"):
                part = x[c, a:a + n]
                keep = ~np.isnan(part)
                if keep.any():
                    i0 = int(np.argmax(keep))
                    seg = part[i0:]
                    seg = seg[: int(np.argmin(~np.isnan(seg))) or len(seg)] if np.isnan(seg).any() else seg
                    out += st.feed(name, T0 + (a + i0) * 10 ** 7, seg, 100.0)
            a += n
        return out + st.flush()

    st = station("gated")
    spans, runs = _spy(st)
    picks = fed(st)
    assert st.ring.stats["gap_samples"] == 3 * (gap[1] - gap[0])
    assert runs and all(s >= gap[1] or s + st.window_samples <= gap[0] for s in runs)
    p = [q for q in picks if q.phase == "P"]
    assert len(p) == 1 and abs(p[0].time_ns - (T0 + 71.0 * 10 ** 9)) < 0.5e9


@pytest.mark.parametrize("mode", ["gated", "continuous"])
@pytest.mark.parametrize("gap_h", [0.5, 23.0])
def test_a_gap_of_hours_between_packets_picks_the_data_after_it(stream, mode, gap_h):
    # a missing day file, or a link down for hours: the next packet lies far beyond the
    # buffer; the gap is declared and stepped over, and the data after it picks as it
    # would alone (it raised "cannot make room" / a broadcast error in release before)
    data, _ = stream
    part = data
    alone = station(mode).feed_array(part, T0, 100.0)
    st = station(mode)
    first = st.feed_array(part, T0, 100.0, flush=False)
    shift = int(round((part.shape[1] / 100.0 + gap_h * 3600.0) * 1e9))
    second = st.feed_array(part, T0 + shift, 100.0)
    assert st.ring.stats["gap_samples"] == 3 * int(round(gap_h * 3600.0 * 100.0))
    before = [p for p in first + second if p.time_ns < T0 + shift]
    after = [p for p in first + second if p.time_ns >= T0 + shift]
    assert len(alone) > 4
    key = [(p.time_ns, p.phase) for p in alone]
    assert [(p.time_ns - shift, p.phase) for p in after] == key
    # before the gap: the same picks, but for those in the last window's length, which only
    # the end of a stream (flush) covers with a window ending at its last sample
    end_ns = T0 + int(round(part.shape[1] / 100.0 * 1e9))
    edge_ns = end_ns - int(round(st.window_samples / 100.0 * 1e9))
    assert [(p.time_ns, p.phase) for p in before if p.time_ns < edge_ns] == [k for k in key if k[0] < edge_ns]
    assert {(p.time_ns, p.phase) for p in before} <= set(key)


@pytest.mark.parametrize("kw, expected", [
    ({"mode": "gated"}, "avg"),
    ({"mode": "gated", "trigger": {"windows": "grid"}}, "taper"),
    ({"mode": "continuous"}, "taper"),
    ({"mode": "continuous", "stacking": "max"}, "max"),
])
def test_stacking_auto_tapers_grid_windows_and_averages_fitted_ones(kw, expected):
    st = station(**kw)
    assert st.stacking == expected and st.stacker.method == expected


def _one_event(seconds, p_s, seed=5):
    """(3, N) noise with one synthetic event whose P comes ``p_s`` seconds in (S 3 s later)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 100)
    x = rng.normal(0, 1.0, (3, n))
    t = np.arange(n) / 100.0
    for onset, rows, amp in ((p_s, [0], 40.0), (p_s + 3.0, [1, 2], 80.0)):
        env = np.where(t >= onset, np.exp(-(t - onset) / 1.5), 0.0)
        for r in rows:
            x[r] += amp * env * np.sin(2 * np.pi * 6.0 * (t - onset) + r)
    return x


@pytest.mark.parametrize("warmup, found", [(None, False), ("blind", False), ("growing", True), ("open", True)])
def test_gated_picks_an_arrival_in_the_first_lta_seconds(warmup, found):
    """A 60 s record whose P comes 5 s in, while the LTA is filling: ObsPy's STA/LTA (the default)
    is blind there; 'growing' divides by the mean so far and opens on the onset."""
    x = _one_event(60.0, 5.0)
    st = station("gated", trigger={} if warmup is None else {"warmup": warmup})
    picks = st.feed_array(x, T0, 100.0)
    near = [p for p in picks if p.phase == "P" and abs(p.time_ns - (T0 + 5 * 10**9)) < 0.5e9]
    assert bool(near) is found
    cont = Station(CountingRunner(card()), StationConfig.from_dict({"mode": "continuous"})).feed_array(x, T0, 100.0)
    assert any(p.phase == "P" and abs(p.time_ns - (T0 + 5 * 10**9)) < 0.5e9 for p in cont)


@pytest.mark.parametrize("mode", ["gated", "continuous"])
def test_a_record_shorter_than_the_window_is_padded_and_picked(mode, caplog):
    """20 s of data against a 30.01 s window: one padded window runs, the P and S are picked,
    nothing is picked past the data, and a warning says so."""
    x = _one_event(20.0, 6.0)
    runner = CountingRunner(card())
    st = Station(runner, StationConfig.from_dict({"mode": mode}), station="XX.STA..HHZ")
    with caplog.at_level(logging.WARNING, logger="fieldpick"):
        picks = st.feed_array(x, T0, 100.0)
    assert runner.windows == 1 and st.stats["windows_padded"] == 1
    assert "shorter than the model window" in caplog.text
    times = {p.phase: (p.time_ns - T0) / 1e9 for p in picks}
    assert abs(times["P"] - 6.0) < 0.5 and abs(times["S"] - 9.0) < 0.5
    assert all(p.time_ns < T0 + 20 * 10**9 for p in picks)


def test_a_record_under_an_eighth_of_a_window_is_left_alone():
    x = _one_event(3.0, 1.0)
    runner = CountingRunner(card())
    st = Station(runner, StationConfig.from_dict({"mode": "continuous"}))
    assert st.feed_array(x, T0, 100.0) == [] and runner.windows == 0


class Recording(EnergyRatioRunner):
    """The energy-ratio runner, keeping every normalised window it is given."""

    def __init__(self, c):
        super().__init__(c)
        self.seen = []

    def run(self, batch):
        self.seen.append(np.array(batch))
        return super().run(batch)


def test_card_highpass_filters_the_stream_as_training_does(stream):
    """A card with input.highpass_hz: the station filters each channel causally from its first
    sample; its windows equal those of an unfiltered station fed the offline-filtered stream,
    for any packet sizes, and the filter starts afresh after a gap."""
    from fieldpick.edge.card import InputSpec
    from fieldpick.edge.stream.trigger import highpass_traces

    data, _ = stream
    x = data[:, :24000] + 5000.0  # a DC offset, as raw counts have
    hp = card()
    hp.input = InputSpec(100.0, 3001, highpass_hz=1.0)
    a, b, c = Recording(hp), Recording(card()), Recording(hp)
    cfg = StationConfig.from_dict({"mode": "continuous"})
    picks_a = Station(a, cfg).feed_array(x, T0, 100.0)
    picks_b = Station(b, cfg).feed_array(highpass_traces(x, 1.0, 100.0).astype(np.float64), T0, 100.0)
    assert [(p.phase, p.time_ns) for p in picks_a] == [(p.phase, p.time_ns) for p in picks_b]
    assert np.allclose(np.concatenate(a.seen), np.concatenate(b.seen), atol=1e-4)
    picks_c = feed_packets(Station(c, cfg), x, [0], seed=4)
    assert [(p.phase, p.time_ns) for p in picks_c] == [(p.phase, p.time_ns) for p in picks_a]
    # a gap: the second piece is filtered from its own first sample
    gapped = Recording(hp)
    st = Station(gapped, cfg)
    st.feed_array(x[:, :12000], T0, 100.0, flush=False)
    st.feed_array(x[:, 14000:], T0 + 140 * 10**9, 100.0)
    ref = Recording(card())
    st2 = Station(ref, cfg)
    st2.feed_array(highpass_traces(x[:, :12000], 1.0, 100.0).astype(np.float64), T0, 100.0, flush=False)
    st2.feed_array(highpass_traces(x[:, 14000:], 1.0, 100.0).astype(np.float64), T0 + 140 * 10**9, 100.0)
    assert np.allclose(np.concatenate(gapped.seen), np.concatenate(ref.seen), atol=1e-4)


class FirstWindowBlindRunner(CountingRunner):
    """The energy-ratio runner, except that its first window sees nothing (all noise): a
    network looking at an onset near its window's end gives it little probability."""

    def run(self, batch):
        out = super().run(batch)
        if self.windows == len(batch):  # the first call
            out = np.array(out)
            out[0] = 0.0
            out[0, ..., 0] = 1.0  # channel N (NTC and NCT alike: the card's label 0 is noise)
        return out


def test_an_early_window_does_not_dilute_a_later_onset():
    """A burst 3 s into a record opens a window centred on it that reaches the P at 25 s at its
    edge; that window counts only over its own trigger's extent, so the mean of fitted windows
    does not halve the P its own window picks."""
    x = _one_event(60.0, 25.0)
    t = np.arange(x.shape[1]) / 100.0
    x[0] += np.where((t >= 3.0) & (t < 3.3), 60.0 * np.sin(2 * np.pi * 8.0 * t), 0.0)
    runner = FirstWindowBlindRunner(card())
    st = Station(runner, StationConfig.from_dict({"mode": "gated", "batch": 1, "trigger": {"warmup": "growing"}}))
    picks = st.feed_array(x, T0, 100.0)
    assert runner.windows == 2
    p = [p for p in picks if p.phase == "P" and abs(p.time_ns - (T0 + 25 * 10**9)) < 0.5e9]
    assert len(p) == 1 and p[0].probability > 0.9  # the plain mean of both windows gave 0.5
