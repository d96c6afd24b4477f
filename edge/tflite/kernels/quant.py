"""TFLite's fixed-point arithmetic, vectorised with numpy int64.

The rules follow TFLite's reference kernels (tensorflow/lite/kernels/
internal/common.h and quantization_util.cc): a real multiplier M is stored
as a Q31 significand and a power-of-two exponent (``quantize_multiplier``)
and applied with a saturating rounding doubling high multiply followed by a
rounding right shift (``multiply_by_quantized_multiplier``), which is what
makes int8 outputs agree bit for bit.  Each function also has a plain
Python twin (``*_scalar``) used to build lookup tables and in tests.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "quantize_multiplier",
    "multiply_by_quantized_multiplier",
    "mbqm_scalar",
    "round_half_away",
    "activation_range",
    "qparams",
    "dtype_range",
]

_INT32_MIN = -(1 << 31)


def _round_away(x):
    """C's ``round``: halves go away from zero (Python's ``round`` goes to even)."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def quantize_multiplier(m):
    """Real multiplier ``m`` (a Python float = C double) -> (Q31 significand, shift).

    ``m ~= significand * 2**(shift - 31)``; shift > 0 is a left shift.
    """
    m = float(m)
    if m == 0.0:
        return 0, 0
    q, shift = math.frexp(m)
    q_fixed = _round_away(q * (1 << 31))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        return (1 << 31) - 1, 30
    return int(q_fixed), int(shift)


def _srdhm(a, b):
    """Saturating rounding doubling high multiply of int64 arrays holding int32 values."""
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    num = ab + nudge
    # C integer division by 2**31 truncates towards zero.
    out = np.where(num >= 0, num >> 31, -((-num) >> 31))
    if np.isscalar(b) or np.ndim(b) == 0:
        if int(b) == _INT32_MIN:
            out = np.where(a == _INT32_MIN, (1 << 31) - 1, out)
    return out


def _rounding_divide_by_pot(x, exponent):
    """Round-half-away right shift (gemmlowp RoundingDivideByPOT); exponent is >= 0 (array or int)."""
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift):
    """TFLite's MultiplyByQuantizedMultiplier on an int64 array; multiplier/shift broadcast.

    x holds int32 values; the result is int64 holding int32 values.
    """
    x = np.asarray(x, np.int64)
    multiplier = np.asarray(multiplier, np.int64)
    shift = np.asarray(shift, np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    if np.any(left):
        x = x << left
    return _rounding_divide_by_pot(_srdhm(x, multiplier), right)


def mbqm_scalar(x, multiplier, shift):
    """Plain-Python MultiplyByQuantizedMultiplier (the slow, obviously correct twin)."""
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    a = x * (1 << left)
    if a == _INT32_MIN and multiplier == _INT32_MIN:
        high = (1 << 31) - 1
    else:
        ab = a * multiplier
        nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
        num = ab + nudge
        high = num // (1 << 31) if num >= 0 else -((-num) // (1 << 31))
    mask = (1 << right) - 1
    rem = high & mask
    thr = (mask >> 1) + (1 if high < 0 else 0)
    return (high >> right) + (1 if rem > thr else 0)


def round_half_away(v):
    """Elementwise C ``round`` for float arrays (exact: no ``x + 0.5`` rounding trap); float64 out.

    float32 input takes four in-place float64 passes: |v| + 0.5 is exact in
    float64 for every float32 |v| that is not already an integer, so the
    floor is the rounded magnitude.  Other input takes the exact six-pass path.
    """
    v = np.asarray(v)
    if v.dtype == np.float32:
        r = np.abs(v, dtype=np.float64)
        r += 0.5
        np.floor(r, out=r)
        return np.copysign(r, v, out=r)
    t = np.trunc(v)
    frac = v - t
    return t + np.where(frac >= 0.5, 1.0, 0.0) - np.where(frac <= -0.5, 1.0, 0.0)


def dtype_range(dtype):
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def qparams(tensor):
    """(scale as float32, zero point as int) of a per-tensor quantised tensor."""
    q = tensor.quant
    if q is None:
        return np.float32(1.0), 0
    return np.float32(q.scale[0]), int(q.zero_point[0])


# Fused activations (schema ActivationFunctionType).
ACT_NONE, ACT_RELU, ACT_RELU_N1_TO_1, ACT_RELU6, ACT_TANH, ACT_SIGN_BIT = range(6)
ACT_NAMES = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}


def activation_range(act, tensor):
    """Integer clamp [lo, hi] of a fused activation on a quantised output tensor.

    TFLite's CalculateActivationRangeQuantized: zero_point + round(f / scale)
    in float32, intersected with the type's range.
    """
    lo, hi = dtype_range(tensor.dtype)
    scale, zp = qparams(tensor)

    def q(f):
        return zp + int(_round_away(float(np.float32(f) / scale)))

    if act == ACT_NONE:
        return lo, hi
    if act == ACT_RELU:
        return max(lo, q(0.0)), hi
    if act == ACT_RELU6:
        return max(lo, q(0.0)), min(hi, q(6.0))
    if act == ACT_RELU_N1_TO_1:
        return max(lo, q(-1.0)), min(hi, q(1.0))
    return None


def _relu(y):
    # np.maximum, not a masked copy (10x slower on mixed signs) nor a multiply by the mask
    # (faster, but -inf * 0 is NaN).
    return np.maximum(y, np.float32(0), out=y)


def _clamp(lo, hi):
    lo, hi = np.float32(lo), np.float32(hi)
    return lambda y: np.clip(y, lo, hi, out=y)


def float_activation(act):
    """A function applying a fused activation to a float32 array in place and returning it
    (None for NONE).  NaN passes through, as in TFLite."""
    if act == ACT_NONE:
        return None
    if act == ACT_RELU:
        return _relu
    if act == ACT_RELU6:
        return _clamp(0.0, 6.0)
    if act == ACT_RELU_N1_TO_1:
        return _clamp(-1.0, 1.0)
    if act == ACT_TANH:
        return lambda y: np.tanh(y, out=y)
    return None
