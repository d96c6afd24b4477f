"""Label builders: hand-checkable peaks, masks and stride targets."""

import math

import numpy as np
import pytest

from fieldpick.edge.errors import ConfigError, DataError
from fieldpick.train.data.labels import DetectionLabeller, ProbabilityLabeller, StrideLabeller


@pytest.mark.parametrize("shape, at_width", [("gaussian", math.exp(-0.5)), ("triangle", 0.0)])
def test_probability_peak_values(shape, at_width):
    lab = ProbabilityLabeller(shape, width_samples=10)
    y = lab(np.array([100.0]), np.array([300.0]), 500)
    assert y.shape == (1, 3, 500) and y.dtype == np.float32
    assert y[0, 1, 100] == pytest.approx(1.0)
    assert y[0, 1, 110] == pytest.approx(at_width, abs=1e-6)
    assert y[0, 1, 90] == pytest.approx(at_width, abs=1e-6)
    assert y[0, 2, 300] == pytest.approx(1.0)
    assert y[0, 2, 100] == pytest.approx(0.0, abs=1e-6)
    # noise is what P and S leave
    np.testing.assert_allclose(y[0, 0], np.clip(1 - y[0, 1] - y[0, 2], 0, 1), atol=1e-6)
    assert y[0, 0, 200] == pytest.approx(1.0)


def test_triangle_half_way():
    y = ProbabilityLabeller("triangle", 10)(np.array([50.0]), np.array([np.nan]), 100)
    assert y[0, 1, 55] == pytest.approx(0.5)


def test_missing_phase_is_all_zero_and_sums_to_one():
    y = ProbabilityLabeller()(np.array([np.nan, 20.0]), np.array([np.nan, np.nan]), 64)
    assert not y[0, 1:].any()
    assert (y[0, 0] == 1).all()
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-6)


def test_arrival_outside_window_leaves_its_tail():
    y = ProbabilityLabeller("gaussian", 10)(np.array([-10.0]), np.array([np.nan]), 50)
    assert y[0, 1, 0] == pytest.approx(math.exp(-0.5), abs=1e-6)


def test_detection_mask_covers_p_to_coda():
    lab = DetectionLabeller(coda_factor=1.4)
    y = lab(np.array([100.0]), np.array([200.0]), 500)
    mask = y[0, 0]
    # the coda ends at S + 1.4 * (S - P) = 340
    assert mask[99] == 0 and mask[100] == 1 and mask[340] == 1 and mask[341] == 0
    assert y[0, 1, 100] == pytest.approx(1) and y[0, 2, 200] == pytest.approx(1)


def test_detection_without_s_uses_default_length():
    y = DetectionLabeller(default_samples=50)(np.array([10.0, np.nan]), np.array([np.nan, np.nan]), 100)
    assert y[0, 0].sum() == 51 and y[1, 0].sum() == 0


@pytest.mark.parametrize("stride, p, k, offset", [(16, 37.0, 2, 5 / 16), (8, 8.0, 1, 0.0), (32, 95.5, 2, 31.5 / 32)])
def test_stride_class_and_offset(stride, p, k, offset):
    cls, off = StrideLabeller(stride)(np.array([p]), np.array([200.0]), 256)
    assert cls.shape == (1, 256 // stride) and cls.dtype == np.int64
    assert cls[0, k] == 1 and off[0, k] == pytest.approx(offset)
    ks = int(200 // stride)
    assert cls[0, ks] == 2 and off[0, ks] == pytest.approx((200 - ks * stride) / stride)
    assert (cls[0] > 0).sum() == 2
    assert 0 <= off.min() and off.max() < 1


def test_stride_p_wins_a_shared_stride_and_outside_arrivals_drop():
    cls, off = StrideLabeller(16)(np.array([33.0, -5.0]), np.array([40.0, 300.0]), 256)
    assert cls[0, 2] == 1 and off[0, 2] == pytest.approx(1 / 16)
    assert (cls[1] == 0).all()


def test_errors_name_the_bad_value():
    with pytest.raises(ConfigError, match="label shape 'box'; allowed: gaussian, triangle"):
        ProbabilityLabeller("box")
    with pytest.raises(ConfigError, match="width_samples is 0"):
        ProbabilityLabeller("gaussian", 0)
    with pytest.raises(ConfigError, match="stride_samples is 0"):
        StrideLabeller(0)
    with pytest.raises(DataError, match="window_samples 100 is not a multiple of stride_samples 16"):
        StrideLabeller(16)(np.array([1.0]), np.array([2.0]), 100)
    with pytest.raises(DataError, match="expected two"):
        ProbabilityLabeller()(np.zeros(3), np.zeros(2), 10)


def test_str_describes():
    assert "gaussian" in str(ProbabilityLabeller()) and "stride=16" in str(StrideLabeller(16))
    assert "1.4" in str(DetectionLabeller())
