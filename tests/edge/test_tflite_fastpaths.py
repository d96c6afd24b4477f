"""The speed paths of the numpy TFLite runtime against slow twins (numpy only).

Each fast path (integer clamps in the requantiser, tiled per-channel
vectors, the softmax reciprocal table, uint16 ADD tables, in-place
float clamps, contiguous im2col, depthwise einsum) is checked against a
plain computation on seeded inputs, including the values where a shortcut
would go wrong: rounding ties, clamp bounds, broadcasting, NaN.
"""

import os

import numpy as np
import pytest

from fieldpick.edge.tflite.kernels import build_kernel
from fieldpick.edge.tflite.kernels.activation import _softmax_reciprocal
from fieldpick.edge.tflite.kernels.conv import conv_geometry, im2col
from fieldpick.edge.tflite.kernels.quant import (
    _rounding_divide_by_pot,
    _srdhm,
    float_activation,
    mbqm_scalar,
    quantize_multiplier,
)
from fieldpick.edge.tflite.kernels.requant import ChannelBias, Requantizer, channel_tiles
from fieldpick.edge.tflite.reader import Operator, Quantization, Tensor


def _t(index, shape, dtype, data=None, scale=None, zp=None, axis=0):
    q = None
    if scale is not None:
        q = Quantization(np.atleast_1d(np.asarray(scale, np.float32)), np.atleast_1d(np.asarray(zp, np.int64)), axis)
    return Tensor(index, "t%d" % index, tuple(shape), 0, np.dtype(dtype), 0, data, q, tuple(shape))


# ---- requantiser: each clamp path equals TFLite's formula ---------------------------------

@pytest.mark.parametrize("acc_max, acc_bound, lo, int_t", [
    (20000, 20000, -128, np.int16),  # the usual case: |z| < 2**15, float32
    (20000, 20000, -7, np.int16),  # a fused RELU: the clamp's floor is the zero point
    (1 << 22, 1 << 22, -128, np.int32),  # |z| may pass 2**15: int32 clamp, float64
    (1 << 30, 1 << 40, -128, None),  # |z| may pass 2**31: clamp in float
])
def test_requantizer_clamp_paths_equal_the_formula(rng, acc_max, acc_bound, lo, int_t):
    n = 5
    mult = rng.integers(1 << 30, 1 << 31, n)
    shift = rng.integers(-12, -5, n)
    bias = rng.integers(-3000, 3000, n)
    zp = -7
    acc = rng.integers(-acc_max, acc_max, (300, n))
    for c in range(n):  # accumulators on each channel's rounding ties
        step = 2.0 ** (31 - shift[c]) / mult[c]
        acc[:60, c] = np.round((np.arange(-30, 30) + 0.5) * step - bias[c]).astype(np.int64)
    rq = Requantizer(mult, shift, zp, lo, 127, bias=bias, acc_bound=acc_bound)
    assert rq.int_t is int_t
    got = rq(acc.astype(np.float64 if acc_max > (1 << 24) else np.float32))
    want = [[max(lo, min(127, mbqm_scalar(int(a) + int(bias[c]), int(mult[c]), int(shift[c])) + zp))
             for c, a in enumerate(row)] for row in acc]
    np.testing.assert_array_equal(got, np.array(want, np.int8))


@pytest.mark.parametrize("rows, n, g", [(1500, 32, 30), (200, 6, 100), (7, 16, 7), (375, 64, 15), (3000, 3, 300)])
def test_channel_tiles_use_the_largest_divisor_within_1024(rows, n, g):
    v = np.arange(n, dtype=np.float32)
    (t,) = channel_tiles((v,), rows * n, {})
    assert t.size == g * n
    np.testing.assert_array_equal(t.reshape(g, n), np.broadcast_to(v, (g, n)))


@pytest.mark.parametrize("contiguous", [True, False])
def test_channel_bias_adds_in_place(rng, contiguous):
    y = rng.standard_normal((2, 1, 30, 8)).astype(np.float32)
    if not contiguous:
        y = y[:, :, ::2, :]
    bias = rng.standard_normal(8).astype(np.float32)
    want = y + bias
    got = ChannelBias(bias)(y)
    assert got is y
    np.testing.assert_array_equal(y, want)


# ---- int8 softmax: the reciprocal table equals the Newton-Raphson steps -----------------

def _softmax_direct(x, scale):
    """The kernel's arithmetic without the table (TFLite's reference, gemmlowp fixed point)."""
    x_t = _t(0, x.shape, "i1", scale=scale, zp=0)
    y_t = _t(1, x.shape, "i1", scale=1 / 256, zp=-128)
    k = build_kernel(Operator(0, 25, "SOFTMAX", 1, (0,), (1,), {"beta": 1.0}), [x_t, y_t])
    v = x.astype(np.int64)
    d = v.max(axis=-1, keepdims=True) - v
    total = k.acc_table[d].sum(axis=-1, keepdims=True)
    recip, over = _softmax_reciprocal(total)
    out = _rounding_divide_by_pot(_srdhm(recip, k.exp_table[d]), over + 31 - 8) - 128
    out = np.where(d <= -k.diff_min, out, -128)
    return k, np.clip(out, -128, 127).astype(np.int8)


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("scale", [0.01, 0.1, 0.7])
def test_tabled_softmax_equals_direct_reciprocal(rng, n, scale):
    x = rng.integers(-128, 128, (400, n)).astype(np.int8)
    x[:3] = [[-128] * n, [127] * n, [127] + [-128] * (n - 1)]  # equal rows, the widest gap
    kernel, want = _softmax_direct(x, scale)
    assert kernel.totals is not None  # the table path is the one under test
    np.testing.assert_array_equal(kernel([x]), want)


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("scale", [0.02, 0.3])
def test_pair_table_softmax_equals_direct_on_every_difference(rng, n, scale):
    # Each output is looked up by its differences to the other values of its row: every
    # difference pair that an int8 row can hold (n = 2: all 65536 rows) and, for n = 3,
    # every row (0, -a, -b) shifted to each end of the int8 range, plus random rows.
    if n == 1:
        x = np.arange(-128, 128, dtype=np.int64)[:, None]
    elif n == 2:
        g = np.arange(-128, 128, dtype=np.int64)
        x = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)
    else:
        a, b = np.meshgrid(np.arange(0, 256, 3), np.arange(0, 256, 5), indexing="ij")
        base = np.stack([np.zeros(a.size, np.int64), -a.reshape(-1), -b.reshape(-1)], axis=1)
        low = base - base.min(axis=1, keepdims=True) - 128  # lowest value at -128
        high = base - base.max(axis=1, keepdims=True) + 127  # highest at 127
        perm = np.concatenate([low, high[:, ::-1], high[:, [1, 0, 2]]])
        x = np.concatenate([perm, rng.integers(-128, 128, (20000, 3))])
    x = x.astype(np.int8)
    kernel, want = _softmax_direct(x, scale)
    assert kernel.pair_table is not None
    np.testing.assert_array_equal(kernel([x]), want)
    np.testing.assert_array_equal(kernel([x.reshape((1,) + x.shape)])[0], want)  # batch axis


def test_softmax_of_four_classes_runs_without_the_table():
    x = np.zeros((2, 4), np.int8)
    kernel, want = _softmax_direct(x, 0.1)
    assert kernel.totals is None and kernel.pair_table is None
    np.testing.assert_array_equal(kernel([x]), want)
    assert want.reshape(-1).tolist() == [-64] * 8  # 1/4 = 64/256


# ---- int8 -> int8 QUANTIZE (a requantisation) as a 256-entry table ----------------------

@pytest.mark.parametrize("sx, zx, sy, zy", [(1 / 256, -128, 0.0039, -128), (0.05, 3, 0.02, -9), (0.02, -9, 0.05, 3)])
def test_int8_requantize_table_equals_the_formula(sx, zx, sy, zy):
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 2, 128)
    tensors = [_t(0, x.shape, "i1", scale=sx, zp=zx), _t(1, x.shape, "i1", scale=sy, zp=zy)]
    kernel = build_kernel(Operator(0, 114, "QUANTIZE", 1, (0,), (1,), {}), tensors)
    assert hasattr(kernel, "table")
    m, s = quantize_multiplier(float(np.float32(sx)) / float(np.float32(sy)))
    want = [max(-128, min(127, mbqm_scalar(int(v) - zx, m, s) + zy)) for v in x.reshape(-1)]
    np.testing.assert_array_equal(kernel([x]).reshape(-1), np.array(want, np.int8))


# ---- int8 ADD through uint16 tables, with and without broadcasting ----------------------

def _add_scalar(a, b, sa, za, sb, zb, sy, zy):
    twice = float(np.float32(2) * max(np.float32(sa), np.float32(sb)))
    m1, s1 = quantize_multiplier(float(np.float32(sa)) / twice)
    m2, s2 = quantize_multiplier(float(np.float32(sb)) / twice)
    mo, so = quantize_multiplier(twice / ((1 << 20) * float(np.float32(sy))))
    ra = mbqm_scalar((int(a) - za) << 20, m1, s1)
    rb = mbqm_scalar((int(b) - zb) << 20, m2, s2)
    return max(-128, min(127, mbqm_scalar(ra + rb, mo, so) + zy))


@pytest.mark.parametrize("b_shape", [(1, 1, 6, 4), (1, 1, 1, 4), (4,)])
def test_int8_add_equals_the_reference_formula(rng, b_shape):
    a = rng.integers(-128, 128, (1, 1, 6, 4)).astype(np.int8)
    b = rng.integers(-128, 128, b_shape).astype(np.int8)
    q = (0.05, 3, 0.02, -9, 0.06, -1)  # scale and zero point of a, b, out
    tensors = [_t(0, a.shape, "i1", scale=q[0], zp=q[1]), _t(1, b.shape, "i1", scale=q[2], zp=q[3]),
               _t(2, a.shape, "i1", scale=q[4], zp=q[5])]
    got = build_kernel(Operator(0, 0, "ADD", 1, (0, 1), (2,), {"activation": 0}), tensors)([a, b])
    aa, bb = np.broadcast_arrays(a, b)
    want = np.array([_add_scalar(x, y, *q) for x, y in zip(aa.reshape(-1), bb.reshape(-1))], np.int8)
    np.testing.assert_array_equal(got.reshape(-1), want)


# ---- float32 fused activations (in place) --------------------------------

@pytest.mark.parametrize("act, want", [
    (1, [0.0, 0.0, 0.5, 7.0]),  # RELU
    (3, [0.0, 0.0, 0.5, 6.0]),  # RELU6
    (2, [-1.0, -0.0, 0.5, 1.0]),  # RELU_N1_TO_1
])
def test_float_activations_clamp_in_place(act, want):
    y = np.array([-2.0, -0.0, 0.5, 7.0, -np.inf, np.nan], np.float32)
    got = float_activation(act)(y)
    assert got is y
    np.testing.assert_array_equal(y[:4], want)
    assert y[4] == want[0]  # -inf clamps to the floor
    assert np.isnan(y[5])  # NaN passes through


# ---- convolution building blocks --------------------------------------------------------

def test_im2col_is_contiguous_and_holds_the_patches():
    x = np.arange(2 * 1 * 6 * 2, dtype=np.float32).reshape(2, 1, 6, 2)
    p = im2col(x, 1, 3, 1, 2, 1, 1, 1, 2)  # k=3, stride 2: patches start at samples 0 and 2
    assert p.flags.c_contiguous and p.shape == (4, 6)
    assert p[1].tolist() == [4.0, 5.0, 6.0, 7.0, 8.0, 9.0]  # window 0, samples 2..4, both channels
    assert p[2].tolist() == x[1, 0, 0:3].reshape(-1).tolist()


@pytest.mark.parametrize("stride, dilation, mult", [(1, 1, 1), (2, 1, 2), (1, 2, 3), (3, 2, 1)])
def test_float_depthwise_equals_loops(rng, stride, dilation, mult):
    c, k, n = 3, 4, 17
    cout = c * mult
    x = rng.standard_normal((2, 1, n, c)).astype(np.float32)
    wd = rng.standard_normal((1, 1, k, cout)).astype(np.float32)
    bias = rng.standard_normal(cout).astype(np.float32)
    out_n, pb, _ = conv_geometry(n, k, stride, dilation, 0)
    tensors = [_t(0, (1, 1, n, c), "f4"), _t(1, wd.shape, "f4", wd), _t(2, bias.shape, "f4", bias),
               _t(3, (1, 1, out_n, cout), "f4")]
    op = Operator(0, 4, "DEPTHWISE_CONV_2D", 1, (0, 1, 2), (3,), {
        "padding": 0, "stride_w": stride, "stride_h": 1, "depth_multiplier": mult, "activation": 0,
        "dilation_w": dilation, "dilation_h": 1})
    got = build_kernel(op, tensors)([x, wd, bias])
    want = np.zeros((2, 1, out_n, cout))
    for b in range(2):
        for o in range(out_n):
            for co in range(cout):
                s = float(bias[co])
                for j in range(k):
                    t = o * stride - pb + j * dilation
                    if 0 <= t < n:
                        s += float(x[b, 0, t, co // mult]) * float(wd[0, 0, j, co])
                want[b, 0, o, co] = s
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


# ---- the shipped default model: fused steps and fast conv paths against plain integer math ---

DEFAULT_TFLITE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                              "edge", "models", "fieldpick-default.tflite")


def _plain_int8_conv(op, tensors, x):
    """TFLite's int8 CONV_2D / DEPTHWISE_CONV_2D on one 1-D input, in int64 numpy (no floats)."""
    from fieldpick.edge.tflite.kernels.quant import (
        activation_range,
        multiply_by_quantized_multiplier,
        qparams,
    )
    from fieldpick.edge.tflite.kernels.requant import requant_params as _requant_params

    x_t, w_t, y_t = (tensors[op.inputs[0]], tensors[op.inputs[1]], tensors[op.outputs[0]])
    o = op.options
    w = w_t.data.astype(np.int64)
    if op.name == "DEPTHWISE_CONV_2D":
        w = w[0].transpose(2, 0, 1)[:, :, :, None]  # (C, 1, KW, 1): one input channel per filter
    cout, _, kw, cin_w = w.shape
    n, cin = x.shape[2], x.shape[3]
    out_n, pb, pa = conv_geometry(n, kw, o["stride_w"], o["dilation_w"], o["padding"])
    zx = qparams(x_t)[1]
    xp = np.full((x.shape[0], n + pb + pa, cin), zx, np.int64)
    xp[:, pb:pb + n] = x[:, 0]
    idx = np.arange(out_n)[:, None] * o["stride_w"] + np.arange(kw)[None, :] * o["dilation_w"]
    patches = xp[:, idx, :] - zx  # (B, out, KW, Cin)
    if cin_w == 1 and cin > 1:  # depthwise: filter k sees input channel k // (cout // cin)
        acc = np.einsum("botk,kt->bok", patches.repeat(cout // cin, axis=3), w[:, 0, :, 0])
    else:
        acc = np.einsum("botc,ktc->bok", patches, w[:, 0])
    bias = tensors[op.inputs[2]].data.astype(np.int64) if len(op.inputs) > 2 and op.inputs[2] >= 0 else 0
    mult, shift = _requant_params(x_t, w_t, y_t, cout)
    lo, hi = activation_range(o["activation"], y_t)
    q = multiply_by_quantized_multiplier(acc + bias, mult, shift) + qparams(y_t)[1]
    return np.clip(q, lo, hi).astype(np.int8)[:, None]


def test_shipped_default_fast_paths_equal_plain_integer_math(rng):
    """Every conv of the station's model (fast einsum rows, float64 products) equals int64 TFLite
    arithmetic on its real inputs, and the compiled steps (composed tables) equal the operators
    run one by one: the picks cannot change."""
    from fieldpick.edge.tflite.interpreter import Interpreter

    if not os.path.exists(DEFAULT_TFLITE):
        pytest.skip("no shipped default model at %s" % DEFAULT_TFLITE)
    it = Interpreter(DEFAULT_TFLITE)
    eng = it._engine
    amp = np.array([0.05, 1.0, 3.0, 40.0])[:, None, None]  # 40: the int8 input saturates
    xs = it.quantize_input((rng.standard_normal((4, 3072, 3)) * amp).astype(np.float32))
    values = {eng.sg.inputs[0]: xs}
    checked = 0
    for k, op in enumerate(eng.sg.operators):
        ins = [None if i < 0 else (values[i] if eng.tensors[i].data is None else eng.tensors[i].data)
               for i in op.inputs]
        values[op.outputs[0]] = eng.kernels[k](ins)
        if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D") and ins[0].ndim == 4 and ins[0].shape[1] == 1:
            np.testing.assert_array_equal(values[op.outputs[0]], _plain_int8_conv(op, eng.tensors, ins[0]))
            checked += 1
    assert checked >= 15
    assert len(eng._steps) < len(eng.sg.operators)  # some table lookups were composed
    for b in range(len(xs)):
        for got, o in zip(it.run(xs[b:b + 1]), eng.sg.outputs):
            np.testing.assert_array_equal(got, values[o][b:b + 1])
    for got, o in zip(it.run(xs), eng.sg.outputs):
        np.testing.assert_array_equal(got, values[o])
