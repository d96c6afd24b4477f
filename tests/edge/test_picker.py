"""The picker: output kinds, stacking, peaks, sub-sample refinement, de-duplication,
uncertainty, amplitude, SNR and polarity, with answers checkable by hand."""

import numpy as np
import pytest

from fieldpick.edge.card import InputSpec, ModelCard, OutputSpec, Quantisation, TensorSpec
from fieldpick.edge.errors import ConfigError, DataError
from fieldpick.edge.picker import PeakFinder, Stacker, extract_picks, measure, output_traces

T0 = 1_700_000_000 * 10 ** 9


def card(kind="probabilities", labels=("N", "P", "S"), T=400, stride=1, layout="NTC", quant=None):
    return ModelCard(
        name="t", architecture="t", input=InputSpec(100.0, T),
        output=OutputSpec(kind, list(labels), stride_samples=stride, layout=layout),
        thresholds={"P": 0.3, "S": 0.3}, quantisation=quant or Quantisation(),
    ).validate()


def bump(T, centre, height, sigma=10.0):
    t = np.arange(T)
    return height * np.exp(-0.5 * ((t - centre) / sigma) ** 2)


def traces(T, p=(), s=()):
    out = np.zeros((1, T, 3), np.float32)
    for c, h in p:
        out[0, :, 1] += bump(T, c, h)
    for c, h in s:
        out[0, :, 2] += bump(T, c, h)
    out[0, :, 0] = 1.0 - out[0, :, 1:].sum(-1)
    return out


@pytest.mark.parametrize("centre", [100.0, 100.3, 250.5, 251.8])
def test_peak_time_is_refined_below_one_sample(centre):
    picks = extract_picks(traces(400, p=[(centre, 0.9)]), card(), start_ns=T0)
    assert [p.phase for p in picks] == ["P"]
    # 1 sample = 10 ms; a parabola through a sampled Gaussian is within 0.05 sample
    assert abs(picks[0].time_ns - (T0 + centre * 1e7)) < 0.05 * 1e7
    assert picks[0].probability == pytest.approx(0.9, abs=0.01)
    # uncertainty from the width: sigma 10 samples = 0.1 s
    assert picks[0].uncertainty_s == pytest.approx(0.1, rel=0.02)


def test_threshold_and_phases():
    picks = extract_picks(traces(400, p=[(100, 0.25)], s=[(300, 0.6)]), card(), start_ns=T0)
    assert [(p.phase, round((p.time_ns - T0) / 1e7)) for p in picks] == [("S", 300)]
    picks = extract_picks(traces(400, p=[(100, 0.25)]), card(), start_ns=T0, thresholds={"P": 0.2})
    assert [p.phase for p in picks] == ["P"]


def test_close_peaks_of_one_phase_merge_and_the_larger_wins():
    out = traces(400, p=[(100, 0.5), (160, 0.8), (300, 0.7)])  # 0.6 s apart, then 1.4 s
    picks = extract_picks(out, card(), start_ns=T0, min_separation_s=1.0)
    assert [round((p.time_ns - T0) / 1e7) for p in picks] == [160, 300]
    picks = extract_picks(out, card(), start_ns=T0, min_separation_s=0.2)
    assert len(picks) == 3


def test_nct_layout_and_int8_output():
    out = traces(400, p=[(120, 0.9)])
    nct = np.transpose(out, (0, 2, 1))
    assert extract_picks(nct, card(layout="NCT"), T0) == extract_picks(out, card(), T0)
    q = Quantisation("int8", [TensorSpec("y", "output", [1, 400, 3], "int8", 1.0 / 256, -128)])
    q8 = np.clip(np.round(out * 256) - 128, -128, 127).astype(np.int8)
    picks = extract_picks(q8, card(quant=q), T0)
    assert len(picks) == 1 and abs(picks[0].time_ns - (T0 + 120 * 10 ** 7)) <= 10 ** 6


def test_stride_class_offset_hand_checked():
    # LPPN: stride 16, cell 10 holds P with offset 0.25 -> (10 + 0.25) * 16 = 164 samples
    L = 25
    out = np.zeros((1, 4, L), np.float32)
    out[0, 0] = 1.0
    out[0, 1, 10], out[0, 0, 10], out[0, 3, 10] = 0.8, 0.2, 0.25
    out[0, 2, 20], out[0, 0, 20], out[0, 3, 20] = 0.7, 0.3, 0.5  # S at (20.5) * 16 = 328
    picks = extract_picks(out, card("stride_class_offset", T=400, stride=16, layout="NCT"), T0)
    assert [(p.phase, p.time_ns - T0) for p in picks] == [("P", 1_640_000_000), ("S", 3_280_000_000)]
    # one cell wide: FWHM is one stride, 16 samples; sigma = FWHM / 2.3548 = 6.79 samples
    assert picks[0].uncertainty_s == pytest.approx(16 / 2.3548 / 100.0, rel=1e-4)


def test_bad_outputs_are_named():
    with pytest.raises(DataError, match="the card says"):
        extract_picks(np.zeros((1, 399, 3), np.float32), card(), T0)
    with pytest.raises(DataError, match="one window"):
        extract_picks(np.zeros((2, 400, 3), np.float32), card(), T0)
    with pytest.raises(ConfigError, match="window_class"):
        output_traces(np.zeros((1, 1, 3)), card("window_class", stride=400))


@pytest.mark.parametrize("method, expected", [("avg", [1.0, 2.0, 3.0, 3.0]), ("max", [1.0, 3.0, 5.0, 3.0])])
def test_stacker_hand_checked(method, expected):
    st = Stacker(1, 16, method)
    st.add(0, np.array([[1.0], [1.0], [1.0]]))
    st.add(1, np.array([[3.0], [5.0], [3.0]]))
    start, probs, _ = st.finalize(4)
    assert start == 0 and probs[:, 0].tolist() == expected
    assert st.finalize(6)[1][:, 0].tolist() == [0.0, 0.0]  # nothing covered these
    with pytest.raises(DataError, match="older than"):
        st.add(2, np.ones((2, 1)))


def test_stacker_taper_is_a_hann_weighted_mean_by_position_in_the_window():
    n = 8
    w = np.maximum(np.hanning(n + 2)[1:-1], 1e-3)
    st = Stacker(1, 32, "taper", window_cells=n)
    a, b = np.full((n, 1), 0.2), np.full((n, 1), 0.8)
    st.add(0, a)
    st.add(4, b)                      # half overlap: cells 4..7 are in both
    start, probs, _ = st.finalize(12)
    got = probs[:, 0]
    assert start == 0
    np.testing.assert_allclose(got[:4], 0.2)      # one window only: its value, whatever its weight
    np.testing.assert_allclose(got[8:], 0.8)
    expect = (0.2 * w[4:] + 0.8 * w[:4]) / (w[4:] + w[:4])
    np.testing.assert_allclose(got[4:8], expect)
    assert got[4] < 0.5 < got[7]                  # each cell leans to the window it is central in


def test_stacker_taper_weights_a_window_added_from_its_middle_by_its_own_cells():
    n = 8
    w = np.maximum(np.hanning(n + 2)[1:-1], 1e-3)
    st = Stacker(1, 32, "taper", window_cells=n)
    st.add(0, np.full((n, 1), 0.2))
    st.add(2, np.full((6, 1), 0.8), first=2)     # the same cells as a window at 0, from its 3rd cell
    _, probs, _ = st.finalize(8)
    np.testing.assert_allclose(probs[:2, 0], 0.2)
    np.testing.assert_allclose(probs[2:, 0], (0.2 * w[2:] + 0.8 * w[2:]) / (2 * w[2:]))
    with pytest.raises(DataError, match="outside a window of 8 cells"):
        st.add(8, np.ones((4, 1)), first=6)
    with pytest.raises(ConfigError, match="needs window_cells"):
        Stacker(1, 8, "taper")


def test_stacker_averages_offsets_by_probability():
    st = Stacker(2, 8, "avg")
    st.add(0, np.array([[0.2, 0.0]]), np.array([0.1]))
    st.add(0, np.array([[0.6, 0.0]]), np.array([0.5]))
    _, probs, offs = st.finalize(1)
    assert probs[0, 0] == pytest.approx(0.4) and offs[0, 0] == pytest.approx((0.02 + 0.3) / 0.8)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_peak_finder_in_pieces_equals_one_pass(seed):
    rng = np.random.default_rng(seed)
    T = 20000
    v = np.zeros(T)
    for c in rng.uniform(0, T, 40):
        v += bump(T, c, rng.uniform(0.2, 0.95), rng.uniform(3, 30))
    v = np.clip(v, 0, 1)
    one = PeakFinder(0.3, 1, 100).process(0, v, final=True)
    pf, got, a = PeakFinder(0.3, 1, 100), [], 0
    while a < T:
        n = int(rng.integers(1, 500))
        got += pf.process(a, v[a:a + n], final=a + n >= T)
        a += n
    assert got == one and len(one) > 10


def test_peak_finder_wants_consecutive_cells():
    pf = PeakFinder(0.5)
    pf.process(0, np.zeros(10))
    with pytest.raises(DataError, match="expected cell 10, got 12"):
        pf.process(12, np.zeros(3))


@pytest.mark.parametrize("sign, polarity", [(1.0, "U"), (-1.0, "D")])
def test_measure_polarity_amplitude_snr(rng, sign, polarity):
    fs = 100.0
    z = rng.normal(0.0, 1.0, 1000) + 50.0                # DC offset 50, noise std 1
    z[500:] += sign * 20.0 * np.sin(np.pi * np.arange(500) / 100.0)  # first motion at sample 500
    wave = np.stack([z, rng.normal(size=1000), rng.normal(size=1000)])
    amp, snr, pol = measure(wave, None, ["Z", "N", "E"], 500.0, fs, "P")
    assert pol == polarity
    assert amp == pytest.approx(20.0, abs=4.0)
    # mean square of a 20-amplitude sine (200) + noise (1) over noise (1): about 23 dB
    assert snr == pytest.approx(10 * np.log10(201.0), abs=1.5)


def test_measure_no_clear_polarity_on_noise_and_none_for_s(rng):
    wave = rng.normal(size=(3, 1000))
    assert measure(wave, None, ["Z", "N", "E"], 500.0, 100.0, "P")[2] == "?"
    wave[1, 500:] += 30.0
    assert measure(wave, None, ["Z", "N", "E"], 500.0, 100.0, "S")[2] == "?"


def test_stacker_finalizes_far_beyond_its_buffer_with_zeros():
    st = Stacker(1, 4, "avg")
    st.add(0, np.ones((2, 1)))
    start, probs, _ = st.finalize(10)
    assert start == 0 and probs[:, 0].tolist() == [1.0, 1.0] + [0.0] * 8
    st.add(10, np.full((4, 1), 0.5))
    assert st.finalize(14)[1][:, 0].tolist() == [0.5] * 4


@pytest.mark.parametrize("method", ["avg", "taper"])
def test_stacker_weight_lets_another_window_win_and_keeps_a_lone_cell(method):
    st = Stacker(1, 64, method, window_cells=8)
    st.add(0, np.full((8, 1), 0.2), weight=[1, 1, 1, 1, 1e-3, 1e-3, 1e-3, 1e-3])
    st.add(4, np.full((8, 1), 0.9))
    _, probs, _ = st.finalize(12)
    assert np.allclose(probs[:4, 0], 0.2)  # only the first window covers these
    assert np.all(probs[4:8, 0] > 0.89)  # its low-weight cells yield to the second window
    assert np.allclose(probs[8:, 0], 0.9)
    lone = Stacker(1, 16, method, window_cells=8)
    lone.add(0, np.full((8, 1), 0.7), weight=np.full(8, 1e-3))
    assert np.allclose(lone.finalize(8)[1][:, 0], 0.7)  # a cell only it covers keeps its value
