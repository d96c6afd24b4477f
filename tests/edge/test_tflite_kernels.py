"""Kernels of the numpy TFLite runtime against slow, obviously correct twins.

Fixed-point helpers are checked on hand-worked values, the fast int8
requantiser against TFLite's formula on random and tie-crafted
accumulators, and the int8 convolutions against plain loops.  numpy only.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldpick.edge.tflite.interpreter import plan_memory
from fieldpick.edge.tflite.kernels import build_kernel
from fieldpick.edge.tflite.kernels.conv import conv_geometry
from fieldpick.edge.tflite.kernels.quant import (
    mbqm_scalar,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    round_half_away,
)
from fieldpick.edge.tflite.kernels.requant import Requantizer
from fieldpick.edge.tflite.reader import Operator, Quantization, Tensor


@pytest.mark.parametrize("m, want", [
    (0.5, (1 << 30, 0)),
    (1.0, (1 << 30, 1)),
    (0.75, (3 << 29, 0)),
    (0.0, (0, 0)),
    (2.0 ** -40, (0, 0)),  # below 2**-31: TFLite flushes to zero
    (1.0 - 2.0 ** -33, (1 << 30, 1)),  # the significand rounds up to 2**31: renormalised
])
def test_quantize_multiplier(m, want):
    assert quantize_multiplier(m) == want


@pytest.mark.parametrize("x, m, shift, want", [
    (3, 1 << 30, 0, 2),  # 1.5 rounds half up in the high multiply
    (-3, 1 << 30, 0, -1),  # -1.5 -> -1 (half up), not -2
    (5, 1 << 30, -1, 2),  # 2.5 -> 3, then 3 / 2 = 1.5 -> 2 (half away): double rounding
    (-5, 1 << 30, -1, -1),  # -2.5 -> -2, then -1
    (100, 1 << 30, 2, 200),  # left shift
])
def test_multiply_by_quantized_multiplier_by_hand(x, m, shift, want):
    assert mbqm_scalar(x, m, shift) == want
    assert multiply_by_quantized_multiplier(np.array([x]), m, shift)[0] == want


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-(1 << 31) + 1, (1 << 31) - 1), min_size=1, max_size=20),
       st.integers(1 << 30, (1 << 31) - 1), st.integers(-31, 0))
def test_vectorised_mbqm_equals_the_scalar_twin(xs, m, shift):
    got = multiply_by_quantized_multiplier(np.array(xs, np.int64), m, shift)
    assert got.tolist() == [mbqm_scalar(x, m, shift) for x in xs]


def test_round_half_away_from_zero():
    v = np.array([0.5, -0.5, 1.5, 2.5, -2.5, 0.49999997, -0.49999997, 3.0], np.float32)
    assert round_half_away(v).tolist() == [1, -1, 2, 3, -3, 0, 0, 3]
    assert round_half_away(v.astype(np.float64)).tolist() == [1, -1, 2, 3, -3, 0, 0, 3]


def test_round_half_away_float32_fast_path_equals_the_exact_one():
    # float32 takes |v| + 0.5 in float64; every float32 bit pattern must round as the trunc/frac path does
    rng = np.random.default_rng(5)
    bits = rng.integers(0, 2 ** 32, 200_000, dtype=np.uint64).astype(np.uint32)
    v = np.concatenate([bits.view(np.float32), (rng.integers(-600, 600, 5000) / 2).astype(np.float32),
                        np.float32([2 ** 23 + 1, -(2 ** 23 + 1), 2 ** 24 + 2, 3.4e38, -0.0, 1e-45, np.inf, -np.inf])])
    v = v[~np.isnan(v)]  # NaN compares unequal to itself
    t = np.trunc(v.astype(np.float64))
    with np.errstate(invalid="ignore"):  # inf - inf
        frac = v - t
    want = t + (frac >= 0.5) - (frac <= -0.5)
    got = round_half_away(v)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, want)


def _exact(acc, bias, mult, shift, zp, single):
    out = []
    n = mult.size
    flat = acc.reshape(-1, n).astype(np.int64) + (0 if bias is None else bias)
    for row in flat:
        r = []
        for c, a in enumerate(row):
            if single:
                q = (int(a) * int(mult[c]) + (1 << (30 - int(shift[c])))) >> (31 - int(shift[c]))
            else:
                q = mbqm_scalar(int(a), int(mult[c]), int(shift[c]))
            r.append(max(-128, min(127, q + zp)))
        out.append(r)
    return np.array(out).reshape(acc.shape)


@pytest.mark.parametrize("single", [False, True])
def test_fast_requantizer_equals_tflite_formula_even_on_ties(single, rng):
    n = 6
    mult = rng.integers(1 << 30, 1 << 31, n)
    shift = rng.integers(-12, -5, n)
    bias = rng.integers(-3000, 3000, n)
    zp = -7
    # Accumulators: random, plus ones placed exactly on the rounding ties of each channel.
    acc = rng.integers(-20000, 20000, (200, n))
    for c in range(n):
        step = 2.0 ** (31 - shift[c]) / mult[c]  # accumulator units per output quantum
        ties = np.round((np.arange(-40, 40) + 0.5) * step - bias[c]).astype(np.int64)
        acc[:80, c] = ties
    rq = Requantizer(mult, shift, zp, -128, 127, bias=bias, single_rounding=single, acc_bound=20000)
    got = rq(acc.astype(np.float32))
    np.testing.assert_array_equal(got, _exact(acc, bias, mult, shift, zp, single))


@pytest.mark.parametrize("size, k, stride, dilation, padding, want", [
    (64, 7, 2, 1, 0, (32, 2, 3)),  # SAME: total padding 5, the odd one after
    (64, 7, 1, 1, 1, (58, 0, 0)),  # VALID
    (3000, 5, 2, 1, 0, (1500, 1, 2)),
    (16, 3, 1, 2, 0, (16, 2, 2)),  # dilated: effective kernel 5
])
def test_conv_geometry(size, k, stride, dilation, padding, want):
    assert conv_geometry(size, k, stride, dilation, padding) == want


def test_memory_plan_reuses_bytes_of_dead_tensors():
    # Three tensors: 0 lives over ops 0-1, 1 over 1-2, 2 over 2-3; 0 and 2 can share.
    offsets, peak = plan_memory([100, 50, 100], [0, 1, 2], [1, 2, 3])
    assert peak == 150
    assert offsets[0] == offsets[2]


# ---- int8 convolutions against loops -------------------------------------------------------

def _t(index, shape, dtype, data=None, scale=None, zp=None, axis=0):
    q = None
    if scale is not None:
        q = Quantization(np.atleast_1d(np.asarray(scale, np.float32)), np.atleast_1d(np.asarray(zp, np.int64)), axis)
    return Tensor(index, "t%d" % index, tuple(shape), 0, np.dtype(dtype), 0, data, q, tuple(shape))


def _conv_case(rng, w_len, cin, cout, k, per_channel=True):
    x = rng.integers(-128, 128, (1, 1, w_len, cin)).astype(np.int8)
    w = rng.integers(-127, 128, (cout, 1, k, cin)).astype(np.int8)
    bias = rng.integers(-2000, 2000, cout).astype(np.int32)
    ws = rng.uniform(0.002, 0.01, cout if per_channel else 1)
    return x, w, bias, ws


def _ref_conv1d(x, w, bias, sx, zx, ws, sy, zy, stride, dilation, same, act_lo=-128):
    _, _, n, cin = x.shape
    cout, _, k, _ = w.shape
    out_n, pb, _ = conv_geometry(n, k, stride, dilation, 0 if same else 1)
    ws = np.broadcast_to(ws, (cout,))
    out = np.zeros((1, 1, out_n, cout), np.int64)
    for o in range(out_n):
        for c in range(cout):
            acc = int(bias[c])
            for j in range(k):
                t = o * stride - pb + j * dilation
                if 0 <= t < n:
                    for i in range(cin):
                        acc += (int(x[0, 0, t, i]) - zx) * int(w[c, 0, j, i])
            m, s = quantize_multiplier(float(np.float32(sx)) * float(np.float32(ws[c])) / float(np.float32(sy)))
            out[0, 0, o, c] = max(act_lo, min(127, mbqm_scalar(acc, m, s) + zy))
    return out.astype(np.int8)


@pytest.mark.parametrize("stride, dilation, same, relu", [(1, 1, True, False), (2, 1, True, True), (1, 2, False, False), (3, 1, False, True)])
def test_int8_conv2d_equals_loops(rng, stride, dilation, same, relu):
    x, w, bias, ws = _conv_case(rng, 23, 3, 5, 4)
    sx, zx, sy, zy = 0.05, -3, 0.08, 10
    out_n = conv_geometry(23, 4, stride, dilation, 0 if same else 1)[0]
    tensors = [_t(0, x.shape, "i1", scale=sx, zp=zx), _t(1, w.shape, "i1", w, ws, np.zeros(5), 0),
               _t(2, bias.shape, "i4", bias, ws * sx, np.zeros(5)), _t(3, (1, 1, out_n, 5), "i1", scale=sy, zp=zy)]
    op = Operator(0, 3, "CONV_2D", 1, (0, 1, 2), (3,), {"padding": 0 if same else 1, "stride_w": stride, "stride_h": 1,
                                                      "activation": 1 if relu else 0, "dilation_w": dilation, "dilation_h": 1})
    got = build_kernel(op, tensors)([x, w, bias])
    lo = max(-128, zy) if relu else -128
    np.testing.assert_array_equal(got, _ref_conv1d(x, w, bias, sx, zx, ws, sy, zy, stride, dilation, same, lo))


@pytest.mark.parametrize("stride", [1, 2])
def test_int8_depthwise_equals_loops(rng, stride):
    c, k, n = 4, 5, 19
    x = rng.integers(-128, 128, (1, 1, n, c)).astype(np.int8)
    wd = rng.integers(-127, 128, (1, 1, k, c)).astype(np.int8)
    bias = rng.integers(-500, 500, c).astype(np.int32)
    ws = rng.uniform(0.002, 0.01, c)
    sx, zx, sy, zy = 0.04, 5, 0.03, -2
    out_n = conv_geometry(n, k, stride, 1, 0)[0]
    tensors = [_t(0, x.shape, "i1", scale=sx, zp=zx), _t(1, wd.shape, "i1", wd, ws, np.zeros(c), 3),
               _t(2, bias.shape, "i4", bias, ws * sx, np.zeros(c)), _t(3, (1, 1, out_n, c), "i1", scale=sy, zp=zy)]
    op = Operator(0, 4, "DEPTHWISE_CONV_2D", 1, (0, 1, 2), (3,), {"padding": 0, "stride_w": stride, "stride_h": 1,
                                                                "depth_multiplier": 1, "activation": 0,
                                                                "dilation_w": 1, "dilation_h": 1})
    got = build_kernel(op, tensors)([x, wd, bias])
    # A depthwise conv is a conv whose filter c sees only channel c.
    w_full = np.zeros((c, 1, k, c), np.int8)
    for ch in range(c):
        w_full[ch, 0, :, ch] = wd[0, 0, :, ch]
    np.testing.assert_array_equal(got, _ref_conv1d(x, w_full, bias, sx, zx, ws, sy, zy, stride, 1, True))


@pytest.mark.parametrize("kind", ["CONV_2D", "DEPTHWISE_CONV_2D"])
@pytest.mark.parametrize("sy, relu, exact", [(0.08, False, True), (0.08, True, True), (4.0, False, True),
                                              (4.0, True, False)])
def test_int8_conv_exact_and_fallback_paths_equal_loops(rng, kind, sy, relu, exact):
    # sy = 4: multipliers of 2**-15..2**-12; with a RELU (the floor form, whose offset holds
    # zp + 256) that needs more than 52 bits, so the kernel falls back to the float32 + int64
    # requantiser; without it (the sign form) float64 still holds it.  All equal the loops.
    c, k, n = 4, 5, 40
    x = rng.integers(-128, 128, (1, 1, n, c)).astype(np.int8)
    ws = rng.uniform(0.002, 0.01, c)
    bias = rng.integers(-500, 500, c).astype(np.int32)
    sx, zx, zy = 0.05, -3, 4
    if kind == "CONV_2D":
        w = rng.integers(-127, 128, (c, 1, k, c)).astype(np.int8)
        w_full, opts, code, axis = w, {}, 3, 0
    else:
        w = rng.integers(-127, 128, (1, 1, k, c)).astype(np.int8)
        w_full = np.zeros((c, 1, k, c), np.int8)
        for ch in range(c):
            w_full[ch, 0, :, ch] = w[0, 0, :, ch]
        opts, code, axis = {"depth_multiplier": 1}, 4, 3
    tensors = [_t(0, x.shape, "i1", scale=sx, zp=zx), _t(1, w.shape, "i1", w, ws, np.zeros(c), axis),
               _t(2, bias.shape, "i4", bias, ws * sx, np.zeros(c)), _t(3, (1, 1, n, c), "i1", scale=sy, zp=zy)]
    op = Operator(0, code, kind, 1, (0, 1, 2), (3,), dict(opts, padding=0, stride_w=1, stride_h=1,
                                                          activation=1 if relu else 0, dilation_w=1, dilation_h=1))
    kernel = build_kernel(op, tensors)
    assert hasattr(kernel, "exact") == exact
    want = _ref_conv1d(x, w_full, bias, sx, zx, ws, sy, zy, 1, 1, True, act_lo=zy if relu else -128)
    assert len(np.unique(want)) >= 4  # small scales still leave several output values
    np.testing.assert_array_equal(kernel([x, w, bias]), want)


def test_int8_transpose_conv_equals_loops(rng):
    cin, cout, k, n, s = 3, 2, 4, 6, 2
    x = rng.integers(-128, 128, (1, 1, n, cin)).astype(np.int8)
    w = rng.integers(-127, 128, (cout, 1, k, cin)).astype(np.int8)
    bias = rng.integers(-500, 500, cout).astype(np.int32)
    ws = rng.uniform(0.002, 0.01, cout)
    sx, zx, sy, zy = 0.05, 4, 0.07, -1
    out_n = n * s
    tensors = [_t(0, (4,), "i4", np.array([1, 1, out_n, cout], np.int32)), _t(1, w.shape, "i1", w, ws, np.zeros(cout), 0),
               _t(2, x.shape, "i1", scale=sx, zp=zx), _t(3, bias.shape, "i4", bias, ws * sx, np.zeros(cout)),
               _t(4, (1, 1, out_n, cout), "i1", scale=sy, zp=zy)]
    op = Operator(0, 67, "TRANSPOSE_CONV", 1, (0, 1, 2, 3), (4,), {"padding": 0, "stride_w": s, "stride_h": 1, "activation": 0})
    got = build_kernel(op, tensors)([None, w, x, bias])
    pad = conv_geometry(out_n, k, s, 1, 0)[1]
    want = np.zeros((1, 1, out_n, cout), np.int8)
    for c in range(cout):
        m, sh = quantize_multiplier(float(np.float32(sx)) * float(np.float32(ws[c])) / float(np.float32(sy)))
        for o in range(out_n):
            acc = int(bias[c])
            for i in range(n):
                j = o + pad - i * s  # output o receives input i through tap j
                if 0 <= j < k:
                    acc += sum((int(x[0, 0, i, q]) - zx) * int(w[c, 0, j, q]) for q in range(cin))
            want[0, 0, o, c] = max(-128, min(127, mbqm_scalar(acc, m, sh) + zy))
    np.testing.assert_array_equal(got, want)


def test_int8_average_pool_rounds_half_away_and_skips_padding():
    x = np.array([1, 2, -1, -2, 1, 2, 2], np.int8).reshape(1, 1, 7, 1)
    tensors = [_t(0, x.shape, "i1", scale=0.1, zp=0), _t(1, (1, 1, 4, 1), "i1", scale=0.1, zp=0)]
    op = Operator(0, 1, "AVERAGE_POOL_2D", 1, (0,), (1,), {"padding": 0, "stride_w": 2, "stride_h": 1,
                                                         "filter_w": 2, "filter_h": 1, "activation": 0})
    got = build_kernel(op, tensors)([x]).reshape(-1).tolist()
    # windows [1 2] -> 1.5 -> 2; [-1 -2] -> -1.5 -> -2; [1 2] -> 2; [2] alone (the rest is padding) -> 2
    assert got == [2, -2, 2, 2]


def test_int8_softmax_of_equal_inputs_is_uniform():
    x = np.full((1, 2, 4), 17, np.int8)
    tensors = [_t(0, x.shape, "i1", scale=0.1, zp=0), _t(1, x.shape, "i1", scale=1 / 256, zp=-128)]
    op = Operator(0, 25, "SOFTMAX", 1, (0,), (1,), {"beta": 1.0})
    got = build_kernel(op, tensors)([x])
    assert got.reshape(-1).tolist() == [-64] * 8  # 0.25 = 64/256 -> -128 + 64


def test_int8_softmax_is_within_a_quantum_of_float(rng):
    x = rng.integers(-128, 128, (200, 3)).astype(np.int8)
    scale = 0.05
    tensors = [_t(0, x.shape, "i1", scale=scale, zp=0), _t(1, x.shape, "i1", scale=1 / 256, zp=-128)]
    got = build_kernel(Operator(0, 25, "SOFTMAX", 1, (0,), (1,), {"beta": 1.0}), tensors)([x]).astype(int)
    v = x * scale
    p = np.exp(v - v.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    assert np.abs(got - np.clip(np.round(p * 256) - 128, -128, 127)).max() <= 1


@pytest.mark.parametrize("begin, end, strides, masks, index", [
    ([0, 2, 0], [1, -2, 3], [1, 2, 1], (0, 0, 0), np.s_[:, 2:-2:2, 0:3]),
    ([0, 0, 1], [1, 5, 0], [1, 1, 1], (0b100, 0b100, 0), np.s_[:, 0:5, :]),
    ([0, -1, 0], [1, 0, 3], [1, -1, 1], (0, 0b010, 0), np.s_[:, ::-1, :]),
    ([0, 3, 0], [1, 4, 3], [1, 1, 1], (0, 0, 0b010), np.s_[:, 3, :]),
])
def test_strided_slice_follows_numpy(begin, end, strides, masks, index):
    x = np.arange(1 * 10 * 3, dtype=np.float32).reshape(1, 10, 3)
    want = x[index]
    tensors = [_t(0, x.shape, "f4"), _t(1, (3,), "i4", np.array(begin, np.int32)), _t(2, (3,), "i4", np.array(end, np.int32)),
               _t(3, (3,), "i4", np.array(strides, np.int32)), _t(4, want.shape, "f4")]
    opts = {"begin_mask": masks[0], "end_mask": masks[1], "ellipsis_mask": 0, "new_axis_mask": 0,
            "shrink_axis_mask": masks[2], "offset": 0}
    got = build_kernel(Operator(0, 45, "STRIDED_SLICE", 1, (0, 1, 2, 3), (4,), opts), tensors)([x, None, None, None])
    np.testing.assert_array_equal(got, want)


def test_pad_refills_its_kept_buffer_on_every_call(rng):
    # PAD writes into a buffer it keeps per input shape (padding written once): each call must
    # still return its own input padded with the zero point, for any batch size.
    shape = (1, 5, 2)
    pads = np.array([[0, 0], [2, 1], [0, 0]], np.int32)
    tensors = [_t(0, shape, "i1", scale=0.1, zp=-7), _t(1, (3, 2), "i4", pads), _t(2, (1, 8, 2), "i1", scale=0.1, zp=-7)]
    kernel = build_kernel(Operator(0, 34, "PAD", 1, (0, 1), (2,), {}), tensors)
    assert kernel.reuses_output
    for b in (1, 3, 1):
        x = rng.integers(-128, 128, (b,) + shape[1:]).astype(np.int8)
        got = kernel([x, pads])
        np.testing.assert_array_equal(got, np.pad(x, [(0, 0), (2, 1), (0, 0)], constant_values=-7))


def test_model_outputs_never_share_a_kept_buffer(rng):
    # An engine whose kernels keep buffers copies the model's outputs before returning them.
    import os

    from fieldpick.edge.tflite import Interpreter

    it = Interpreter(os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "tiny_int8.tflite"))
    eng = it._engine
    kernel, getters, out, free, k = eng._steps[-1]
    kept = {}

    def keeping(ins):
        y = kernel(ins)
        buf = kept.setdefault(y.shape, np.empty_like(y))
        buf[...] = y
        return buf

    eng._steps[-1] = (keeping, getters, out, free, k)
    x1, x2 = (rng.integers(-128, 128, (1, 16, 3)).astype(np.int8) for _ in range(2))
    eng.copy_outputs = True
    first = it.run(x1)[0]
    want = first.copy()
    it.run(x2)
    np.testing.assert_array_equal(first, want)
    eng.copy_outputs = False  # the check above is the copy's doing: without it the buffer leaks out
    assert np.shares_memory(it.run(x1)[0], kept[first.shape])


@pytest.mark.parametrize("stride, dilation, same, relu, batch", [(1, 1, True, False, 1), (1, 2, True, True, 3),
                                                                 (1, 3, False, False, 2), (2, 1, True, True, 3),
                                                                 (2, 2, False, False, 2)])
def test_int8_depthwise_rows_and_batches_equal_loops(rng, stride, dilation, same, relu, batch):
    # Stride 1 runs as one einsum over contiguous rows (kernels/depthwise.py), strided ones
    # window by window over patches; every window of a batch equals the loops.
    c, k, n = 5, 7, 40
    x = rng.integers(-128, 128, (batch, 1, n, c)).astype(np.int8)
    wd = rng.integers(-127, 128, (1, 1, k, c)).astype(np.int8)
    bias = rng.integers(-500, 500, c).astype(np.int32)
    ws = rng.uniform(0.002, 0.01, c)
    sx, zx, sy, zy = 0.04, 5, 0.05, -2
    out_n = conv_geometry(n, k, stride, dilation, 0 if same else 1)[0]
    tensors = [_t(0, (1, 1, n, c), "i1", scale=sx, zp=zx), _t(1, wd.shape, "i1", wd, ws, np.zeros(c), 3),
               _t(2, bias.shape, "i4", bias, ws * sx, np.zeros(c)), _t(3, (1, 1, out_n, c), "i1", scale=sy, zp=zy)]
    op = Operator(0, 4, "DEPTHWISE_CONV_2D", 1, (0, 1, 2), (3,), {
        "padding": 0 if same else 1, "stride_w": stride, "stride_h": 1, "depth_multiplier": 1,
        "activation": 1 if relu else 0, "dilation_w": dilation, "dilation_h": 1})
    kernel = build_kernel(op, tensors)
    assert hasattr(kernel, "exact")
    w_full = np.zeros((c, 1, k, c), np.int8)
    for ch in range(c):
        w_full[ch, 0, :, ch] = wd[0, 0, :, ch]
    for _ in range(2):  # the second call reuses the buffers planned by the first
        got = kernel([x, wd, bias])
        for b in range(batch):
            want = _ref_conv1d(x[b:b + 1], w_full, bias, sx, zx, ws, sy, zy, stride, dilation, same,
                               act_lo=max(-128, zy) if relu else -128)
            np.testing.assert_array_equal(got[b:b + 1], want)
