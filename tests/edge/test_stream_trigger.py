"""Trigger gating: blockwise recursions, Butterworth biquads and recursive STA/LTA
against their slow twins, scipy and ObsPy, for any packet sizes."""

import numpy as np
import pytest

from fieldpick.edge.errors import ConfigError
from fieldpick.edge.stream.trigger import (
    RecursiveStaLta,
    SosFilter,
    Trigger,
    TriggerState,
    butter_bandpass_sos,
    recur,
    recur_reference,
    sosfilt_reference,
)

pytest.importorskip("obspy", reason="ObsPy is the reference for STA/LTA (workstation env)")
pytest.importorskip("scipy", reason="scipy is the reference for the biquads (workstation env)")
from obspy.signal.trigger import recursive_sta_lta, trigger_onset  # noqa: E402
from scipy import signal  # noqa: E402


def _split(x, sizes, rng):
    """Cut x into packets whose sizes cycle through ``sizes`` (0 means random 1-997)."""
    out, a, i = [], 0, 0
    while a < len(x):
        n = sizes[i % len(sizes)] or int(rng.integers(1, 998))
        out.append(x[a:a + n])
        a += n
        i += 1
    return out


@pytest.mark.parametrize("d", [0.0, 0.5, 0.98, 0.999, 0.9999, 0.95 * np.exp(0.3j), -0.7])
@pytest.mark.parametrize("n", [1, 2, 700, 5001])
def test_recur_matches_the_sample_loop(rng, d, n):
    u = rng.normal(size=n)
    got, last = recur(u, d, state=0.25, gain=1.5)
    want, want_last = recur_reference(1.5 * u, d, state=0.25)
    assert np.allclose(got, want, rtol=1e-10, atol=1e-12)
    assert abs(last - want_last) < 1e-10
    assert u.shape == (n,)  # input untouched


def test_recur_hand_checked():
    # y = 0.5 y[-1] + u, y[-1] = 2: 1 + 1 = 2, 0.5*2 + 0 = 1, 0.5 + 4 = 4.5
    y, last = recur(np.array([1.0, 0.0, 4.0]), 0.5, state=2.0)
    assert np.allclose(y, [2.0, 1.0, 4.5]) and last == 4.5


def test_recur_rejects_an_unstable_pole():
    with pytest.raises(ConfigError, match="must be < 1"):
        recur(np.ones(10), 1.01)


@pytest.mark.parametrize("band, fs, order", [((1.0, 20.0), 100.0, 2), ((2.0, 8.0), 50.0, 4), ((0.5, 45.0), 200.0, 3)])
def test_bandpass_equals_scipy_butter_for_any_packets(rng, band, fs, order):
    x = rng.normal(size=6000)
    ours = SosFilter(butter_bandpass_sos(band[0], band[1], fs, order))
    got = np.concatenate([ours.filter(p) for p in _split(x, [0], rng)])
    want = signal.sosfilt(signal.butter(order, band, "bandpass", fs=fs, output="sos"), x)
    assert np.allclose(got, want, rtol=1e-8, atol=1e-10 * np.abs(want).max())


def test_bandpass_gain_is_one_in_the_pass_band():
    sos = butter_bandpass_sos(1.0, 20.0, 100.0, 2)
    t = np.arange(20000) / 100.0
    y = SosFilter(sos).filter(np.sin(2 * np.pi * np.sqrt(1.0 * 20.0) * t))  # centre frequency
    assert abs(np.abs(y[10000:]).max() - 1.0) < 1e-3


def test_biquad_equals_the_direct_form_reference(rng):
    sos = butter_bandpass_sos(1.0, 10.0, 100.0, 2)
    x = rng.normal(size=800)
    assert np.allclose(SosFilter(sos).filter(x), sosfilt_reference(sos, x), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("low, high, fs", [(0.0, 5.0, 100.0), (5.0, 5.0, 100.0), (1.0, 50.0, 100.0), (1.0, 60.0, 100.0)])
def test_bad_band_names_the_corners(low, high, fs):
    with pytest.raises(ConfigError, match="need 0 < low < high"):
        butter_bandpass_sos(low, high, fs)


@pytest.mark.parametrize("sizes", [[1], [7], [100], [1000], [12000], [0], [3, 5000, 1, 200]])
def test_sta_lta_equals_obspy_for_any_packets(rng, sizes):
    x = rng.normal(size=12000)
    x[6000:6300] *= 25.0  # an event
    s = RecursiveStaLta(50, 1000)
    got = np.concatenate([s.update(p) for p in _split(x, sizes, rng)])
    want = recursive_sta_lta(x, 50, 1000)
    assert np.allclose(got, want, rtol=1e-9, atol=0)
    assert got[999] == 0.0 and got[1000] > 0.0  # ObsPy zeroes the first nlta samples


def test_sta_lta_after_reset_equals_obspy_on_the_new_segment(rng):
    x = rng.normal(size=5000)
    s = RecursiveStaLta(20, 400)
    s.update(rng.normal(size=777))
    s.reset()
    assert np.allclose(s.update(x), recursive_sta_lta(x, 20, 400), rtol=1e-9, atol=0)


@pytest.mark.parametrize("sizes", [[12000], [1] * 300 + [11700], [3, 5000, 1, 200, 6796]])
def test_growing_sta_lta_divides_by_the_mean_so_far_then_equals_obspy(rng, sizes):
    x = rng.normal(size=12000)
    x[500:800] *= 25.0  # an event 5 s into the record, inside the LTA's warm-up
    s = RecursiveStaLta(50, 1000, growing=True)
    got = np.concatenate([s.update(p) for p in _split(x, sizes, rng)])
    want = recursive_sta_lta(x, 50, 1000)
    assert np.allclose(got[1000:], want[1000:], rtol=1e-9, atol=0)  # ObsPy's from nlta on
    sq = x * x
    sq[0] = 0.0
    sta = np.zeros(len(x))
    for i in range(1, len(x)):  # ObsPy's STA recursion, by hand
        sta[i] = sta[i - 1] + (sq[i] - sta[i - 1]) / 50
    mean = np.cumsum(sq) / np.arange(1, len(x) + 1)
    hand = np.zeros(1000)
    hand[149:] = sta[149:1000] / mean[149:1000]  # from the 150th sample (3 * nsta) on
    assert np.allclose(got[:1000], hand, rtol=1e-9, atol=0)
    assert got[148] == 0.0 and got[520] > 5.0  # silent until the STA settles; the event stands out


def test_trigger_warmups_on_an_event_5_s_into_a_record(rng):
    """'blind' (ObsPy) misses an arrival inside the first lta_s; 'growing' triggers on it and not
    on a large DC offset; 'open' is active throughout the warm-up."""
    x = 3e5 + rng.normal(size=6000)
    x[500:900] += 20.0 * rng.normal(size=400)

    def spans(warmup):
        tr = Trigger(100.0, sta_s=0.5, lta_s=10.0, on=5.0, off=1.5, warmup=warmup)
        cf, active = tr.update(x)
        assert np.isfinite(cf).all()
        return np.flatnonzero(active)

    assert len(spans("blind")) == 0
    grown = spans("growing")
    assert len(grown) and 500 <= grown[0] <= 520 and grown[-1] < 1500
    assert spans("open")[:1000].tolist() == list(range(1000))
    flat = Trigger(100.0, warmup="growing")
    assert np.isfinite(flat.update(np.full(3000, 7.0))[0]).all()  # a constant: no 0/0
    with pytest.raises(ConfigError, match="warmup 'warm'; allowed: growing, blind, open"):
        Trigger(100.0, warmup="warm")


@pytest.mark.parametrize("nsta, nlta, message", [(0, 10, "nsta 0"), (10, 10, "shorter than nlta"), (5, 2.5, "nlta 2.5")])
def test_sta_lta_rejects_bad_lengths(nsta, nlta, message):
    with pytest.raises(ConfigError, match=message):
        RecursiveStaLta(nsta, nlta)


def test_trigger_state_hysteresis_hand_checked():
    ts = TriggerState(on=3.0, off=1.0)
    cf = np.array([0.5, 3.0, 2.0, 1.5, 0.9, 2.0, 3.5])
    # on at 3.0, stays on while >= 1.0, off at 0.9, stays off at 2.0, on at 3.5
    assert ts.update(cf[:3]).tolist() == [False, True, True]
    assert ts.update(cf[3:]).tolist() == [True, False, False, True]


def test_trigger_spans_match_obspy_trigger_onset(rng):
    x = rng.normal(size=20000)
    x[8000:8400] *= 20.0
    x[15000:15100] *= 30.0
    cf = recursive_sta_lta(x, 50, 1000)
    want = trigger_onset(cf, 3.5, 1.5)
    tr = Trigger(100.0, band_hz=None, sta_s=0.5, lta_s=10.0, on=3.5, off=1.5)
    active = np.concatenate([tr.update(p)[1] for p in _split(x, [0], rng)])
    edges = np.flatnonzero(np.diff(np.concatenate([[0], active.astype(int), [0]])))
    got = [[a, b - 1] for a, b in zip(edges[0::2], edges[1::2])]  # ObsPy gives inclusive off
    assert got == [list(map(int, w)) for w in want]
    assert len(got) == 2


def test_trigger_rejects_off_above_on():
    with pytest.raises(ConfigError, match="need 0 < off <= on"):
        TriggerState(on=1.0, off=2.0)


@pytest.mark.parametrize("sizes", [[1] * 70, [31, 1, 32, 33], [64, 0, 5], [3000, 7, 1000]])
def test_block_state_space_filter_across_block_edges(rng, sizes):
    """Packets shorter than, equal to and longer than one block (32 samples), and
    an empty one: the same output and the same final state as the sample-by-sample twin."""
    sos = butter_bandpass_sos(1.0, 20.0, 100.0, 4)
    x = rng.normal(size=sum(sizes))
    f = SosFilter(sos)
    cuts = np.cumsum([0] + sizes)
    got = np.concatenate([f.filter(x[a:b]) for a, b in zip(cuts[:-1], cuts[1:])])
    want = sosfilt_reference(sos, x)
    assert np.allclose(got, want, rtol=1e-10, atol=1e-12 * np.abs(want).max())
    # the state carries on: one more sample after the packets equals the reference's next one
    nxt = f.filter(np.array([1.0]))
    assert np.isclose(nxt[0], sosfilt_reference(sos, np.append(x, 1.0))[-1], rtol=1e-10, atol=1e-12)


def test_unstable_section_is_refused():
    with pytest.raises(ConfigError, match=r"biquad a1=-2.1 a2=1.1 is unstable"):
        SosFilter([[1.0, 0.0, -1.0, 1.0, -2.1, 1.1]])


@pytest.mark.parametrize("sizes", [[1] * 40, [15, 1, 16, 17], [0, 5, 3000, 7]])
def test_sta_lta_block_recursion_across_block_edges(rng, sizes):
    """Packets shorter than, equal to and longer than one 16-sample block: ObsPy's answer."""
    from obspy.signal.trigger import recursive_sta_lta

    x = rng.normal(size=sum(sizes)) * 100.0
    s = RecursiveStaLta(5, 20)
    cuts = np.cumsum([0] + sizes)
    got = np.concatenate([s.update(x[a:b]) for a, b in zip(cuts[:-1], cuts[1:])])
    assert np.allclose(got, recursive_sta_lta(x, 5, 20), rtol=1e-10, atol=0)


@pytest.mark.parametrize("order", [2, 4])
@pytest.mark.parametrize("corner", [0.5, 1.0, 5.0])
def test_highpass_equals_scipy_butter(order, corner):
    from fieldpick.edge.stream.trigger import butter_highpass_sos

    ours = butter_highpass_sos(corner, 100.0, order)
    ref = signal.butter(order, corner, "highpass", fs=100.0, output="sos")
    _, h1 = signal.sosfreqz(ours, worN=1024, fs=100.0)
    _, h2 = signal.sosfreqz(ref, worN=1024, fs=100.0)
    assert np.allclose(np.abs(h1), np.abs(h2), atol=1e-12)
    with pytest.raises(ConfigError, match="allowed: 2, 4, 6, 8"):
        butter_highpass_sos(corner, 100.0, 3)
    with pytest.raises(ConfigError, match="Nyquist"):
        butter_highpass_sos(60.0, 100.0)


def test_highpass_input_starts_from_the_first_sample_and_streams_like_one_pass(rng):
    """A large DC offset gives no step transient; packets of any size give the offline answer."""
    from fieldpick.edge.stream.trigger import HighpassInput, highpass_traces

    x = 20000.0 + rng.normal(0, 1, 3000)
    whole = highpass_traces(x[None], 1.0, 100.0)[0]
    ref = signal.sosfilt(signal.butter(2, 1.0, "highpass", fs=100.0, output="sos"), x - x[0])
    assert np.allclose(whole, ref, atol=1e-3) and np.abs(whole).max() < 6
    f = HighpassInput(1.0, 100.0)
    streamed = np.concatenate([f.filter(p) for p in _split(x, [0], rng)])
    assert np.allclose(streamed, ref, atol=1e-9)
    f.reset()
    assert np.allclose(f.filter(x[:500]), ref[:500], atol=1e-9)
