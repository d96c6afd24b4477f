"""The float64 requantiser (kernels/requant.py) against TFLite's integer formula.

Accumulators are put on and next to every rounding boundary of both
roundings (the high multiply's and the shift's), on both signs, at the clamp
bounds and at the largest magnitudes the bound allows; each must give the
int64 reference (``multiply_by_quantized_multiplier``, itself tested against
TFLite's kernels) bit for bit.  Layers the bound rejects must fall back.
"""

import numpy as np
import pytest

from fieldpick.edge.tflite.kernels.quant import mbqm_scalar, multiply_by_quantized_multiplier
from fieldpick.edge.tflite.kernels.requant import EXACT_BITS, exact_requant


def _reference(x, mult, shift, zp, lo, hi, single):
    """Exact int64 result for x = accumulator + bias (rows x channels)."""
    x = x.astype(np.int64)
    if single:
        total = 31 - shift
        q = (x * mult + (np.int64(1) << (total - 1))) >> total
    else:
        q = multiply_by_quantized_multiplier(x, mult, shift)
    return np.clip(q + zp, lo, hi).astype(np.int8)


def _adversarial(rng, mult, shift, single, amax, levels=300):
    """Accumulator+bias values on and beside the rounding boundaries of each channel."""
    n = mult.size
    cols = []
    for c in range(n):
        m, s = int(mult[c]), int(shift[c])
        total = 31 - s if single else 31 + max(-s, 0)
        period = 2.0 ** total / m  # x per output step
        ks = np.arange(-levels, levels + 1)
        r = max(-s, 0)
        # Boundaries of the final rounding (k + 1/2) and of the high multiply's rounding nearby.
        centres = np.concatenate([(ks + 0.5) * period, (ks + 0.5 + 2.0 ** -(r + 1)) * period,
                                  (ks + 0.5 - 2.0 ** -(r + 1)) * period, (ks + 0.5) * period - 2.0 ** 31 / m / 2])
        xs = (np.floor(centres)[:, None] + np.arange(-2, 3)[None, :]).reshape(-1)
        xs = np.concatenate([xs, [0, 1, -1, amax[c], -amax[c], amax[c] - 1, -amax[c] + 1],
                             rng.integers(-int(amax[c]), int(amax[c]) + 1, 500)])
        xs = xs[np.abs(xs) <= amax[c]]
        cols.append(xs.astype(np.int64))
    width = max(len(v) for v in cols)
    out = np.zeros((width, n), np.int64)
    for c, v in enumerate(cols):
        out[:, c] = np.resize(v, width)
    return out


CASES = [
    # (shift range, zp, lo, hi, single rounding) -- floor and sign forms, r = 0, RELU6-like hi
    ((-10, -1), -128, -128, 127, False),  # RELU with zp -128: floor form
    ((-10, -1), -7, -7, 127, False),  # RELU, other zero point: floor form
    ((-10, -1), 32, -128, 127, False),  # no activation: sign form
    ((-6, -1), 5, -128, 90, False),  # sign form with a clamp top
    ((0, 0), 3, -128, 127, False),  # r = 0: floor form without the half-e term
    ((-9, 1), -20, -128, 127, True),  # FULLY_CONNECTED: one rounding, left shifts too
]


@pytest.mark.parametrize("shift_range, zp, lo, hi, single", CASES)
def test_float64_requant_equals_integer_formula(rng, shift_range, zp, lo, hi, single):
    n = 6
    mult = rng.integers(1 << 30, 1 << 31, n)
    mult[0] = 1 << 30  # a power of two: exact ties of both roundings
    shift = rng.integers(shift_range[0], shift_range[1] + 1, n)
    bias = rng.integers(-5000, 5000, n)
    amax = np.full(n, 128 * 127 * 40)
    rq = exact_requant(mult, shift, zp, lo, hi, bias, amax, single_rounding=single)
    assert rq is not None
    assert rq.floor_form == (single or lo >= zp or bool(np.all(shift == 0)))
    x = _adversarial(rng, mult, shift, single, amax - np.abs(bias))
    acc = x - bias
    want = _reference(x, mult, shift, zp, lo, hi, single)
    for dtype in (np.float32, np.float64):
        got = rq(acc.astype(dtype))
        np.testing.assert_array_equal(got, want)
    # The same through a matrix product with the scale and offset folded into the weights:
    # patches [acc, 1] against rows [diag(S); offset].
    patches = np.concatenate([acc.astype(np.float64)[:, :, None], np.ones(acc.shape + (1,))], axis=2)
    w = rq.folded_weights(np.eye(n))  # (n + 1, n)
    z = np.einsum("rck,kc->rc", patches, np.stack([np.diag(w[:n]), w[n]]))
    np.testing.assert_array_equal(rq.finish(np.ascontiguousarray(z)), want)


def test_scalar_twin_agrees_on_a_few_values():
    # The vectorised reference used above against the plain-Python one.
    for x, m, s in [(12345, 1 << 30, -3), (-12345, 1518500250, -7), (-2 ** 20, 2 ** 31 - 1, -1), (255, 1 << 30, -9)]:
        assert int(multiply_by_quantized_multiplier(np.int64(x), m, s)) == mbqm_scalar(x, m, s)


def test_int32_cast_when_z_may_pass_int16(rng):
    n = 3
    mult = rng.integers(1 << 30, 1 << 31, n)
    shift = np.full(n, -2)
    amax = np.full(n, 1 << 20)  # |z| up to ~2**18
    rq = exact_requant(mult, shift, -128, -128, 127, None, amax)
    assert rq is not None and rq.int_t is np.int32
    x = _adversarial(rng, mult, shift, False, amax, levels=50)
    x[:4] = [[1 << 20] * n, [-(1 << 20)] * n, [(1 << 16) + 3] * n, [-(1 << 16) - 3] * n]
    np.testing.assert_array_equal(rq(x.astype(np.float64)), _reference(x, mult, shift, -128, -128, 127, False))


@pytest.mark.parametrize("why", ["bound", "left_shift", "deep_shift"])
def test_layers_beyond_the_bound_fall_back(why):
    mult = np.array([1 << 30, (1 << 31) - 1])
    shift = np.array([-8, -8])
    amax = np.array([1000, 1000])
    if why == "bound":  # accumulators near 2**24 with r = 8: z needs more than 52 bits
        amax = np.array([1 << 23, 1 << 23])
    elif why == "left_shift":  # double rounding with a left shift: the int64 path's job
        shift = np.array([1, -3])
    else:  # r = 25: the offset's 256 alone needs 8 + 31 + 25 bits
        shift = np.array([-25, -25])
    assert exact_requant(mult, shift, -128, -128, 127, None, amax) is None


def test_bound_edge_is_exact(rng):
    # The largest accumulator bound the check accepts still gives exact results at its ends.
    mult = np.array([(1 << 31) - 1])
    shift = np.array([-9])
    unit = 2.0 ** (32 + 9)
    lo_bits = 1
    while exact_requant(mult, shift, -128, -128, 127, None, np.array([2 ** (lo_bits + 1)])) is not None:
        lo_bits += 1
    amax = np.array([2 ** lo_bits])
    rq = exact_requant(mult, shift, -128, -128, 127, None, amax)
    assert rq is not None and 2 * amax[0] * mult[0] < 2.0 ** EXACT_BITS <= 4 * amax[0] * mult[0] + 600 * unit
    x = _adversarial(rng, mult, shift, False, amax, levels=40)
    x[:2, 0] = [amax[0], -amax[0]]
    np.testing.assert_array_equal(rq(x.astype(np.float64)), _reference(x, mult, shift, -128, -128, 127, False))


def test_int16_to_int8_cast_wraps():
    # The floor form relies on numpy's integer narrowing being two's complement truncation
    # (C casts as gcc and clang define them): a platform that saturated would fail here.
    v = np.arange(128, 384, dtype=np.int16)
    np.testing.assert_array_equal(v.astype(np.int8), np.arange(-128, 128, dtype=np.int8))
    q = np.array([[-160, 200]], np.int32)
    np.testing.assert_array_equal(q.astype(np.int8) + np.int8(32), np.array([[-128, -24]], np.int8))
