"""miniSEED files merged into one stream in time order, and the run verb's sources.

A file usually holds one channel after another (or one channel per file, as
in an SDS archive); a station needs its components together.
:func:`records_in_time_order` scans each file's headers once, then decodes
each channel's byte ranges lazily and merges the channels by start time,
opening each only when the merge reaches it (bounded memory).
:func:`open_sources` turns a station config's source specs into record
iterators (files and SDS archives merged this way, anything else through
:func:`~fieldpick.edge.sources.open_source`).
"""

from __future__ import annotations

import heapq
import os
from functools import partial
from itertools import groupby

import numpy as np

from . import is_sds_root, open_source
from .base import Record
from .mseed import MseedDecoder, MseedFileSource
from .sds import trim_record

__all__ = ["records_in_time_order", "join_seconds", "open_sources"]


# bytes per read and decode of a channel's runs: about 64 records a pass, within 64-256 KiB.  Decoding
# 1 MiB of Steim-2 at once costs ~27 MB of working arrays; 16 records a pass (64 KiB of 4096-byte
# records) is ~1.7x slower than 64; 512 records a pass (256 KiB of 512-byte ones) costs ~10 MB more
_READ_BYTES = 1 << 16
_READ_MAX = 1 << 18
_READ_RECORDS = 64
_SCAN_BYTES = 1 << 20  # bytes per read of the header scan (nothing decoded: large reads, fewer passes)


def _channel_runs(path, stats):
    """Scan one file's record headers (no samples decoded): for each channel (seed
    id), the byte ranges ``[a, b)`` of its runs of consecutive records, in file
    order, and its first start time.  The scan's counts go to ``stats``."""
    dec = MseedDecoder(name=path, headers_only=True)
    runs, first = {}, {}
    last = None  # the open run: [a, b] of the latest record's channel
    prev = None
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(_SCAN_BYTES)
            for sid, start, a, _ in (dec.feed(chunk) if chunk else dec.flush()):
                if last is not None:
                    last[1] = a  # a run ends where the next record begins
                if sid != prev:
                    last = [a, a, 0]
                    runs.setdefault(sid, []).append(last)
                    first[sid] = min(first.get(sid, start), start)
                last[2] += 1  # records in the run
                prev = sid
            if not chunk:
                break
        size = fh.tell()
    if last is not None:
        last[1] = size
    if stats is not None:
        _add_stats(stats, dec.stats)
    return runs, first


def _merge_lazily(streams):
    """Merge record iterators by ``(start_ns, channel)``, opening each only when the
    merge reaches its first record (files of later days stay closed and use no
    memory until then).  streams: ``(first start ns, callable returning an
    iterator)``; each iterator yields records in time order."""
    pending = sorted(streams, key=lambda st: st[0])
    heap, i, n = [], 0, 0
    while True:
        while i < len(pending) and (not heap or pending[i][0] <= heap[0][0][0]):
            it = iter(pending[i][1]())
            i += 1
            rec = next(it, None)
            if rec is not None:
                heapq.heappush(heap, ((rec.start_ns, rec.channel), n, rec, it))
                n += 1
        if not heap:
            return
        _, _, rec, it = heapq.heappop(heap)
        yield rec
        nxt = next(it, None)
        if nxt is not None:
            heapq.heappush(heap, ((nxt.start_ns, nxt.channel), n, nxt, it))
            n += 1


def join_seconds(cfg):
    """Seconds of contiguous records a file reader may join into one packet for a
    station config: 30 s, or less when ``buffer.max_lag_s`` is short (the
    components interleave in pieces of this length and must stay within the lag)."""
    return min(30.0, cfg.buffer.max_lag_s / 4.0)


def _joined(records, join_s):
    """Contiguous records (same rate, each starting where the last ended, within half
    a sample) concatenated into records of at least ``join_s`` seconds; fewer, larger
    packets make the same stream (the station's per-packet work is then paid less often)."""
    parts, n, want = [], 0, 0
    for rec in records:
        if parts:
            last = parts[-1]
            period = 1e9 / last.sampling_rate
            expect = last.start_ns + len(last.samples) * period
            if rec.sampling_rate != last.sampling_rate or abs(rec.start_ns - expect) > period / 2:
                yield _concat(parts, Record)
                parts, n = [], 0
        if not parts:
            want = join_s * rec.sampling_rate
        parts.append(rec)
        n += len(rec.samples)
        if n >= want:
            yield _concat(parts, Record)
            parts, n = [], 0
    if parts:
        yield _concat(parts, Record)


def _concat(parts, Record):
    if len(parts) == 1:
        return parts[0]
    r = parts[0]
    return Record(r.network, r.station, r.location, r.channel, r.start_ns, r.sampling_rate,
                  np.concatenate([p.samples for p in parts]))


def _one_channel(path, seed_id, runs, start_ns=None, end_ns=None, join_s=0.0, stats=None):
    """The records of one channel of a file, decoding only the byte ranges ``runs``;
    contiguous ones joined to ``join_s`` seconds when > 0.  The scan counted the
    records; a record whose Steim frames fail to decode is taken back out of
    ``stats`` here and counted as skipped."""
    if join_s > 0:
        for rec in _joined(_one_channel(path, seed_id, runs, start_ns, end_ns, stats=stats), join_s):
            yield rec
        return
    with open(path, "rb") as fh:
        for a, b, nrec in runs:
            fh.seek(a)
            dec = MseedDecoder(name=path)  # the rest of its counts were taken by the scan
            dec.failures = _Failures(stats)
            left = b - a
            size = min(_READ_MAX, max(_READ_BYTES, (b - a) // max(nrec, 1) * _READ_RECORDS))
            recs = []
            while True:
                chunk = fh.read(min(left, size)) if left > 0 else b""
                left -= len(chunk)
                recs = dec.feed(chunk) if chunk else dec.flush()
                for rec in recs:
                    if rec.seed_id != seed_id:
                        continue
                    if start_ns is not None or end_ns is not None:
                        rec = trim_record(rec, start_ns, end_ns)
                        if rec is None:
                            continue
                    yield rec
                if not chunk:
                    break


class _Failures(list):
    """A decoder's list of Steim failures that also takes each back out of the scan's counts."""

    def __init__(self, stats):
        super().__init__()
        self.stats = stats

    def append(self, item):
        super().append(item)
        if self.stats is not None:
            reason, nbytes, nsamples = item
            self.stats.records -= 1
            self.stats.samples -= nsamples
            self.stats.bytes_skipped += nbytes
            self.stats.skipped[reason] = self.stats.skipped.get(reason, 0) + 1


def _add_stats(total, part):
    total.records += part.records
    total.samples += part.samples
    total.no_data += part.no_data
    total.bytes_skipped += part.bytes_skipped
    for k, v in part.skipped.items():
        total.skipped[k] = total.skipped.get(k, 0) + v


def records_in_time_order(paths, start_ns=None, end_ns=None, stats=None, join_s=0.0):
    """Records of miniSEED files merged lazily in start-time order (bounded memory).

    A file usually holds one channel after another (or one channel per file,
    as in an SDS archive); the station needs its components together.  Each
    file is scanned once (now) for where each channel's records lie, then
    each channel's byte ranges are read and decoded (lazily, once), and the
    per-channel streams are merged by start time, each opened only when the
    merge reaches it: memory holds one read buffer per channel being merged
    and the list of ranges, never a whole file.  The scan reads headers only,
    so every sample is decoded once.

    paths: files or folders.  start_ns, end_ns: keep only samples in
    [start_ns, end_ns) (None: no limit).  stats: a
    :class:`~fieldpick.edge.sources.mseed.DecodeStats` that receives the
    counts of the scan (each record counted once, before the first record
    comes; a record whose Steim frames then fail to decode is moved from
    ``records`` to ``skipped`` when its channel is read).  join_s: when > 0,
    contiguous records of a channel come joined into records of at least
    that many seconds (see :func:`join_seconds`).
    """

    streams = []
    for path in paths:
        for name in MseedFileSource(path).paths:
            try:
                runs, first = _channel_runs(name, stats)
            except OSError as exc:  # one unreadable file does not stop the others
                if stats is not None:
                    stats.skip("unreadable file", 0, name, exc.strerror or str(exc))
                continue
            streams += [(first[sid], partial(_one_channel, name, sid, r, start_ns, end_ns, join_s, stats))
                        for sid, r in sorted(runs.items())]
    return _merge_lazily(streams)


def _sds_records(spec, join_s=0.0):
    """An SDS root or ``sds://`` URL: its selected day files, day by day, each day's
    channels merged in time order and trimmed to the selected window."""
    src = open_source(spec)  # checks the selection options; an SdsSource
    files, t0, t1 = list(src.files), src.start_ns, src.end_ns
    src.close()
    for _, day in groupby(files, key=lambda f: os.path.basename(f).split(".")[-2:]):
        for rec in records_in_time_order(list(day), t0, t1, join_s=join_s):
            yield rec


def open_sources(specs, join_s=0.0):
    """Record iterators for the config's source specs.

    An SDS root or ``sds://`` URL: selected and trimmed as
    :func:`fieldpick.edge.sources.open_source` does, merged in time order day
    by day.  Other existing paths (files, folders of files): merged in time
    order.  Anything else (``seedlink://``, ``-``): ``open_source(spec)``.
    join_s: file records joined to this many seconds (see :func:`join_seconds`).
    """
    out, files = [], []
    for spec in specs:
        if spec.startswith("sds://") or (os.path.isdir(spec) and is_sds_root(spec)):
            out.append(_sds_records(spec, join_s))
        elif os.path.exists(spec):
            files.append(spec)
        else:
            out.append(open_source(spec))
    if files:
        out.insert(0, records_in_time_order(files, join_s=join_s))
    return out


POLL_S = 1.0  # seconds of wall clock between uplink polls in the run loop
