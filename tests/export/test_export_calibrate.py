"""Calibration and parity windows: normalisation, synthetic mix, NCEDC split by station."""

import numpy as np
import pytest

from fieldpick.edge.card import InputSpec, ModelCard, Normalisation, OutputSpec
from fieldpick.edge.errors import DataError
from fieldpick.export.calibrate import export_windows, ncedc_windows, normalise, synthetic_windows


@pytest.mark.parametrize(
    "spec, x, expected",
    [
        # demean then divide by the population std (1 here) per channel; a flat channel stays 0
        (Normalisation("demean", "std", True), [[0.0, 2.0, 0.0, 2.0], [5.0] * 4], [[-1.0, 1.0, -1.0, 1.0], [0.0] * 4]),
        # one std for all channels: sqrt(mean of [1,1,1,1, 0,0,0,0]) = sqrt(0.5)
        (Normalisation("demean", "std", False), [[0.0, 2.0, 0.0, 2.0], [5.0] * 4],
         [[-2 ** 0.5, 2 ** 0.5, -2 ** 0.5, 2 ** 0.5], [0.0] * 4]),
        # peak of |demeaned| is 2
        (Normalisation("demean", "peak", True), [[0.0, 4.0, 0.0, 4.0], [5.0] * 4], [[-1.0, 1.0, -1.0, 1.0], [0.0] * 4]),
        (Normalisation("none", "none", True), [[0.0, 2.0, 0.0, 2.0], [5.0] * 4], [[0.0, 2.0, 0.0, 2.0], [5.0] * 4]),
        # a straight line is removed exactly; [1, -1, -1, 1] has no trend and keeps its shape
        (Normalisation("linear", "none", True), [[4.0, 2.0, 2.0, 4.0], [1.0, 2.0, 3.0, 4.0]],
         [[1.0, -1.0, -1.0, 1.0], [0.0] * 4]),
    ],
)
def test_export_normalise_hand_values(spec, x, expected):
    x = np.array([x])
    before = x.copy()
    got = normalise(x, spec)
    np.testing.assert_allclose(got[0], expected, atol=1e-6)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(x, before)  # the caller's array is untouched


def test_export_normalise_dead_channel_stays_zero():
    x = np.zeros((1, 3, 10))
    x[0, 0] = np.arange(10)
    got = normalise(x, Normalisation())
    assert np.all(got[0, 1:] == 0.0) and np.isfinite(got).all()


def test_export_synthetic_windows_mix_is_seeded():
    x, p, s = synthetic_windows(10, 1000, 100.0, seed=3)
    assert x.shape == (10, 3, 1000) and x.dtype == np.float32
    assert np.isnan(p).sum() == 2  # 20 % noise windows carry no label
    ok = np.isfinite(p)
    assert np.all((p[ok] >= 0) & (p[ok] < 1000))
    x2, p2, _ = synthetic_windows(10, 1000, 100.0, seed=3)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(p, p2)
    x3, _, _ = synthetic_windows(10, 1000, 100.0, seed=4)
    assert not np.array_equal(x, x3)


def _card(samples=1000, channels=("Z", "N", "E")):
    return ModelCard("t", "t", InputSpec(100.0, samples, list(channels)), OutputSpec("probabilities", ["N", "P", "S"]),
                     {"P": 0.5, "S": 0.5})


def test_export_windows_are_normalised_per_card():
    x, p, s, src = export_windows(_card(), 12, seed=1)
    assert x.shape == (12, 3, 1000) and set(src) == {"synthetic"}
    live = x.std(axis=-1) > 0
    np.testing.assert_allclose(x.mean(axis=-1), 0.0, atol=1e-4)
    np.testing.assert_allclose(x.std(axis=-1)[live], 1.0, atol=1e-3)


def test_export_windows_refuse_other_channel_counts():
    with pytest.raises(DataError, match=r"3-component; card 't' has channels \['Z'\]"):
        export_windows(_card(channels=("Z",)), 8, seed=1)


def test_export_ncedc_halves_share_no_station(ncedc_dir):
    a = ncedc_windows(ncedc_dir, 3000, seed=0, half=0)
    b = ncedc_windows(ncedc_dir, 3000, seed=0, half=1)
    assert len(a[0]) + len(b[0]) == 154
    for x, p, _ in (a, b):
        assert x.shape[1:] == (3, 3000)
        assert np.isfinite(p).all()  # every crop keeps its P
        assert np.all((p >= 300) & (p <= 1500))  # P placed 10-50 % into the window
    z = np.load(ncedc_dir + "/phasenet_ncedc_90s.npz")
    names = np.array(["%s.%s" % (n, s) for n, s in zip(z["network"], z["station"])])
    stations = sorted(set(names))
    half0 = {st for k, st in enumerate(stations) if k % 2 == 0}
    assert len(a[0]) == sum(n in half0 for n in names)
    with pytest.raises(DataError, match="half 2; allowed: None, 0, 1"):
        ncedc_windows(ncedc_dir, 3000, seed=0, half=2)


def test_export_ncedc_absent_gives_none(tmp_path):
    assert ncedc_windows(str(tmp_path), 3000, seed=0) is None


def test_export_windows_carry_the_cards_asinh_compression():
    """Calibration and parity windows are normalised exactly as the station will: asinh included."""
    plain = _card()
    squashed = _card()
    squashed.input.normalisation = Normalisation(compress="asinh", compress_scale=0.05)
    x, _, _, _ = export_windows(plain, 6, seed=2)
    y, _, _, _ = export_windows(squashed, 6, seed=2)
    np.testing.assert_allclose(y, np.arcsinh(x.astype(np.float64) / 0.05), rtol=1e-5, atol=1e-5)


def test_export_windows_go_through_the_cards_input_highpass():
    """Calibration and parity windows are filtered as the station filters its stream."""
    import dataclasses

    from fieldpick.edge.card import InputSpec, ModelCard, OutputSpec
    from fieldpick.edge.stream.trigger import highpass_traces
    from fieldpick.edge.stream.windows import normalise as station_normalise

    card = ModelCard(name="t", architecture="lppn", input=InputSpec(100.0, 1024),
                     output=OutputSpec("stride_class_offset", ["N", "P", "S"], stride_samples=16),
                     thresholds={"P": 0.5, "S": 0.5})
    plain, _, _, _ = export_windows(card, 6, seed=3)
    hp_card = dataclasses.replace(card, input=dataclasses.replace(card.input, highpass_hz=1.0))
    filtered, _, _, _ = export_windows(hp_card, 6, seed=3)
    raw, _, _ = synthetic_windows(6, 1024, 100.0, 3)
    want = station_normalise(highpass_traces(raw, 1.0, 100.0), card.input.normalisation)
    assert np.allclose(filtered, want, atol=1e-5) and not np.allclose(filtered, plain, atol=1e-3)
