"""A numpy-only miniSEED reader (version 2, and 3): files, byte streams and pipes.

What it reads (SEED 2.4 data records, "miniSEED 2"):

- record lengths 2**7 .. 2**16 bytes (256 .. 8192 in practice), taken from
  blockette 1000, or found by looking for the next header when a record has
  no blockette 1000;
- both byte orders: the header's order is detected from the start year
  (as libmseed does), the data's order is blockette 1000's word order;
- encodings int16 (1), int32 (3), float32 (4), float64 (5), Steim-1 (10) and
  Steim-2 (11); Steim frames are decoded for a whole batch of records at once
  with numpy (no Python loop over frames or words), and each record's last
  sample is checked against its reverse integration constant;
- blockette 1000 (encoding, word order, length), blockette 1001 (microseconds,
  frame count), blockette 100 (actual sampling rate), and the time correction
  field of the fixed header (added unless activity flag bit 1 says it has
  already been applied).

Every record with samples becomes a :class:`~fieldpick.edge.sources.base.Record`
(network, station, location, channel, start_ns, sampling_rate, samples):
int16/int32/Steim samples as ``int32``, floats as ``float32``/``float64``, in
native byte order.

Bad input never stops the stream and never loses what was already decoded.
Garbage between records, truncated records, impossible headers, bad Steim
frames, integration-constant mismatches and unsupported encodings are skipped
with a logged reason and counted in :class:`DecodeStats` (``stats.skipped``,
keyed by reason); the decoder then looks for the next record header.

Three ways in:

- :func:`read_records` (a whole ``bytes`` object or a file path, returns a list);
- :class:`MseedDecoder` (streaming: ``feed(chunk)`` returns the records that are
  complete, ``flush()`` at the end; used by the pipe and SeedLink sources);
- :class:`MseedFileSource` (a :class:`~fieldpick.edge.sources.base.Source`
  over files, a directory, or a binary stream such as ``sys.stdin.buffer``).

miniSEED 3 (FDSN 2023) records are read too, mixed with miniSEED 2 in one
stream if need be: the 40-byte little-endian header, the FDSN source
identifier (``FDSN:NET_STA_LOC_B_S_SS``), nanosecond start times, the same
encodings (Steim big-endian, the others little-endian), and the CRC-32C of
every record is checked (a mismatch skips the record).  The CRC is computed
in pure Python (about 0.1 us per byte), so large miniSEED 3 files read much
more slowly than miniSEED 2.
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from ..errors import ConfigError, DataError
from ..limits import DEFAULT as DEFAULT_LIMITS
from ..limits import Limits
from .base import Record, Source

__all__ = [
    "ENCODINGS",
    "DecodeStats",
    "MseedDecoder",
    "MseedFileSource",
    "read_records",
    "decode_steim_reference",
    "btime_to_ns",
    "crc32c",
    "sampling_rate_from_factors",
]

log = logging.getLogger(__name__)

#: SEED encoding code -> name, for the encodings this reader decodes.
ENCODINGS = {1: "int16", 3: "int32", 4: "float32", 5: "float64", 10: "steim1", 11: "steim2"}
_SIMPLE = {1: "i2", 3: "i4", 4: "f4", 5: "f8"}
_OTHER_ENCODINGS = {
    0: "ASCII text",
    2: "int24",
    12: "GEOSCOPE 24-bit",
    13: "GEOSCOPE 16/3",
    14: "GEOSCOPE 16/4",
    15: "USNN",
    16: "CDSN",
    17: "Graefenberg",
    18: "IPG Strasbourg",
    19: "Steim-3",
    30: "SRO",
    31: "HGLP",
    32: "DWWSSN",
    33: "RSTN",
}

_FIXED = "6scc5s2s3s2sHHBBBBHHhhBBBBiHH"  # the 48-byte fixed header, without byte order
_HEADER_LEN = 48
_FRAME = 64
_MIN_RECLEN_EXP, _MAX_RECLEN_EXP = 7, 16
_NS_PER_TICK = 100_000  # one BTIME tick (0.0001 s) in ns
_BATCH_BYTES = 1 << 18  # records decoded together (see MseedDecoder._decode)
_FEED_BYTES = 1 << 20  # read_records feeds a buffer to the decoder in pieces of this size


@dataclass
class DecodeStats:
    """What a decoder has seen so far.

    records: records decoded into samples.  samples: their samples.
    no_data: valid records without samples (log, ASCII, zero rate).
    skipped: reason -> number of records (or runs of garbage) skipped.
    bytes_skipped: bytes that belonged to no decoded record.
    """

    records: int = 0
    samples: int = 0
    no_data: int = 0
    skipped: Dict[str, int] = field(default_factory=dict)
    bytes_skipped: int = 0

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def skip(self, reason: str, nbytes: int, where: str, detail: str = "") -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        self.bytes_skipped += nbytes
        log.warning("miniSEED: skipped %d bytes at %s: %s%s", nbytes, where, reason,
                    (" (" + detail + ")") if detail else "")


# ---------------------------------------------------------------- header


def btime_to_ns(year: int, doy: int, hour: int, minute: int, second: int, ticks: int) -> int:
    """SEED BTIME (day of year 1..366, ticks of 0.0001 s) -> ns since the epoch (UTC).

    A leap second (``second == 60``) counts as the first second of the next minute.
    """
    y = year - 1
    days = 365 * (year - 1970) + (y // 4 - 1969 // 4) - (y // 100 - 1969 // 100) + (y // 400 - 1969 // 400)
    days += doy - 1
    secs = ((days * 24 + hour) * 60 + minute) * 60 + second
    return secs * 1_000_000_000 + ticks * _NS_PER_TICK


def sampling_rate_from_factors(factor: int, multiplier: int) -> float:
    """The SEED sample-rate factor and multiplier -> Hz (0.0 when either is 0)."""
    if factor == 0 or multiplier == 0:
        return 0.0
    if factor > 0:
        return float(factor * multiplier) if multiplier > 0 else -float(factor) / multiplier
    return -float(multiplier) / factor if multiplier > 0 else 1.0 / (factor * multiplier)


@dataclass
class _Header:
    offset: int  # of the record in the buffer
    reclen: int  # bytes, 0 while unknown (no blockette 1000)
    network: str
    station: str
    location: str
    channel: str
    start_ns: int
    sampling_rate: float
    nsamples: int
    encoding: int  # -1 while unknown
    data_order: str  # '>' or '<'
    data_offset: int  # from the record start
    nframes: int  # blockette 1001 frame count, 0 when absent
    order: str = ">"  # of the header
    chain: Tuple[Tuple[int, int], ...] = ()  # (offset, type) of each blockette
    factors: Tuple[int, int] = (0, 0)  # sample-rate factor and multiplier


def _plausible(buf, off: int) -> bool:
    """The cheap test libmseed uses: sequence digits, quality code, sane clock fields."""
    b = buf[off:off + 48]
    if len(b) < 48:
        return False
    if b[6] not in b"DRQM" or b[7] not in (32, 0):
        return False
    for c in b[0:6]:
        if not (48 <= c <= 57 or c == 32 or c == 0):
            return False
    return b[24] <= 23 and b[25] <= 59 and b[26] <= 60


def _byte_order(buf, off: int) -> Optional[str]:
    for order in (">", "<"):
        year, doy = struct.unpack_from(order + "HH", buf, off + 20)
        if 1900 <= year <= 2100 and 1 <= doy <= 366:
            return order
    return None


def _code(raw: bytes) -> str:
    """A SEED code: printable ASCII only (NULs and other bytes dropped, as ObsPy does), stripped."""
    return raw.decode("ascii", "ignore").replace("\x00", "").strip()


class _Bad(Exception):
    """A record that cannot be used: (reason, detail)."""


class _NeedMore(Exception):
    """The header goes on beyond the bytes received so far."""


def _parse_header(buf, off: int, avail: int, final: bool = True) -> _Header:
    """Parse the fixed header and blockettes of the record at ``off``.

    ``avail``: bytes available from ``off``.  Raises :class:`_Bad` with a
    short reason when the header is impossible, :class:`_NeedMore` when a
    blockette lies beyond ``avail`` and more bytes may come (not ``final``).
    """
    order = _byte_order(buf, off)
    if order is None:
        raise _Bad("impossible start time", "year/day not plausible in either byte order")
    (_seq, _q, _r, sta, loc, cha, net, year, doy, hour, minute, sec, _u, ticks, nsamp, fac, mult,
     act, _io, _dq, _nblk, tcorr, data_off, blk_off) = struct.unpack_from(order + _FIXED, buf, off)
    if ticks > 9999:  # not valid SEED, but written by some loggers; ObsPy reads on too
        log.info("miniSEED: record with a fraction of %d x 0.0001 s (> 9999), read as extra seconds",
                 ticks)
    start = btime_to_ns(year, doy, hour, minute, sec, ticks)
    if not act & 0x02:
        start += tcorr * _NS_PER_TICK
    rate = sampling_rate_from_factors(fac, mult)
    encoding, data_order, reclen, nframes = -1, order, 0, 0
    seen = set()
    chain = []
    limit = min(avail, 1 << _MAX_RECLEN_EXP)
    pos = blk_off
    while pos:
        if not final and _HEADER_LEN <= pos and pos + 8 > avail and pos + 8 <= (1 << _MAX_RECLEN_EXP):
            raise _NeedMore()
        if pos < _HEADER_LEN or pos + 4 > limit or pos in seen:
            raise _Bad("bad blockette chain", "blockette offset %d" % pos)
        seen.add(pos)
        btype, nxt = struct.unpack_from(order + "HH", buf, off + pos)
        chain.append((pos, btype))
        if btype == 1000:
            if pos + 8 > limit:
                raise _Bad("bad blockette chain", "blockette 1000 at %d truncated" % pos)
            encoding, word_order, exp = struct.unpack_from("BBB", buf, off + pos + 4)
            if not _MIN_RECLEN_EXP <= exp <= _MAX_RECLEN_EXP:
                raise _Bad("bad record length", "2**%d, allowed 2**%d..2**%d"
                           % (exp, _MIN_RECLEN_EXP, _MAX_RECLEN_EXP))
            reclen = 1 << exp
            data_order = ">" if word_order else "<"
        elif btype == 1001:
            if pos + 8 > limit:
                raise _Bad("bad blockette chain", "blockette 1001 at %d truncated" % pos)
            usec, nframes = struct.unpack_from("bxB", buf, off + pos + 5)
            start += usec * 1000
        elif btype == 100:
            if pos + 8 > limit:
                raise _Bad("bad blockette chain", "blockette 100 at %d truncated" % pos)
            (actual,) = struct.unpack_from(order + "f", buf, off + pos + 4)
            if actual > 0 and np.isfinite(actual):
                rate = float(actual)
        if nxt and nxt <= pos:
            raise _Bad("bad blockette chain", "blockette at %d points back to %d" % (pos, nxt))
        pos = nxt
    if reclen:
        for pos, btype in chain:  # a chain must lie inside its record (a batch parse reads it there)
            if pos + (8 if btype in (100, 1000, 1001) else 4) > reclen:
                raise _Bad("bad blockette chain", "blockette %d at %d lies beyond the %d-byte record"
                           % (btype, pos, reclen))
    if reclen and (data_off > reclen or (nsamp and data_off < _HEADER_LEN)):
        raise _Bad("bad data offset", "%d in a %d-byte record" % (data_off, reclen))
    return _Header(
        offset=off, reclen=reclen, network=_code(net), station=_code(sta), location=_code(loc),
        channel=_code(cha), start_ns=start, sampling_rate=rate,
        nsamples=nsamp, encoding=encoding, data_order=data_order, data_offset=data_off, nframes=nframes,
        order=order, chain=tuple(chain), factors=(fac, mult),
    )


# ---------------------------------------------------------------- miniSEED 3

_MS3_FIXED = "<2sBBIHHBBBBdIIBBHI"  # FDSN miniSEED 3 fixed header, 40 bytes, little-endian
_MS3_LEN = 40
_MS3_MAX_RECLEN = 1 << 20  # longer records are refused (a stream would otherwise wait for gigabytes)


def _crc32c_table() -> List[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data, crc: int = 0) -> int:
    """CRC-32C (Castagnoli), as miniSEED 3 uses; ``crc32c(b"123456789") == 0xE3069283``."""
    table = _CRC32C
    c = crc ^ 0xFFFFFFFF
    for b in bytes(data):
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _parse_sid(sid: str) -> Tuple[str, str, str, str]:
    """'FDSN:NET_STA_LOC_B_S_SS' -> (net, sta, loc, cha); band/source/subsource join to e.g. 'HHZ'."""
    if not sid.startswith("FDSN:"):
        raise _Bad("unsupported source identifier", "%r is not FDSN:NET_STA_LOC_B_S_SS" % sid[:40])
    parts = sid[5:].split("_")
    if len(parts) != 6:
        raise _Bad("unsupported source identifier", "%r is not FDSN:NET_STA_LOC_B_S_SS" % sid[:40])
    net, sta, loc, band, source, sub = parts
    if max(len(band), len(source), len(sub)) <= 1:
        cha = band + source + sub
    else:
        cha = "_".join((band, source, sub))
    return net, sta, loc, cha


def _parse_header3(buf, off: int, avail: int, final: bool = True) -> _Header:
    """Parse a miniSEED 3 record header at ``off`` (raises _Bad / _NeedMore)."""
    if avail < _MS3_LEN:
        if not final:
            raise _NeedMore()
        raise _Bad("truncated record", "%d bytes of a 40-byte miniSEED 3 header" % avail)
    (_ms, _ver, _flags, nanos, year, doy, hour, minute, sec, encoding, rate, nsamp, _crc, _pub,
     sid_len, extra_len, data_len) = struct.unpack_from(_MS3_FIXED, buf, off)
    if not (1 <= doy <= 366 and hour <= 23 and minute <= 59 and sec <= 60 and nanos < 10**9):
        raise _Bad("impossible start time", "miniSEED 3 %d-%03d %02d:%02d:%02d.%09d"
                   % (year, doy, hour, minute, sec, nanos))
    if avail < _MS3_LEN + sid_len:
        if not final:
            raise _NeedMore()
        raise _Bad("truncated record", "identifier cut short")
    sid = bytes(buf[off + _MS3_LEN:off + _MS3_LEN + sid_len]).decode("ascii", "replace")
    net, sta, loc, cha = _parse_sid(sid)
    if rate < 0:
        rate = -1.0 / rate
    if not np.isfinite(rate):
        rate = 0.0
    data_off = _MS3_LEN + sid_len + extra_len
    if data_off + data_len > _MS3_MAX_RECLEN:
        raise _Bad("bad record length", "miniSEED 3 record of %d bytes; this reader takes at most %d"
                   % (data_off + data_len, _MS3_MAX_RECLEN))
    start = btime_to_ns(year, doy, hour, minute, sec, 0) + nanos
    return _Header(offset=off, reclen=data_off + data_len, network=net, station=sta, location=loc,
                   channel=cha, start_ns=start, sampling_rate=float(rate), nsamples=nsamp,
                   encoding=encoding, data_order=">" if encoding in (10, 11) else "<",
                   data_offset=data_off, nframes=0, order="<", chain=(), factors=(0, 0))


def _is_ms3(buf, off: int) -> bool:
    return buf[off:off + 3] == b"MS\x03"


def _days_from_civil(year: np.ndarray, doy: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of (year, day of year), vectorised; int64."""
    y = year.astype(np.int64) - 1
    return (365 * (y + 1 - 1970) + (y // 4 - 1969 // 4) - (y // 100 - 1969 // 100)
            + (y // 400 - 1969 // 400) + doy.astype(np.int64) - 1)


def _run_like(buf: bytes, arr: np.ndarray, h: _Header, n: int) -> List[_Header]:
    """Headers of the records that follow ``h`` back to back with the same layout, parsed at once.

    Records qualify while they sit at multiples of ``h.reclen`` after it and are
    followed by another that qualifies, pass the
    plausibility test of :func:`_plausible`, have a plausible start in ``h``'s byte
    order, and have the same data offset and blockette chain (types, offsets, and
    blockette 1000 contents).  The first record that does not qualify ends the run;
    the caller parses it the slow way.
    """
    size = h.reclen
    count = (n - h.offset) // size - 1
    if count <= 0 or not h.chain or any(pos + 8 > size for pos, _ in h.chain):
        return []  # (a chain beyond the record: each record is parsed, and refused, the slow way)
    q = h.offset + size * np.arange(1, count + 1, dtype=np.int64)
    sig = [44, 45, 46, 47]
    for pos, btype in h.chain:
        sig.extend(range(pos, pos + 4))
        if btype == 1000:
            sig.extend((pos + 4, pos + 5, pos + 6))
    sig = np.array(sig, np.int64)
    hdr = arr[q[:, None] + np.arange(_HEADER_LEN)[None, :]]  # (K, 48)
    good = (arr[q[:, None] + sig[None, :]] == arr[h.offset + sig][None, :]).all(axis=1)
    good &= np.isin(hdr[:, 6], np.frombuffer(b"DRQM", np.uint8)) & ((hdr[:, 7] == 32) | (hdr[:, 7] == 0))
    seq = hdr[:, :6]
    good &= (((seq >= 48) & (seq <= 57)) | (seq == 32) | (seq == 0)).all(axis=1)
    dt = np.dtype([("seq", "S6"), ("q", "S1"), ("r", "S1"), ("sta", "S5"), ("loc", "S2"), ("cha", "S3"),
                   ("net", "S2"), ("year", h.order + "u2"), ("doy", h.order + "u2"), ("hour", "u1"),
                   ("minute", "u1"), ("sec", "u1"), ("unused", "u1"), ("ticks", h.order + "u2"),
                   ("nsamp", h.order + "u2"), ("fac", h.order + "i2"), ("mult", h.order + "i2"),
                   ("act", "u1"), ("io", "u1"), ("dq", "u1"), ("nblk", "u1"), ("tcorr", h.order + "i4"),
                   ("doff", h.order + "u2"), ("boff", h.order + "u2")])
    f = hdr.view(dt)[:, 0]
    good &= ((f["year"] >= 1900) & (f["year"] <= 2100) & (f["doy"] >= 1) & (f["doy"] <= 366)
             & (f["hour"] <= 23) & (f["minute"] <= 59) & (f["sec"] <= 60) & (f["ticks"] <= 9999))
    # The last qualifying record is left to the slow path, which checks what follows it
    # (a record cut short has the next header inside it).
    k = (count if good.all() else int(np.argmin(good))) - 1
    if k <= 0:
        return []
    f, q = f[:k], q[:k]
    secs = ((_days_from_civil(f["year"], f["doy"]) * 24 + f["hour"]) * 60 + f["minute"]) * 60 + f["sec"]
    ticks = f["ticks"].astype(np.int64) + np.where(f["act"] & 2, 0, f["tcorr"].astype(np.int64))
    start = secs * 1_000_000_000 + ticks * _NS_PER_TICK
    rate = np.full(k, np.nan)
    same = (f["fac"] == h.factors[0]) & (f["mult"] == h.factors[1])
    rate[same] = sampling_rate_from_factors(*h.factors)
    for i in np.flatnonzero(~same):
        rate[i] = sampling_rate_from_factors(int(f["fac"][i]), int(f["mult"][i]))
    nframes = np.zeros(k, np.int64)
    for pos, btype in h.chain:
        if btype == 1001:
            start += arr[q + pos + 5].view(np.int8).astype(np.int64) * 1000
            nframes = arr[q + pos + 7].astype(np.int64)
        elif btype == 100:
            actual = arr[q[:, None] + pos + 4 + np.arange(4)].copy().view(h.order + "f4")[:, 0]
            use = (actual > 0) & np.isfinite(actual)
            rate[use] = actual[use]
    codes: Dict[bytes, Tuple[str, str, str, str]] = {}
    raw = hdr[:k, 8:20].tobytes()
    out = []
    start_l, nsamp_l, nfr_l, rate_l = start.tolist(), f["nsamp"].tolist(), nframes.tolist(), rate.tolist()
    for i, off in enumerate(q.tolist()):
        key = raw[12 * i:12 * i + 12]
        c = codes.get(key)
        if c is None:
            c = codes[key] = (_code(key[10:12]), _code(key[0:5]), _code(key[5:7]), _code(key[7:10]))
        out.append(_Header(off, size, c[0], c[1], c[2], c[3], start_l[i], rate_l[i], nsamp_l[i],
                           h.encoding, h.data_order, h.data_offset, nfr_l[i], h.order, h.chain,
                           h.factors))
    return out


def _candidates(arr: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Offsets p in [lo, hi) whose bytes 6 and 7 look like a header's (quality code, space)."""
    if hi - lo < 1 or lo + 8 > len(arr):
        return np.zeros(0, np.int64)
    q = arr[lo + 6:min(hi + 6, len(arr) - 1)]
    r = arr[lo + 7:lo + 7 + len(q)]
    ok = ((q == 68) | (q == 82) | (q == 81) | (q == 77)) & ((r == 32) | (r == 0))
    m = arr[lo:min(hi, len(arr) - 2)]  # miniSEED 3: "MS" and version 3
    ms3 = (m == 77) & (arr[lo + 1:lo + 1 + len(m)] == 83) & (arr[lo + 2:lo + 2 + len(m)] == 3)
    if len(ms3) < len(ok):
        ms3 = np.concatenate([ms3, np.zeros(len(ok) - len(ms3), bool)])
    return np.flatnonzero(ok | ms3[:len(ok)]) + lo


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


def _steim_batch(words: np.ndarray, frames_per_rec: np.ndarray, nsamples: np.ndarray, steim: int,
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
    # every word's differences go to diffs[wpos:wpos + count], one pass per word kind
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
    # where each record's differences begin and how many it has
    words_per_rec = frames_per_rec * 16
    per_frame = count.reshape(-1, 16).sum(axis=1)
    have = np.add.reduceat(per_frame, first) if nrec else np.zeros(0, np.int64)
    have[frames_per_rec == 0] = 0
    dstart = np.cumsum(have) - have
    ok = have >= nsamples
    reasons = []
    # an invalid word before the record's last needed difference spoils the record
    bad_words = np.flatnonzero(flat_k == _INVALID)
    if len(bad_words):
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


# ---------------------------------------------------------------- decoder


class MseedDecoder:
    """Streaming miniSEED 2 decoder with explicit state.

    ``feed(chunk)`` returns the records completed by ``chunk`` (a list of
    :class:`Record`, in stream order); bytes of an incomplete record wait for
    the next call.  ``flush()`` ends the stream: what is left is a truncated
    record and is counted.  ``reset()`` drops the pending bytes.  ``stats``
    holds the counters, ``offsets`` (when ``keep_offsets``) the stream offset of
    every decoded record.  default_encoding: SEED code assumed for records
    without blockette 1000 (Steim-1, as libmseed does; None skips them).
    limits: the plausible date window and sampling rates
    (:data:`fieldpick.edge.limits.DEFAULT` when None); records outside are
    skipped and counted ('implausible start time', 'implausible sampling rate').

    headers_only: find and check the records without decoding their samples
    (a plan of a file, at about half the cost of a decode).  ``feed`` and
    ``flush`` then return ``(seed_id, start_ns, stream offset, samples
    declared)`` for each record that holds samples, counted in ``stats`` as if
    decoded (a Steim frame error shows only when the samples are decoded: a
    decoder lists those in ``failures``).
    """

    def __init__(self, keep_offsets: bool = False, name: str = "stream",
                 default_encoding: Optional[int] = 10, headers_only: bool = False,
                 limits: Optional[Limits] = None):
        if default_encoding is not None and default_encoding not in ENCODINGS:
            raise ConfigError("default_encoding %r is not one of %s (or None)"
                              % (default_encoding, sorted(ENCODINGS)))
        self.default_encoding = default_encoding
        self.limits = limits or DEFAULT_LIMITS
        self.headers_only = headers_only
        # records whose Steim frames failed to decode: (reason, record bytes, samples declared)
        self.failures: List[Tuple[str, int, int]] = []
        self.stats = DecodeStats()
        self.name = name
        self.keep_offsets = keep_offsets
        self.offsets: List[int] = []
        self._pending = b""
        self._consumed = 0  # stream offset of self._pending[0]
        self._cached: Optional[Tuple[int, _Header]] = None  # the last header parsed ahead
        self._junk: Optional[list] = None  # [stream offset, bytes, reason, all padding] of a garbage run

    def reset(self) -> None:
        """Forget pending bytes (e.g. after a reconnect); counters are kept."""
        self._consumed += len(self._pending)
        self._pending = b""
        self._close_junk()

    def feed(self, chunk) -> List[Record]:
        buf = self._pending + bytes(chunk) if self._pending else bytes(chunk)
        records, used = self._decode(buf, final=False)
        self._pending = buf[used:]
        self._consumed += used
        return records

    def flush(self) -> List[Record]:
        buf, self._pending = self._pending, b""
        records, used = self._decode(buf, final=True)
        self._consumed += used
        self._close_junk()
        return records

    # -- internals

    def _where(self, off: int) -> str:
        return "%s offset %d" % (self.name, self._consumed + off)

    def _decode(self, buf: bytes, final: bool) -> Tuple[List[Record], int]:
        headers, used = self._scan(buf, final)
        if self.headers_only:
            found = []
            for h in headers:
                if self._has_data(h):
                    self.stats.records += 1
                    self.stats.samples += h.nsamples
                    at = self._consumed + h.offset
                    if self.keep_offsets:
                        self.offsets.append(at)
                    found.append(("%s.%s.%s.%s" % (h.network, h.station, h.location, h.channel),
                                  h.start_ns, at, h.nsamples))
            return found, used
        # decode in groups of about _BATCH_BYTES: the working arrays then stay in the CPU cache
        records: List[Record] = []
        lo = 0
        for i in range(1, len(headers) + 1):
            if i == len(headers) or headers[i].offset - headers[lo].offset >= _BATCH_BYTES:
                records.extend(self._decode_headers(buf, headers[lo:i]))
                lo = i
        return records, used

    def _scan(self, buf: bytes, final: bool) -> Tuple[List[_Header], int]:
        """Find the records in ``buf``; returns their headers and the bytes consumed."""
        arr = np.frombuffer(buf, np.uint8)
        n = len(buf)
        off = 0
        out: List[_Header] = []
        self._cached = None
        while off < n:
            avail = n - off
            if avail < _HEADER_LEN:
                if final:
                    self._garbage(buf, off, n, "truncated record")
                    off = n
                break
            if _is_ms3(buf, off):
                status = self._take_ms3(buf, arr, off, n, final, out)
                if status is None:
                    break
                off = status
                continue
            if not _plausible(buf, off):
                nxt = self._next_header(buf, arr, off + 1, n, final)
                if nxt is None:  # keep the last 47 bytes: a header may start there
                    stop = n if final else max(off, n - _HEADER_LEN + 1)
                    if stop > off:
                        self._garbage(buf, off, stop, "garbage between records")
                    off = stop
                    break
                self._garbage(buf, off, nxt, "garbage between records")
                off = nxt
                continue
            try:
                cached, self._cached = self._cached, None
                h = (cached[1] if cached is not None and cached[0] == off
                     else _parse_header(buf, off, avail, final))
                self._close_junk()
            except _NeedMore:
                break
            except _Bad as exc:
                reason, detail = exc.args
                nxt = self._next_header(buf, arr, off + 1, n, final)
                end = nxt if nxt is not None else (n if final else max(off + 1, n - _HEADER_LEN + 1))
                self.stats.skip(reason, end - off, self._where(off), detail)
                off = end
                if nxt is None:
                    break
                continue
            reclen = h.reclen
            if not reclen:
                reclen = self._find_reclen(buf, off, n, final)
                if reclen is None:
                    if not final and n - off < (1 << _MAX_RECLEN_EXP) + _HEADER_LEN:
                        break  # wait: the next header may still come
                    nxt = self._next_header(buf, arr, off + _HEADER_LEN, n, final)
                    end = nxt if nxt is not None else n
                    self.stats.skip("record length unknown", end - off, self._where(off),
                                    "no blockette 1000 and no header 2**7..2**16 bytes on")
                    off = end
                    continue
                h.reclen = reclen
                beyond = [pos for pos, _ in h.chain if pos + 4 > reclen]
                if beyond:
                    self.stats.skip("bad blockette chain", reclen, self._where(off),
                                    "blockette at %d lies beyond the %d-byte record" % (beyond[0], reclen))
                    off += reclen
                    continue
            if off + reclen > n:
                if final:
                    nxt = self._next_header(buf, arr, off + 1, n)
                    end = nxt if nxt is not None else n
                    self.stats.skip("truncated record", end - off, self._where(off),
                                    "%d of %d bytes" % (end - off, reclen))
                    off = end
                    continue
                break
            # A record followed by garbage may itself be truncated with the next record
            # starting inside it: look for a header within it before accepting it.
            end = off + reclen
            if not (end + _HEADER_LEN <= n and self._header_at(buf, end, final) is not False):
                inner = self._next_header(buf, arr, off + _HEADER_LEN, end, final, sure=True)
                if inner is not None:
                    self.stats.skip("truncated record", inner - off, self._where(off),
                                    "next header %d bytes in" % (inner - off))
                    off = inner
                    continue
            if h.data_offset > reclen:
                self.stats.skip("bad data offset", reclen, self._where(off),
                                "%d in a %d-byte record" % (h.data_offset, reclen))
                off = end
                continue
            out.append(h)
            off = end
            if h.reclen == reclen and end < n:  # blockette 1000: parse the run that follows at once
                run = _run_like(buf, arr, h, n)
                if run:
                    out.extend(run)
                    off = run[-1].offset + reclen
        return out, off

    def _garbage(self, buf, lo: int, hi: int, reason: str) -> None:
        """Bytes that belong to no record; a run of them (even across feeds) counts once."""
        padding = buf[lo:hi].strip(b"\x00 ") == b""  # NULs or spaces: padding, not an error
        start = self._consumed + lo
        junk = self._junk
        if junk is not None and junk[0] + junk[1] == start:
            junk[1] += hi - lo
            junk[3] = junk[3] and padding
            return
        self._close_junk()
        self._junk = [start, hi - lo, reason, padding]

    def _close_junk(self) -> None:
        if self._junk is None:
            return
        start, nbytes, reason, padding = self._junk
        self._junk = None
        if padding:
            self.stats.bytes_skipped += nbytes
        else:
            self.stats.skip(reason, nbytes, "%s offset %d" % (self.name, start))

    def _take_ms3(self, buf, arr, off: int, n: int, final: bool, out: List[_Header]) -> Optional[int]:
        """Take the miniSEED 3 record at ``off``; returns the next offset (None: wait for bytes)."""
        try:
            h = _parse_header3(buf, off, n - off, final)
        except _NeedMore:
            return None
        except _Bad as exc:
            reason, detail = exc.args
            nxt = self._next_header(buf, arr, off + 1, n, final)
            end = nxt if nxt is not None else n
            self.stats.skip(reason, end - off, self._where(off), detail)
            return end
        self._close_junk()
        if off + h.reclen > n:
            if not final:
                return None
            nxt = self._next_header(buf, arr, off + 1, n)
            end = nxt if nxt is not None else n
            self.stats.skip("truncated record", end - off, self._where(off),
                            "%d of %d bytes" % (end - off, h.reclen))
            return end
        record = bytearray(buf[off:off + h.reclen])
        (stored,) = struct.unpack_from("<I", record, 28)
        record[28:32] = b"\0\0\0\0"
        if crc32c(record) != stored:
            nxt = self._next_header(buf, arr, off + 1, off + h.reclen, final, sure=True)
            end = nxt if nxt is not None else off + h.reclen
            self.stats.skip("CRC mismatch", end - off, self._where(off),
                            "miniSEED 3 CRC-32C %08X, computed %08X" % (stored, crc32c(record)))
            return end
        out.append(h)
        return off + h.reclen

    def _header_at(self, buf, off: int, final: bool = True) -> Optional[bool]:
        """Whether a valid header starts at ``off``; None: cannot tell until more bytes come."""
        if _is_ms3(buf, off):
            try:
                _parse_header3(buf, off, len(buf) - off, final)
            except _NeedMore:
                return None
            except _Bad:
                return False
            return True
        if not _plausible(buf, off):
            return False
        try:
            self._cached = (off, _parse_header(buf, off, len(buf) - off, final))
        except _NeedMore:
            return None
        except _Bad:
            return False
        return True

    def _next_header(self, buf, arr, lo: int, hi: int, final: bool = True,
                     sure: bool = False) -> Optional[int]:
        """First offset in [lo, hi) holding a header (None if none).

        A header that cannot be checked before more bytes come counts as found,
        unless ``sure``.
        """
        for p in _candidates(arr, lo, hi):
            if p + _HEADER_LEN <= len(buf):
                found = self._header_at(buf, int(p), final)
                if found or (found is None and not sure):
                    return int(p)
        return None

    def _find_reclen(self, buf, off: int, n: int, final: bool) -> Optional[int]:
        """Record length of a record without blockette 1000: the distance to the next header."""
        for exp in range(_MIN_RECLEN_EXP, _MAX_RECLEN_EXP + 1):
            p = off + (1 << exp)
            if p == n and final:
                return 1 << exp
            if p + _HEADER_LEN > n:
                return None
            found = self._header_at(buf, p, final)
            if found is None:
                return None
            if found:
                return 1 << exp
        return None

    def _has_data(self, h: _Header) -> bool:
        """Whether the record holds samples this reader decodes, from its header only;
        counts the others (no data) or skips them with the reason."""
        if h.encoding == -1 and self.default_encoding is not None:
            h.encoding = self.default_encoding
        if h.nsamples == 0 or h.sampling_rate <= 0 or h.encoding == 0:
            self.stats.no_data += 1
            return False
        lim = self.limits
        if not lim.rate_ok(h.sampling_rate):
            self.stats.skip("implausible sampling rate", h.reclen, self._where(h.offset),
                            "%r Hz; allowed %g .. %g Hz" % (h.sampling_rate, lim.min_rate_hz, lim.max_rate_hz))
            return False
        if not lim.time_ok(h.start_ns):
            self.stats.skip("implausible start time", h.reclen, self._where(h.offset),
                            "%d ns; allowed the years %d .. %d" % (h.start_ns, lim.min_year, lim.max_year))
            return False
        if h.encoding in _SIMPLE:
            size = np.dtype(_SIMPLE[h.encoding]).itemsize
            if h.data_offset + h.nsamples * size > h.reclen:
                self.stats.skip("bad sample count", h.reclen, self._where(h.offset),
                                "%d %s samples do not fit in %d bytes"
                                % (h.nsamples, ENCODINGS[h.encoding], h.reclen - h.data_offset))
                return False
            return True
        if h.encoding in (10, 11):
            return True
        if h.encoding == -1:
            self.stats.skip("encoding unknown", h.reclen, self._where(h.offset), "no blockette 1000")
        else:
            self.stats.skip("unsupported encoding", h.reclen, self._where(h.offset),
                            "%d (%s); supported: %s" % (
                                h.encoding, _OTHER_ENCODINGS.get(h.encoding, "unknown"),
                                ", ".join("%d %s" % kv for kv in ENCODINGS.items())))
        return False

    def _decode_headers(self, buf: bytes, headers: List[_Header]) -> List[Record]:
        samples: List[Optional[np.ndarray]] = [None] * len(headers)
        steim: Dict[Tuple[int, str, int], List[int]] = {}
        for i, h in enumerate(headers):
            if not self._has_data(h):
                continue
            if h.encoding in _SIMPLE:
                dt = np.dtype(h.data_order + _SIMPLE[h.encoding])
                x = np.frombuffer(buf, dt, h.nsamples, h.offset + h.data_offset)
                samples[i] = x.astype(np.int32 if h.encoding in (1, 3) else dt.newbyteorder("="))
            else:
                key = (h.encoding, h.data_order, (h.offset + h.data_offset) % 4)
                steim.setdefault(key, []).append(i)
        for (enc, order, shift), idx in steim.items():
            self._decode_steim_group(buf, headers, idx, enc - 9, order, shift, samples)
        out = []
        for h, s in zip(headers, samples):
            if s is None:
                continue
            self.stats.records += 1
            self.stats.samples += len(s)
            if self.keep_offsets:
                self.offsets.append(self._consumed + h.offset)
            out.append(Record(h.network, h.station, h.location, h.channel, h.start_ns,
                              h.sampling_rate, s))
        return out

    def _decode_steim_group(self, buf, headers, idx, steim, order, shift, samples) -> None:
        empty = [i for i in idx if headers[i].reclen - headers[i].data_offset < _FRAME]
        for i in empty:  # samples declared but not one whole frame to hold them
            h = headers[i]
            self.stats.skip("bad Steim frame", h.reclen, self._where(h.offset),
                            "%d samples declared, no frame after data offset %d" % (h.nsamples, h.data_offset))
            self.failures.append(("bad Steim frame", h.reclen, h.nsamples))
        if empty:
            idx = [i for i in idx if i not in set(empty)]
            if not idx:
                return
        hs = [headers[i] for i in idx]
        nfr = np.array([(h.reclen - h.data_offset) // _FRAME for h in hs], np.int64)
        declared = np.array([h.nframes for h in hs], np.int64)
        nfr = np.where((declared > 0) & (declared < nfr), declared, nfr)
        nsamp = np.array([h.nsamples for h in hs], np.int64)
        base = np.array([h.offset + h.data_offset for h in hs], np.int64)
        words_all = np.frombuffer(buf, np.dtype(order + "u4"), (len(buf) - shift) // 4, shift)
        first = np.cumsum(nfr) - nfr
        frame_start = (np.repeat(base - shift, nfr) // 4
                       + 16 * (np.arange(int(nfr.sum()), dtype=np.int64) - np.repeat(first, nfr)))
        words = words_all[frame_start[:, None] + np.arange(16)[None, :]].astype(np.uint32)
        flat, ok, reasons = _steim_batch(words, nfr, nsamp, steim, order)
        for r, reason, detail in reasons:
            self.stats.skip(reason, hs[r].reclen, self._where(hs[r].offset), detail)
            self.failures.append((reason, hs[r].reclen, hs[r].nsamples))
        n = np.where(ok, nsamp, 0)
        pos = 0
        for j, i in enumerate(idx):
            if ok[j]:
                samples[i] = flat[pos:pos + n[j]]
                pos += int(n[j])


def read_records(data, keep_offsets: bool = False, limits: Optional[Limits] = None):
    """Decode a whole miniSEED buffer (``bytes``) or file (a path) into records.

    Returns the list of :class:`Record`; with ``keep_offsets`` returns
    ``(records, offsets, stats)`` (the byte offset of each record).
    """
    name = "buffer"
    if isinstance(data, (str, os.PathLike)):
        name = os.fspath(data)
        with open(data, "rb") as fh:
            data = fh.read()
    dec = MseedDecoder(keep_offsets=keep_offsets, name=name, limits=limits)
    view = memoryview(data)
    records = []
    for i in range(0, len(view), _FEED_BYTES):  # pieces: smaller working arrays, measurably faster
        records.extend(dec.feed(view[i:i + _FEED_BYTES]))
    records.extend(dec.flush())
    if keep_offsets:
        return records, dec.offsets, dec.stats
    return records


# ---------------------------------------------------------------- source


class MseedFileSource(Source):
    """Records from miniSEED files, a directory of them, or a binary stream.

    paths: one path or a list of paths; a directory contributes every file under
    it (sorted by path).  stream: a binary file object (``sys.stdin.buffer``) read
    in chunks of ``chunk_bytes``; give either ``paths`` or ``stream``.
    ``stats`` counts decoded and skipped records over all inputs.
    """

    def __init__(self, paths=None, stream=None, chunk_bytes: int = 1 << 20, limits: Optional[Limits] = None):
        if (paths is None) == (stream is None):
            raise ConfigError("MseedFileSource needs exactly one of paths= or stream=, got %s"
                              % ("both" if paths is not None else "neither"))
        if chunk_bytes < 1:
            raise ConfigError("chunk_bytes must be >= 1, got %r" % (chunk_bytes,))
        self.stream = stream
        self.chunk_bytes = int(chunk_bytes)
        self.limits = limits
        self.paths: List[str] = []
        if paths is not None:
            for p in [paths] if isinstance(paths, (str, os.PathLike)) else list(paths):
                self.paths.extend(_expand(os.fspath(p)))
        self.stats = DecodeStats()
        self._closed = False

    def __iter__(self) -> Iterator[Record]:
        if self.stream is not None:
            yield from self._iter_stream(self.stream, "stdin")
            return
        for path in self.paths:
            if self._closed:
                return
            try:
                fh = open(path, "rb")
            except OSError as exc:  # one unreadable file does not stop the others
                self.stats.skip("unreadable file", 0, path, exc.strerror or str(exc))
                continue
            with fh:
                yield from self._iter_stream(fh, path)

    def _iter_stream(self, fh, name: str) -> Iterator[Record]:
        dec = MseedDecoder(name=name, limits=self.limits)
        dec.stats = self.stats
        while not self._closed:
            chunk = _read_some(fh, self.chunk_bytes)
            if not chunk:
                break
            yield from dec.feed(chunk)
        yield from dec.flush()

    def close(self) -> None:
        self._closed = True


def _read_some(fh, n: int) -> bytes:
    read1 = getattr(fh, "read1", None)  # a pipe: return what is there, do not wait for n
    return read1(n) if read1 is not None else fh.read(n)


def _expand(path: str) -> List[str]:
    if os.path.isdir(path):
        found = []
        for root, dirs, files in os.walk(path):
            dirs.sort()
            found.extend(os.path.join(root, f) for f in sorted(files) if not f.startswith("."))
        return found
    if not os.path.exists(path):
        raise DataError("miniSEED input %r does not exist" % path)
    return [path]

