"""Steim-1 and Steim-2 frames decoded with numpy, many records at once.

:func:`decode_steim_reference` is the slow, obviously correct decoder (one
word at a time) that the tests compare the batch decoder with.
"""

from __future__ import annotations

import struct

import numpy as np

from ..errors import DataError

__all__ = ["decode_steim_reference"]


# ---------------------------------------------------------------- Steim

# Per word "kind" (0..9): number of differences, their width in bits.
# 0: no data; 1: 4x8; 2: 2x16 (Steim-1); 3: 1x32 (Steim-1); 4: 1x30; 5: 2x15; 6: 3x10;
# 7: 5x6; 8: 6x5; 9: 7x4; 10: invalid.
_KIND_COUNT = np.array([0, 4, 2, 1, 1, 2, 3, 5, 6, 7, 0], np.int64)
_KIND_BITS = np.array([32, 8, 16, 32, 30, 15, 10, 6, 5, 4, 32], np.uint32)
_INVALID = 10
_MAXK = 7
# Left and right shifts that pull difference j of a word of each kind into a signed int32.
_J = np.arange(_MAXK)
_SHL = np.zeros((11, _MAXK), np.uint32)
_SHR = np.full((11, _MAXK), 31, np.int32)
for _k in range(11):
    _n, _b = int(_KIND_COUNT[_k]), int(_KIND_BITS[_k])
    for _j in range(_n):
        _SHL[_k, _j] = 32 - _b * (_n - _j)  # puts the field at the top of the word
        _SHR[_k, _j] = 32 - _b
_VALID = _J[None, :] < _KIND_COUNT[:, None]  # (11, 7)
# Little-endian Steim (libmseed writes it): 8-bit and Steim-1 16-bit differences are stored in
# memory order, each swapped on its own, so inside the swapped 32-bit word they run backwards.
_SHL_LE = _SHL.copy()
for _k, _n in ((1, 4), (2, 2)):
    _SHL_LE[_k, :_n] = _SHL[_k, :_n][::-1]


# word kind from (nibble << 2 | top two bits of the word), one table per Steim level
_KIND_OF_CODE = {
    1: np.repeat(np.arange(4, dtype=np.int8), 4),
    2: np.array([0, 0, 0, 0, 1, 1, 1, 1, _INVALID, 4, 5, 6, 7, 8, 9, _INVALID], np.int8),
}
_NIB_SHIFT = np.arange(30, -1, -2, dtype=np.uint32)[None, :]


def _word_kinds(words: np.ndarray, steim: int) -> np.ndarray:
    """(F, 16) uint32 frames -> (F, 16) int8 word kinds; word 0 (the control word) is kind 0."""
    code = ((words[:, :1] >> _NIB_SHIFT) & 3) << 2
    code |= words >> 30
    kinds = _KIND_OF_CODE[steim][code]
    kinds[:, 0] = 0
    return kinds


def _unpack_differences(flat_w: np.ndarray, flat_k: np.ndarray, count: np.ndarray, order: str):
    """Every word's differences, one pass per word kind: word i's go to
    ``diffs[wpos[i]:wpos[i] + count[i]]``.  Returns (diffs int32, wpos)."""
    wpos = np.cumsum(count) - count
    diffs = np.empty(int(count.sum()), np.int32)
    shl = _SHL_LE if order == "<" else _SHL
    for kind in range(1, _INVALID):
        is_kind = flat_k == kind
        if not is_kind.any():
            continue
        sel = np.flatnonzero(is_kind)
        w, p = flat_w[sel], wpos[sel]
        right = int(_SHR[kind, 0])
        for j in range(int(_KIND_COUNT[kind])):
            diffs[p + j] = (w << shl[kind, j]).view(np.int32) >> right
    return diffs, wpos


def _complete(flat_k, wpos, frames_per_rec, nsamples, have, dstart):
    """Which records hold all their differences: (ok (R,) bool, reasons).  A record
    with too few, or with an invalid word before its last needed one, is not."""
    ok = have >= nsamples
    reasons = []
    # an invalid word before the record's last needed difference spoils the record
    bad_words = np.flatnonzero(flat_k == _INVALID)
    if len(bad_words):
        words_per_rec = frames_per_rec * 16
        wstart = np.cumsum(words_per_rec) - words_per_rec
        rec_of = np.searchsorted(wstart, bad_words, side="right") - 1
        at = wpos[bad_words] - dstart[rec_of]  # differences of the record before the bad word
        for r in np.unique(rec_of[at < nsamples[rec_of]]):
            ok[r] = False
            reasons.append((int(r), "bad Steim frame", "invalid difference code"))
    flagged = {r for r, _, _ in reasons}
    for r in np.flatnonzero(~ok & (have < nsamples)):
        if int(r) in flagged:
            continue
        reasons.append((int(r), "bad Steim frame", "%d samples declared, %d differences in the frames"
                        % (nsamples[r], have[r])))
    return ok, reasons


def steim_batch(words: np.ndarray, frames_per_rec: np.ndarray, nsamples: np.ndarray, steim: int,
                 order: str = ">"):
    """Decode the Steim frames of several records at once.

    words: (F, 16) uint32 (native order), the frames of all records one after the
    other.  frames_per_rec, nsamples: (R,) int64.  order: the byte order the words
    were stored in ('<' reverses the 8- and 16-bit differences, as libmseed does).
    Returns (samples int32 concatenated for the good records, ok (R,) bool,
    reasons: list of (record index, reason, detail)).
    """
    nrec = len(frames_per_rec)
    first = np.cumsum(frames_per_rec) - frames_per_rec  # first frame of each record
    kinds = _word_kinds(words, steim)
    kinds[first, 1] = 0  # X0
    kinds[first, 2] = 0  # Xn
    x0 = words[first, 1].view(np.int32)
    xn = words[first, 2].view(np.int32)
    flat_k = kinds.reshape(-1)
    flat_w = words.reshape(-1)
    count = _KIND_COUNT[flat_k]  # (W,)
    diffs, wpos = _unpack_differences(flat_w, flat_k, count, order)
    # where each record's differences begin and how many it has
    per_frame = count.reshape(-1, 16).sum(axis=1)
    have = np.add.reduceat(per_frame, first) if nrec else np.zeros(0, np.int64)
    have[frames_per_rec == 0] = 0
    dstart = np.cumsum(have) - have
    ok, reasons = _complete(flat_k, wpos, frames_per_rec, nsamples, have, dstart)
    n = np.where(ok, nsamples, 0)
    total = int(n.sum())
    out_start = np.cumsum(n) - n
    if np.array_equal(have, n):  # the usual case: no padding differences, nothing to cut out
        d = diffs
    else:
        d = diffs[np.arange(total, dtype=np.int64) + np.repeat(dstart - out_start, n)]
    used = n > 0
    heads, x0u, xnu = out_start[used], x0[used], xn[used]
    # The first sample of a record is X0.  If every record ends on its Xn (checked below),
    # one cumulative sum gives all samples when each head difference is X0 - previous Xn.
    d[heads[:1]] = x0u[:1]
    d[heads[1:]] = x0u[1:] - xnu[:-1]  # wraps like the int32 arithmetic of the encoder
    samples = np.cumsum(d, dtype=np.int32)
    ends = out_start[used] + n[used] - 1
    last = samples[ends]
    if not np.array_equal(last, xnu):
        # Some record does not end on its Xn, so the record after it is off by exactly
        # (its computed last sample - its Xn): take that back record by record.
        off_by = np.zeros(len(heads), np.int32)
        off_by[1:] = last[:-1] - xnu[:-1]
        samples = samples - np.repeat(off_by, n[used])
        last = samples[ends]
    mismatch = np.flatnonzero(last != xnu)
    if len(mismatch):
        recs = np.flatnonzero(n > 0)[mismatch]
        keep = np.ones(total, bool)
        for r, m in zip(recs, mismatch):
            ok[r] = False
            keep[out_start[r]:out_start[r] + n[r]] = False
            reasons.append((int(r), "Steim integration constant mismatch",
                            "last sample %d, reverse constant %d" % (last[m], xn[n > 0][m])))
        samples = samples[keep]
    return samples, ok, reasons


def decode_steim_reference(data: bytes, nsamples: int, steim: int, order: str = ">") -> np.ndarray:
    """Slow, obviously correct Steim-1/2 decoder (one word at a time), for tests.

    data: the frames (a multiple of 64 bytes).  Returns int32 samples; raises
    :class:`DataError` on a bad code, too few differences or an integration
    constant mismatch.
    """
    words = struct.unpack(order + "%dI" % (len(data) // 4), data[: len(data) // 4 * 4])
    diffs = []
    x0 = xn = None
    for f in range(len(words) // 16):
        frame = words[16 * f:16 * f + 16]
        for i in range(1, 16):
            w = frame[i]
            if f == 0 and i in (1, 2):
                x0, xn = (w, xn) if i == 1 else (x0, w)
                continue
            c = (frame[0] >> (30 - 2 * i)) & 3
            if c == 0:
                continue
            if c == 1:
                spec = (4, 8)
            elif steim == 1:
                spec = (2, 16) if c == 2 else (1, 32)
            else:
                d = w >> 30
                if c == 2:
                    spec = {1: (1, 30), 2: (2, 15), 3: (3, 10)}.get(d)
                else:
                    spec = {0: (5, 6), 1: (6, 5), 2: (7, 4)}.get(d)
                if spec is None:
                    if len(diffs) < nsamples:
                        raise DataError("bad Steim-2 code %d/%d in frame %d word %d" % (c, d, f, i))
                    continue
            k, b = spec
            backwards = order == "<" and b in (8, 16)  # stored in memory order: see _SHL_LE
            for j in range(k):
                v = (w >> (b * (j if backwards else k - 1 - j))) & ((1 << b) - 1)
                diffs.append(v - (1 << b) if v >> (b - 1) else v)
    if len(diffs) < nsamples or x0 is None:
        raise DataError("%d samples declared, %d differences in the frames" % (nsamples, len(diffs)))
    out = []
    acc = x0 - (1 << 32) if x0 >> 31 else x0
    for i in range(nsamples):
        if i:
            acc = (acc + diffs[i] + (1 << 31)) % (1 << 32) - (1 << 31)
        out.append(acc)
    xn_s = xn - (1 << 32) if xn >> 31 else xn
    if nsamples and out[-1] != xn_s:
        raise DataError("integration constant mismatch: last %d, Xn %d" % (out[-1], xn_s))
    return np.array(out, np.int32)
