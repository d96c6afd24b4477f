"""ADD, SUB and MUL with numpy broadcasting (float32 and int8).

int8 ADD/SUB follow TFLite's reference: both inputs are brought to a
common scale (twice the larger input scale) after a left shift of 20 bits,
added in int32 and requantised to the output; MUL multiplies the
zero-point-corrected inputs and requantises by s1 * s2 / s_out.  Since the
inputs are int8, each is tabulated over all 256 x 256 input pairs at load.
"""

from __future__ import annotations

import numpy as np

from . import register, unsupported
from .quant import (
    activation_range,
    float_activation,
    multiply_by_quantized_multiplier,
    qparams,
    quantize_multiplier,
)

LEFT_SHIFT_INT8 = 20
_EIGHT = np.uint16(8)  # a typed scalar: no value-based type resolution per call


def _types(op, tensors):
    a, b, y = (tensors[op.inputs[0]], tensors[op.inputs[1]], tensors[op.outputs[0]])
    kinds = (a.dtype.name, b.dtype.name, y.dtype.name)
    if kinds == ("float32",) * 3:
        return a, b, y, False
    if kinds == ("int8",) * 3:
        for t in (a, b, y):
            if t.quant is None or t.quant.per_channel:
                raise unsupported(op, "int8 tensor %r needs per-tensor quantisation" % t.name)
        return a, b, y, True
    raise unsupported(op, "types %s/%s -> %s; supported: float32 or int8 throughout" % kinds)


def _float_binary(op, fn):
    fact = float_activation(op.options.get("activation", 0))

    def run(ins):
        y = fn(ins[0], ins[1]).astype(np.float32, copy=False)
        if fact is not None:
            y = fact(np.array(y))
        return y

    return run


def _act(op, y):
    r = activation_range(op.options.get("activation", 0), y)
    if r is None:
        raise unsupported(op, "fused activation %d on an int8 output" % op.options.get("activation", 0))
    return r


def _add_sub(op, tensors, sign):
    a, b, y, q = _types(op, tensors)
    if not q:
        return _float_binary(op, np.add if sign > 0 else np.subtract)
    sa, za = qparams(a)
    sb, zb = qparams(b)
    sy, zy = qparams(y)
    twice_max = float(np.float32(2) * max(sa, sb))  # float in TFLite, then used as double
    m1, s1 = quantize_multiplier(float(sa) / twice_max)
    m2, s2 = quantize_multiplier(float(sb) / twice_max)
    mo, so = quantize_multiplier(twice_max / ((1 << LEFT_SHIFT_INT8) * float(sy)))
    lo, hi = _act(op, y)

    def exact(a, b):
        ra = multiply_by_quantized_multiplier((a.astype(np.int64) - za) << LEFT_SHIFT_INT8, m1, s1)
        rb = multiply_by_quantized_multiplier((b.astype(np.int64) - zb) << LEFT_SHIFT_INT8, m2, s2)
        out = multiply_by_quantized_multiplier(ra + rb if sign > 0 else ra - rb, mo, so) + zy
        return np.clip(out, lo, hi).astype(np.int8)

    return _table2(exact)


@register("ADD")
def build_add(op, tensors):
    return _add_sub(op, tensors, +1)


@register("SUB")
def build_sub(op, tensors):
    return _add_sub(op, tensors, -1)


@register("MUL")
def build_mul(op, tensors):
    a, b, y, q = _types(op, tensors)
    if not q:
        return _float_binary(op, np.multiply)
    sa, za = qparams(a)
    sb, zb = qparams(b)
    sy, zy = qparams(y)
    m, s = quantize_multiplier(float(sa) * float(sb) / float(sy))
    lo, hi = _act(op, y)

    def exact(a, b):
        prod = (a.astype(np.int64) - za) * (b.astype(np.int64) - zb)
        out = multiply_by_quantized_multiplier(prod, m, s) + zy
        return np.clip(out, lo, hi).astype(np.int8)

    return _table2(exact)


def _table2(exact):
    """An int8 x int8 -> int8 function as a 65536-entry table, applied with broadcasting.

    The table is filled by the exact fixed-point formula at load; each call is
    then one index computation and one lookup.
    """
    v = np.arange(256, dtype=np.int64).astype(np.uint8).view(np.int8)
    table = exact(np.repeat(v, 256), np.tile(v, 256))  # index = (a as uint8) * 256 + (b as uint8)

    def run(ins):
        # A uint16 index (a as the high byte) and ndarray.take: about 1.5x faster than an
        # intp index and fancy indexing.
        idx = ins[0].view(np.uint8).astype(np.uint16)
        idx <<= _EIGHT
        b = ins[1].view(np.uint8)
        if b.shape == idx.shape:
            idx |= b
        else:
            idx = idx | b
        return table.take(idx)

    run.table = table
    return run
