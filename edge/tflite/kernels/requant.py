"""Exact int8 requantisation in float64 arithmetic, without a fix-up pass.

TFLite's MultiplyByQuantizedMultiplier (per output channel c, multiplier
m in [2**30, 2**31), right shift r >= 0) is two roundings of integers::

    h = floor((x * m + 2**30) / 2**31)          # SaturatingRoundingDoublingHighMul
    q = RoundingDivideByPOT(h, r)               # half away from zero

with x the accumulator plus bias.  Write g = 2**-(31 + r), S = m * g and
A = x * S (a multiple of g).  Working the two floors through (``floor(
floor(y) / n) = floor(y / n)`` for integer n) gives, for r >= 1 and
e = 2**-(r + 1)::

    q = floor(A + 1/2 + e)    when A >= 0
    q = floor(A + 1/2 - e)    when A < 0

and q = floor(A + 1/2) when r = 0 (also FULLY_CONNECTED's single rounding,
``floor((x * m + 2**(t-1)) / 2**t)``, with g = 2**-t).  Every quantity is
an integer multiple of g, so float64 holds it exactly while its size is
below 2**53 * g; a dot product of such terms is then exact in any
summation order (BLAS included) when the sum of the terms' magnitudes
stays below that bound.  That bound is checked per channel at load from
the largest accumulator the weights allow (128 * sum |w| for int8 inputs)
and the bias; a layer that fails it keeps the other requantiser
(:class:`Requantizer`, below).

Two forms, both exact:

- "floor": when the sign cannot matter -- single rounding, r = 0, or a
  clamp whose floor is at or above the zero point (a fused RELU: every
  q < 0 clamps to the same value, and the A >= 0 formula gives q <= 0 for
  every A < 0).  z = x * S + (1/2 + e + zp + 256) is made >= 0 wherever the
  result is not clamped to the floor, so the truncating float -> int cast
  is the floor; the int16 clamp to [lo + 256, hi + 256] follows, and the
  cast to int8 drops the 256 (two's complement wrap).  Three numpy passes
  after z.
- "sign": otherwise.  With z = A + g/2 (same sign as A, never 0),
  q = trunc(z + copysign(1/2 + e, z)); then q + zp is clamped.

The per-channel scale and offset can be folded into the weights of a BLAS
product (``folded_weights``: rows W * S and a last row for the offset,
against a column of ones in the patches), so the matrix product returns z
itself; or applied to exact integer accumulators (``__call__``).
"""

from __future__ import annotations

import math
import threading

import numpy as np

from .quant import multiply_by_quantized_multiplier, quantize_multiplier

__all__ = ["ExactRequant", "exact_requant", "EXACT_BITS", "clip_into", "scratch", "Requantizer", "requant_params",
           "ChannelBias", "channel_tiles"]


class _Arena(threading.local):
    """Scratch memory shared by the kernels that run in one thread.

    Operators run one after another, and what a kernel keeps here (float
    accumulators, z, the int16 clamp buffer) is dead once it returns, so
    every layer reuses the same few buffers, which then stay in the CPU
    cache from one layer to the next.  One arena per thread: interpreters
    in different threads do not share it.
    """

    def __init__(self):
        self.slots = {}

    def take(self, slot, shape, dtype):
        dtype = np.dtype(dtype)
        n = math.prod(shape) * dtype.itemsize
        raw = self.slots.get(slot)
        if raw is None or raw.size < n:
            raw = np.empty(max(n, 4096), np.uint8)
            self.slots[slot] = raw
        return raw[:n].view(dtype).reshape(shape)


_ARENA = _Arena()


def scratch(slot, shape, dtype):
    """A buffer of this thread's arena (contents undefined; valid until the next call for ``slot``)."""
    return _ARENA.take(slot, shape, dtype)


def _clip_ufunc():
    # numpy's clip ufunc without np.clip's Python layers (2-3 us a call on a few thousand
    # int16 values, about as much as the clamp itself); None where it is not exposed.
    # Looked up in the module dict: numpy 2 warns on the attribute np.core.
    core = np.__dict__.get("_core") or np.__dict__.get("core")
    fn = getattr(getattr(core, "umath", None), "clip", None)
    return fn if isinstance(fn, np.ufunc) else None


_CLIP = _clip_ufunc()


def clip_into(a, lo, hi):
    """a clamped to [lo, hi] in place (lo, hi: scalars of a's type)."""
    if _CLIP is not None:
        return _CLIP(a, lo, hi, out=a)
    return np.clip(a, lo, hi, out=a)

EXACT_BITS = 52  # one bit of margin below float64's 53-bit significand
_OFFSET = 256  # added before the truncating cast (floor form) and dropped by the int8 wrap


def exact_requant(mult, shift, zp_out, lo, hi, bias, acc_abs_max, single_rounding=False):
    """An :class:`ExactRequant` for these channels, or None where float64 cannot hold them exactly.

    mult, shift: per-channel Q31 multipliers and shifts (TFLite's); bias: int64 per channel
    (zero points folded in) or None; acc_abs_max: per-channel bound on |accumulator|
    (e.g. 128 * sum |w|).  Double rounding with a left shift (shift > 0) is left to the
    other requantiser.
    """
    mult = np.asarray(mult, np.int64).reshape(-1)
    shift = np.asarray(shift, np.int64).reshape(-1)
    n = mult.size
    bias = np.zeros(n, np.int64) if bias is None else np.asarray(bias, np.int64).reshape(-1)
    amax = np.broadcast_to(np.asarray(acc_abs_max, np.float64), (n,)).astype(np.float64)
    if np.any(mult < 0) or np.any(mult >= (1 << 31)):
        return None
    if single_rounding:
        total = 31 - shift
        if np.any(total < 1) or np.any(total > 62):
            return None
        eps = np.zeros(n)
        inv_grid = np.exp2(total.astype(np.float64))
    else:
        if np.any(shift > 0) or np.any(shift < -31):
            return None
        right = -shift
        eps = np.where(right > 0, np.exp2(-(right + 1.0)), 0.0)
        inv_grid = np.exp2(31.0 + right)
    scale = mult.astype(np.float64) / inv_grid  # exact: a 31-bit integer times a power of two
    floor_form = bool(single_rounding or np.all(eps == 0) or lo >= zp_out)
    # Work in units of g/2 (the sign form's z = A + g/2 is a multiple of g/2): every value
    # below is an integer number of units, computed with Python ints (no overflow).
    units = []
    for c in range(n):
        unit = 2 * int(inv_grid[c])  # units per 1.0
        if floor_form:
            # (1/2 + e + zp + 256) in units; e * unit = 2**31 exactly when r >= 1.
            const = unit // 2 + (int(eps[c] * unit) if eps[c] else 0) + (int(zp_out) + _OFFSET) * unit
        else:
            const = 1  # g/2
        units.append((unit, 2 * int(bias[c]) * int(mult[c]) + const))
    offset = np.array([float(o) / u for u, o in units])
    # Largest magnitude that can occur (in units): the dot product's terms, the offset, and the
    # sign form's rounding constant; all must stay below 2**EXACT_BITS.
    worst = max(2.0 * float(amax[c]) * float(mult[c]) + abs(float(o)) + 2.0 * u for c, (u, o) in enumerate(units))
    if not np.isfinite(worst) or worst >= 2.0 ** EXACT_BITS:
        return None
    return ExactRequant(scale, offset, eps, floor_form, int(zp_out), int(lo), int(hi),
                        float((amax * scale + np.abs(offset) + 1.0).max()))


class ExactRequant:
    """Exact requantisation of z = x * S + offset (float64, channels last) to int8.

    Build with :func:`exact_requant`.  Its float and int16 buffers come from the thread's
    scratch arena (:func:`scratch`).
    """

    def __init__(self, scale, offset, eps, floor_form, zp, lo, hi, z_bound):
        self.scale = np.ascontiguousarray(scale, np.float64)
        self.offset = np.ascontiguousarray(offset, np.float64)
        self.half = 0.5 + np.asarray(eps, np.float64)  # sign form: |rounding constant| per channel
        self.floor_form = floor_form
        self.zp, self.lo, self.hi = zp, lo, hi
        self.int_t = np.int16 if z_bound < 2 ** 15 - 2 else np.int32
        t = self.int_t
        if floor_form:
            self.clip = (t(lo + _OFFSET), t(hi + _OFFSET))
        else:
            self.clip = (t(lo - zp), t(hi - zp))
        same = bool(np.all(self.half == self.half[0]))
        self._half_scalar = float(self.half[0]) if same else None
        self._tiles = {}

    def folded_weights(self, w_mat):
        """(K + 1, C) float64: rows ``w_mat * S`` and the offset, for patches with a ones column."""
        w = np.asarray(w_mat, np.float64) * self.scale
        return np.ascontiguousarray(np.vstack([w, self.offset[None, :]]))

    def _tile(self, size):
        got = self._tiles.get(size)
        if got is None:
            got = channel_tiles((self.scale, self.offset, self.half), size, {})
            if len(self._tiles) < 16:
                self._tiles[size] = got
        return got

    def buffers(self, shape):
        """(z float64, q int) scratch views of the arena for outputs of this shape (see ``finish``)."""
        return _ARENA.take("z", shape, np.float64), _ARENA.take("q", shape, self.int_t)

    def __call__(self, acc, bufs=None):
        """Exact integer accumulators (float32 or float64, channels last, no bias) -> int8.

        bufs: (z, q) from :meth:`buffers` for this shape, or None to take them here.
        """
        scale, offset, _ = self._tile(acc.size)
        w = scale.size
        z, q = self.buffers(acc.shape) if bufs is None else bufs
        z2 = z.reshape(-1, w)
        np.multiply(acc.reshape(-1, w), scale, out=z2)
        z2 += offset
        return self.finish(z, q)

    def add_offset(self, z):
        """z += offset in place (z: float64, C-contiguous, channels last): ``acc * S`` -> z."""
        _, offset, _ = self._tile(z.size)
        z2 = z.reshape(-1, offset.size)
        np.add(z2, offset, out=z2)
        return z

    def finish(self, z, q=None):
        """z = x * S + offset (float64, C-contiguous, channels last) -> int8 of the same shape.

        q: an int scratch array of z's shape and ``int_t`` (from :meth:`buffers`), or None.
        z is overwritten in the sign form.
        """
        if not self.floor_form:
            h = _ARENA.take("h", z.shape, np.float64)
            if self._half_scalar is not None:
                np.copysign(self._half_scalar, z, out=h)
            else:
                _, _, half = self._tile(z.size)
                np.copysign(half, z.reshape(-1, half.size), out=h.reshape(-1, half.size))
            z += h
        if q is None:
            q = _ARENA.take("q", z.shape, self.int_t)
        np.copyto(q, z, casting="unsafe")  # truncates towards zero
        clip_into(q, self.clip[0], self.clip[1])
        out = q.astype(np.int8)  # floor form: drops the 256 (wraps); sign form: in range
        if not self.floor_form and self.zp:
            out += np.int8(self.zp)
        return out


# ---------------------------------------------------------------- the float32/float64 requantiser with a fix-up
def channel_tiles(vectors, size, cache):
    """Per-channel vectors repeated g times for an array of ``size`` elements, channels last.

    g is the largest divisor of the row count with g * channels <= 1024:
    numpy broadcasts a vector over long rows much faster than over rows of a
    few channels.  The tiles are cached per size (a few batch sizes at most).
    """
    got = cache.get(size)
    if got is None:
        n = vectors[0].size
        rows = size // n
        g = max(d for d in range(1, max(1, 1024 // n) + 1) if rows % d == 0)
        got = tuple(np.tile(v, g) for v in vectors)
        if len(cache) < 16:
            cache[size] = got
    return got


class ChannelBias:
    """Adds a float32 per-channel bias to an array in place (through :func:`channel_tiles`)."""

    def __init__(self, bias):
        self.bias = np.asarray(bias, np.float32)
        self._cache = {}

    def __call__(self, y):
        if not y.flags.c_contiguous:
            y += self.bias
            return y
        (b,) = channel_tiles((self.bias,), y.size, self._cache)
        y.reshape(-1, b.size)[...] += b
        return y


def requant_params(x, w, y, n_out):
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


class Requantizer:
    """Exact int8 requantisation of float accumulators, fast.

    ``out = clamp(MBQM(acc + bias, m[c], shift[c]) + zp_out)`` where MBQM is
    TFLite's MultiplyByQuantizedMultiplier: a rounding high multiply then a
    rounding right shift by r (two roundings), or for FULLY_CONNECTED (ruy)
    one rounding half up.  Writing z = (acc + bias) * m * 2**(shift - 31), the
    exact result equals round(z) except when z lies within 2**-(r+1) of a
    half-integer; so z is computed in float, rounded, and only the elements
    inside that band, widened by a bound on the float error, are recomputed
    with the exact int64 formula.

    The float error bound is worked out per channel at load from the largest
    possible accumulator (``acc_bound``, e.g. K * 128 * 127) and the bias:
    float32 when it stays small (the usual case), float64 otherwise.  Where
    |z| >= 2**10 the output clamps whichever way z rounds.

    acc: float array of exact integers, channels on the last axis;
    bias: int64 per channel (zero-point correction folded in) or None.
    """

    def __init__(self, mult, shift, zp_out, lo, hi, bias=None, single_rounding=False, acc_bound=1 << 31):
        self.mult = np.asarray(mult, np.int64)
        self.shift = np.asarray(shift, np.int64)
        n = self.mult.size
        self.bias_i = np.zeros(n, np.int64) if bias is None else np.asarray(bias, np.int64)
        scale = self.mult.astype(np.float64) * np.exp2(self.shift.astype(np.float64) - 31)
        right = np.maximum(-self.shift, 0)
        tie = np.zeros(n) if single_rounding else np.exp2(-(right + 1.0))
        # |error of z| in float32 <= (|acc| + |bias|) * scale * 4 * 2**-24 (+ rounding of |z| < 2**10).
        err32 = (float(acc_bound) + np.abs(self.bias_i)) * scale * 2.0 ** -21 + 2.0 ** -12
        self.dtype = np.float32 if float(err32.max()) < 2.0 ** -6 else np.float64
        err = err32 if self.dtype == np.float32 else np.full(n, 2.0 ** -12)
        self.scale = scale.astype(self.dtype)
        self.offset = (self.bias_i * scale + zp_out).astype(self.dtype)  # bias and zero point, scaled
        self.half_minus_band = (0.5 - tie - err).astype(self.dtype)
        # One threshold for every channel (the smallest): a scalar compare is cheaper than a
        # per-channel one, and the few more elements it sends to the exact path cost less.
        self.threshold = self.dtype(self.half_minus_band.min())
        self.exact_only = bool(np.any(self.shift > 0))
        self.single = single_rounding
        self.zp, self.lo, self.hi = int(zp_out), int(lo), int(hi)
        # Rounded values are clamped as small integers (much faster in numpy than a float clamp)
        # when the largest |z| the accumulator bound allows fits that type.
        z_bound = float(acc_bound) * float(scale.max()) + float(np.abs(self.offset).max()) + 2.0
        self.int_t = np.int16 if z_bound < 2 ** 15 else (np.int32 if z_bound < 2 ** 31 else None)
        self._tiled = {}
        if single_rounding:
            self.total = (31 - self.shift).astype(np.int64)
            self.half = np.int64(1) << (self.total - 1)
        else:
            self.right = right.astype(np.int64)
            self.half = (np.int64(1) << self.right) >> 1
            self.neg_adjust = (self.right > 0).astype(np.int64)

    def exact(self, acc, c):
        """Exact requantisation of int64 accumulators ``acc`` in channels ``c`` (index array).

        Double rounding, right shifts only: the high multiply rounds half up,
        floor((acc * m + 2**30) / 2**31); the shift by r rounds half away from
        zero, floor((s + 2**(r-1) - [s < 0]) / 2**r).  Equal to TFLite's
        MultiplyByQuantizedMultiplier (tested against it).
        """
        if self.single:
            q = (acc * self.mult[c] + self.half[c]) >> self.total[c]
        elif self.exact_only:
            q = multiply_by_quantized_multiplier(acc, self.mult[c], self.shift[c])
        else:
            high = (acc * self.mult[c] + (1 << 30)) >> 31
            q = (high + self.half[c] - (high < 0) * self.neg_adjust[c]) >> self.right[c]
        q += self.zp
        np.maximum(q, self.lo, out=q)
        np.minimum(q, self.hi, out=q)
        return q

    def __call__(self, acc):
        shape = acc.shape
        n = self.mult.size
        if self.exact_only:
            a = acc.reshape(-1, n).astype(np.int64) + self.bias_i
            c = np.broadcast_to(np.arange(n), a.shape)
            return self.exact(a, c).astype(np.int8).reshape(shape)
        scale, offset = self._tiles(acc.size)
        width = scale.size
        z = np.multiply(acc.reshape(-1, width), scale, dtype=self.dtype)
        z += offset
        r = np.rint(z)
        z -= r
        np.abs(z, out=z)
        near = z >= self.threshold  # close to a rounding tie: decide exactly below
        if self.int_t is not None:
            q = r.astype(self.int_t)
            np.clip(q, self.lo, self.hi, out=q)
            out = q.astype(np.int8)
        else:
            np.clip(r, self.lo, self.hi, out=r)
            out = r.astype(np.int8)
        idx = np.flatnonzero(near)
        if idx.size:
            c = idx % n
            a = acc.reshape(-1)[idx].astype(np.int64) + self.bias_i[c]
            out.reshape(-1)[idx] = self.exact(a, c)
        return out.reshape(shape)

    def _tiles(self, size):
        return channel_tiles((self.scale, self.offset), size, self._tiled)
