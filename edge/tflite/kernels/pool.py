"""MAX_POOL_2D, AVERAGE_POOL_2D and MEAN (float32 and int8).

Padded positions never take part: a max ignores them, an average divides
by the number of real samples under the window (TFLite's filter_count),
rounding int8 sums half away from zero in integer arithmetic.
"""

from __future__ import annotations

import numpy as np

from . import register, unsupported
from .conv import conv_geometry, im2col
from .quant import (
    activation_range,
    float_activation,
    multiply_by_quantized_multiplier,
    qparams,
    quantize_multiplier,
)

F32 = np.float32


def _pool(op, tensors, kind):
    o = op.options
    x_t, y_t = tensors[op.inputs[0]], tensors[op.outputs[0]]
    if x_t.dtype.name not in ("float32", "int8") or x_t.dtype != y_t.dtype:
        raise unsupported(op, "types %s -> %s; supported: float32 or int8" % (x_t.dtype, y_t.dtype))
    q = x_t.dtype.name == "int8"
    if q and (qparams(x_t) != qparams(y_t)):
        raise unsupported(op, "int8 pooling with different input and output quantisation %s vs %s"
                          % (qparams(x_t), qparams(y_t)))
    _, h, w, c = x_t.shape
    kh, kw, sh, sw = o["filter_h"], o["filter_w"], o["stride_h"], o["stride_w"]
    if min(kh, kw, sh, sw) < 1:
        raise unsupported(op, "filter %s and strides %s must be >= 1" % ((kh, kw), (sh, sw)))
    oh, pt, pb = conv_geometry(h, kh, sh, 1, o["padding"])
    ow, pl, pr = conv_geometry(w, kw, sw, 1, o["padding"])
    if (oh, ow, c) != tuple(y_t.shape[1:]):
        raise unsupported(op, "computed output %s does not match the model's %s" % ((oh, ow, c), y_t.shape[1:]))
    act = o["activation"]
    # Number of real (unpadded) samples under each window: (OH, OW).
    ones = np.zeros((1, h + pt + pb, w + pl + pr, 1), F32)
    ones[:, pt:pt + h, pl:pl + w] = 1
    count = im2col(ones, kh, kw, sh, sw, 1, 1, oh, ow).sum(axis=1).reshape(oh, ow, 1)
    if q:
        lo, hi = activation_range(act, y_t)
    else:
        fact = float_activation(act)

    def windows(x, fill):
        b = x.shape[0]
        xp = np.full((b, h + pt + pb, w + pl + pr, c), fill, x.dtype)
        xp[:, pt:pt + h, pl:pl + w] = x
        return im2col(xp, kh, kw, sh, sw, 1, 1, oh, ow).reshape(b, oh, ow, kh * kw, c)

    if kind == "max":
        def max_pool(ins):
            x = ins[0]
            fill = -128 if q else -np.inf
            y = windows(x, fill).max(axis=3)
            if q:
                return np.clip(y, lo, hi).astype(np.int8)
            if fact is not None:
                fact(y)
            return y

        return max_pool

    cnt_i = count.astype(np.int64)

    def avg_pool(ins):
        x = ins[0]
        if q:
            s = windows(x.astype(np.int64), 0).sum(axis=3)
            half = cnt_i // 2
            num = np.where(s > 0, s + half, s - half)
            avg = np.where(num >= 0, num // cnt_i, -((-num) // cnt_i))  # C division truncates
            return np.clip(avg, lo, hi).astype(np.int8)
        y = (windows(x, 0).sum(axis=3) / count).astype(F32)
        if fact is not None:
            fact(y)
        return y

    return avg_pool


@register("MAX_POOL_2D")
def build_max_pool(op, tensors):
    return _pool(op, tensors, "max")


@register("AVERAGE_POOL_2D")
def build_average_pool(op, tensors):
    return _pool(op, tensors, "avg")


@register("MEAN")
def build_mean(op, tensors):
    x_t, a_t, y_t = tensors[op.inputs[0]], tensors[op.inputs[1]], tensors[op.outputs[0]]
    if a_t.data is None:
        raise unsupported(op, "the axes must be constant")
    rank = len(x_t.shape)
    axes = sorted(set(int(a) % rank for a in np.asarray(a_t.data).reshape(-1)))
    keep = bool(op.options.get("keep_dims", 0))
    n = int(np.prod([x_t.shape[a] for a in axes])) if axes else 1
    if x_t.dtype.name == "float32":
        def mean_f32(ins):
            return ins[0].mean(axis=tuple(axes), keepdims=keep, dtype=F32)

        mean_f32.batch_safe = 0 not in axes
        return mean_f32
    if x_t.dtype.name != "int8" or y_t.dtype.name != "int8":
        raise unsupported(op, "types %s -> %s; supported: float32 or int8" % (x_t.dtype, y_t.dtype))
    sx, zx = qparams(x_t)
    sy, zy = qparams(y_t)
    # TFLite folds 1/n into the multiplier of s_in / s_out with an integer
    # division after a left shift of floor(log2 n) bits (measured: 0 of 1800
    # outputs differ from ai-edge-litert's reference kernel; a multiplier
    # of s_in / (s_out * n) missed 36).
    m, s = quantize_multiplier(float(sx) / float(sy))
    div_shift = min(n.bit_length() - 1, 32, 31 + s)
    m = (m << div_shift) // n
    s = s - div_shift

    def mean_int8(ins):
        total = ins[0].astype(np.int64).sum(axis=tuple(axes), keepdims=keep) - n * zx
        out = multiply_by_quantized_multiplier(total, m, s) + zy
        return np.clip(out, -128, 127).astype(np.int8)

    mean_int8.batch_safe = 0 not in axes
    return mean_int8
