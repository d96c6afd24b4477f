"""The station's pick journal: append-only, framed, crash-safe, with a disk budget.

Layout: a directory of segment files ``seg-0000000001.fpj`` ...  Each starts
with the 4-byte magic ``b"FPJ\\x01"`` (format version 1) and holds records::

    u32 length of payload (little-endian) | u32 CRC-32 of (type + payload) | u8 type | payload

Record types:

* STATE  (1): ``<IQ`` next sequence number, next pick number; first record of
  every segment, so the counters survive when older segments are dropped.
* PICKS  (2): ``<Q`` number of the first pick, then the picks as JSON.
* PACKET (3): ``<IQ`` sequence number, number of the last pick it carries,
  then the packet bytes exactly as sent.
* ACKS   (4): ``<I`` * n: sequence numbers the receiver acknowledged.

fsync policy: PICKS and PACKET records are written, flushed and
``os.fsync``-ed before the call returns, so a pick the caller was told is
journaled survives a power cut.  ACKS records are flushed but fsync-ed only
with the next synced record or at :meth:`Journal.close`: losing one costs a
retransmission that the receiver de-duplicates, never a pick.  Creating or
deleting a segment fsyncs the directory.

Recovery (on open): every segment is read in order; the first record whose
length or CRC does not check ends that segment (a record whose CRC checks
but whose content cannot be read, say from a newer fieldpick, is logged,
counted and skipped, never cut off).  In the newest segment this
is a torn tail from a crash and the file is truncated there (logged); in an
older segment it is damage, logged as an error, and the rest of that file is
skipped but not deleted.

Disk budget: when the segments together exceed ``budget_bytes``, whole
segments are deleted oldest first: first those whose packets are all
acknowledged and whose picks are all packed, then, if still over budget,
the oldest ones holding unacknowledged data (logged as an error and counted
in ``stats['dropped_packets']`` / ``stats['dropped_picks']``), so that a
full disk keeps the newest picks.  The segment being written is never
deleted, and the budget is checked when a segment starts, so the journal
may pass it by at most one segment.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import struct
import time
import zlib
from collections import OrderedDict
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ..errors import ConfigError, DataError, JournalError
from ..limits import writable_folder
from ..picks import Pick

__all__ = ["Journal", "MAGIC"]

log = logging.getLogger(__name__)

MAGIC = b"FPJ\x01"
_FRAME = struct.Struct("<IIB")
_STATE = struct.Struct("<IQ")
_PICKS = struct.Struct("<Q")
_PACKET = struct.Struct("<IQ")
T_STATE, T_PICKS, T_PACKET, T_ACKS = 1, 2, 3, 4
MAX_PAYLOAD = 1 << 20
MAX_SEGMENT_BYTES = 64 << 20  # a larger file (or four segment sizes, if more) is not read as a segment
_MIN_PACKET_RECORD = 9 + 12 + 31  # frame, seq and pick number, the shortest packet
_RESYNC_BUDGET = 64 << 20  # payload bytes CRC-ed while looking for the record after a damaged one
_NAME = re.compile(r"^seg-(\d{10})\.fpj$")


class _Segment(object):
    """Bookkeeping of one segment file: what it holds, so it can be dropped safely."""

    def __init__(self, number: int, path: str):
        self.number = number
        self.path = path
        self.size = 0
        self.seqs = set()  # packets recorded in this segment
        self.max_pick = -1  # highest pick number recorded in this segment
        self.pick_count = 0
        self.damaged = False


class Journal(object):
    """Append-only journal of picks, the packets made of them, and their acks.

    directory: created if missing.  segment_bytes: size at which a new segment
    file starts.  budget_bytes: most bytes all segments may use together.
    first_seq: sequence number of the first packet of a new journal; the
    default is the current Unix time in seconds, so a station whose journal
    was wiped still counts upwards past what its receiver has seen (fewer
    than one packet a second on average).

    After opening, :attr:`pending` holds journaled picks not yet in a packet
    (``(pick_number, Pick)`` in order) and :attr:`unacked` the packets not yet
    acknowledged (``seq -> bytes``, in sequence order).
    """

    def __init__(
        self,
        directory: str,
        segment_bytes: int = 1 << 20,
        budget_bytes: int = 64 << 20,
        first_seq: Optional[int] = None,
    ):
        if segment_bytes < 4096:
            raise ConfigError("segment_bytes %r too small; use at least 4096" % (segment_bytes,))
        if budget_bytes < 2 * segment_bytes:
            raise ConfigError(
                "budget_bytes %r must be at least twice segment_bytes (%d)" % (budget_bytes, segment_bytes)
            )
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.budget_bytes = budget_bytes
        self.pending: List[Tuple[int, Pick]] = []
        self.unacked = OrderedDict()  # type: OrderedDict[int, bytes]
        self.next_seq = int(time.time()) & 0xFFFFFFFF if first_seq is None else int(first_seq)
        self.next_pick = 0
        self.stats = {"truncated_bytes": 0, "corrupt_segments": 0, "unreadable_records": 0, "dropped_packets": 0,
                      "dropped_picks": 0, "deleted_segments": 0, "foreign_entries": 0, "skipped_seqs": 0,
                      "write_errors": 0}
        self._segments: List[_Segment] = []
        self._file = None
        self._closed = False
        self._current = None
        self._unsynced = False
        writable_folder(directory, "journal", JournalError)
        self._recover()

    # ------------------------------------------------------------ recovery

    def _recover(self):
        try:
            names = sorted(n for n in os.listdir(self.directory) if _NAME.match(n))
        except OSError as exc:
            raise JournalError("cannot list journal %s: %s" % (self.directory, exc.strerror or exc)) from None
        self._top = max([int(_NAME.match(n).group(1)) for n in names] or [0])
        cap = max(4 * self.segment_bytes, MAX_SEGMENT_BYTES)
        foreign = [n for n in names if not os.path.isfile(os.path.join(self.directory, n))
                   or os.path.getsize(os.path.join(self.directory, n)) > cap]
        for n in foreign:  # a folder where a segment should be, or a file no journal writes: never read
            log.error("journal %s: %s is not a regular file of at most %d bytes; left alone", self.directory, n, cap)
            self.stats["foreign_entries"] += 1
        names = [n for n in names if n not in foreign]
        picks = OrderedDict()  # type: OrderedDict[int, Pick]
        packets: Dict[int, bytes] = {}
        acked = set()
        consumed = -1
        default_seq, self._saw_state, self._lost_seqs = self.next_seq, False, 0
        if names:
            self.next_seq = 0
        for i, name in enumerate(names):
            seg = _Segment(int(_NAME.match(name).group(1)), os.path.join(self.directory, name))
            last = i == len(names) - 1
            good = self._scan(seg, last, picks, packets, acked)
            consumed = max(consumed, good)
            self._segments.append(seg)
        if not self._saw_state and not packets:
            self.next_seq = default_seq
        self.next_seq += self._lost_seqs
        self.pending = [(n, p) for n, p in picks.items() if n > consumed]
        for seq in sorted(packets):
            if seq not in acked:
                self.unacked[seq] = packets[seq]
        try:
            if self._segments and not self._segments[-1].damaged:
                self._open_segment(self._segments[-1])
            else:  # a damaged segment is left as it is: new records go to a new one
                self._new_segment()
        except OSError as exc:
            raise JournalError("cannot open journal %s for writing: %s" % (self.directory, exc.strerror or exc)) from None
        log.info(
            "journal %s: %d segments, %d pending picks, %d unacknowledged packets, next seq %d",
            self.directory, len(self._segments), len(self.pending), len(self.unacked), self.next_seq,
        )

    def _scan(self, seg, last, picks, packets, acked) -> int:
        """Read one segment into the maps; return the highest pick number packed."""
        consumed = -1
        try:
            with open(seg.path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise JournalError("cannot read journal segment %s: %s" % (seg.path, exc.strerror or exc)) from None
        if len(data) < len(MAGIC) and last and MAGIC.startswith(data):
            # created but torn before its header reached the disk
            with open(seg.path, "wb") as f:
                f.write(MAGIC)
                f.flush()
                os.fsync(f.fileno())
            seg.size = len(MAGIC)
            return consumed
        if data[:4] != MAGIC:
            raise JournalError(
                "%s is not a fieldpick journal segment (magic %r, expected %r); move it out of %s"
                % (seg.path, data[:4], MAGIC, self.directory)
            )
        pos = len(MAGIC)
        damaged = []  # (start, end) of bytes that hold no readable record
        while pos < len(data):
            rec = _read_record(data, pos)
            if rec is None:
                nxt = _resync(data, pos + 1)
                damaged.append((pos, len(data) if nxt is None else nxt))
                if nxt is None:
                    break
                pos = nxt
                continue
            rtype, payload, end = rec
            try:
                consumed = max(consumed, self._apply(seg, rtype, payload, picks, packets, acked))
            except (ValueError, KeyError, TypeError, struct.error, DataError) as exc:
                # its CRC holds, so it is no torn tail: keep it on disk, skip it, read on
                log.error("journal %s: record at byte %d checks but cannot be read (%s); skipped",
                          seg.path, pos, exc)
                self.stats["unreadable_records"] += 1
            pos = end
        seg.size = len(data)
        lost = sum(b - a for a, b in damaged)
        if damaged and _partial_write(data, damaged[-1][0]) and len(damaged) == 1:
            lost = 0  # a write cut short by a crash: never sent (packets are sent after they are journaled)
        if lost:
            # a lost PACKET record may have held the highest sequence number: never reuse one
            skip = lost // _MIN_PACKET_RECORD + 1
            self._lost_seqs += skip
            self.stats["skipped_seqs"] += skip
        tail = damaged[-1] if damaged and damaged[-1][1] == len(data) else None
        if tail is not None and last and len(damaged) == 1:
            log.warning("journal %s: truncating a torn tail of %d bytes at byte %d", seg.path, len(data) - tail[0],
                        tail[0])
            try:
                os.truncate(seg.path, tail[0])
            except OSError as exc:
                raise JournalError("cannot truncate journal segment %s: %s" % (seg.path, exc.strerror or exc)) from None
            self.stats["truncated_bytes"] += len(data) - tail[0]
            seg.size = tail[0]
        elif damaged:
            log.error("journal %s: %d damaged bytes in %d places (first at byte %d); the records around them "
                      "were read; the file is kept as it is", seg.path, lost, len(damaged), damaged[0][0])
            self.stats["corrupt_segments"] += 1
            seg.damaged = True
        return consumed

    def _apply(self, seg, rtype, payload, picks, packets, acked) -> int:
        consumed = -1
        if rtype == T_STATE:
            next_seq, next_pick = _STATE.unpack(payload)
            self._saw_state = True
            self.next_seq = max(self.next_seq, next_seq)
            self.next_pick = max(self.next_pick, next_pick)
        elif rtype == T_PICKS:
            (first,) = _PICKS.unpack_from(payload)
            rows = json.loads(payload[_PICKS.size:].decode("utf-8"))
            for i, row in enumerate(rows):
                picks[first + i] = Pick.from_dict(row)
            seg.max_pick = max(seg.max_pick, first + len(rows) - 1)
            seg.pick_count += len(rows)
            self.next_pick = max(self.next_pick, first + len(rows))
        elif rtype == T_PACKET:
            seq, last_pick = _PACKET.unpack_from(payload)
            packets[seq] = payload[_PACKET.size:]
            seg.seqs.add(seq)
            consumed = last_pick
            self.next_seq = max(self.next_seq, seq + 1)
        elif rtype == T_ACKS:
            acked.update(struct.unpack("<%dI" % (len(payload) // 4), payload))
        else:
            raise ValueError("unknown record type %d" % rtype)
        return consumed

    # ------------------------------------------------------------ writing

    def _open_segment(self, seg):
        self._file = open(seg.path, "ab")
        self._current = seg

    def _new_segment(self):
        self._top += 1
        number = self._top
        seg = _Segment(number, os.path.join(self.directory, "seg-%010d.fpj" % number))
        prev = self._current if self._segments else None
        try:
            with open(seg.path, "xb") as f:
                f.write(MAGIC)
                f.flush()
                os.fsync(f.fileno())
            seg.size = len(MAGIC)
            self._segments.append(seg)
            self._fsync_dir()
            self._open_segment(seg)
            self._write_frame(_frame(T_STATE, _STATE.pack(self.next_seq, self.next_pick)), sync=True)
        except OSError:
            if seg in self._segments:
                self._segments.remove(seg)
            _unlink_quietly(seg.path)
            self._current = prev
            self._file = None  # reopened (the previous segment) by the next write
            raise

    def _fsync_dir(self):
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _write(self, rtype: int, payload: bytes, sync: bool):
        """Append one record.  On an OS error (a full disk, an I/O error) the segment is cut back
        to its last whole record, settled segments are deleted to make room (on ENOSPC) and the
        write is tried once more; if that fails too, JournalError (``errno`` set): nothing of the
        record is kept, the journal stays usable, and a later call tries again."""
        if self._closed:
            raise JournalError("journal %s is closed" % self.directory)
        if len(payload) > MAX_PAYLOAD:
            raise DataError("journal record of %d bytes; at most %d" % (len(payload), MAX_PAYLOAD))
        frame = _frame(rtype, payload)
        for attempt in (0, 1):
            try:
                if self._file is None:
                    self._open_segment(self._current)
                fresh = len(MAGIC) + _FRAME.size + _STATE.size
                if rtype != T_STATE and self._current.size + len(frame) > self.segment_bytes \
                        and self._current.size > fresh:
                    self._roll()
                self._write_frame(frame, sync)
                return
            except OSError as exc:
                self.stats["write_errors"] += 1
                self._cut_back()
                freed = self._free_settled() if exc.errno == errno.ENOSPC and attempt == 0 else 0
                if not freed:
                    err = JournalError("cannot write journal %s: %s (the record was not written; "
                                       "the journal is usable again once the fault clears)" % (self._current.path, exc.strerror or exc))
                    err.errno = exc.errno
                    log.error("%s", err)
                    raise err from None
                log.warning("journal %s: disk full; deleted %d bytes of delivered segments and trying again",
                            self.directory, freed)

    def _write_frame(self, frame: bytes, sync: bool):
        self._file.write(frame)
        self._file.flush()
        if sync:
            os.fsync(self._file.fileno())
        self._unsynced = not sync
        self._current.size += len(frame)

    def _cut_back(self):
        """After a failed write: drop what reached the file beyond the last whole record."""
        f, self._file = self._file, None
        if f is not None:
            try:
                f.close()
            except OSError:
                pass
        try:
            os.truncate(self._current.path, self._current.size)
        except OSError as exc:
            log.error("journal %s: cannot cut %s back to %d bytes: %s", self.directory, self._current.path,
                      self._current.size, exc)

    def _free_settled(self) -> int:
        """Delete settled segments (all delivered), oldest first, except the current; bytes freed."""
        freed = 0
        for seg in list(self._segments[:-1]):
            if seg is self._current or not self._settled(seg):
                continue
            try:
                os.remove(seg.path)
            except OSError:
                continue
            freed += seg.size
            self._segments.remove(seg)
            self.stats["deleted_segments"] += 1
        return freed

    def _roll(self):
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        self._unsynced = False
        self._new_segment()
        self._enforce_budget()

    def append_picks(self, picks: Sequence[Pick]) -> List[int]:
        """Journal picks (fsync-ed on return); return their pick numbers."""
        picks = list(picks)
        if not picks:
            return []
        first = self.next_pick
        payload = _PICKS.pack(first) + json.dumps([p.to_dict() for p in picks], separators=(",", ":")).encode("utf-8")
        self._write(T_PICKS, payload, sync=True)
        self.next_pick += len(picks)
        self._current.max_pick = max(self._current.max_pick, self.next_pick - 1)
        self._current.pick_count += len(picks)
        numbers = list(range(first, first + len(picks)))
        self.pending.extend(zip(numbers, picks))
        return numbers

    def append_packet(self, data: bytes, last_pick: int) -> int:
        """Journal a packet carrying every pending pick up to ``last_pick``; return its seq.

        The packet must already carry ``self.next_seq`` (see :meth:`peek_seq`).
        """
        seq = self.next_seq
        if seq > 0xFFFFFFFF:
            raise JournalError("sequence numbers exhausted (%d); start a new station id" % seq)
        self._write(T_PACKET, _PACKET.pack(seq, last_pick) + bytes(data), sync=True)
        self.next_seq = seq + 1
        self._current.seqs.add(seq)
        self.unacked[seq] = bytes(data)
        self.pending = [(n, p) for n, p in self.pending if n > last_pick]
        return seq

    def ack(self, seqs: Iterable[int]) -> List[int]:
        """Record acknowledgements; return the seqs that were outstanding (flushed, not fsync-ed)."""
        fresh = [s for s in seqs if s in self.unacked]
        if fresh:
            try:
                self._write(T_ACKS, struct.pack("<%dI" % len(fresh), *fresh), sync=False)
            except JournalError:
                pass  # not on disk: after a restart these packets are resent once, and de-duplicated
            for s in fresh:
                del self.unacked[s]
        return fresh

    # ------------------------------------------------------------ budget

    def disk_bytes(self) -> int:
        return sum(s.size for s in self._segments)

    def _settled(self, seg) -> bool:
        first_pending = self.pending[0][0] if self.pending else None
        holds_pending = first_pending is not None and seg.max_pick >= first_pending
        return not holds_pending and not any(s in self.unacked for s in seg.seqs)

    def _enforce_budget(self):
        for settled_only in (True, False):
            for seg in list(self._segments[:-1]):
                if self.disk_bytes() <= self.budget_bytes:
                    return
                if settled_only and not self._settled(seg):
                    continue
                if not settled_only:
                    lost = [s for s in seg.seqs if s in self.unacked]
                    lost_picks = [n for n, _ in self.pending if n <= seg.max_pick]
                    for s in lost:
                        del self.unacked[s]
                    self.pending = [(n, p) for n, p in self.pending if n > seg.max_pick]
                    self.stats["dropped_packets"] += len(lost)
                    self.stats["dropped_picks"] += len(lost_picks)
                    log.error(
                        "journal %s over its budget of %d bytes: dropping %s with %d unacknowledged packets "
                        "and %d unsent picks", self.directory, self.budget_bytes, seg.path, len(lost), len(lost_picks),
                    )
                try:
                    os.remove(seg.path)
                except OSError as exc:
                    log.error("journal %s: cannot delete %s: %s", self.directory, seg.path, exc)
                    continue
                self._segments.remove(seg)
                self.stats["deleted_segments"] += 1
                self._fsync_dir()

    def close(self):
        """Flush and fsync everything; the journal can be reopened later."""
        self._closed = True
        f, self._file = self._file, None
        if f is not None:
            try:
                f.flush()
                os.fsync(f.fileno())
            except OSError as exc:
                raise JournalError("cannot flush journal %s: %s" % (self.directory, exc.strerror or exc)) from None
            finally:
                try:
                    f.close()
                except OSError:
                    pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _frame(rtype: int, payload: bytes) -> bytes:
    return _FRAME.pack(len(payload), zlib.crc32(bytes([rtype]) + payload) & 0xFFFFFFFF, rtype) + payload


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _partial_write(data: bytes, pos: int) -> bool:
    """Whether the bytes from ``pos`` to the end are the beginning of one record cut short."""
    if len(data) - pos < _FRAME.size:
        return True
    length = int.from_bytes(data[pos:pos + 4], "little")
    return length <= MAX_PAYLOAD and pos + _FRAME.size + length > len(data)


def _resync(data: bytes, pos: int) -> Optional[int]:
    """Offset of the next record at or after ``pos`` whose length and CRC check (None: none).

    Only offsets whose type byte is a known type and whose length fits are
    checked, and at most ``_RESYNC_BUDGET`` payload bytes are CRC-ed in all.
    """
    budget = _RESYNC_BUDGET
    end = len(data) - _FRAME.size
    while pos <= end and budget > 0:
        rtype = data[pos + 8]
        if T_STATE <= rtype <= T_ACKS:
            length = int.from_bytes(data[pos:pos + 4], "little")
            if length <= MAX_PAYLOAD and pos + _FRAME.size + length <= len(data):
                budget -= length + 1
                if _read_record(data, pos) is not None:
                    return pos
        pos += 1
    return None


def _read_record(data: bytes, pos: int):
    """(type, payload, end) of the record at ``pos``, or None if it is torn or corrupt."""
    if pos + _FRAME.size > len(data):
        return None
    length, crc, rtype = _FRAME.unpack_from(data, pos)
    end = pos + _FRAME.size + length
    if length > MAX_PAYLOAD or end > len(data):
        return None
    payload = data[pos + _FRAME.size:end]
    if zlib.crc32(bytes([rtype]) + payload) & 0xFFFFFFFF != crc:
        return None
    return rtype, payload, end
