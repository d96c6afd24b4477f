"""Activations: RELU, RELU6, LEAKY_RELU, HARD_SWISH, LOGISTIC, TANH, SOFTMAX,
and the type conversions QUANTIZE and DEQUANTIZE.

An int8 elementwise activation has only 256 possible inputs, so each one is
a 256-entry lookup table built at load time by a plain-Python twin of
TFLite's reference kernel (fixed-point for RELU/LEAKY_RELU/HARD_SWISH,
float32 tables for LOGISTIC/TANH exactly as TFLite populates them).  int8
SOFTMAX is TFLite's reference kernel: gemmlowp's fixed-point exp (tabled
over the 256 possible differences from the row maximum), Newton-Raphson
reciprocal and rounding shifts.  (The float lookup table of TFLite's
optimised kernel differs from it by one quantum on near-ties.)
"""

from __future__ import annotations

import math

import numpy as np

from . import register, unsupported
from .quant import (
    _round_away,
    _rounding_divide_by_pot,
    _srdhm,
    dtype_range,
    mbqm_scalar,
    multiply_by_quantized_multiplier,
    qparams,
    quantize_multiplier,
    round_half_away,
)

F32 = np.float32
_INT8_VALUES = np.arange(256, dtype=np.int64).astype(np.uint8).view(np.int8).astype(np.int64)  # table order


def _io(op, tensors, allowed=("float32", "int8")):
    x, y = tensors[op.inputs[0]], tensors[op.outputs[0]]
    if x.dtype is None or y.dtype is None or x.dtype.name not in allowed or x.dtype != y.dtype:
        raise unsupported(op, "input/output types %s/%s; supported: %s (same type in and out)" % (
            getattr(x.dtype, "name", x.type_code), getattr(y.dtype, "name", y.type_code), ", ".join(allowed)))
    q = x.dtype.name == "int8"
    if q and (x.quant is None or y.quant is None or x.quant.per_channel or y.quant.per_channel):
        raise unsupported(op, "int8 input and output need per-tensor quantisation")
    return x, y, q


def _lut(fn, vectorised=False):
    """An int8 -> int8 function as a table indexed by the input's uint8 view.

    fn takes one int (or, vectorised, the int64 array of the 256 inputs in table order).
    """
    if vectorised:
        table = np.clip(fn(_INT8_VALUES.copy()), -128, 127).astype(np.int8)
    else:
        table = np.array([max(-128, min(127, fn(int(v)))) for v in _INT8_VALUES], np.int8)

    def run(ins):
        return table[ins[0].view(np.uint8)]

    run.table = table
    run.unary_table = table  # int8 -> int8 by the input's uint8 view: the runtime may compose such tables
    return run


def _relu_x(op, tensors, act_min, act_max):
    x, y, q = _io(op, tensors)
    if not q:
        if act_max is None:
            return lambda ins: np.maximum(ins[0], F32(0))
        return lambda ins: np.clip(ins[0], F32(act_min), F32(act_max))
    sx, zx = qparams(x)
    sy, zy = qparams(y)
    m, s = quantize_multiplier(float(sx / sy))  # float division in TFLite
    lo = max(-128, zy + int(_round_away(float(F32(act_min) / sy))))
    hi = 127 if act_max is None else min(127, zy + int(_round_away(float(F32(act_max) / sy))))
    return _lut(lambda v: max(lo, min(hi, zy + mbqm_scalar(v - zx, m, s))))


@register("RELU")
def build_relu(op, tensors):
    return _relu_x(op, tensors, 0.0, None)


@register("RELU6")
def build_relu6(op, tensors):
    return _relu_x(op, tensors, 0.0, 6.0)


@register("LEAKY_RELU")
def build_leaky_relu(op, tensors):
    x, y, q = _io(op, tensors)
    alpha = F32(op.options.get("alpha", 0.0))
    if not q:
        return lambda ins: np.where(ins[0] > 0, ins[0], ins[0] * alpha)
    sx, zx = qparams(x)
    sy, zy = qparams(y)
    ma, sa = quantize_multiplier(float(sx * alpha / sy))
    mi, si = quantize_multiplier(float(sx / sy))

    def f(v):
        d = v - zx
        return zy + (mbqm_scalar(d, mi, si) if d >= 0 else mbqm_scalar(d, ma, sa))

    return _lut(f)


def _srdhm16(a, b):
    if a == b == -32768:
        return 32767
    ab = a * b
    num = ab + ((1 << 14) if ab >= 0 else 1 - (1 << 14))
    return num // (1 << 15) if num >= 0 else -((-num) // (1 << 15))


def _rdbp(x, e):
    mask = (1 << e) - 1
    return (x >> e) + (1 if (x & mask) > (mask >> 1) + (1 if x < 0 else 0) else 0)


def _sat16(v):
    return max(-32768, min(32767, v))


def _to_int16_multiplier(m32):
    if m32 >= (1 << 31) - 1 - (1 << 15):
        return 32767
    return (m32 + (1 << 15)) >> 16


@register("HARD_SWISH")
def build_hard_swish(op, tensors):
    x, y, q = _io(op, tensors)
    if not q:
        def hs(ins):
            v = ins[0]
            return v * np.minimum(F32(6), np.maximum(F32(0), v + F32(3))) / F32(6)

        return hs
    sx, zx = qparams(x)
    sy, zy = qparams(y)
    hires = F32(1.0 / 128.0) * sx
    om32, oexp = quantize_multiplier(float(hires / sy))
    om16 = _to_int16_multiplier(om32)
    if oexp > 0:
        raise unsupported(op, "int8 scales give an output multiplier exponent %d > 0 (TFLite needs <= 0)" % oexp)
    rm32, rexp = quantize_multiplier(float(hires / (F32(3.0) / F32(32768.0))))
    rm16 = _to_int16_multiplier(rm32)

    def f(v):
        hi_in = (v - zx) * 128
        pre_out = _srdhm16(hi_in, om16)
        r = hi_in
        if rexp > 0:
            r = _sat16(r * (1 << (rexp - 1)))
        r = _srdhm16(r, rm16)
        if rexp > 0:
            r = _sat16(r * 2)
        if rexp < 0:
            r = _rdbp(r, -rexp)
        r = (r + (1 << 15)) >> 1
        if r == pre_out == -32768:
            p = 32767
        else:
            ab = r * pre_out
            p = ab // (1 << 15) if ab >= 0 else -((-ab) // (1 << 15))
        return _rdbp(p, -oexp) + zy

    return _lut(f)


def _exp_f32(v):
    """expf of a float32 value (glibc's expf is correctly rounded; so is this)."""
    return F32(math.exp(float(v)))


def _float_table(op, x, y, fn):
    sx, zx = qparams(x)
    sy, zy = qparams(y)
    inv = F32(1) / sy

    def f(v):
        d = sx * F32(v - zx)
        return int(F32(_round_away(float(fn(d) * inv))) + F32(zy))

    return _lut(f)


@register("LOGISTIC")
def build_logistic(op, tensors):
    x, y, q = _io(op, tensors)
    if not q:
        return lambda ins: (F32(1) / (F32(1) + np.exp(-ins[0]))).astype(F32)
    return _float_table(op, x, y, lambda d: F32(1) / (F32(1) + _exp_f32(-d)))


@register("TANH")
def build_tanh(op, tensors):
    x, y, q = _io(op, tensors)
    if not q:
        return lambda ins: np.tanh(ins[0])
    return _float_table(op, x, y, lambda d: F32(math.tanh(float(d))))


# --- int8 SOFTMAX: TFLite's reference kernel, gemmlowp fixed point -------------------------
_I32_MAX = (1 << 31) - 1
_I32_MIN = -(1 << 31)


def _sat_shl(x, e):
    """gemmlowp SaturatingRoundingMultiplyByPOT with a positive exponent (int64 arrays of int32)."""
    thr = (1 << (31 - e)) - 1
    return np.where(x > thr, _I32_MAX, np.where(x < -thr, _I32_MIN, x << e))


def _exp_quarter(a):
    """exp on [-1/4, 0) of a Q0.31 value (gemmlowp exp_on_interval_between_negative_one_quarter_and_0_excl)."""
    x = a + (1 << 28)
    x2 = _srdhm(x, x)
    x3 = _srdhm(x2, x)
    x4 = _srdhm(x2, x2)
    x4_over_4 = _rounding_divide_by_pot(x4, 2)
    poly = _rounding_divide_by_pot(_srdhm(x4_over_4 + x3, 715827883) + x2, 1)
    return 1895147668 + _srdhm(1895147668, x + poly)


def _exp_on_negative_values(a):
    """exp of a Q5.26 value <= 0 as Q0.31 (gemmlowp exp_on_negative_values, 5 integer bits)."""
    frac_bits = 26
    quarter = 1 << (frac_bits - 2)
    a_mod = (a & (quarter - 1)) - quarter
    result = _exp_quarter(_sat_shl(a_mod, 5))
    remainder = a_mod - a
    for exponent, mult in ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
                           (2, 39332535), (3, 720401), (4, 242)):
        bit = 1 << (frac_bits + exponent)
        result = np.where(remainder & bit, _srdhm(result, mult), result)
    return np.where(a == 0, _I32_MAX, result)


def _one_over_one_plus_x(a):
    """1 / (1 + x) for x in [0, 1) in Q0.31 (gemmlowp, three Newton-Raphson steps)."""
    num = a + _I32_MAX  # RoundingHalfSum(a, One): (a + b + sign) / 2, truncating like C
    num = num + np.where(num >= 0, 1, -1)
    half_den = np.where(num >= 0, num // 2, -((-num) // 2))
    x = 1515870810 + _srdhm(half_den, -1010580540)
    for _ in range(3):
        one_minus = (1 << 29) - _srdhm(half_den, x)
        x = x + _sat_shl(_srdhm(x, one_minus), 2)
    return _sat_shl(x, 1)


def _softmax_params(input_scale, beta):
    real = min(float(beta) * float(input_scale) * float(1 << 26), float((1 << 31) - 1))
    mult, left = quantize_multiplier(real)
    radius = int(math.floor(((1 << 5) - 1) * float(1 << 26) / float(1 << left)))
    return mult, left, -radius


def _softmax_pair_table(n, tabled):
    """The int8 softmax of every row of n <= 3 classes, by the differences in the row.

    Returns (table, coef, base): the output at index ``v @ coef + base`` of a row v.
    tabled: the exact softmax's first output for rows of differences (see build_softmax).
    """
    # With at most 3 classes, each output is fixed by its differences to the other
    # values of its row (each in -255..255): one table entry per combination, filled
    # at load; a call computes every index with one small matrix product
    # (index_i = sum_j coef[j, i] * v_j + base) and takes from the table.
    span = np.arange(-255, 256, dtype=np.int64)
    if n == 1:
        blocks = [np.zeros((1, 1), np.int64)]
        pair_coef = np.zeros((1, 1))
    elif n == 2:
        blocks = [np.stack([np.zeros_like(span), -span], axis=1)]  # v0 - v1 = span
        pair_coef = np.array([[1.0, -1.0], [-1.0, 1.0]])
    else:
        # Rows (0, -d1, -d2) for v0 - v1 = d1, v0 - v2 = d2, 32 values of d1 at a time.
        blocks = []
        for a in range(0, span.size, 32):
            d1 = np.repeat(span[a:a + 32], span.size)
            blocks.append(np.stack([np.zeros_like(d1), -d1, -np.tile(span, d1.size // span.size)], axis=1))
        pair_coef = np.array([[512.0, -511.0, -511.0], [-511.0, 512.0, -1.0], [-1.0, -1.0, 512.0]])
    # d > 255 occurs in no int8 row (|v_j - v_k| <= 255): clamped, never looked up.
    pair_table = np.concatenate([tabled(np.minimum(r.max(axis=1, keepdims=True) - r, 255), first=True)
                                 for r in blocks])
    pair_base = {1: 0, 2: 255, 3: 255 * 511 + 255}[n]
    pair_coef = pair_coef.astype(np.float32)
    return pair_table, pair_coef, pair_base


def _softmax_f32(beta):
    def softmax_f32(ins):
        v = ins[0]
        e = np.exp((v - v.max(axis=-1, keepdims=True)) * beta)
        return e * (F32(1) / e.sum(axis=-1, keepdims=True))

    return softmax_f32


@register("SOFTMAX")
def build_softmax(op, tensors):
    x, y, q = _io(op, tensors)
    beta = F32(op.options.get("beta", 1.0))
    if not q:
        return _softmax_f32(beta)
    sx, _ = qparams(x)
    sy, zy = qparams(y)
    if (float(sy), zy) != (1.0 / 256, -128):
        raise unsupported(op, "int8 softmax output quantised as (%g, %d); TFLite requires (1/256, -128)" % (sy, zy))
    mult, left, diff_min = _softmax_params(sx, beta)
    # exp(-d * scale * beta) in Q0.31 for the 256 possible differences d from the row maximum.
    diffs = -np.arange(256, dtype=np.int64)
    exp_table = _exp_on_negative_values(_srdhm(diffs << left, mult))
    exp_table = np.where(diffs >= diff_min, exp_table, 0)
    acc_table = _rounding_divide_by_pot(exp_table, 12)  # Q12.19 terms of the sum
    n = x.shape[-1] if x.shape else 0
    totals = None
    if 1 <= n <= 3:
        # Few classes (a picker's noise/P/S): every row sum that can occur is known at load
        # (one difference is 0, the others take 256 values each), so the reciprocal of each
        # is tabled and a call looks it up instead of running the Newton-Raphson steps.
        grid = acc_table[0]
        for _ in range(n - 1):
            grid = np.add.outer(grid, acc_table).reshape(-1)
        totals = np.unique(grid)
        t_recip, t_over = _softmax_reciprocal(totals)

    def direct(d):
        """Exact int8 outputs from the differences d (int64, 0..255) to each row's maximum."""
        total = acc_table[d].sum(axis=-1, keepdims=True)
        recip, over = _softmax_reciprocal(total)
        out = _rounding_divide_by_pot(_srdhm(recip, exp_table[d]), over + 31 - 8) - 128
        out = np.where(d <= -diff_min, out, -128)
        return np.clip(out, -128, 127).astype(np.int8)

    def tabled(d, first=False):
        """``direct`` with the reciprocals looked up in the table of every possible row sum
        (first=True: only each row's first output, d being (rows, n)).

        Both factors of the high multiply are >= 0, so it is (a * b + 2**30) >> 31, and the
        rounding shift e = over + 23 (>= 23: a row sum holds exp(0) ~ 2**19 in Q12.19) of a
        value >= 0 is (v + 2**(e-1)) >> e; exp_table is 0 beyond diff_min, giving -128 there.
        """
        pos = np.searchsorted(totals, acc_table[d].sum(axis=-1, keepdims=True))
        shift = t_over[pos] + (31 - 8)
        out = exp_table[d[:, :1] if first else d] * t_recip[pos]
        out += np.int64(1 << 30)
        out >>= np.int64(31)
        out += np.int64(1) << (shift - 1)
        out >>= shift
        np.minimum(out, np.int64(255), out=out)
        out = (out - 128).astype(np.int8)
        return out[:, 0] if first else out

    pair_table = pair_coef = None
    pair_base = 0
    if totals is not None:
        pair_table, pair_coef, pair_base = _softmax_pair_table(n, tabled)

    def softmax_int8(ins):
        x8 = ins[0]
        if pair_table is not None:
            idx = (x8.astype(np.float32) @ pair_coef).astype(np.intp)  # small integers: exact
            idx += pair_base
            return pair_table.take(idx)
        v = x8.astype(np.int64)
        return direct(v.max(axis=-1, keepdims=True) - v)

    # For tests: the tables, and whether the reciprocals are tabled (None: computed per call).
    softmax_int8.acc_table, softmax_int8.exp_table, softmax_int8.diff_min = acc_table, exp_table, diff_min
    softmax_int8.totals = totals
    softmax_int8.pair_table = pair_table
    softmax_int8.tabled = tabled if totals is not None else None
    return softmax_int8


def _softmax_reciprocal(total):
    """(1 / total as Q0.31 after normalising, the shift that undoes it) for Q12.19 row sums."""
    clz = 32 - np.frexp(total.astype(np.float64))[1].astype(np.int64)
    recip = _one_over_one_plus_x((total << clz) - (1 << 31))
    return recip, 12 - clz


@register("QUANTIZE")
def build_quantize(op, tensors):
    x, y = tensors[op.inputs[0]], tensors[op.outputs[0]]
    if y.dtype is None or y.dtype.name not in ("int8", "uint8", "int16") or y.quant is None:
        raise unsupported(op, "output type %s; supported: quantised int8/uint8/int16" % getattr(y.dtype, "name", None))
    sy, zy = qparams(y)
    lo, hi = dtype_range(y.dtype)
    if x.dtype.name == "float32":
        def quantize(ins):
            v = round_half_away(ins[0] / sy) + zy
            return np.clip(v, lo, hi).astype(y.dtype)

        return quantize
    if x.dtype.name in ("int8", "uint8", "int16") and x.quant is not None:
        sx, zx = qparams(x)
        m, s = quantize_multiplier(float(sx) / float(sy))
        if x.dtype.name == "int8" and y.dtype.name == "int8":
            # 256 possible inputs: a table filled by the exact formula below.
            return _lut(lambda v: np.clip(multiply_by_quantized_multiplier(v - zx, m, s) + zy, lo, hi), vectorised=True)

        def requantize(ins):
            v = multiply_by_quantized_multiplier(ins[0].astype(np.int64) - zx, m, s) + zy
            return np.clip(v, lo, hi).astype(y.dtype)

        return requantize
    raise unsupported(op, "input type %s; supported: float32, or quantised int8/uint8/int16" % x.dtype)


@register("DEQUANTIZE")
def build_dequantize(op, tensors):
    x, y = tensors[op.inputs[0]], tensors[op.outputs[0]]
    if y.dtype is None or y.dtype.name != "float32":
        raise unsupported(op, "output type %s; supported: float32" % getattr(y.dtype, "name", None))
    if x.dtype.name == "float16":
        return lambda ins: ins[0].astype(F32)
    if x.quant is None or x.dtype.name not in ("int8", "uint8", "int16"):
        raise unsupported(op, "input type %s; supported: quantised int8/uint8/int16 or float16" % x.dtype)
    if x.quant.per_channel:
        shape = [1] * len(x.shape)
        shape[x.quant.axis] = -1
        scale = x.quant.scale.astype(F32).reshape(shape)
        zp = x.quant.zero_point.astype(np.int32).reshape(shape)
    else:
        scale, zp = qparams(x)
        scale, zp = F32(scale), np.int32(zp)
    return lambda ins: (scale * (ins[0].astype(np.int32) - zp).astype(F32)).astype(F32)
