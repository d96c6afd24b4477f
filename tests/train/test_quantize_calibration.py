"""int8 calibration recipe: windows like the station's (many SNRs, noise, training stations), and the int8 file."""

import numpy as np
import pytest
import torch

from fieldpick.edge.errors import DataError
from fieldpick.train.data.datasets import WindowSet
from fieldpick.train.data.windows import RealData
from fieldpick.train.models import build
from fieldpick.train.quantize import calibration_windows

torch.set_num_threads(1)

T = 512


def real(n=6, length=1400, seed=0):
    rng = np.random.default_rng(seed)
    w = (0.01 * rng.standard_normal((n, 3, length))).astype(np.float32)
    p = rng.integers(400, 600, n).astype(float)
    for i in range(n):
        w[i, :, int(p[i]):] += 1.0
    st = np.array(["NC.S%d" % i for i in range(n)])
    noise = WindowSet((0.01 * rng.standard_normal((n, 3, 600))).astype(np.float32), np.full(n, np.nan),
                      np.full(n, np.nan), st)
    return RealData(WindowSet(w, p, p + 150, st), (p - 100).astype(np.int64), noise)


def card(window_samples=T):
    return build("lppn", {"window_samples": window_samples, "stride": 16, "width": 4, "context_blocks": 1}).card()


def test_synthetic_only_windows_are_normalised_and_tagged():
    x, src = calibration_windows(card(), None, n_synthetic=10, seed=3)
    assert x.shape == (10, 3, T) and x.dtype == np.float32
    assert set(src) == {"synthetic"}
    std = x.std(axis=-1)
    live = std > 0.5
    np.testing.assert_allclose(std[live], 1.0, atol=1e-3)  # per channel, as the card says
    np.testing.assert_allclose(x.mean(axis=-1), 0.0, atol=1e-4)
    assert live.mean() > 0.8  # a few dead channels (station troubles) are fine, not many


def test_training_stations_are_added_with_p_inside_the_window():
    data = real()
    x, src = calibration_windows(card(), data, n_synthetic=4, seed=0)
    assert list(np.unique(src, return_counts=True)[1]) == [6, 6, 4]  # ncedc-event, ncedc-noise, synthetic
    ev = x[src == "ncedc-event"]
    # the step at P: the crop holds both sides of it (P at 10-50 % of the window)
    first_half = ev[:, 0, : int(0.1 * T) - 1].mean(-1)
    second_half = ev[:, 0, int(0.5 * T) + 1:].mean(-1)
    assert (second_half > first_half + 0.5).all()


def test_same_seed_same_windows():
    a, _ = calibration_windows(card(), real(), n_synthetic=4, seed=7)
    b, _ = calibration_windows(card(), real(), n_synthetic=4, seed=7)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("percentile", [99.0, 99.9])
def test_clipping_bounds_the_calibration_range(percentile):
    x, _ = calibration_windows(card(), real(), n_synthetic=8, seed=1)
    c, _ = calibration_windows(card(), real(), n_synthetic=8, seed=1, clip_percentile=percentile)
    bound = np.percentile(np.abs(x), percentile)
    assert np.abs(c).max() == pytest.approx(bound, rel=1e-6)
    inside = np.abs(x) <= bound
    np.testing.assert_array_equal(c[inside], x[inside])  # only the extremes change


def test_bad_clip_percentile():
    with pytest.raises(DataError, match="clip_percentile 40; it must lie in \\(50, 100\\]"):
        calibration_windows(card(), None, n_synthetic=2, clip_percentile=40)


def test_fake_quant_rounds_the_input_and_relu_outputs_and_passes_gradients():
    from fieldpick.train.quantize import FakeQuant

    net = torch.nn.Sequential(torch.nn.Identity(), torch.nn.ReLU())
    calib = np.array([[[127.0, -3.0]]], dtype=np.float32)  # input scale 127 / 127 = 1
    fq = FakeQuant(net, calib)
    x = torch.tensor([[[0.4, 0.6, -1.4, 300.0, -200.0]]], requires_grad=True)
    y = net(x)
    # input: rounded to integers, saturating at 127 and -128 -> [0, 1, -1, 127, -128];
    # ReLU output: steps of 127 / 255 up to its max (127), so 1 becomes 2 steps = 254 / 255
    assert fq.scale_in == 1.0
    np.testing.assert_allclose(y.detach().numpy()[0, 0], [0.0, 254 / 255, 0.0, 127.0, 0.0], rtol=1e-6)
    assert fq.maxima == {"1": 127.0}
    y.sum().backward()
    assert x.grad.tolist() == [[[0.0, 1.0, 0.0, 1.0, 0.0]]]  # straight through, except where the ReLU is off
    fq.remove()
    np.testing.assert_allclose(net(x).detach().numpy()[0, 0], [0.4, 0.6, 0.0, 300.0, 0.0], rtol=1e-6)


def test_fake_quant_refuses_silent_calibration():
    from fieldpick.train.quantize import FakeQuant

    with pytest.raises(DataError, match="calibration windows are all zero"):
        FakeQuant(torch.nn.ReLU(), np.zeros((1, 3, 4), dtype=np.float32))


def test_short_training_traces_are_refused():
    with pytest.raises(DataError, match="training traces have 1400 samples; calibration needs 3072"):
        calibration_windows(card(3072), real(), n_synthetic=4)


@pytest.mark.slow
def test_full_int8_file_follows_the_float_model(tmp_path):
    pytest.importorskip("onnx2tf")
    from fieldpick.export.tflite import inspect_tflite
    from fieldpick.train.quantize import export_tflite, tflite_outputs

    torch.manual_seed(0)
    model = build("lppn", {"window_samples": T, "stride": 16, "width": 4, "context_blocks": 1}).eval()
    calib, _ = calibration_windows(model.card(), real(), n_synthetic=24, seed=0)
    paths = export_tflite(model, model.card(), calib, str(tmp_path))
    info = inspect_tflite(paths["int8"])
    assert info.full_integer
    probe, _ = calibration_windows(model.card(), real(seed=9), n_synthetic=6, seed=50)
    f32, i8 = tflite_outputs(paths["fp32"], probe), tflite_outputs(paths["int8"], probe)
    with torch.no_grad():
        ref = model(torch.from_numpy(probe)).numpy()
    assert f32.shape == i8.shape == ref.shape == (len(probe), 4, T // 16)
    np.testing.assert_allclose(f32, ref, atol=1e-4)
    assert np.abs(i8 - f32).max() < 0.05
