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
from .mseed_header import (
    ENCODINGS,
    FRAME,
    HEADER_LEN,
    MAX_RECLEN_EXP,
    MIN_RECLEN_EXP,
    SIMPLE_ENCODINGS,
    BadRecord,
    Header,
    NeedMore,
    btime_to_ns,
    crc32c,
    data_problem,
    header_candidates,
    is_ms3,
    parse_header,
    parse_header3,
    plausible_header,
    run_like,
    sampling_rate_from_factors,
)
from .steim import decode_steim_reference, steim_batch

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
        self._cached: Optional[Tuple[int, Header]] = None  # the last header parsed ahead
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

    def _scan(self, buf: bytes, final: bool) -> Tuple[List[Header], int]:
        """Find the records in ``buf``; returns their headers and the bytes consumed."""
        arr = np.frombuffer(buf, np.uint8)
        n = len(buf)
        off = 0
        out: List[Header] = []
        self._cached = None
        while off < n:
            off, stop = self._scan_at(buf, arr, off, n, final, out)
            if stop:
                break
        return out, off

    def _scan_at(self, buf, arr, off: int, n: int, final: bool, out: List[Header]) -> Tuple[int, bool]:
        """One step of the scan at ``off``: a header parsed (then its record taken), or
        garbage or a bad record skipped.  Returns (next offset, whether to stop and
        wait for more bytes)."""
        avail = n - off
        if avail < HEADER_LEN:
            if final:
                self._garbage(buf, off, n, "truncated record")
                return n, True
            return off, True
        if is_ms3(buf, off):
            status = self._take_ms3(buf, arr, off, n, final, out)
            return (off, True) if status is None else (status, False)
        if not plausible_header(buf, off):
            nxt = self._next_header(buf, arr, off + 1, n, final)
            if nxt is None:  # keep the last 47 bytes: a header may start there
                stop = n if final else max(off, n - HEADER_LEN + 1)
                if stop > off:
                    self._garbage(buf, off, stop, "garbage between records")
                return stop, True
            self._garbage(buf, off, nxt, "garbage between records")
            return nxt, False
        try:
            cached, self._cached = self._cached, None
            h = (cached[1] if cached is not None and cached[0] == off
                 else parse_header(buf, off, avail, final))
            self._close_junk()
        except NeedMore:
            return off, True
        except BadRecord as exc:
            reason, detail = exc.args
            nxt = self._next_header(buf, arr, off + 1, n, final)
            end = nxt if nxt is not None else (n if final else max(off + 1, n - HEADER_LEN + 1))
            self.stats.skip(reason, end - off, self._where(off), detail)
            return end, nxt is None
        return self._take_record(buf, arr, h, off, n, final, out)

    def _take_record(self, buf, arr, h: Header, off: int, n: int, final: bool,
                     out: List[Header]) -> Tuple[int, bool]:
        """The record of the miniSEED 2 header ``h`` at ``off``: its length checked (found
        from the next header without blockette 1000), then taken into ``out`` with the
        run of records like it that follows.  Returns as :meth:`_scan_at`."""
        reclen = h.reclen
        if not reclen:
            reclen = self._find_reclen(buf, off, n, final)
            if reclen is None:
                if not final and n - off < (1 << MAX_RECLEN_EXP) + HEADER_LEN:
                    return off, True  # wait: the next header may still come
                nxt = self._next_header(buf, arr, off + HEADER_LEN, n, final)
                end = nxt if nxt is not None else n
                self.stats.skip("record length unknown", end - off, self._where(off),
                                "no blockette 1000 and no header 2**7..2**16 bytes on")
                return end, False
            h.reclen = reclen
            beyond = [pos for pos, _ in h.chain if pos + 4 > reclen]
            if beyond:
                self.stats.skip("bad blockette chain", reclen, self._where(off),
                                "blockette at %d lies beyond the %d-byte record" % (beyond[0], reclen))
                return off + reclen, False
        if off + reclen > n:
            if not final:
                return off, True
            nxt = self._next_header(buf, arr, off + 1, n)
            end = nxt if nxt is not None else n
            self.stats.skip("truncated record", end - off, self._where(off), "%d of %d bytes" % (end - off, reclen))
            return end, False
        # A record followed by garbage may itself be truncated with the next record
        # starting inside it: look for a header within it before accepting it.
        end = off + reclen
        if not (end + HEADER_LEN <= n and self._header_at(buf, end, final) is not False):
            inner = self._next_header(buf, arr, off + HEADER_LEN, end, final, sure=True)
            if inner is not None:
                self.stats.skip("truncated record", inner - off, self._where(off),
                                "next header %d bytes in" % (inner - off))
                return inner, False
        if h.data_offset > reclen:
            self.stats.skip("bad data offset", reclen, self._where(off),
                            "%d in a %d-byte record" % (h.data_offset, reclen))
            return end, False
        out.append(h)
        if h.reclen == reclen and end < n:  # blockette 1000: parse the run that follows at once
            run = run_like(buf, arr, h, n)
            if run:
                out.extend(run)
                end = run[-1].offset + reclen
        return end, False

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

    def _take_ms3(self, buf, arr, off: int, n: int, final: bool, out: List[Header]) -> Optional[int]:
        """Take the miniSEED 3 record at ``off``; returns the next offset (None: wait for bytes)."""
        try:
            h = parse_header3(buf, off, n - off, final)
        except NeedMore:
            return None
        except BadRecord as exc:
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
        if is_ms3(buf, off):
            try:
                parse_header3(buf, off, len(buf) - off, final)
            except NeedMore:
                return None
            except BadRecord:
                return False
            return True
        if not plausible_header(buf, off):
            return False
        try:
            self._cached = (off, parse_header(buf, off, len(buf) - off, final))
        except NeedMore:
            return None
        except BadRecord:
            return False
        return True

    def _next_header(self, buf, arr, lo: int, hi: int, final: bool = True,
                     sure: bool = False) -> Optional[int]:
        """First offset in [lo, hi) holding a header (None if none).

        A header that cannot be checked before more bytes come counts as found,
        unless ``sure``.
        """
        for p in header_candidates(arr, lo, hi):
            if p + HEADER_LEN <= len(buf):
                found = self._header_at(buf, int(p), final)
                if found or (found is None and not sure):
                    return int(p)
        return None

    def _find_reclen(self, buf, off: int, n: int, final: bool) -> Optional[int]:
        """Record length of a record without blockette 1000: the distance to the next header."""
        for exp in range(MIN_RECLEN_EXP, MAX_RECLEN_EXP + 1):
            p = off + (1 << exp)
            if p == n and final:
                return 1 << exp
            if p + HEADER_LEN > n:
                return None
            found = self._header_at(buf, p, final)
            if found is None:
                return None
            if found:
                return 1 << exp
        return None

    def _has_data(self, h: Header) -> bool:
        """Whether the record holds samples this reader decodes, from its header only;
        counts the others (no data) or skips them with the reason."""
        if h.encoding == -1 and self.default_encoding is not None:
            h.encoding = self.default_encoding
        problem = data_problem(h, self.limits)
        if problem is None:
            return True
        if problem[0] is None:
            self.stats.no_data += 1
        else:
            self.stats.skip(problem[0], h.reclen, self._where(h.offset), problem[1])
        return False

    def _decode_headers(self, buf: bytes, headers: List[Header]) -> List[Record]:
        samples: List[Optional[np.ndarray]] = [None] * len(headers)
        steim: Dict[Tuple[int, str, int], List[int]] = {}
        for i, h in enumerate(headers):
            if not self._has_data(h):
                continue
            if h.encoding in SIMPLE_ENCODINGS:
                dt = np.dtype(h.data_order + SIMPLE_ENCODINGS[h.encoding])
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
        empty = [i for i in idx if headers[i].reclen - headers[i].data_offset < FRAME]
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
        nfr = np.array([(h.reclen - h.data_offset) // FRAME for h in hs], np.int64)
        declared = np.array([h.nframes for h in hs], np.int64)
        nfr = np.where((declared > 0) & (declared < nfr), declared, nfr)
        nsamp = np.array([h.nsamples for h in hs], np.int64)
        base = np.array([h.offset + h.data_offset for h in hs], np.int64)
        words_all = np.frombuffer(buf, np.dtype(order + "u4"), (len(buf) - shift) // 4, shift)
        first = np.cumsum(nfr) - nfr
        frame_start = (np.repeat(base - shift, nfr) // 4
                       + 16 * (np.arange(int(nfr.sum()), dtype=np.int64) - np.repeat(first, nfr)))
        words = words_all[frame_start[:, None] + np.arange(16)[None, :]].astype(np.uint32)
        flat, ok, reasons = steim_batch(words, nfr, nsamp, steim, order)
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

