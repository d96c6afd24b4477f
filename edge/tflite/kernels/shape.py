"""Data movement: RESHAPE, SQUEEZE, EXPAND_DIMS, TRANSPOSE, PAD, STRIDED_SLICE,
SLICE, GATHER, CONCATENATION, RESIZE_NEAREST_NEIGHBOR.

These copy or index values without arithmetic, so they are exact for any
type.  Shapes are static (taken from the model) except the batch axis 0,
which may hold several windows; an operator that moves or cuts axis 0 is
marked ``batch_safe = False`` and the interpreter then runs one window at a
time.
"""

from __future__ import annotations

import numpy as np

from . import register, unsupported
from .quant import activation_range, qparams, round_half_away

F32 = np.float32


def _const(op, tensors, i, what):
    if len(op.inputs) <= i or op.inputs[i] < 0:
        return None
    t = tensors[op.inputs[i]]
    if t.data is None:
        raise unsupported(op, "%s must be constant (computed shapes are not supported)" % what)
    return np.asarray(t.data).astype(np.int64).reshape(-1)


def _same_quant(op, x, y):
    if x.quant is not None and y.quant is not None and qparams(x) != qparams(y):
        raise unsupported(op, "changes quantisation %s -> %s, which a data-movement operator must not"
                          % (qparams(x), qparams(y)))


def _reshape_to_output(op, tensors):
    x, y = tensors[op.inputs[0]], tensors[op.outputs[0]]
    _same_quant(op, x, y)
    tail = tuple(y.shape[1:])
    batchable = len(x.shape) >= 1 and len(y.shape) >= 1 and x.shape[:1] == y.shape[:1] == (1,)

    def reshape(ins):
        return ins[0].reshape((-1,) + tail)

    reshape.batch_safe = batchable
    return reshape


for _name in ("RESHAPE", "SQUEEZE", "EXPAND_DIMS"):
    register(_name)(_reshape_to_output)


@register("TRANSPOSE")
def build_transpose(op, tensors):
    perm = _const(op, tensors, 1, "the permutation")
    if sorted(perm.tolist()) != list(range(len(perm))):
        raise unsupported(op, "permutation %s is not a permutation of 0..%d" % (perm.tolist(), len(perm) - 1))
    perm = tuple(int(p) for p in perm)

    def transpose(ins):
        return np.ascontiguousarray(ins[0].transpose(perm))

    transpose.batch_safe = perm[0] == 0
    return transpose


@register("PAD")
def build_pad(op, tensors):
    x, y = tensors[op.inputs[0]], tensors[op.outputs[0]]
    _same_quant(op, x, y)
    pads = _const(op, tensors, 1, "the paddings")
    rank = len(x.shape)
    if pads.size != 2 * rank or np.any(pads < 0):
        raise unsupported(op, "paddings %s for a rank-%d input (need %d non-negative values)"
                          % (pads.tolist(), rank, 2 * rank))
    pads = [(int(a), int(b)) for a, b in pads.reshape(rank, 2)]
    value = qparams(y)[1] if y.quant is not None else 0
    kept = {}  # output buffers by input shape: the padding is written once, each call fills the inside

    def pad(ins):
        x = ins[0]
        key = (x.shape, x.dtype)
        got = kept.get(key)
        if got is None:
            out = np.full(tuple(n + a + b for n, (a, b) in zip(x.shape, pads)), value, x.dtype)
            got = (out, tuple(slice(a, a + n) for n, (a, _) in zip(x.shape, pads)))
            if len(kept) < 8:
                kept[key] = got
        got[0][got[1]] = x
        return got[0]

    pad.batch_safe = pads[0] == (0, 0)
    pad.reuses_output = True  # the interpreter copies model outputs that may share these buffers
    return pad


def _slice_bounds(dim, b, e, s, begin_masked, end_masked):
    """TFLite StridedSlice start/stop along one axis, as a Python slice."""
    if s == 0:
        raise ValueError("stride 0")
    if begin_masked:
        b = 0 if s > 0 else dim - 1
    else:
        if b < 0:
            b += dim
        b = min(max(b, 0), dim) if s > 0 else min(max(b, -1), dim - 1)
    if end_masked:
        e = dim if s > 0 else -1
    else:
        if e < 0:
            e += dim
        e = min(max(e, 0), dim) if s > 0 else min(max(e, -1), dim - 1)
    return slice(b, e if e >= 0 else None, s)


@register("STRIDED_SLICE")
def build_strided_slice(op, tensors):
    o = op.options
    x, y = tensors[op.inputs[0]], tensors[op.outputs[0]]
    _same_quant(op, x, y)
    begin = _const(op, tensors, 1, "begin")
    end = _const(op, tensors, 2, "end")
    strides = _const(op, tensors, 3, "strides")
    rank = len(x.shape)
    if o["ellipsis_mask"] or o["new_axis_mask"]:
        raise unsupported(op, "ellipsis_mask %d / new_axis_mask %d (supported: 0)" % (o["ellipsis_mask"], o["new_axis_mask"]))
    if not begin.size == end.size == strides.size <= rank:
        raise unsupported(op, "begin/end/strides of sizes %d/%d/%d for rank %d" % (begin.size, end.size, strides.size, rank))
    if np.any(strides == 0):
        raise unsupported(op, "stride 0 in %s" % strides.tolist())
    index = []
    shrink = []
    for a in range(rank):
        dim = x.shape[a]
        if a >= begin.size:
            index.append(slice(None))
            continue
        b, e, s = int(begin[a]), int(end[a]), int(strides[a])
        if o["offset"]:
            e = b + e
        if o["shrink_axis_mask"] >> a & 1:
            b = b + dim if b < 0 else b
            if not 0 <= b < dim:
                raise unsupported(op, "shrinks axis %d at index %d outside 0..%d" % (a, b, dim - 1))
            index.append(b)
            shrink.append(a)
            continue
        index.append(_slice_bounds(dim, b, e, s, o["begin_mask"] >> a & 1, o["end_mask"] >> a & 1))
    batch_safe = rank > 0 and x.shape[0] == 1 and 0 not in shrink and index[0] in (slice(0, 1, 1), slice(None))
    return _take_index(index, batch_safe)


def _take_index(index, batch_safe):
    """A kernel that returns ``x[index]`` as a contiguous array.

    index: a list of ints/slices, one per axis.  When ``batch_safe`` (the
    model's batch of one is kept whole), the first axis takes every window
    of a batched call.
    """
    if batch_safe:
        index = [slice(None)] + list(index[1:])
    index = tuple(index)

    def take(ins):
        return np.ascontiguousarray(ins[0][index])

    take.batch_safe = batch_safe
    return take


@register("SLICE")
def build_slice(op, tensors):
    x, y = tensors[op.inputs[0]], tensors[op.outputs[0]]
    _same_quant(op, x, y)
    begin = _const(op, tensors, 1, "begin")
    size = _const(op, tensors, 2, "size")
    rank = len(x.shape)
    if not begin.size == size.size == rank:
        raise unsupported(op, "begin/size of sizes %d/%d for rank %d" % (begin.size, size.size, rank))
    index = []
    for a in range(rank):
        b = int(begin[a])
        n = x.shape[a] - b if size[a] == -1 else int(size[a])
        if b < 0 or n < 0 or b + n > x.shape[a]:
            raise unsupported(op, "slice [%d, %d) of axis %d with %d entries" % (b, b + n, a, x.shape[a]))
        index.append(slice(b, b + n))
    return _take_index(index, batch_safe=x.shape[0] == 1 and index[0] == slice(0, 1))


@register("GATHER")
def build_gather(op, tensors):
    x, y = tensors[op.inputs[0]], tensors[op.outputs[0]]
    _same_quant(op, x, y)
    if op.options.get("batch_dims", 0):
        raise unsupported(op, "batch_dims %d (supported: 0)" % op.options["batch_dims"])
    idx_t = tensors[op.inputs[1]]
    if idx_t.data is None:
        raise unsupported(op, "the indices must be constant")
    idx = np.asarray(idx_t.data).astype(np.int64)
    axis = op.options.get("axis", 0) % len(x.shape)
    dim = x.shape[axis]
    if np.any(idx < 0) or np.any(idx >= dim):
        raise unsupported(op, "indices %s outside 0..%d of axis %d" % (idx.reshape(-1)[:8].tolist(), dim - 1, axis))

    def gather(ins):
        return np.take(ins[0], idx, axis=axis)

    gather.batch_safe = axis != 0
    return gather


@register("CONCATENATION")
def build_concatenation(op, tensors):
    y = tensors[op.outputs[0]]
    xs = [tensors[i] for i in op.inputs]
    rank = len(y.shape)
    axis = op.options.get("axis", 0) % rank
    act = op.options.get("activation", 0)
    q = y.dtype.name == "int8"
    rescale = []
    if q:
        sy, zy = qparams(y)
        for t in xs:
            sx, zx = qparams(t)
            if (sx, zx) == (sy, zy):
                rescale.append(None)
            else:
                s = F32(sx) * (F32(1) / sy)
                rescale.append((s, F32(-zx) * s))
        lo, hi = activation_range(act, y)
    elif act:
        raise unsupported(op, "fused activation %d on a float concatenation" % act)

    def concat(ins):
        parts = []
        for v, r in zip(ins, rescale if q else [None] * len(ins)):
            if r is not None:
                v = np.clip(round_half_away(v.astype(F32) * r[0] + r[1]) + zy, -128, 127).astype(np.int8)
            parts.append(v)
        out = np.concatenate(parts, axis=axis)
        if q and (lo, hi) != (-128, 127):
            out = np.clip(out, lo, hi).astype(np.int8)
        return out

    concat.batch_safe = axis != 0
    return concat


@register("RESIZE_NEAREST_NEIGHBOR")
def build_resize_nearest(op, tensors):
    x, y = tensors[op.inputs[0]], tensors[op.outputs[0]]
    _same_quant(op, x, y)
    size = _const(op, tensors, 1, "the output size")
    if len(x.shape) != 4 or size.size != 2:
        raise unsupported(op, "input of rank %d with size %s (supported: NHWC with 2 sizes)" % (len(x.shape), size.tolist()))
    align = bool(op.options.get("align_corners", 0))
    half = bool(op.options.get("half_pixel_centers", 0))

    def nearest(n_in, n_out):
        # TFLite GetNearestNeighbor, in float32.
        scale = F32(n_in - 1) / F32(n_out - 1) if align and n_out > 1 else F32(n_in) / F32(n_out)
        off = F32(0.5) if half else F32(0)
        pos = (np.arange(n_out, dtype=F32) + off) * scale
        idx = round_half_away(pos) if align else np.floor(pos)
        idx = np.minimum(idx.astype(np.int64), n_in - 1)
        return np.maximum(idx, 0) if half else idx

    rows = nearest(x.shape[1], int(size[0]))
    cols = nearest(x.shape[2], int(size[1]))

    def resize(ins):
        return np.ascontiguousarray(ins[0][:, rows][:, :, cols])

    return resize
