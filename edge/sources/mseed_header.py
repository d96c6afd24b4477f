"""miniSEED record headers, version 2 (SEED 2.4 fixed header and blockettes) and 3 (FDSN 2023).

Parsing one header at an offset, finding where the next one may start, and
the CRC-32C that miniSEED 3 records carry.  Used by
:class:`~fieldpick.edge.sources.mseed.MseedDecoder`.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

__all__ = ["btime_to_ns", "sampling_rate_from_factors", "crc32c", "Header", "parse_header", "parse_header3"]

log = logging.getLogger("fieldpick.edge.sources.mseed")  # the reader's log, wherever the header is parsed

_FIXED = "6scc5s2s3s2sHHBBBBHHhhBBBBiHH"  # the 48-byte fixed header, without byte order
HEADER_LEN = 48
FRAME = 64
MIN_RECLEN_EXP, MAX_RECLEN_EXP = 7, 16
_NS_PER_TICK = 100_000  # one BTIME tick (0.0001 s) in ns

#: SEED encoding code -> name, for the encodings this reader decodes.
ENCODINGS = {1: "int16", 3: "int32", 4: "float32", 5: "float64", 10: "steim1", 11: "steim2"}
SIMPLE_ENCODINGS = {1: "i2", 3: "i4", 4: "f4", 5: "f8"}
#: codes of the SEED encodings this reader does not decode, named in its error
OTHER_ENCODINGS = {
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
class Header:
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


def plausible_header(buf, off: int) -> bool:
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


class BadRecord(Exception):
    """A record that cannot be used: (reason, detail)."""


class NeedMore(Exception):
    """The header goes on beyond the bytes received so far."""


def parse_header(buf, off: int, avail: int, final: bool = True) -> Header:
    """Parse the fixed header and blockettes of the record at ``off``.

    ``avail``: bytes available from ``off``.  Raises :class:`BadRecord` with a
    short reason when the header is impossible, :class:`NeedMore` when a
    blockette lies beyond ``avail`` and more bytes may come (not ``final``).
    """
    order = _byte_order(buf, off)
    if order is None:
        raise BadRecord("impossible start time", "year/day not plausible in either byte order")
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
    limit = min(avail, 1 << MAX_RECLEN_EXP)
    pos = blk_off
    while pos:
        if not final and HEADER_LEN <= pos and pos + 8 > avail and pos + 8 <= (1 << MAX_RECLEN_EXP):
            raise NeedMore()
        if pos < HEADER_LEN or pos + 4 > limit or pos in seen:
            raise BadRecord("bad blockette chain", "blockette offset %d" % pos)
        seen.add(pos)
        btype, nxt = struct.unpack_from(order + "HH", buf, off + pos)
        chain.append((pos, btype))
        if btype == 1000:
            if pos + 8 > limit:
                raise BadRecord("bad blockette chain", "blockette 1000 at %d truncated" % pos)
            encoding, word_order, exp = struct.unpack_from("BBB", buf, off + pos + 4)
            if not MIN_RECLEN_EXP <= exp <= MAX_RECLEN_EXP:
                raise BadRecord("bad record length", "2**%d, allowed 2**%d..2**%d"
                           % (exp, MIN_RECLEN_EXP, MAX_RECLEN_EXP))
            reclen = 1 << exp
            data_order = ">" if word_order else "<"
        elif btype == 1001:
            if pos + 8 > limit:
                raise BadRecord("bad blockette chain", "blockette 1001 at %d truncated" % pos)
            usec, nframes = struct.unpack_from("bxB", buf, off + pos + 5)
            start += usec * 1000
        elif btype == 100:
            if pos + 8 > limit:
                raise BadRecord("bad blockette chain", "blockette 100 at %d truncated" % pos)
            (actual,) = struct.unpack_from(order + "f", buf, off + pos + 4)
            if actual > 0 and np.isfinite(actual):
                rate = float(actual)
        if nxt and nxt <= pos:
            raise BadRecord("bad blockette chain", "blockette at %d points back to %d" % (pos, nxt))
        pos = nxt
    if reclen:
        for pos, btype in chain:  # a chain must lie inside its record (a batch parse reads it there)
            if pos + (8 if btype in (100, 1000, 1001) else 4) > reclen:
                raise BadRecord("bad blockette chain", "blockette %d at %d lies beyond the %d-byte record"
                           % (btype, pos, reclen))
    if reclen and (data_off > reclen or (nsamp and data_off < HEADER_LEN)):
        raise BadRecord("bad data offset", "%d in a %d-byte record" % (data_off, reclen))
    return Header(
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
        raise BadRecord("unsupported source identifier", "%r is not FDSN:NET_STA_LOC_B_S_SS" % sid[:40])
    parts = sid[5:].split("_")
    if len(parts) != 6:
        raise BadRecord("unsupported source identifier", "%r is not FDSN:NET_STA_LOC_B_S_SS" % sid[:40])
    net, sta, loc, band, source, sub = parts
    if max(len(band), len(source), len(sub)) <= 1:
        cha = band + source + sub
    else:
        cha = "_".join((band, source, sub))
    return net, sta, loc, cha


def parse_header3(buf, off: int, avail: int, final: bool = True) -> Header:
    """Parse a miniSEED 3 record header at ``off`` (raises BadRecord / NeedMore)."""
    if avail < _MS3_LEN:
        if not final:
            raise NeedMore()
        raise BadRecord("truncated record", "%d bytes of a 40-byte miniSEED 3 header" % avail)
    (_ms, _ver, _flags, nanos, year, doy, hour, minute, sec, encoding, rate, nsamp, _crc, _pub,
     sid_len, extra_len, data_len) = struct.unpack_from(_MS3_FIXED, buf, off)
    if not (1 <= doy <= 366 and hour <= 23 and minute <= 59 and sec <= 60 and nanos < 10**9):
        raise BadRecord("impossible start time", "miniSEED 3 %d-%03d %02d:%02d:%02d.%09d"
                   % (year, doy, hour, minute, sec, nanos))
    if avail < _MS3_LEN + sid_len:
        if not final:
            raise NeedMore()
        raise BadRecord("truncated record", "identifier cut short")
    sid = bytes(buf[off + _MS3_LEN:off + _MS3_LEN + sid_len]).decode("ascii", "replace")
    net, sta, loc, cha = _parse_sid(sid)
    if rate < 0:
        rate = -1.0 / rate
    if not np.isfinite(rate):
        rate = 0.0
    data_off = _MS3_LEN + sid_len + extra_len
    if data_off + data_len > _MS3_MAX_RECLEN:
        raise BadRecord("bad record length", "miniSEED 3 record of %d bytes; this reader takes at most %d"
                   % (data_off + data_len, _MS3_MAX_RECLEN))
    start = btime_to_ns(year, doy, hour, minute, sec, 0) + nanos
    return Header(offset=off, reclen=data_off + data_len, network=net, station=sta, location=loc,
                   channel=cha, start_ns=start, sampling_rate=float(rate), nsamples=nsamp,
                   encoding=encoding, data_order=">" if encoding in (10, 11) else "<",
                   data_offset=data_off, nframes=0, order="<", chain=(), factors=(0, 0))


def is_ms3(buf, off: int) -> bool:
    return buf[off:off + 3] == b"MS\x03"


def _days_from_civil(year: np.ndarray, doy: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of (year, day of year), vectorised; int64."""
    y = year.astype(np.int64) - 1
    return (365 * (y + 1 - 1970) + (y // 4 - 1969 // 4) - (y // 100 - 1969 // 100)
            + (y // 400 - 1969 // 400) + doy.astype(np.int64) - 1)


def run_like(buf: bytes, arr: np.ndarray, h: Header, n: int) -> List[Header]:
    """Headers of the records that follow ``h`` back to back with the same layout, parsed at once.

    Records qualify while they sit at multiples of ``h.reclen`` after it and are
    followed by another that qualifies, pass the
    plausibility test of :func:`plausible_header`, have a plausible start in ``h``'s byte
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
    hdr = arr[q[:, None] + np.arange(HEADER_LEN)[None, :]]  # (K, 48)
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
        out.append(Header(off, size, c[0], c[1], c[2], c[3], start_l[i], rate_l[i], nsamp_l[i],
                           h.encoding, h.data_order, h.data_offset, nfr_l[i], h.order, h.chain,
                           h.factors))
    return out


def header_candidates(arr: np.ndarray, lo: int, hi: int) -> np.ndarray:
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


def data_problem(h: Header, limits) -> Optional[Tuple[Optional[str], str]]:
    """Why a record's samples cannot be decoded, from its header only: None when they
    can; ``(None, "")`` when it holds none (log, ASCII, zero rate: not an error);
    else ``(reason, detail)`` to skip it with.  limits: a :class:`~fieldpick.edge.limits.Limits`."""
    if h.nsamples == 0 or h.sampling_rate <= 0 or h.encoding == 0:
        return None, ""
    if not limits.rate_ok(h.sampling_rate):
        return ("implausible sampling rate", "%r Hz; allowed %g .. %g Hz"
                % (h.sampling_rate, limits.min_rate_hz, limits.max_rate_hz))
    if not limits.time_ok(h.start_ns):
        return ("implausible start time", "%d ns; allowed the years %d .. %d"
                % (h.start_ns, limits.min_year, limits.max_year))
    if h.encoding in SIMPLE_ENCODINGS:
        size = np.dtype(SIMPLE_ENCODINGS[h.encoding]).itemsize
        if h.data_offset + h.nsamples * size > h.reclen:
            return ("bad sample count", "%d %s samples do not fit in %d bytes"
                    % (h.nsamples, ENCODINGS[h.encoding], h.reclen - h.data_offset))
        return None
    if h.encoding in (10, 11):
        return None
    if h.encoding == -1:
        return "encoding unknown", "no blockette 1000"
    return ("unsupported encoding", "%d (%s); supported: %s" % (
        h.encoding, OTHER_ENCODINGS.get(h.encoding, "unknown"), ", ".join("%d %s" % kv for kv in ENCODINGS.items())))
