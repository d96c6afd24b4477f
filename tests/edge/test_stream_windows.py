"""Window normalisation with the card's optional asinh compression (the one implementation)."""

import numpy as np
import pytest

from fieldpick.edge.card import Normalisation
from fieldpick.edge.errors import ConfigError
from fieldpick.edge.stream.windows import compress, normalise


def test_asinh_after_demean_and_std_hand_values():
    # demeaned [-1, 1, -1, 1] has std 1; asinh(+-1 / 0.5) = +-asinh(2) = +-1.4436355
    x = np.array([[[1.0, 3.0, 1.0, 3.0], [5.0, 5.0, 5.0, 5.0]]])
    y = normalise(x, Normalisation(compress="asinh", compress_scale=0.5))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y[0, 0], [-1.4436355, 1.4436355, -1.4436355, 1.4436355], rtol=1e-6)
    assert np.all(y[0, 1] == 0.0)  # a flat (dead) channel stays exactly zero
    assert x[0, 0, 0] == 1.0  # the caller's array is untouched


def test_asinh_is_linear_below_the_scale_and_logarithmic_above(rng):
    a = 0.05
    x = rng.standard_normal((2, 3, 3000)) * 1e3
    lin = normalise(x, Normalisation())
    y = normalise(x, Normalisation(compress="asinh", compress_scale=a))
    np.testing.assert_allclose(y, np.arcsinh(lin.astype(np.float64) / a), rtol=2e-6, atol=2e-6)
    small = np.abs(lin) < 0.01 * a
    np.testing.assert_allclose(y[small], lin[small] / a, rtol=1e-4)
    big = np.abs(lin) > 100 * a
    np.testing.assert_allclose(y[big], np.sign(lin[big]) * np.log(2 * np.abs(lin[big]) / a), rtol=1e-4)


def test_compress_alone_equals_the_last_step_of_normalise(rng):
    x = rng.standard_normal((4, 3, 700))
    norm = Normalisation(compress="asinh", compress_scale=0.2)
    lin = normalise(x, Normalisation())
    np.testing.assert_array_equal(compress(lin, norm), normalise(x, norm))
    np.testing.assert_array_equal(compress(lin, Normalisation()), lin)


def test_compression_keeps_int8_levels_for_the_quiet_part():
    """The reason for asinh: a window whose S is 100x its pre-event noise.  With std scaling, the
    noise spans ~2 int8 steps (scale = 99.9th percentile / 127); with asinh 0.05 it spans more than 10."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 1, 3000)) * 0.01
    x[..., 1500:1600] += rng.standard_normal(100)  # the 'S' burst
    levels = {}
    for kind in ("none", "asinh"):
        y = normalise(x, Normalisation(compress=kind, compress_scale=0.05))
        step = np.percentile(np.abs(y), 99.9) / 127.0
        levels[kind] = np.std(y[..., :1500]) / step
    assert levels["none"] < 1.0 and levels["asinh"] > 10.0


def test_unknown_compression_is_refused():
    bad = Normalisation(compress="log")
    with pytest.raises(ConfigError, match="compress 'log'; allowed: 'none', 'asinh'"):
        normalise(np.ones((1, 3, 10)), bad)
