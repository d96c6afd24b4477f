"""CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV and FULLY_CONNECTED (float32 and int8).

Layouts are TFLite's: activations NHWC (a 1-D conv runs as H = 1, time along
W), filters OHWI for CONV_2D and TRANSPOSE_CONV, 1HWO for depthwise.

int8 convolutions run as float BLAS: inputs minus their zero point lie in
[-255, 255] and weights in [-127, 127], so each product is below 2**15 and
a sum of K of them is exact in float32 while K * 32385 < 2**24 (K <= 518),
in float64 far beyond.  The int32 accumulator plus bias is then requantised
per output channel with TFLite's MultiplyByQuantizedMultiplier, so the
result equals TFLite's reference kernels bit for bit.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import register, unsupported
from .quant import (
    activation_range,
    float_activation,
    multiply_by_quantized_multiplier,
    qparams,
    quantize_multiplier,
)

SAME, VALID = 0, 1
EXACT_F32_TERMS = (1 << 24) // (255 * 127)  # 518: int8 sums of this many products are exact in float32


def conv_geometry(in_size, k, stride, dilation, padding):
    """(output size, pad before, pad after) as TFLite computes them (samples)."""
    eff = (k - 1) * dilation + 1
    if padding == SAME:
        out = (in_size + stride - 1) // stride
    else:
        out = (in_size + stride - eff) // stride
    total = max((out - 1) * stride + eff - in_size, 0)
    return out, total // 2, total - total // 2


def _acc_dtype(k_terms):
    return np.float32 if k_terms <= EXACT_F32_TERMS else np.float64


def _pad_hw(x, pt, pb, pl, pr):
    if not (pt or pb or pl or pr):
        return x
    b, h, w, c = x.shape
    out = np.zeros((b, h + pt + pb, w + pl + pr, c), x.dtype)
    out[:, pt:pt + h, pl:pl + w, :] = x
    return out


def im2col(xp, kh, kw, sh, sw, dh, dw, oh, ow):
    """Patches of a padded NHWC array as a (B*OH*OW, KH*KW*C) matrix (a copy)."""
    xp = np.ascontiguousarray(xp)
    b, _, _, c = xp.shape
    s0, s1, s2, s3 = xp.strides
    view = as_strided(xp, (b, oh, ow, kh, kw, c), (s0, s1 * sh, s2 * sw, s1 * dh, s2 * dw, s3), writeable=False)
    return view.reshape(b * oh * ow, kh * kw * c)


def _check_int8(op, tensors, x_i, w_i, out_i):
    x, w, y = tensors[x_i], tensors[w_i], tensors[out_i]
    if w.data is None:
        raise unsupported(op, "weights must be constant")
    kinds = (x.dtype.name, w.dtype.name, y.dtype.name)
    if kinds == ("float32", "float32", "float32"):
        return False
    if kinds == ("int8", "int8", "int8"):
        if x.quant is None or w.quant is None or y.quant is None:
            raise unsupported(op, "int8 tensors without quantisation parameters")
        if np.any(w.quant.zero_point != 0):
            raise unsupported(op, "int8 weights with non-zero zero point %s (TFLite requires 0)" % w.quant.zero_point[:4])
        return True
    raise unsupported(op, "input/weights/output types %s/%s/%s; supported: float32 or int8 throughout" % kinds)


def _requant_params(x, w, y, n_out):
    """Per-output-channel (multiplier, shift): input_scale * filter_scale / output_scale.

    TFLite forms the product in double for per-channel weights
    (PopulateConvolutionQuantizationParams) but in float32 for per-tensor
    ones (GetQuantizedConvolutionMultipler); the last bit of the multiplier,
    and so now and then an output, depends on it.
    """
    sx = x.quant.scale[0]
    sy = float(y.quant.scale[0])
    ws = w.quant.scale
    if ws.size == 1:
        pairs = [quantize_multiplier(float(np.float32(sx) * np.float32(ws[0])) / sy)] * n_out
    else:
        pairs = [quantize_multiplier(float(sx) * float(s) / sy) for s in ws]
    return np.array([p[0] for p in pairs], np.int64), np.array([p[1] for p in pairs], np.int64)


def _make_requant(x, w, y, act, n_out, op, single_rounding=False):
    """int64 accumulators (last axis = channels) -> int8 outputs.

    single_rounding: TFLite's FULLY_CONNECTED runs through ruy, whose
    multiplier rounds once, half up: (acc * m + 2**(30 - shift)) >> (31 - shift).
    The convolutions use gemmlowp's two-step rounding (MultiplyByQuantizedMultiplier).
    """
    mult, shift = _requant_params(x, w, y, n_out)
    _, zp_out = qparams(y)
    lo, hi = _act_or_fail(op, act, y)
    if single_rounding:
        total = (31 - shift).astype(np.int64)
        half = np.int64(1) << (total - 1)

        def requant_single(acc):
            out = ((acc * mult + half) >> total) + zp_out
            np.clip(out, lo, hi, out=out)
            return out.astype(np.int8)

        return requant_single
    # The common case has right shifts only; keep two paths so it stays lean.
    right_only = bool(np.all(shift <= 0))
    right = (-shift).astype(np.int64)
    mask = (np.int64(1) << right) - 1
    thr = mask >> 1
    uniform = bool(np.all(right == right[0]))
    if uniform:
        right, mask, thr = right[:1], mask[:1], thr[:1]

    def requant(acc):  # acc: int64, last axis = channels
        if right_only:
            ab = acc * mult
            num = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
            high = np.where(num >= 0, num >> 31, -((-num) >> 31))
            out = (high >> right) + ((high & mask) > (thr + (high < 0)))
        else:
            out = multiply_by_quantized_multiplier(acc, mult, shift)
        out += zp_out
        np.clip(out, lo, hi, out=out)
        return out.astype(np.int8)

    return requant


def _act_or_fail(op, act, y):
    r = activation_range(act, y)
    if r is None:
        raise unsupported(op, "fused activation %d on an int8 output (supported: NONE, RELU, RELU6, RELU_N1_TO_1)" % act)
    return r


def _bias(tensors, op, idx, n_out, quantised):
    if len(op.inputs) <= idx or op.inputs[idx] < 0:
        return None
    b = tensors[op.inputs[idx]]
    if b.data is None:
        raise unsupported(op, "bias must be constant")
    if b.data.size != n_out:
        raise unsupported(op, "bias of %d values for %d output channels" % (b.data.size, n_out))
    if quantised:
        if b.dtype.name != "int32":
            raise unsupported(op, "int8 layer with a %s bias (supported: int32)" % b.dtype.name)
        return b.data.astype(np.int64).reshape(-1)
    return b.data.astype(np.float32).reshape(-1)


@register("CONV_2D")
def build_conv2d(op, tensors):
    o = op.options
    x_t, w_t, y_t = tensors[op.inputs[0]], tensors[op.inputs[1]], tensors[op.outputs[0]]
    q = _check_int8(op, tensors, op.inputs[0], op.inputs[1], op.outputs[0])
    cout, kh, kw, cin_w = w_t.shape
    _, h, w, cin = x_t.shape
    if cin != cin_w:
        # Grouped convolution (onnx2tf writes depthwise convs this way sometimes).
        if cin % cin_w:
            raise unsupported(op, "input has %d channels, filters take %d" % (cin, cin_w))
    groups = cin // cin_w
    sh, sw = o["stride_h"], o["stride_w"]
    dh, dw = o["dilation_h"], o["dilation_w"]
    if min(sh, sw, dh, dw) < 1:
        raise unsupported(op, "strides %s and dilations %s must be >= 1" % ((sh, sw), (dh, dw)))
    if o["padding"] not in (SAME, VALID):
        raise unsupported(op, "padding %d (supported: 0 SAME, 1 VALID)" % o["padding"])
    oh, pt, pb = conv_geometry(h, kh, sh, dh, o["padding"])
    ow, pl, pr = conv_geometry(w, kw, sw, dw, o["padding"])
    if (oh, ow, cout) != tuple(y_t.shape[1:]):
        raise unsupported(op, "computed output %s does not match the model's %s" % ((oh, ow, cout), y_t.shape[1:]))
    k_terms = kh * kw * cin_w
    acc_t = _acc_dtype(k_terms) if q else np.float32
    w_mat = w_t.data.astype(acc_t).reshape(groups, cout // groups, k_terms).transpose(0, 2, 1).copy()
    bias = _bias(tensors, op, 2, cout, q)
    pointwise = kh == kw == sh == sw == 1 and groups == 1
    act = o["activation"]

    def patches(xf):
        b = xf.shape[0]
        if pointwise:
            return xf.reshape(b * h * w, cin)
        return im2col(_pad_hw(xf, pt, pb, pl, pr), kh, kw, sh, sw, dh, dw, oh, ow)

    def matmul(cols, b):
        if groups == 1:
            return cols @ w_mat[0]
        cols = cols.reshape(cols.shape[0], kh * kw, groups, cin_w)
        parts = [cols[:, :, g, :].reshape(cols.shape[0], k_terms) @ w_mat[g] for g in range(groups)]
        return np.concatenate(parts, axis=1)

    if q:
        zp_in = qparams(x_t)[1]
        requant = _make_requant(x_t, w_t, y_t, act, cout, op)

        def conv_int8(ins):
            x = ins[0]
            b = x.shape[0]
            xf = x.astype(acc_t)
            if zp_in:
                xf -= acc_t(zp_in)
            acc = matmul(patches(xf), b).astype(np.int64)
            if bias is not None:
                acc += bias
            return requant(acc).reshape(b, oh, ow, cout)

        return conv_int8

    fact = float_activation(act)

    def conv_f32(ins):
        x = ins[0]
        b = x.shape[0]
        y = matmul(patches(x), b)
        if bias is not None:
            y += bias
        if fact is not None:
            fact(y)
        return y.reshape(b, oh, ow, cout)

    return conv_f32


@register("DEPTHWISE_CONV_2D")
def build_depthwise(op, tensors):
    o = op.options
    x_t, w_t, y_t = tensors[op.inputs[0]], tensors[op.inputs[1]], tensors[op.outputs[0]]
    q = _check_int8(op, tensors, op.inputs[0], op.inputs[1], op.outputs[0])
    _, kh, kw, cout = w_t.shape
    _, h, w, cin = x_t.shape
    if cout % cin:
        raise unsupported(op, "%d output channels is not a multiple of %d input channels" % (cout, cin))
    mult = cout // cin
    sh, sw = o["stride_h"], o["stride_w"]
    dh, dw = o["dilation_h"], o["dilation_w"]
    if min(sh, sw, dh, dw) < 1:
        raise unsupported(op, "strides %s and dilations %s must be >= 1" % ((sh, sw), (dh, dw)))
    oh, pt, pb = conv_geometry(h, kh, sh, dh, o["padding"])
    ow, pl, pr = conv_geometry(w, kw, sw, dw, o["padding"])
    if (oh, ow, cout) != tuple(y_t.shape[1:]):
        raise unsupported(op, "computed output %s does not match the model's %s" % ((oh, ow, cout), y_t.shape[1:]))
    acc_t = _acc_dtype(kh * kw) if q else np.float32
    wk = w_t.data.astype(acc_t).reshape(kh, kw, cout)
    bias = _bias(tensors, op, 2, cout, q)
    act = o["activation"]

    def taps(xf):
        if mult > 1:
            xf = np.repeat(xf, mult, axis=3)
        xp = _pad_hw(xf, pt, pb, pl, pr)
        b = xp.shape[0]
        acc = np.zeros((b, oh, ow, cout), xf.dtype)
        for i in range(kh):
            r0 = i * dh
            rows = xp[:, r0:r0 + (oh - 1) * sh + 1:sh]
            for j in range(kw):
                c0 = j * dw
                acc += rows[:, :, c0:c0 + (ow - 1) * sw + 1:sw, :] * wk[i, j]
        return acc

    if q:
        zp_in = qparams(x_t)[1]
        requant = _make_requant(x_t, w_t, y_t, act, cout, op)

        def dw_int8(ins):
            xf = ins[0].astype(acc_t)
            if zp_in:
                xf -= acc_t(zp_in)
            acc = taps(xf).astype(np.int64)
            if bias is not None:
                acc += bias
            return requant(acc)

        return dw_int8

    fact = float_activation(act)

    def dw_f32(ins):
        y = taps(ins[0])
        if bias is not None:
            y += bias
        if fact is not None:
            fact(y)
        return y

    return dw_f32


@register("TRANSPOSE_CONV")
def build_transpose_conv(op, tensors):
    o = op.options
    # inputs: output_shape, weights (O, KH, KW, I), input, [bias]
    x_i, w_i = op.inputs[2], op.inputs[1]
    x_t, w_t, y_t = tensors[x_i], tensors[w_i], tensors[op.outputs[0]]
    q = _check_int8(op, tensors, x_i, w_i, op.outputs[0])
    cout, kh, kw, cin = w_t.shape
    _, h, w, cin_x = x_t.shape
    if cin != cin_x:
        raise unsupported(op, "input has %d channels, filters take %d" % (cin_x, cin))
    _, oh, ow, cout_y = y_t.shape
    sh, sw = o["stride_h"], o["stride_w"]
    if min(sh, sw) < 1:
        raise unsupported(op, "strides %s must be >= 1" % ((sh, sw),))
    # TFLite pads as if the output were the input of a forward conv.
    _, pt, _ = conv_geometry(oh, kh, sh, 1, o["padding"])
    _, pl, _ = conv_geometry(ow, kw, sw, 1, o["padding"])
    full_h = max((h - 1) * sh + kh, pt + oh)
    full_w = max((w - 1) * sw + kw, pl + ow)
    k_terms = cin * kh * kw
    acc_t = _acc_dtype(k_terms) if q else np.float32
    w_mat = w_t.data.astype(acc_t).transpose(3, 1, 2, 0).reshape(cin, kh * kw * cout).copy()
    bias = _bias(tensors, op, 3, cout, q)
    act = o.get("activation", 0)

    def scatter(xf):
        b = xf.shape[0]
        cols = (xf.reshape(b * h * w, cin) @ w_mat).reshape(b, h, w, kh, kw, cout)
        full = np.zeros((b, full_h, full_w, cout), xf.dtype)
        for i in range(kh):
            for j in range(kw):
                full[:, i:i + (h - 1) * sh + 1:sh, j:j + (w - 1) * sw + 1:sw, :] += cols[:, :, :, i, j, :]
        return full[:, pt:pt + oh, pl:pl + ow, :]

    if q:
        zp_in = qparams(x_t)[1]
        requant = _make_requant(x_t, w_t, y_t, act, cout, op)

        def tconv_int8(ins):
            xf = ins[2].astype(acc_t)
            if zp_in:
                xf -= acc_t(zp_in)
            acc = scatter(xf).astype(np.int64)
            if bias is not None:
                acc += bias
            return requant(acc)

        return tconv_int8

    fact = float_activation(act)

    def tconv_f32(ins):
        y = np.ascontiguousarray(scatter(ins[2]))
        if bias is not None:
            y += bias
        if fact is not None:
            fact(y)
        return y

    return tconv_f32


@register("FULLY_CONNECTED")
def build_fully_connected(op, tensors):
    o = op.options
    x_t, w_t, y_t = tensors[op.inputs[0]], tensors[op.inputs[1]], tensors[op.outputs[0]]
    q = _check_int8(op, tensors, op.inputs[0], op.inputs[1], op.outputs[0])
    if o.get("weights_format", 0) != 0:
        raise unsupported(op, "weights format %d (supported: 0 DEFAULT)" % o["weights_format"])
    cout, k = w_t.shape
    acc_t = _acc_dtype(k) if q else np.float32
    w_mat = w_t.data.astype(acc_t).T.copy()
    bias = _bias(tensors, op, 2, cout, q)
    out_tail = tuple(y_t.shape[1:])
    act = o["activation"]

    if q:
        zp_in = qparams(x_t)[1]
        requant = _make_requant(x_t, w_t, y_t, act, cout, op, single_rounding=True)

        def fc_int8(ins):
            xf = ins[0].astype(acc_t).reshape(-1, k)
            if zp_in:
                xf -= acc_t(zp_in)
            acc = (xf @ w_mat).astype(np.int64)
            if bias is not None:
                acc += bias
            return requant(acc).reshape((-1,) + out_tail)

        return fc_int8

    fact = float_activation(act)

    def fc_f32(ins):
        y = ins[0].reshape(-1, k) @ w_mat
        if bias is not None:
            y += bias
        if fact is not None:
            fact(y)
        return y.reshape((-1,) + out_tail)

    return fc_f32
