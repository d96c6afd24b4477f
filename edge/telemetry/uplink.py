"""The station's sender: hand it picks; it journals, packs, signs, sends and resends.

The station pipeline needs four calls::

    uplink = Uplink("/var/lib/fieldpick/journal", station_entry, UdpLink(host, port),
                    profile="iridium", max_delay_s=60)
    uplink.submit(picks)     # journaled (fsync) before it returns; sent when a packet fills
    uplink.poll(timeout_s)   # read acks, send late partial packets, retransmit
    uplink.close()

Sending policy:

* picks wait at most ``max_delay_s`` for a packet to fill (0: send at once),
  except while the link looks down (a packet was retransmitted and still not
  acknowledged): then only full packets are made, so a backlog goes out in
  as few packets as possible when the link returns;
* a new packet is sent once immediately; unacknowledged packets are
  retransmitted oldest first, at most ``window`` of them outstanding, after
  ``retry_s`` doubling per try up to ``max_retry_s``;
* the first ack after a silence longer than ``retry_s`` in which
  retransmissions went unanswered (the link came back) restarts the back-off and makes the outstanding window due at once,
  so a backlog drains at ``window`` packets per round trip instead of
  waiting out the back-off it built up during the outage.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Callable, Dict, Iterable, List, Sequence, Union

from ..errors import ConfigError, DataError, JournalError, PacketError
from ..picks import Pick
from .journal import Journal
from .link import Link, open_link
from .packet import (
    ImplausiblePick,
    StationEntry,
    StationTable,
    capacity,
    check_pick,
    decode_ack,
    encode_picks,
    group_picks,
)

__all__ = ["Uplink", "UplinkSet", "from_config", "MAX_HELD"]

#: picks kept in memory while the journal cannot be written
MAX_HELD = 100000
_JOURNAL_BATCH = 2000

log = logging.getLogger(__name__)


class Uplink(object):
    """Store-and-forward sender of one station's picks.

    journal: a :class:`Journal` or a directory for one.  station: this
    station's entry (id, code, key) from the shared table.  link: a
    :class:`~fieldpick.edge.telemetry.link.Link`.  profile: MTU profile name
    or bytes.  Times in seconds; ``clock`` is monotonic seconds.
    """

    def __init__(
        self,
        journal: Union[Journal, str],
        station: StationEntry,
        link: Link,
        profile="udp",
        max_delay_s: float = 0.0,
        retry_s: float = 5.0,
        max_retry_s: float = 600.0,
        window: int = 8,
        clock: Callable[[], float] = time.monotonic,
        close_link: bool = True,
    ):
        if not (max_delay_s >= 0 and retry_s > 0 and max_retry_s >= retry_s):
            raise ConfigError(
                "need max_delay_s >= 0, retry_s > 0, max_retry_s >= retry_s; got %r, %r, %r"
                % (max_delay_s, retry_s, max_retry_s)
            )
        if window < 1:
            raise ConfigError("window %r must be >= 1 packet" % (window,))
        self.capacity = capacity(profile)
        self.profile = profile
        self.station = station
        self.link = link
        self.max_delay_s = float(max_delay_s)
        self.retry_s = float(retry_s)
        self.max_retry_s = float(max_retry_s)
        self.window = int(window)
        self.clock = clock
        self.close_link = close_link
        self._reads_link = True  # False when an UplinkSet shares the link and routes the acks
        self.journal = journal if isinstance(journal, Journal) else Journal(journal)
        self._table = StationTable([station])
        self._last_ack = self.clock()
        self._since = {n: float("-inf") for n, _ in self.journal.pending}  # recovered: due at once
        self._due: Dict[int, float] = {}
        self._tries: Dict[int, int] = {}
        self._held: List[Pick] = []  # submitted, not yet journaled (the journal failed to write)
        self.stats = {"submitted": 0, "packets": 0, "sent": 0, "resent": 0, "send_failed": 0, "acked": 0,
                      "bad_acks": 0, "implausible_picks": 0, "journal_errors": 0, "dropped_held": 0}
        self._pack(force=False)
        self._send_due()

    # ------------------------------------------------------------ the pipeline's API

    def submit(self, picks: Iterable[Pick]) -> int:
        """Journal picks (on disk when this returns), then pack and send what is ready.

        When the journal cannot be written (a full disk, an I/O error) the
        picks wait in memory (at most :data:`MAX_HELD`, oldest dropped first,
        counted in ``stats['dropped_held']``) and are journaled by the next
        call that succeeds; ``stats['journal_errors']`` counts the failures.

        Picks with an empty ``station`` get this station's code; a pick of
        another station, or one that cannot be encoded, rejects the whole
        call before anything is journaled; a pick dated outside the plausible
        date window is refused alone (logged, counted in
        ``stats['implausible_picks']``).  Acks already waiting are read
        first (without waiting).  Returns the number journaled.
        """
        batch = self.check(picks)
        if self._reads_link:
            for data in self.link.recv(0.0):
                self.handle_ack(data)
        if not batch:
            return 0
        self._held.extend(batch)
        self.stats["submitted"] += len(batch)
        self.service()
        return len(batch)

    def _journal_held(self) -> bool:
        """Journal the picks held in memory (after a failed write); False while the journal fails."""
        if not self._held:
            return True
        while self._held:
            part = self._held[:_JOURNAL_BATCH]
            try:
                numbers = self.journal.append_picks(part)
            except JournalError as exc:
                self.stats["journal_errors"] += 1
                if len(self._held) > MAX_HELD:
                    drop = len(self._held) - MAX_HELD
                    self.stats["dropped_held"] += drop
                    del self._held[:drop]
                    log.error("station %s: %d picks held in memory dropped (more than %d wait)",
                              self.station.code, drop, MAX_HELD)
                log.error("station %s: %d picks wait in memory: %s", self.station.code, len(self._held), exc)
                return False
            now = self.clock()
            for n in numbers:
                self._since[n] = now
            del self._held[:len(part)]
        return True

    def send(self, pick: Pick) -> int:
        """``submit([pick])``: for a pipeline that hands over one pick at a time."""
        return self.submit([pick])

    @staticmethod
    def from_config(cfg: dict) -> "UplinkSet":
        """The station's uplink from a config's ``telemetry`` block (see :func:`from_config`)."""
        return from_config(cfg)

    def check(self, picks: Iterable[Pick]) -> List[Pick]:
        """The picks as they would be journaled (station filled in); DataError if any is unfit."""
        batch: List[Pick] = []
        for p in picks:
            if isinstance(p, Pick) and p.station == "":
                p = dataclasses.replace(p, station=self.station.code)
            try:
                check_pick(p)
            except ImplausiblePick as exc:  # a clock fault: refuse this pick, keep the others
                self.stats["implausible_picks"] += 1
                log.error("station %s: %s", self.station.code, exc)
                continue
            if p.station != self.station.code:
                raise DataError("pick of station %r submitted to the uplink of %r" % (p.station, self.station.code))
            batch.append(p)
        return batch

    def poll(self, timeout_s: float = 0.0) -> int:
        """Wait up to ``timeout_s`` for acks; send late packets and retransmissions.

        Returns the number of packets newly acknowledged.
        """
        acked = 0
        for data in self.link.recv(timeout_s):
            acked += self.handle_ack(data)
        self.service()
        return acked

    def service(self) -> None:
        """Journal held picks, pack those that waited long enough and send what is due (no waiting)."""
        if self._journal_held():
            self._pack(force=False)
        self._send_due()

    def flush(self) -> None:
        """Pack every journaled pick now, even into a part-filled packet, and send."""
        if self._journal_held():
            self._pack(force=True)
        self._send_due()

    def drain(self, timeout_s: float, step_s: float = 0.05) -> bool:
        """Flush, then poll until everything is acknowledged or ``timeout_s`` passes (wall clock)."""
        return _drain(self, timeout_s, step_s)

    @property
    def backlog(self) -> int:
        """Picks not yet packed (held in memory while the journal cannot be written, or journaled)
        plus packets not yet acknowledged."""
        return len(self._held) + len(self.journal.pending) + len(self.journal.unacked)

    def close(self) -> None:
        """Close the journal (fsync) and the link; unsent data stays journaled for next time."""
        try:
            self.journal.close()
        finally:
            if self.close_link:
                self.link.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------ internals

    def _pack(self, force: bool) -> None:
        pending = self.journal.pending
        if not pending:
            return
        now = self.clock()
        numbers = [n for n, _ in pending]
        groups = group_picks([p for _, p in pending], self.profile)
        start = 0
        for i, group in enumerate(groups):
            nos = numbers[start:start + len(group)]
            last = i == len(groups) - 1
            overdue = now - min(self._since.get(n, float("-inf")) for n in nos) >= self.max_delay_s
            overdue = overdue and not self._link_down()
            if last and not (force or overdue or len(group) == self.capacity):
                break
            seq = self.journal.next_seq
            data = encode_picks(group, self.station, seq, self.profile)
            try:
                self.journal.append_packet(data, last_pick=nos[-1])
            except JournalError as exc:  # not journaled, so not sent: packed again on a later call
                self.stats["journal_errors"] += 1
                log.error("station %s: %s", self.station.code, exc)
                return
            for n in nos:
                self._since.pop(n, None)
            self.stats["packets"] += 1
            self._send(seq, data, now)
            start += len(group)

    def _link_down(self) -> bool:
        """True while a packet has been retransmitted without an ack: partial packets then
        wait, so that a backlog goes out in full packets when the link returns."""
        return any(t >= 2 for t in self._tries.values())

    def _send(self, seq: int, data: bytes, now: float) -> bool:
        tries = self._tries.get(seq, 0)
        ok = self.link.send(data)
        self._tries[seq] = tries + 1
        self._due[seq] = now + min(self.max_retry_s, self.retry_s * 2 ** min(tries, 20))
        self.stats["sent" if tries == 0 else "resent"] += 1
        if not ok:
            self.stats["send_failed"] += 1
        return ok

    def _send_due(self) -> None:
        now = self.clock()
        for i, (seq, data) in enumerate(self.journal.unacked.items()):
            if i >= self.window:
                break
            if self._due.get(seq, now) <= now and not self._send(seq, data, now):
                break  # the link is down: try again at the next due time

    def handle_ack(self, data: bytes) -> int:
        """Apply one ack datagram; return the packets it newly acknowledged (bad acks are counted)."""
        try:
            ack = decode_ack(data, self._table)
        except PacketError as exc:
            self.stats["bad_acks"] += 1
            log.debug("ignoring a bad ack: %s", exc)
            return 0
        now = self.clock()
        if self._link_down() and now - self._last_ack > self.retry_s:  # first ack after a silence with
            # unanswered resends: the link is back
            for seq in self._tries:
                self._tries[seq] = min(self._tries[seq], 1)  # restart the back-off
            for seq in list(self.journal.unacked)[: self.window]:
                self._due[seq] = now  # and resend the window at once
        self._last_ack = now
        fresh = self.journal.ack([ack.seq])  # per packet: ``cumulative`` is informational
        for s in fresh:
            self._due.pop(s, None)
            self._tries.pop(s, None)
        self.stats["acked"] += len(fresh)
        return len(fresh)


class UplinkSet(object):
    """Several stations on one box sharing one link: one :class:`Uplink` (and
    journal) per station, acks routed by station id.  Same calls as Uplink."""

    def __init__(self, uplinks: Sequence[Uplink], link: Link):
        if not uplinks:
            raise ConfigError("an UplinkSet needs at least one station")
        self.link = link
        self.uplinks: Dict[str, Uplink] = {}
        self._by_id: Dict[int, Uplink] = {}
        for up in uplinks:
            if up.link is not link:
                raise ConfigError("station %s: every uplink of a set must share the set's link" % up.station.code)
            up._reads_link = False
            self.uplinks[up.station.code] = up
            self._by_id[up.station.id] = up

    def submit(self, picks: Iterable[Pick]) -> int:
        """Route picks to their station's uplink; all are checked before any is journaled."""
        picks = list(picks)
        only = next(iter(self.uplinks.values())) if len(self.uplinks) == 1 else None
        groups: Dict[str, List[Pick]] = {}
        for p in picks:
            code = getattr(p, "station", "") or (only.station.code if only else "")
            if code not in self.uplinks:
                raise DataError("pick of station %r; this box sends for: %s" % (code, ", ".join(self.uplinks)))
            groups.setdefault(code, []).extend(self.uplinks[code].check([p]))
        self._read_acks(0.0)
        return sum(self.uplinks[code].submit(batch) for code, batch in groups.items())

    def send(self, pick: Pick) -> int:
        return self.submit([pick])

    def _read_acks(self, timeout_s: float) -> int:
        acked = 0
        for data in self.link.recv(timeout_s):
            up = self._by_id.get(int.from_bytes(data[1:3], "big")) if len(data) >= 3 else None
            if up is not None:
                acked += up.handle_ack(data)
        return acked

    def poll(self, timeout_s: float = 0.0) -> int:
        acked = self._read_acks(timeout_s)
        for up in self.uplinks.values():
            up.service()
        return acked

    def flush(self) -> None:
        for up in self.uplinks.values():
            up.flush()

    def drain(self, timeout_s: float, step_s: float = 0.05) -> bool:
        """Flush every station, then poll until all is acknowledged or ``timeout_s`` passes."""
        return _drain(self, timeout_s, step_s)

    @property
    def backlog(self) -> int:
        return sum(up.backlog for up in self.uplinks.values())

    def close(self) -> None:
        try:
            for up in self.uplinks.values():
                up.journal.close()
        finally:
            self.link.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_CONFIG_KEYS = ("table", "station", "journal", "link", "baud", "profile", "max_delay_s", "retry_s", "max_retry_s",
                "window", "segment_bytes", "budget_bytes")


def from_config(cfg: dict) -> UplinkSet:
    """Build the station's uplink from the ``telemetry`` block of a station config.

    ``{"table": "stations.json", "station": "NC.KHMB..HHZ" (or a list), "journal": DIR,
    "link": "udp://HOST:PORT" | "tcp://HOST:PORT" | "serial:DEVICE" | "file:PATH" | "-",
    "baud": 9600, "profile": "iridium", "max_delay_s": 60, "retry_s": 30, "max_retry_s": 600,
    "window": 8, "segment_bytes": 1048576, "budget_bytes": 67108864}``.  Each station journals
    into ``DIR/<station code>``.
    """
    if not isinstance(cfg, dict):
        raise ConfigError("telemetry config must be a JSON object, got %s" % type(cfg).__name__)
    unknown = sorted(set(cfg) - set(_CONFIG_KEYS))
    if unknown:
        raise ConfigError("unknown telemetry keys %s; allowed: %s" % (", ".join(unknown), ", ".join(_CONFIG_KEYS)))
    missing = [k for k in ("table", "station", "journal", "link") if k not in cfg]
    if missing:
        raise ConfigError("telemetry config lacks %s" % ", ".join(missing))
    table = StationTable.load(cfg["table"])
    codes = [cfg["station"]] if isinstance(cfg["station"], str) else list(cfg["station"])
    entries = [table.by_code(c) for c in codes]
    link = open_link(cfg["link"], baudrate=cfg.get("baud", 9600))
    opts = {k: cfg[k] for k in ("profile", "max_delay_s", "retry_s", "max_retry_s", "window") if k in cfg}
    jopts = {k: cfg[k] for k in ("segment_bytes", "budget_bytes") if k in cfg}
    try:
        ups = [Uplink(Journal(os.path.join(cfg["journal"], e.code), **jopts), e, link, close_link=False, **opts)
               for e in entries]
    except BaseException:
        link.close()
        raise
    return UplinkSet(ups, link)


def _drain(uplink, timeout_s, step_s):
    """Shared by Uplink and UplinkSet: flush, then poll until the backlog is empty or time is up."""
    uplink.flush()
    end = time.monotonic() + timeout_s
    while uplink.backlog and time.monotonic() < end:
        uplink.poll(step_s)
    return not uplink.backlog
