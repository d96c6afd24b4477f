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
                      "dropped_picks": 0, "deleted_segments": 0}
        self._segments: List[_Segment] = []
        self._file = None
        self._unsynced = False
        os.makedirs(directory, exist_ok=True)
        self._recover()

    # ------------------------------------------------------------ recovery

    def _recover(self):
        names = sorted(n for n in os.listdir(self.directory) if _NAME.match(n))
        picks = OrderedDict()  # type: OrderedDict[int, Pick]
        packets: Dict[int, bytes] = {}
        acked = set()
        consumed = -1
        default_seq, self._saw_state = self.next_seq, False
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
        self.pending = [(n, p) for n, p in picks.items() if n > consumed]
        for seq in sorted(packets):
            if seq not in acked:
                self.unacked[seq] = packets[seq]
        if self._segments:
            self._open_segment(self._segments[-1])
        else:
            self._new_segment()
        log.info(
            "journal %s: %d segments, %d pending picks, %d unacknowledged packets, next seq %d",
            self.directory, len(self._segments), len(self.pending), len(self.unacked), self.next_seq,
        )

    def _scan(self, seg, last, picks, packets, acked) -> int:
        """Read one segment into the maps; return the highest pick number packed."""
        consumed = -1
        with open(seg.path, "rb") as f:
            data = f.read()
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
        while pos < len(data):
            rec = _read_record(data, pos)
            if rec is None:
                break
            rtype, payload, end = rec
            try:
                consumed = max(consumed, self._apply(seg, rtype, payload, picks, packets, acked))
            except (ValueError, KeyError, TypeError, struct.error, DataError) as exc:
                # its CRC holds, so it is no torn tail: keep it on disk, skip it, read on
                log.error("journal %s: record at byte %d checks but cannot be read (%s); skipped",
                          seg.path, pos, exc)
                self.stats["unreadable_records"] += 1
            pos = end
        seg.size = pos
        if pos < len(data):
            if last:
                log.warning("journal %s: truncating a torn tail of %d bytes at byte %d", seg.path, len(data) - pos, pos)
                os.truncate(seg.path, pos)
                self.stats["truncated_bytes"] += len(data) - pos
            else:
                log.error("journal %s: damaged record at byte %d; skipping the last %d bytes of this segment",
                          seg.path, pos, len(data) - pos)
                self.stats["corrupt_segments"] += 1
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
        number = self._segments[-1].number + 1 if self._segments else 1
        seg = _Segment(number, os.path.join(self.directory, "seg-%010d.fpj" % number))
        with open(seg.path, "xb") as f:
            f.write(MAGIC)
            f.flush()
            os.fsync(f.fileno())
        seg.size = len(MAGIC)
        self._segments.append(seg)
        self._fsync_dir()
        self._open_segment(seg)
        self._write(T_STATE, _STATE.pack(self.next_seq, self.next_pick), sync=True)

    def _fsync_dir(self):
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _write(self, rtype: int, payload: bytes, sync: bool):
        if self._file is None:
            raise JournalError("journal %s is closed" % self.directory)
        if len(payload) > MAX_PAYLOAD:
            raise DataError("journal record of %d bytes; at most %d" % (len(payload), MAX_PAYLOAD))
        frame = _FRAME.pack(len(payload), zlib.crc32(bytes([rtype]) + payload) & 0xFFFFFFFF, rtype) + payload
        fresh = len(MAGIC) + _FRAME.size + _STATE.size
        if rtype != T_STATE and self._current.size + len(frame) > self.segment_bytes and self._current.size > fresh:
            self._roll()
        try:
            self._file.write(frame)
            self._file.flush()
            if sync:
                os.fsync(self._file.fileno())
            self._unsynced = not sync
        except OSError as exc:
            raise JournalError("cannot write journal %s: %s" % (self._current.path, exc)) from None
        self._current.size += len(frame)

    def _roll(self):
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
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
            self._write(T_ACKS, struct.pack("<%dI" % len(fresh), *fresh), sync=False)
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
                os.remove(seg.path)
                self._segments.remove(seg)
                self.stats["deleted_segments"] += 1
                self._fsync_dir()

    def close(self):
        """Flush and fsync everything; the journal can be reopened later."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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
