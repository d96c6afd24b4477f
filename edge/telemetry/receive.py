"""The network side: check, acknowledge, de-duplicate and write pick packets.

``fieldpick receive`` listens on UDP, TCP, a serial line or reads a file of
hex lines, and writes each new pick once to CSV, QuakeML 1.2 and/or
Earthworm TYPE_PICK_SCNL lines.

Order of work for a packet: authenticate (forged, altered, truncated,
unknown: counted and dropped, never decoded into picks); replay check by
sequence number (a repeat is counted, acknowledged again so the station
stops resending, and not written); write the picks into the open group.
A group (the packets read until none is waiting, at most
``--group-packets`` of them and at most ``--group-ms`` after its first)
is committed at once: one database transaction, one fsync of each
output; then its sequence numbers go into the replay state (written
atomically when a state file is given) and only then are its packets
acknowledged.  A receiver killed before a commit has acknowledged none of
the group's packets (the stations resend them); killed between the commit
and the state, it may repeat a packet's picks once in the files after a
restart (never in a database, which refuses a pick it holds); it never
loses an acknowledged pick.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import selectors
import signal
import sys
import time
import xml.etree.ElementTree as ET
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import ConfigError, DataError, FieldpickError
from ..limits import Limits, year_start_ns
from ..picks import Pick
from .endpoint import FileEndpoint, SerialEndpoint, TcpEndpoint, UdpEndpoint
from .link import parse_hostport
from .packet import PacketRejected, StationEntry, StationTable, decode, encode_ack, onset_weight
from .quarantine import Quarantine
from .replay import ReplayWindow

__all__ = ["GROUP_PACKETS", "GROUP_MS", "ReplayWindow", "Receiver", "CsvWriter", "QuakeMLWriter", "EarthwormWriter",
           "serve", "main"]

log = logging.getLogger(__name__)

_YEAR_10000_NS = year_start_ns(10000)

#: the default group commit of ``fieldpick receive``: at most this many packets ...
GROUP_PACKETS = 200
#: ... and at most this many milliseconds after the first of them (sooner when no packet is waiting)
GROUP_MS = 20.0


def iso_utc(time_ns: int, digits: int = 6) -> str:
    """'YYYY-MM-DDTHH:MM:SS.ffffffZ' for ns since the epoch (digits: 0-6 decimals, truncated).

    DataError for a time outside the years 1970 .. 9999.
    """
    if isinstance(time_ns, bool) or not isinstance(time_ns, int) or not 0 <= time_ns < _YEAR_10000_NS:
        raise DataError("time %r ns is outside the years 1970 .. 9999; no calendar date for it" % (time_ns,))
    t = datetime.datetime(1970, 1, 1) + datetime.timedelta(microseconds=time_ns // 1000)
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + ("%06d" % t.microsecond)[:digits]
    return text + "Z"


# ---------------------------------------------------------------- writers


class CsvWriter(object):
    """Append picks to a CSV file (header written when the file is new); fsync per commit."""

    COLUMNS = ("station", "phase", "time_utc", "time_ns", "probability", "uncertainty_s", "onset_weight",
               "amplitude", "snr_db", "polarity", "station_id", "seq")

    def __init__(self, path: str):
        self.path = path
        new = not os.path.exists(path) or os.path.getsize(path) == 0
        self._f = open(path, "a", encoding="utf-8", newline="")
        if new:
            self._f.write(",".join(self.COLUMNS) + "\n")

    def write(self, entry: StationEntry, seq: int, picks: Sequence[Pick]) -> None:
        for p in picks:
            self._f.write("%s,%s,%s,%d,%.4f,%.4f,%d,%.6g,%.1f,%s,%d,%d\n" % (
                p.station, p.phase, iso_utc(p.time_ns, 3), p.time_ns, p.probability, p.uncertainty_s,
                onset_weight(p.uncertainty_s), p.amplitude, p.snr_db, p.polarity, entry.id, seq))

    def flush(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self.flush()
        self._f.close()


class EarthwormWriter(object):
    """Earthworm TYPE_PICK_SCNL lines, as pick_ew writes them, plus the phase.

    ``TYPE MOD INST SEQ STA.CHA.NET.LOC FW YYYYMMDDHHMMSS.SS AMP1 AMP2 AMP3 PHASE``:
    F is the first motion (U, D or ?), W the quality weight 0-4, the time has
    hundredths of a second, AMP1 the rounded amplitude (AMP2, AMP3 are 0),
    an empty location is written '--'.  The trailing phase token (P or S) is
    the common extension that S-aware Earthworm modules read.
    """

    def __init__(self, path: str, msg_type: int = 8, mod_id: int = 0, inst_id: int = 255):
        self.path = path
        self.ids = (msg_type, mod_id, inst_id)
        self.seq = 0
        self._f = open(path, "a", encoding="ascii")

    def line(self, p: Pick) -> str:
        net, sta, loc, cha = p.station.split(".")
        hundredths = (p.time_ns + 5000000) // 10000000
        t = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=hundredths // 100)
        text = "%d %d %d %d %s.%s.%s.%s %s%d %s.%02d %d 0 0 %s" % (
            self.ids[0], self.ids[1], self.ids[2], self.seq, sta, cha, net, loc or "--",
            p.polarity, onset_weight(p.uncertainty_s), t.strftime("%Y%m%d%H%M%S"), hundredths % 100,
            int(round(p.amplitude)), p.phase)
        self.seq = (self.seq + 1) % 10000
        return text

    def write(self, entry: StationEntry, seq: int, picks: Sequence[Pick]) -> None:
        for p in picks:
            self._f.write(self.line(p) + "\n")

    def flush(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self.flush()
        self._f.close()


class QuakeMLWriter(object):
    """QuakeML 1.2 (standard-library XML): all picks in one unassociated event.

    QuakeML keeps picks inside an event, so the document has one event of
    type 'not reported' holding every pick and, per pick, an amplitude
    carrying the SNR.  The whole file is rewritten atomically on ``close()``
    and at most every ``interval_s`` on ``flush()``.
    """

    NS_Q = "http://quakeml.org/xmlns/quakeml/1.2"
    NS_BED = "http://quakeml.org/xmlns/bed/1.2"

    def __init__(self, path: str, interval_s: float = 60.0, agency: str = "fieldpick"):
        self.path = path
        self.interval_s = interval_s
        self.agency = agency
        self._picks: List[tuple] = []
        self._written = 0.0
        self._dirty = False

    def write(self, entry: StationEntry, seq: int, picks: Sequence[Pick]) -> None:
        for i, p in enumerate(picks):
            self._picks.append(("%d/%d/%d" % (entry.id, seq, i), p))
        self._dirty = True

    def flush(self) -> None:
        if self._dirty and time.monotonic() - self._written >= self.interval_s:
            self._write_file()

    def close(self) -> None:
        if self._dirty or not os.path.exists(self.path):
            self._write_file()

    def document(self) -> ET.Element:
        ET.register_namespace("q", self.NS_Q)
        ET.register_namespace("", self.NS_BED)
        b = "{%s}" % self.NS_BED
        root = ET.Element("{%s}quakeml" % self.NS_Q)
        params = ET.SubElement(root, b + "eventParameters", publicID="smi:local/fieldpick/receive")
        event = ET.SubElement(params, b + "event", publicID="smi:local/fieldpick/receive/unassociated")
        desc = ET.SubElement(event, b + "description")
        ET.SubElement(desc, b + "text").text = "unassociated picks received by fieldpick"
        for pid, p in self._picks:
            self._amplitude(event, b, pid, p)
        for pid, p in self._picks:
            self._pick(event, b, pid, p)
        ET.SubElement(event, b + "type").text = "not reported"
        return root

    def _waveform(self, parent, b, p):
        net, sta, loc, cha = p.station.split(".")
        ET.SubElement(parent, b + "waveformID", networkCode=net, stationCode=sta, locationCode=loc, channelCode=cha)

    def _pick(self, event, b, pid, p):
        pick = ET.SubElement(event, b + "pick", publicID="smi:local/fieldpick/pick/" + pid)
        t = ET.SubElement(pick, b + "time")
        ET.SubElement(t, b + "value").text = iso_utc(p.time_ns)
        ET.SubElement(t, b + "uncertainty").text = repr(float(p.uncertainty_s))
        self._waveform(pick, b, p)
        w = onset_weight(p.uncertainty_s)
        ET.SubElement(pick, b + "onset").text = "impulsive" if w <= 1 else "emergent" if w <= 3 else "questionable"
        ET.SubElement(pick, b + "phaseHint").text = p.phase
        ET.SubElement(pick, b + "polarity").text = {"U": "positive", "D": "negative"}.get(p.polarity, "undecidable")
        ET.SubElement(pick, b + "evaluationMode").text = "automatic"
        comment = ET.SubElement(pick, b + "comment")
        ET.SubElement(comment, b + "text").text = "probability=%.4f" % p.probability
        info = ET.SubElement(pick, b + "creationInfo")
        ET.SubElement(info, b + "agencyID").text = self.agency

    def _amplitude(self, event, b, pid, p):
        amp = ET.SubElement(event, b + "amplitude", publicID="smi:local/fieldpick/amplitude/" + pid)
        g = ET.SubElement(amp, b + "genericAmplitude")
        ET.SubElement(g, b + "value").text = repr(float(p.amplitude))
        ET.SubElement(amp, b + "type").text = "peak"
        ET.SubElement(amp, b + "unit").text = "other"
        ET.SubElement(amp, b + "snr").text = repr(float(10.0 ** (p.snr_db / 20.0)))
        ET.SubElement(amp, b + "pickID").text = "smi:local/fieldpick/pick/" + pid
        self._waveform(amp, b, p)
        ET.SubElement(amp, b + "evaluationMode").text = "automatic"

    def _write_file(self):
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            ET.ElementTree(self.document()).write(f, encoding="utf-8", xml_declaration=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._written = time.monotonic()
        self._dirty = False


# ---------------------------------------------------------------- receiver


class Receiver(object):
    """Authenticate, de-duplicate and write packets; acknowledge them once stored.

    Packets are written in groups: one group is one commit of the writers
    (one database transaction, one fsync of each file).  :func:`serve`
    commits a group as soon as no further packet is waiting to be read
    (unless ``group_wait``), when it holds ``group_packets`` packets, or
    ``group_ms`` milliseconds after its first packet (:meth:`due_in`),
    whichever comes first: under load, the packets that arrive during one
    commit form the next group.  Each packet's ack is sent only after its group's commit
    returned, so an acknowledged pick is on disk; a packet that arrives
    again while its group is open is answered at that commit too.
    ``group_packets=1`` (or ``group_ms=0``) commits every packet on its own.

    counts: packets and picks accepted, 'replayed' (repeats, answered with
    an ack, not written), 'commits' (groups written) and each rejection
    reason of :class:`~fieldpick.edge.telemetry.packet.PacketRejected`.
    """

    def __init__(self, table: StationTable, writers: Sequence = (), state_path: Optional[str] = None,
                 quarantine: Optional[Quarantine] = None, limits: Optional[Limits] = None,
                 group_packets: int = 1, group_ms: float = 0.0, group_wait: bool = False):
        if isinstance(group_packets, bool) or not isinstance(group_packets, int) or not 1 <= group_packets <= 100000:
            raise ConfigError("group of %r packets; allowed: an integer 1 .. 100000" % (group_packets,))
        if not 0.0 <= float(group_ms) <= 10000.0:
            raise ConfigError("group window of %r ms; allowed: 0 .. 10000" % (group_ms,))
        self.table = table
        self.writers = list(writers)
        self.state_path = state_path
        self.quarantine = quarantine
        self.limits = limits
        self.group_packets = group_packets if group_ms > 0 else 1
        self.group_s = float(group_ms) / 1000.0
        self.group_wait = bool(group_wait)
        self.window = ReplayWindow()
        if state_path:
            self.window.load(state_path)
        self.counts = dict.fromkeys(("packets", "picks", "replayed", "quarantined", "store_failed", "commits")
                                    + PacketRejected.REASONS, 0)
        # the open group: (station id, seq, packet, picks or None when set aside), and who waits for each ack
        self._group: List[Tuple[int, int, bytes, Optional[int]]] = []
        self._waiting: Dict[Tuple[int, int], List[Callable]] = {}
        self._since = 0.0

    def handle(self, data: bytes) -> Optional[bytes]:
        """Process one packet and commit at once; return its ack, or None for a rejected packet."""
        got = []
        self.offer(data, got.append)
        self.commit()
        return got[-1] if got else None

    def offer(self, data: bytes, reply: Callable[[bytes], None]) -> None:
        """Take one packet; ``reply(ack)`` is called when its outcome is on disk (at once for a repeat).

        Never raises for a bad packet: an authentic packet that cannot be
        decoded or stored is quarantined, counted and acknowledged (so the
        station stops resending it); one that cannot even be quarantined is
        not acknowledged (the station resends it later); a rejected packet
        gets no reply.
        """
        try:
            packet = decode(data, self.table, self.limits)
        except PacketRejected as exc:
            self.counts[exc.reason] += 1
            log.info("rejected a packet (%s): %s", exc.reason, exc)
            if exc.authentic:
                self._authentic_rejected(data, exc, reply)
            return
        key = (packet.station_id, packet.seq)
        if key in self._waiting or not self.window.is_new(*key):
            self.counts["replayed"] += 1
            log.debug("station %d: packet %d again; acknowledging, not writing", key[0], key[1])
            self._answer_repeat(key, reply)
            return
        entry = self.table.by_id(packet.station_id)
        try:
            for w in self.writers:
                w.write(entry, packet.seq, packet.picks)
        except Exception as exc:  # any writer (a file, a database): the packet is set aside, the receiver goes on
            self.counts["store_failed"] += 1
            log.error("station %s: packet %d could not be stored: %s", entry.code, packet.seq, exc,
                      exc_info=not isinstance(exc, (FieldpickError, OSError)))
            self._set_aside(data, "store_failed", "%s: %s" % (type(exc).__name__, exc), key, reply)
            return
        log.debug("station %s: packet %d with %d picks", entry.code, packet.seq, len(packet.picks))
        self._join(key, data, len(packet.picks), reply)

    def _authentic_rejected(self, data, exc, reply) -> None:
        key = (exc.station_id, exc.seq)
        if key not in self._waiting and self.window.is_new(*key):
            self._set_aside(data, exc.reason, str(exc), key, reply)
        else:  # quarantined before: the station did not get the ack
            self._answer_repeat(key, reply)

    def _answer_repeat(self, key, reply) -> None:
        if key in self._waiting:  # its group is not committed yet: answered with it
            self._waiting[key].append(reply)
        else:
            reply(encode_ack(self.table.by_id(key[0]), self.window.cumulative(key[0]), key[1]))

    def _join(self, key, data, n_picks, reply) -> None:
        if not self._group:
            self._since = time.monotonic()
        self._group.append((key[0], key[1], data, n_picks))
        self._waiting[key] = [reply]
        if len(self._group) >= self.group_packets:
            self.commit()

    def due_in(self) -> Optional[float]:
        """Seconds until the open group must be committed (0: now); None when none is open."""
        if not self._group:
            return None
        return max(0.0, self._since + self.group_s - time.monotonic())

    def commit(self) -> None:
        """Flush every writer (one transaction, one fsync each), record the group, send its acks."""
        if not self._group:
            return
        group, waiting, self._group, self._waiting = self._group, self._waiting, [], {}
        failed = set()
        try:
            for w in self.writers:  # a writer may name packets it could not store (a database, one by one)
                failed.update(tuple(k) for k in (w.flush() or ()))
        except Exception as exc:  # nothing of the group is known to be stored: each packet is set aside
            log.error("a group of %d packets could not be committed: %s", len(group), exc,
                      exc_info=not isinstance(exc, (FieldpickError, OSError)))
            group = self._set_aside_group(group, "%s: %s" % (type(exc).__name__, exc))
        if failed:
            group = self._set_aside_group(group, "the store refused it (see the receiver's log)", failed)
        self.counts["commits"] += 1
        for sid, seq, _, n_picks in group:
            self.window.add(sid, seq)
            if n_picks is not None:
                self.counts["packets"] += 1
                self.counts["picks"] += n_picks
        if self.state_path:
            try:
                self.window.save(self.state_path)
            except OSError as exc:  # the picks are stored: a resend after a restart may repeat them once
                log.error("cannot save receiver state %s: %s", self.state_path, exc)
        for sid, seq, _, _ in group:
            ack = encode_ack(self.table.by_id(sid), self.window.cumulative(sid), seq)
            for reply in waiting[(sid, seq)]:
                reply(ack)

    def _set_aside_group(self, group, message, only=None):
        kept = []
        for sid, seq, data, n_picks in group:
            if n_picks is None or (only is not None and (sid, seq) not in only):
                kept.append((sid, seq, data, n_picks))
                continue
            self.counts["store_failed"] += 1
            if self._keep(data, "store_failed", message, sid, seq):
                kept.append((sid, seq, data, None))
        return kept

    def _keep(self, data, reason, message, station_id, seq) -> bool:
        """Quarantine an authentic packet; False when it could not be kept (then it is not acked)."""
        if self.quarantine is not None and self.quarantine.keep(data, reason, message, station_id, seq) is None:
            return False
        if self.quarantine is None:
            log.error("no quarantine folder: dropping packet %d of station %d (%s: %s)", seq, station_id,
                      reason, message)
        self.counts["quarantined"] += 1
        return True

    def _set_aside(self, data, reason, message, key, reply) -> None:
        if self._keep(data, reason, message, key[0], key[1]):
            self._join(key, data, None, reply)

    def close(self) -> None:
        try:
            self.commit()
        finally:
            for w in self.writers:
                w.close()


def serve(receiver: Receiver, endpoints: Sequence, until=None, max_packets: Optional[int] = None,
          duration_s: Optional[float] = None) -> None:
    """Run the receive loop over ``endpoints`` until ``until()`` is true, ``max_packets``
    new packets were accepted, ``duration_s`` passed, or every endpoint is finished;
    an open group is committed on time and before returning."""
    sel = selectors.DefaultSelector()
    files = []
    for ep in endpoints:
        ep.register(sel)
        if isinstance(ep, FileEndpoint) and ep.path != "-":
            files.append(ep)
    end = None if duration_s is None else time.monotonic() + duration_s

    def done():
        if until is not None and until():
            return True
        if max_packets is not None and receiver.counts["packets"] >= max_packets:
            return True
        if end is not None and time.monotonic() >= end:
            return True
        return all(ep.finished for ep in endpoints)

    try:
        for ep in files:  # plain files are read whole, once
            for data, reply in ep.read():
                receiver.offer(data, reply)
        receiver.commit()
        while not done():
            wait = receiver.due_in()
            for key, _ in sel.select(timeout=0.05 if wait is None else min(0.05, wait)):
                for data, reply in key.data.read(key):
                    receiver.offer(data, reply)
            wait = receiver.due_in()
            if wait == 0.0 or (wait is not None and not receiver.group_wait and not sel.select(timeout=0)):
                receiver.commit()  # the group is full, due, or nothing more is waiting
        receiver.commit()
    finally:
        sel.close()


# ---------------------------------------------------------------- command line


def _parser():
    p = argparse.ArgumentParser(
        prog="fieldpick receive",
        description="Receive, acknowledge and decode signed pick packets; write CSV, QuakeML, Earthworm picks.",
        allow_abbrev=False,
    )
    p.add_argument("--stations", required=True, metavar="TABLE", help="station table JSON (ids, codes, keys)")
    p.add_argument("--make-table", nargs="+", metavar="CODE",
                   help="write a new TABLE with fresh keys for these NET.STA.LOC.CHA codes and exit")
    p.add_argument("--udp", action="append", default=[], metavar="HOST:PORT", help="listen for UDP packets")
    p.add_argument("--tcp", action="append", default=[], metavar="HOST:PORT", help="accept TCP connections")
    p.add_argument("--serial", action="append", default=[], metavar="DEVICE", help="read a serial line (SLIP)")
    p.add_argument("--baud", type=int, default=9600, help="serial baud rate (default 9600)")
    p.add_argument("--file", action="append", default=[], metavar="PATH", help="read hex lines ('-': stdin)")
    p.add_argument("--csv", metavar="PATH", help="append picks as CSV")
    p.add_argument("--quakeml", metavar="PATH", help="write picks as QuakeML 1.2")
    p.add_argument("--earthworm", metavar="PATH", help="append Earthworm TYPE_PICK_SCNL lines")
    p.add_argument("--state", metavar="PATH", help="replay-protection state, kept across restarts")
    p.add_argument("--db", metavar="URL", help="also store picks in a database: sqlite:///PATH or postgresql://... "
                   "(needs fieldpick[network]); with --earthworm, sequence numbers are kept there")
    p.add_argument("--model", metavar="CARD", help="with --db: the stations' model card (or 'default'), recorded per pick")
    p.add_argument("--associate", type=float, metavar="SECONDS", help="with --db: associate and locate live, "
                   "at most every SECONDS (picks settle 120 s first; station coordinates from fieldpick stations)")
    p.add_argument("--ew-module", type=int, default=0, metavar="ID", help="Earthworm module id (default 0)")
    p.add_argument("--ew-installation", type=int, default=255, metavar="ID", help="Earthworm installation id (default 255)")
    p.add_argument("--quarantine", metavar="DIR",
                   help="folder for authentic packets that cannot be decoded or stored (default: 'quarantine' "
                        "beside --state or the first output; none without either)")
    p.add_argument("--group-packets", type=int, default=GROUP_PACKETS, metavar="N",
                   help="commit (one database transaction, one fsync per output) at most N packets together "
                        "(default %d); acks go out after the commit" % GROUP_PACKETS)
    p.add_argument("--group-ms", type=float, default=GROUP_MS, metavar="MS",
                   help="commit a group at most MS milliseconds after its first packet arrived (default %g; "
                        "0: every packet on its own)" % GROUP_MS)
    p.add_argument("--group-wait", action="store_true",
                   help="keep a group open for the whole --group-ms even when no packet is waiting (fewer, larger "
                        "commits at moderate rates; by default a group is committed as soon as none is waiting)")
    p.add_argument("--count", type=int, metavar="N", help="stop after N new packets")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this many seconds")
    return p


def main(argv: list) -> int:
    """``fieldpick receive``: run until --count, --duration, SIGTERM or the end of --file input; 0."""
    args = _parser().parse_args(argv)
    if args.make_table:
        if os.path.exists(args.stations):
            raise ConfigError("station table %s exists; refusing to overwrite its keys" % args.stations)
        StationTable.generate(args.make_table).save(args.stations)
        sys.stdout.write("wrote %s with %d stations\n" % (args.stations, len(args.make_table)))
        return 0
    table = StationTable.load(args.stations)
    endpoints = []
    for text in args.udp:
        ep = UdpEndpoint(*parse_hostport(text))
        endpoints.append(ep)
        sys.stdout.write("listening udp %s:%d\n" % ep.address[:2])
    for text in args.tcp:
        ep = TcpEndpoint(*parse_hostport(text))
        endpoints.append(ep)
        sys.stdout.write("listening tcp %s:%d\n" % ep.address[:2])
    for dev in args.serial:
        endpoints.append(SerialEndpoint(dev, baudrate=args.baud))
    for path in args.file:
        endpoints.append(FileEndpoint(path))
    if not endpoints:
        raise ConfigError("nothing to receive from; give --udp, --tcp, --serial or --file")
    for path in (args.csv, args.quakeml, args.earthworm, args.state):
        if path:
            _check_output(path)
    qdir = args.quarantine
    if qdir is None:
        first = args.state or args.csv or args.quakeml or args.earthworm
        qdir = os.path.join(os.path.dirname(os.path.abspath(first)), "quarantine") if first else None
    quarantine = Quarantine(qdir) if qdir else None
    writers = []
    if args.csv:
        writers.append(CsvWriter(args.csv))
    if args.quakeml:
        writers.append(QuakeMLWriter(args.quakeml))
    if args.db:  # the network side, imported only when asked for
        from ...network.ingest import receive_writers

        writers += receive_writers(args.db, args.model, args.earthworm, args.ew_module, args.ew_installation,
                                   args.associate)
    elif args.earthworm:
        writers.append(EarthwormWriter(args.earthworm, mod_id=args.ew_module, inst_id=args.ew_installation))
    sys.stdout.flush()
    receiver = Receiver(table, writers, state_path=args.state, quarantine=quarantine,
                        group_packets=args.group_packets, group_ms=args.group_ms, group_wait=args.group_wait)
    stop = []
    old = signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    try:
        serve(receiver, endpoints, until=lambda: bool(stop), max_packets=args.count, duration_s=args.duration)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, old)
        receiver.close()
        for ep in endpoints:
            ep.close()
    c = receiver.counts
    sys.stdout.write(
        "received %d packets, %d picks; replayed %d; rejected: %s; quarantined %d; %d commits\n"
        % (c["packets"], c["picks"], c["replayed"], ", ".join("%s %d" % (r, c[r]) for r in PacketRejected.REASONS),
           c["quarantined"], c["commits"])
    )
    return 0


def _check_output(path: str) -> None:
    """ConfigError unless ``path`` can be written: its folder exists and is writable, it is no folder."""
    if os.path.isdir(path):
        raise ConfigError("output %s is a folder; give a file path" % path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ConfigError("output %s: folder %s does not exist" % (path, folder))
    if not os.access(folder, os.W_OK | os.X_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise ConfigError("output %s is not writable" % path)
