"""CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV and FULLY_CONNECTED (float32 and int8).

Layouts are TFLite's: activations NHWC (a 1-D conv runs as H = 1, time along
W), filters OHWI for CONV_2D and TRANSPOSE_CONV, 1HWO for depthwise.

int8 convolutions run as float BLAS on the raw int8 values (the input zero
point is folded into the bias: W.(x - zp) = W.x - zp * sum(W), and padding
holds zp).  Where float64 holds every term exactly (checked per channel at
load, see kernels/requant.py) the requantisation is folded into the
product: the patches get a column of ones, the weights are multiplied by
each channel's scale and get a row of offsets, and one float64 matrix
product returns z, whose truncating cast and int16 clamp give TFLite's
MultiplyByQuantizedMultiplier result bit for bit.  A 1-D depthwise conv
of stride 1 is one float64 ``einsum`` over long contiguous rows with the
scales folded into its taps (kernels/depthwise.py); other depthwise convs
sum their taps in float32 (exact below 2**24) with an ``einsum`` over the
patch view, window by window, and then apply scale and offset.  Layers
beyond the float64 bound
(and TRANSPOSE_CONV) keep :class:`Requantizer`: float32 rounding, with the
elements near a rounding tie redone in int64.

Speed notes (numpy 1.26 and 2.4, x86_64, one window of the default model):
float64 BLAS runs near the core's peak, the depthwise ``einsum`` at about
0.25 ns per multiply-add, the requantiser at about 1 ns per output; the
patch matrices with their ones column, padded inputs and float scratch are
made once per batch size and thread (scratch from a per-thread arena shared
by all layers), so a call is a handful of numpy passes per layer.  im2col
patches are copied (matmul on an overlapping view falls back to a loop ~10x
slower than BLAS); a float64 product beats float32 BLAS plus two float64
passes up to ~40 terms per output (measured again on the default model's
layers, 2026-12: the float32 product with its two passes was no faster at
K = 21-24); an ``einsum`` whose inner loop is the 12 or 24 channels of a
layer took 1.5x the time of one over rows of ~1024 values on one window,
and over a batch of 3 windows at once 3.8x (it picks a slower loop order).
"""

from __future__ import annotations

from threading import get_ident

import numpy as np

from . import register, unsupported
from .depthwise import DepthwiseRows
from .quant import (
    activation_range,
    float_activation,
    qparams,
)
from .requant import ChannelBias, Requantizer, exact_requant, requant_params
from .requant import scratch as arena

SAME, VALID = 0, 1
EXACT_F32_TERMS = (1 << 24) // (128 * 127)  # 1032: raw int8 sums of this many products are exact in float32
EXACT_F32_TERMS_OFFSET = (1 << 24) // (255 * 127)  # 518: the same with zero-point-corrected inputs


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


def patch_view(xp, kh, kw, sh, sw, dh, dw, oh, ow):
    """Read-only (B, OH, OW, KH, KW, C) view of the patches of a padded NHWC array (no copy).

    Built with numpy's buffer constructor, which checks that every patch lies
    inside ``xp`` (cheaper per call than ``as_strided``).
    """
    xp = np.ascontiguousarray(xp)
    b, _, _, c = xp.shape
    s0, s1, s2, s3 = xp.strides
    view = np.ndarray((b, oh, ow, kh, kw, c), xp.dtype, xp, 0, (s0, s1 * sh, s2 * sw, s1 * dh, s2 * dw, s3))
    view.flags.writeable = False
    return view


def im2col(xp, kh, kw, sh, sw, dh, dw, oh, ow):
    """Patches of a padded NHWC array as a C-contiguous (B*OH*OW, KH*KW*C) matrix (a copy).

    The copy matters: where the patches of a 1-D conv overlap, ``reshape``
    alone returns a view whose rows overlap, which BLAS cannot take, and
    numpy's matmul then falls back to a loop about 10x slower than the copy
    and sgemm together.
    """
    b, c = xp.shape[0], xp.shape[3]
    return np.ascontiguousarray(patch_view(xp, kh, kw, sh, sw, dh, dw, oh, ow).reshape(b * oh * ow, kh * kw * c))


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


def _make_requant(x, w, y, act, n_out, op, bias=None, single_rounding=False, k_terms=None):
    mult, shift = requant_params(x, w, y, n_out)
    lo, hi = _act_or_fail(op, act, y)
    bound = (1 << 31) if k_terms is None else k_terms * 255 * 128
    return Requantizer(mult, shift, qparams(y)[1], lo, hi, bias, single_rounding, acc_bound=bound)


def _make_exact(x, w, y, act, n_out, op, bias, acc_abs_max, single_rounding=False):
    """The float64 requantiser (kernels/requant.py) where its bound holds, else None."""
    mult, shift = requant_params(x, w, y, n_out)
    lo, hi = _act_or_fail(op, act, y)
    return exact_requant(mult, shift, qparams(y)[1], lo, hi, bias, acc_abs_max, single_rounding)


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


def _fold_zero_point(bias, zp_in, w_sums):
    """int64 bias with the input zero point folded in: bias - zp * sum(W) per channel."""
    b = np.zeros(w_sums.size, np.int64) if bias is None else bias.astype(np.int64)
    return b - int(zp_in) * w_sums.astype(np.int64)


def _pad_value(x, pads, value, dtype=None):
    """x padded along H and W with ``value``, as ``dtype`` (the cast happens in the same copy)."""
    dtype = x.dtype if dtype is None else np.dtype(dtype)
    pt, pb, pl, pr = pads
    if not (pt or pb or pl or pr):
        return x.astype(dtype, copy=False)
    b, h, w, c = x.shape
    out = np.full((b, h + pt + pb, w + pl + pr, c), value, dtype)
    out[:, pt:pt + h, pl:pl + w, :] = x
    return out


def _depthwise_taps(xp, wk, mult, oh, ow, sh, sw, dh, dw):
    """Depthwise correlation of a padded NHWC array with taps wk (KH, KW, C*mult).

    One einsum over the patch view: a single pass, strides and dilations
    included, about twice as fast as a multiply-add per tap.
    """
    if mult > 1:
        xp = np.repeat(xp, mult, axis=3)
    kh, kw, _ = wk.shape
    return np.einsum("bhwijc,ijc->bhwc", patch_view(xp, kh, kw, sh, sw, dh, dw, oh, ow), wk)


def _conv_setup(op, x_t, y_t, kh, kw, cout, dilated=True):
    o = op.options
    _, h, w, _ = x_t.shape
    sh, sw = o["stride_h"], o["stride_w"]
    dh, dw = (o["dilation_h"], o["dilation_w"]) if dilated else (1, 1)
    if min(sh, sw, dh, dw) < 1:
        raise unsupported(op, "strides %s and dilations %s must be >= 1" % ((sh, sw), (dh, dw)))
    if o["padding"] not in (SAME, VALID):
        raise unsupported(op, "padding %d (supported: 0 SAME, 1 VALID)" % o["padding"])
    oh, pt, pb = conv_geometry(h, kh, sh, dh, o["padding"])
    ow, pl, pr = conv_geometry(w, kw, sw, dw, o["padding"])
    if (oh, ow, cout) != tuple(y_t.shape[1:]):
        raise unsupported(op, "computed output %s does not match the model's %s" % ((oh, ow, cout), y_t.shape[1:]))
    return h, w, sh, sw, dh, dw, oh, ow, (pt, pb, pl, pr)


def _conv_int8_exact(exact, w_mat, h, w, cin, kh, kw, sh, sw, dh, dw, oh, ow, pads, zp_in, pointwise):
    """int8 CONV_2D as one float64 matrix product that returns z (see kernels/requant.py).

    The patches (raw int8 values, padding = input zero point) and a column of
    ones go against the weights times each channel's scale and a row of
    offsets; the product is exact, so only the cast and clamp remain.
    """
    k_terms = kh * kw * cin
    w1 = exact.folded_weights(w_mat)
    cout = w1.shape[1]
    pt, pb, pl, pr = pads
    padded = bool(pt or pb or pl or pr)
    plans = {}  # (batch size, thread) -> buffers and views (of that thread's arena), made once

    def plan(b):
        rows = b * oh * ow
        buf = np.empty((rows, k_terms + 1), np.float64)
        buf[:, k_terms] = 1.0
        xp = np.full((b, h + pt + pb, w + pl + pr, cin), zp_in, np.int8) if padded and not pointwise else None
        z, q = exact.buffers((rows, cout))
        got = (buf, buf[:, :k_terms] if pointwise else buf[:, :k_terms].reshape(b, oh, ow, kh, kw, cin),
               xp, None if xp is None else xp[:, pt:pt + h, pl:pl + w, :], z, q)
        if len(plans) < 8:
            plans[b, get_ident()] = got
        return got

    def conv_int8(ins):
        x = ins[0]
        b = x.shape[0]
        buf, dst, xp, inside, z, q = plans.get((b, get_ident())) or plan(b)
        if pointwise:
            np.copyto(dst, x.reshape(-1, cin))
        else:
            if xp is not None:
                inside[...] = x
            else:
                xp = np.ascontiguousarray(x)
            np.copyto(dst, patch_view(xp, kh, kw, sh, sw, dh, dw, oh, ow))
        np.matmul(buf, w1, out=z)
        return exact.finish(z, q).reshape(b, oh, ow, cout)

    conv_int8.exact = exact
    return conv_int8


@register("CONV_2D")
def build_conv2d(op, tensors):
    x_t, w_t, y_t = tensors[op.inputs[0]], tensors[op.inputs[1]], tensors[op.outputs[0]]
    q = _check_int8(op, tensors, op.inputs[0], op.inputs[1], op.outputs[0])
    cout, kh, kw, cin_w = w_t.shape
    cin = x_t.shape[3]
    if cin % cin_w or cout % (cin // cin_w):
        raise unsupported(op, "input has %d channels, %d filters take %d each" % (cin, cout, cin_w))
    groups = cin // cin_w
    if groups > 1 and cin_w == 1:
        # A depthwise conv written as a grouped CONV_2D (onnx2tf does this).
        return _build_depthwise(op, tensors, w_t.data.transpose(1, 2, 3, 0).reshape(kh, kw, cout), cout // cin)
    if groups > 1:
        raise unsupported(op, "grouped convolution with %d groups of %d channels (supported: 1 group, or depthwise)"
                          % (groups, cin_w))
    h, w, sh, sw, dh, dw, oh, ow, pads = _conv_setup(op, x_t, y_t, kh, kw, cout)
    k_terms = kh * kw * cin
    acc_t = _acc_dtype(k_terms) if q else np.float32
    w_mat = w_t.data.astype(acc_t).reshape(cout, k_terms).T.copy()
    bias = _bias(tensors, op, 2, cout, q)
    pointwise = kh == kw == sh == sw == 1
    act = op.options["activation"]

    def patches(x, pad_value, dtype):
        b = x.shape[0]
        if pointwise:
            return x.astype(dtype, copy=False).reshape(b * h * w, cin)
        return im2col(_pad_value(x, pads, pad_value, dtype), kh, kw, sh, sw, dh, dw, oh, ow)

    if q:
        zp_in = qparams(x_t)[1]
        w_int = w_t.data.reshape(cout, k_terms).astype(np.int64)
        bias_in = _fold_zero_point(bias, zp_in, w_int.sum(axis=1))
        exact = _make_exact(x_t, w_t, y_t, act, cout, op, bias_in, 128 * np.abs(w_int).sum(axis=1))
        if exact is not None:
            return _conv_int8_exact(exact, w_int.T, h, w, cin, kh, kw, sh, sw, dh, dw, oh, ow, pads, zp_in,
                                    pointwise)
        requant = _make_requant(x_t, w_t, y_t, act, cout, op, k_terms=k_terms, bias=bias_in)

        def conv_int8(ins):
            x = ins[0]
            acc = patches(x, zp_in, acc_t) @ w_mat
            return requant(acc).reshape(x.shape[0], oh, ow, cout)

        return conv_int8

    fact = float_activation(act)
    add_bias = None if bias is None else ChannelBias(bias)

    def conv_f32(ins):
        x = ins[0]
        y = patches(x, 0.0, np.float32) @ w_mat
        if add_bias is not None:
            add_bias(y)
        if fact is not None:
            fact(y)
        return y.reshape(x.shape[0], oh, ow, cout)

    return conv_f32


@register("DEPTHWISE_CONV_2D")
def build_depthwise(op, tensors):
    x_t, w_t = tensors[op.inputs[0]], tensors[op.inputs[1]]
    _, kh, kw, cout = w_t.shape
    cin = x_t.shape[3]
    if cout % cin:
        raise unsupported(op, "%d output channels is not a multiple of %d input channels" % (cout, cin))
    if w_t.data is None:
        raise unsupported(op, "weights must be constant")
    return _build_depthwise(op, tensors, w_t.data.reshape(kh, kw, cout), cout // cin)


def _build_depthwise(op, tensors, wk, mult):
    """Depthwise conv (DEPTHWISE_CONV_2D, or a CONV_2D with one input channel per group)."""
    x_t, w_t, y_t = tensors[op.inputs[0]], tensors[op.inputs[1]], tensors[op.outputs[0]]
    q = _check_int8(op, tensors, op.inputs[0], op.inputs[1], op.outputs[0])
    kh, kw, cout = wk.shape
    h, w, sh, sw, dh, dw, oh, ow, pads = _conv_setup(op, x_t, y_t, kh, kw, cout)
    acc_t = _acc_dtype(kh * kw) if q else np.float32
    wf = np.ascontiguousarray(wk, dtype=acc_t)
    bias = _bias(tensors, op, 2, cout, q)
    act = op.options["activation"]

    if q:
        zp_in = qparams(x_t)[1]
        taps = wk.reshape(-1, cout).astype(np.int64)
        bias_in = _fold_zero_point(bias, zp_in, taps.sum(axis=0))
        amax = 128 * np.abs(taps).sum(axis=0)
        exact = _make_exact(x_t, w_t, y_t, act, cout, op, bias_in, amax) if amax.max() < (1 << 24) else None
        if exact is not None and kh == 1 and h == 1 and mult == 1 and sw == 1:
            rows = DepthwiseRows(wk[0], exact.scale, w, ow, dw, pads[2:], zp_in)

            def dw1d_int8_exact(ins):
                z = rows(ins[0])  # acc * S, float64
                exact.add_offset(z)
                return exact.finish(z, exact.buffers(z.shape)[1]).reshape(z.shape[0], 1, ow, cout)

            dw1d_int8_exact.exact = exact
            return dw1d_int8_exact
        if exact is not None:
            wf32 = np.ascontiguousarray(wk, dtype=np.float32)  # integer sums below 2**24: exact in float32
            pt, pb, pl, pr = pads
            plans = {}  # (batch size, thread) -> padded input (padding = zero point, written once), views, buffers

            def plan(b):
                xp = np.full((b, h + pt + pb, w + pl + pr, x_t.shape[3]), float(zp_in), np.float32)
                view = patch_view(xp if mult == 1 else np.repeat(xp, mult, axis=3), kh, kw, sh, sw, dh, dw, oh, ow)
                got = (xp, xp[:, pt:pt + h, pl:pl + w, :], view, arena("acc", (b, oh, ow, cout), np.float32),
                       exact.buffers((b, oh, ow, cout)))
                if len(plans) < 8:
                    plans[b, get_ident()] = got
                return got

            def dw_int8_exact(ins):
                x = ins[0]
                xp, inside, view, acc, bufs = plans.get((x.shape[0], get_ident())) or plan(x.shape[0])
                inside[...] = x
                if mult > 1:
                    view = patch_view(np.repeat(xp, mult, axis=3), kh, kw, sh, sw, dh, dw, oh, ow)
                if x.shape[0] == 1:
                    np.einsum("bhwijc,ijc->bhwc", view, wf32, out=acc)
                else:  # window by window: one einsum over a batch picks a slower loop order
                    for i in range(x.shape[0]):
                        np.einsum("hwijc,ijc->hwc", view[i], wf32, out=acc[i])
                return exact(acc, bufs)

            dw_int8_exact.exact = exact
            return dw_int8_exact
        requant = _make_requant(x_t, w_t, y_t, act, cout, op, k_terms=kh * kw, bias=bias_in)

        def dw_int8(ins):
            xp = _pad_value(ins[0], pads, zp_in, acc_t)
            return requant(_depthwise_taps(xp, wf, mult, oh, ow, sh, sw, dh, dw))

        return dw_int8

    fact = float_activation(act)
    add_bias = None if bias is None else ChannelBias(bias)

    def dw_f32(ins):
        y = _depthwise_taps(_pad_value(ins[0], pads, 0.0), wf, mult, oh, ow, sh, sw, dh, dw)
        if add_bias is not None:
            add_bias(y)
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
    _, oh, ow, _ = y_t.shape
    sh, sw = o["stride_h"], o["stride_w"]
    if min(sh, sw) < 1:
        raise unsupported(op, "strides %s must be >= 1" % ((sh, sw),))
    # TFLite pads as if the output were the input of a forward conv.
    _, pt, _ = conv_geometry(oh, kh, sh, 1, o["padding"])
    _, pl, _ = conv_geometry(ow, kw, sw, 1, o["padding"])
    full_h = max((h - 1) * sh + kh, pt + oh)
    full_w = max((w - 1) * sw + kw, pl + ow)
    # Zero-point-corrected inputs (the number of taps that reach an output varies at the edges).
    k_terms = cin * kh * kw
    acc_t = (np.float32 if k_terms <= EXACT_F32_TERMS_OFFSET else np.float64) if q else np.float32
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
        requant = _make_requant(x_t, w_t, y_t, act, cout, op, bias=bias, k_terms=k_terms)

        def tconv_int8(ins):
            xf = ins[2].astype(acc_t)
            if zp_in:
                xf -= acc_t(zp_in)
            return requant(np.ascontiguousarray(scatter(xf)))

        return tconv_int8

    fact = float_activation(act)
    add_bias = None if bias is None else ChannelBias(bias)

    def tconv_f32(ins):
        y = np.ascontiguousarray(scatter(ins[2]))
        if add_bias is not None:
            add_bias(y)
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
        w_int = w_t.data.astype(np.int64)
        bias_in = _fold_zero_point(bias, zp_in, w_int.sum(axis=1))
        exact = _make_exact(x_t, w_t, y_t, act, cout, op, bias_in, 128 * np.abs(w_int).sum(axis=1),
                            single_rounding=True)
        if exact is not None:
            w1 = exact.folded_weights(w_int.T)
            plans = {}

            def plan(rows):
                buf = np.empty((rows, k + 1), np.float64)
                buf[:, k] = 1.0
                got = (buf, buf[:, :k]) + exact.buffers((rows, cout))
                if len(plans) < 8:
                    plans[rows, get_ident()] = got
                return got

            def fc_int8_exact(ins):
                x = ins[0].reshape(-1, k)
                buf, dst, z, q = plans.get((x.shape[0], get_ident())) or plan(x.shape[0])
                np.copyto(dst, x)
                np.matmul(buf, w1, out=z)
                return exact.finish(z, q).reshape((-1,) + out_tail)

            fc_int8_exact.exact = exact
            return fc_int8_exact
        requant = _make_requant(x_t, w_t, y_t, act, cout, op, single_rounding=True, k_terms=k, bias=bias_in)

        def fc_int8(ins):
            acc = ins[0].astype(acc_t).reshape(-1, k) @ w_mat
            return requant(acc).reshape((-1,) + out_tail)

        return fc_int8

    fact = float_activation(act)
    add_bias = None if bias is None else ChannelBias(bias)

    def fc_f32(ins):
        y = ins[0].reshape(-1, k) @ w_mat
        if add_bias is not None:
            add_bias(y)
        if fact is not None:
            fact(y)
        return y.reshape((-1,) + out_tail)

    return fc_f32
