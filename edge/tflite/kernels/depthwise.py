"""1-D int8 depthwise convolution (stride 1) as one einsum over long contiguous rows.

A depthwise conv over time (H = 1, one filter per channel, stride 1) sums,
for every output position o and channel c, the taps
``x[o + t * d, c] * w[t, c]``.  numpy's einsum is slow with the few
channels of a picker's layer (12 or 24) as its inner loop, and over a batch
of windows it picks a slower loop order still.  Here a window's padded
input is one contiguous run of ``(W + pads) * C`` values and tap t is that
run shifted by ``t * d * C``: one ``einsum`` over a strided view of the
buffer (taps x rows x a tile of about 1024 values, the weights tiled to the
same width) sums every position and channel with inner loops of about 1024
values.  (A strided conv would need its phases de-interleaved or its
partial sums added across positions, both strided passes over few channels
that cost more than they save; it keeps the einsum over patches.)

The weights are multiplied by each channel's requantisation scale S
(float64), as the matrix products of kernels/conv.py do: the einsum returns
``acc * S`` itself.  Every term is an int8 value times an int8 weight
times S, a multiple of S's grid, and :func:`~.requant.exact_requant` has
checked at load that every partial sum stays below 2**52 grid steps, so
the sums are exact in any order (and a weight of 0 adds an exact 0): the
values equal those of the einsum over patches times S bit for bit.

The padded input (prefilled with the input zero point once), its view and
the output are made once per batch size and thread.
"""

from __future__ import annotations

from threading import get_ident

import numpy as np

__all__ = ["DepthwiseRows"]

TILE = 1024  # values per row of the einsum's inner loop (at most, where the row count allows)


class DepthwiseRows:
    """``acc * S`` of a 1-D depthwise conv in float64 (see the module docstring).

    wk: int taps (KW, C); scale: per-channel S (C,); w: input samples; ow: output
    samples; dw: dilation; pads: (before, after); zp_in: the input zero point (the
    padding value).  ``__call__(x)``: x int8 (B, 1, W, C) -> float64
    (B, OW, C), a buffer reused by the next call of the same batch size and thread.
    """

    def __init__(self, wk, scale, w, ow, dw, pads, zp_in):
        kw, c = wk.shape
        self.kw, self.c, self.w, self.ow, self.dw = kw, c, w, ow, dw
        self.pl = pads[0]
        self.length = max(w + pads[0] + pads[1], ow + (kw - 1) * dw)
        self.zp = float(zp_in)
        self.g = max(k for k in range(1, max(1, TILE // c) + 1) if ow % k == 0)  # positions per row
        scaled = np.asarray(wk, np.float64) * np.asarray(scale, np.float64)  # exact: 8-bit times 31-bit
        self.taps = np.ascontiguousarray(np.tile(scaled, (1, self.g)))  # (KW, g * C)
        self._plans = {}

    def _plan(self, b):
        c, g = self.c, self.g
        buf = np.full((b, self.length * c), self.zp, np.float64)
        inside = buf[:, self.pl * c:(self.pl + self.w) * c].reshape(b, 1, self.w, c)
        item = buf.itemsize
        view = np.ndarray((b, self.kw, self.ow // g, g * c), np.float64, buf, 0,
                          (buf.strides[0], self.dw * c * item, g * c * item, item))
        view.flags.writeable = False
        sums = np.empty(view.shape[:1] + view.shape[2:], np.float64)
        plan = (inside, view, sums, sums.reshape(b, self.ow, c))
        if len(self._plans) < 8:
            self._plans[b, get_ident()] = plan
        return plan

    def __call__(self, x):
        inside, view, sums, out = self._plans.get((x.shape[0], get_ident())) or self._plan(x.shape[0])
        inside[...] = x
        np.einsum("btrk,tk->brk", view, self.taps, out=sums)
        return out
