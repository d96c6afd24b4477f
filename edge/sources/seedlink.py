"""A SeedLink 3 client: live miniSEED records from a SeedLink server, resumable.

Protocol (SeedLink 3.x, multi-station mode), as this client speaks it::

    HELLO                       -> two lines: server id (with "SeedLink v3..."), organisation
    STATION STA NET             -> OK        (once per station)
    SELECT LLCCC.T              -> OK        (zero or more per station, '?' wildcards)
    DATA [SEQ]  | FETCH [SEQ] | TIME BEGIN [END]   -> OK
    END                         -> the server streams packets

Each packet is an 8-byte header ``SL`` + six hexadecimal digits (the packet's
sequence number in that station's ring) followed by a 512-byte miniSEED
record.  ``SLINFO *`` / ``SLINFO  `` headers carry INFO replies (ignored
here).  In FETCH mode (and TIME with an end) the server sends ``END`` when it
has sent what it holds and closes.

Resuming without loss or duplicates: the client remembers the last sequence
number it delivered per station (``seqnums``).  After a dropped connection it
reconnects with exponential back-off and asks each station for ``DATA
last+1`` (``FETCH last+1`` in FETCH mode or a TIME window with an end),
so the server starts with the first packet
not yet delivered; a packet that still arrives twice (a sequence number not
after the last one) is dropped and counted.  A packet cut short by a drop is
discarded whole.

Keep-alive: after ``keepalive_s`` seconds without a byte the client sends
``INFO ID``; after ``timeout_s`` seconds without a byte it gives the
connection up and reconnects.

SeedLink 4 (``SLPROTO 4.0``, different framing) is not spoken.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from ..errors import ConfigError, DataError
from ..limits import read_json
from .base import Record, Source
from .mseed import DecodeStats, MseedDecoder

__all__ = ["SeedLinkClient", "SeedLinkStats", "StreamSpec", "parse_streams", "PACKET_BYTES",
           "load_state", "save_state"]

log = logging.getLogger(__name__)

PACKET_BYTES = 512  # the miniSEED record of a SeedLink 3 packet
_HEADER = 8
_SEQ_MOD = 1 << 24
_MAX_LINE = 4096  # a reply line longer than this without CR LF is a protocol error
_MODES = ("DATA", "FETCH", "TIME")
_STATE_FORMAT, _STATE_VERSION = "fieldpick-seedlink-state", 1


@dataclass(frozen=True)
class StreamSpec:
    """One station and its selectors (e.g. ``('XX', 'STA', ('HH?',))``; none: all)."""

    network: str
    station: str
    selectors: Tuple[str, ...] = ()


def parse_streams(text: str) -> List[StreamSpec]:
    """``'NET_STA:SEL SEL,NET_STA'`` -> [StreamSpec]; ``:`` introduces space-separated selectors.

    >>> parse_streams("XX_STA:HH? 00BHZ,YY_B")[0].selectors
    ('HH?', '00BHZ')
    """
    specs = []
    for item in [t.strip() for t in text.split(",") if t.strip()]:
        name, _, sel = item.partition(":")
        net, sep, sta = name.partition("_")
        if not sep or not net or not sta or len(net) > 2 or len(sta) > 5:
            raise ConfigError("SeedLink stream %r: expected NET_STA[:SELECTORS] with a network of "
                              "1-2 and a station of 1-5 characters" % item)
        specs.append(StreamSpec(net.upper(), sta.upper(), tuple(sel.split())))
    if not specs:
        raise ConfigError("no SeedLink streams given in %r; expected NET_STA[:SELECTORS],..." % text)
    return specs


@dataclass
class SeedLinkStats:
    """Counters of a client's life: packets delivered, duplicates dropped, reconnects..."""

    packets: int = 0
    duplicates: int = 0
    info_packets: int = 0
    partial_packets: int = 0
    connections: int = 0
    reconnects: int = 0
    keepalives: int = 0
    protocol_errors: int = 0
    backoff_s: List[float] = field(default_factory=list)
    decode: DecodeStats = field(default_factory=DecodeStats)


class _Dropped(Exception):
    """The connection ended or failed; reconnect."""


def _time_arg(ns: int) -> str:
    t = time.gmtime(ns // 1_000_000_000)
    return "%04d,%02d,%02d,%02d,%02d,%02d" % t[:6]


class SeedLinkClient(Source):
    """Records from a SeedLink 3 server, in arrival order, resuming across drops.

    host, port: the server.  streams: list of :class:`StreamSpec` (or a string for
    :func:`parse_streams`).  mode: 'DATA' (real time, the default), 'FETCH' (what
    the server holds, then stop) or 'TIME' (from ``start_ns``, until ``end_ns``
    if given, ns since the epoch).  seqnums: last delivered sequence number per
    (network, station) to resume from (updated as packets arrive).
    keepalive_s / timeout_s: seconds of silence before ``INFO ID`` / a reconnect.
    backoff_s: (first, largest) pause between reconnects, seconds, doubling.
    max_reconnects: give up (end the iteration) after this many failed attempts
    in a row; None: never.  sleep: the pause function (``time.sleep``).
    state_path: a file that keeps ``seqnums`` across restarts (read at start,
    written atomically every ``state_every_s`` seconds, on every disconnect and
    on ``close()``), so that a restarted station resumes where it stopped.
    """

    def __init__(
        self,
        host: str,
        port: int,
        streams,
        mode: str = "DATA",
        start_ns: Optional[int] = None,
        end_ns: Optional[int] = None,
        seqnums: Optional[Dict[Tuple[str, str], int]] = None,
        keepalive_s: float = 30.0,
        timeout_s: float = 120.0,
        connect_timeout_s: float = 10.0,
        backoff_s: Tuple[float, float] = (1.0, 60.0),
        max_reconnects: Optional[int] = None,
        sleep: Callable[[float], None] = time.sleep,
        state_path: Optional[str] = None,
        state_every_s: float = 10.0,
    ):
        if isinstance(streams, str):
            streams = parse_streams(streams)
        self.streams: List[StreamSpec] = list(streams)
        if not self.streams:
            raise ConfigError("SeedLinkClient needs at least one stream (NET_STA)")
        mode = mode.upper()
        if mode not in _MODES:
            raise ConfigError("SeedLink mode %r is not one of %s" % (mode, ", ".join(_MODES)))
        if mode == "TIME" and start_ns is None:
            raise ConfigError("SeedLink mode TIME needs start_ns")
        if not 0 < keepalive_s < timeout_s:
            raise ConfigError("need 0 < keepalive_s < timeout_s, got %r and %r" % (keepalive_s, timeout_s))
        if not 0 < backoff_s[0] <= backoff_s[1]:
            raise ConfigError("backoff_s must be (first, largest) with 0 < first <= largest, got %r"
                              % (backoff_s,))
        self.host, self.port = host, int(port)
        self.mode, self.start_ns, self.end_ns = mode, start_ns, end_ns
        self.seqnums: Dict[Tuple[str, str], int] = dict(seqnums or {})
        self.keepalive_s, self.timeout_s = float(keepalive_s), float(timeout_s)
        self.connect_timeout_s = float(connect_timeout_s)
        self.backoff_s = (float(backoff_s[0]), float(backoff_s[1]))
        self.max_reconnects = max_reconnects
        self.sleep = sleep
        self.stats = SeedLinkStats()
        self.state_path, self.state_every_s = state_path, float(state_every_s)
        if state_path is not None and os.path.exists(state_path):
            saved = load_state(state_path, "%s:%d" % (host, self.port))
            saved.update(self.seqnums)
            self.seqnums = saved
        self._saved_at = time.monotonic()
        self.server_id = ""
        self._sock: Optional[socket.socket] = None
        self._closed = False
        self._finished = False

    # ---------------------------------------------------------------- public

    def __iter__(self) -> Iterator[Record]:
        failures = 0
        while not self._closed and not self._finished:
            try:
                self._connect()
                for rec in self._receive():
                    failures = 0
                    yield rec
            except (_Dropped, OSError) as exc:
                if self._closed:
                    break
                log.warning("SeedLink %s:%d: %s", self.host, self.port, exc)
            finally:
                self._disconnect()
            if self._closed or self._finished:
                break
            failures += 1
            if self.max_reconnects is not None and failures > self.max_reconnects:
                log.error("SeedLink %s:%d: giving up after %d failed reconnects",
                          self.host, self.port, failures - 1)
                break
            pause = min(self.backoff_s[1], self.backoff_s[0] * 2 ** (failures - 1))
            self.stats.backoff_s.append(pause)
            self.stats.reconnects += 1
            log.info("SeedLink %s:%d: reconnecting in %.3g s", self.host, self.port, pause)
            self.sleep(pause)

    def save_state(self) -> None:
        """Write ``seqnums`` to ``state_path`` now (no-op without one)."""
        if self.state_path is not None:
            save_state(self.state_path, "%s:%d" % (self.host, self.port), self.seqnums)
            self._saved_at = time.monotonic()

    def close(self) -> None:
        """Stop the iteration and close the connection (safe from another thread)."""
        self._closed = True
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # ---------------------------------------------------------------- session

    def _connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout_s)
        self._sock = sock
        self._buf = b""
        self.stats.connections += 1
        sock.settimeout(min(self.keepalive_s, 1.0))
        self._send("HELLO")
        self.server_id = self._line()
        org = self._line()
        log.info("SeedLink %s:%d: %s / %s", self.host, self.port, self.server_id, org)
        for spec in self.streams:
            self._command("STATION %s %s" % (spec.station, spec.network))
            for sel in spec.selectors:
                self._command("SELECT %s" % sel)
            self._command(self._action(spec))
        self._send("END")

    def _action(self, spec: StreamSpec) -> str:
        last = self.seqnums.get((spec.network, spec.station))
        if last is not None:  # resume: the first packet not yet delivered
            finite = self.mode == "FETCH" or (self.mode == "TIME" and self.end_ns is not None)
            verb = "FETCH" if finite else "DATA"
            return "%s %06X" % (verb, (last + 1) % _SEQ_MOD)
        if self.mode == "TIME":
            end = " " + _time_arg(self.end_ns) if self.end_ns is not None else ""
            return "TIME %s%s" % (_time_arg(self.start_ns), end)
        return self.mode

    def _disconnect(self) -> None:
        self.save_state()
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _send(self, line: str) -> None:
        log.debug("SeedLink -> %s", line)
        self._sock.sendall(line.encode("ascii") + b"\r\n")

    def _fill(self, need: int, deadline_from: float) -> None:
        """Read until ``self._buf`` holds ``need`` bytes; keep-alive and time out while waiting."""
        last = deadline_from
        sent_keepalive = False
        while len(self._buf) < need:
            if self._closed:
                raise _Dropped("closed")
            try:
                chunk = self._sock.recv(65536)
            except socket.timeout:
                idle = time.monotonic() - last
                if idle >= self.timeout_s:
                    raise _Dropped("no data for %.1f s" % idle) from None
                if idle >= self.keepalive_s and not sent_keepalive:
                    self._send("INFO ID")
                    self.stats.keepalives += 1
                    sent_keepalive = True
                continue
            if not chunk:
                raise _Dropped("connection closed by the server")
            self._buf += chunk
            last = time.monotonic()
            sent_keepalive = False

    def _line(self) -> str:
        start = time.monotonic()
        while b"\r\n" not in self._buf:
            if len(self._buf) > _MAX_LINE:
                self.stats.protocol_errors += 1
                raise _Dropped("a reply line longer than %d bytes without CR LF" % _MAX_LINE)
            self._fill(len(self._buf) + 1, start)
        line, _, self._buf = self._buf.partition(b"\r\n")
        return line.decode("ascii", "replace")

    def _command(self, line: str) -> None:
        self._send(line)
        reply = self._line()
        if reply != "OK":
            self.stats.protocol_errors += 1
            raise DataError("SeedLink server %s:%d answered %r to %r (expected 'OK')"
                            % (self.host, self.port, reply, line))

    def _receive(self) -> Iterator[Record]:
        decoder = MseedDecoder(name="seedlink://%s:%d" % (self.host, self.port))
        decoder.stats = self.stats.decode
        while not self._closed:
            start = time.monotonic()
            self._fill(3, start)
            if self._buf.startswith(b"END") and self.mode in ("FETCH", "TIME"):
                log.info("SeedLink %s:%d: server sent END", self.host, self.port)
                self._finished = True
                return
            if self._buf.startswith(b"ERROR"):
                self.stats.protocol_errors += 1
                raise _Dropped("server sent ERROR")
            try:
                self._fill(_HEADER, start)
            except _Dropped:
                if self._buf:
                    self.stats.partial_packets += 1
                raise
            head = self._buf[:_HEADER]
            try:
                self._fill(_HEADER + PACKET_BYTES, start)
            except _Dropped:
                self.stats.partial_packets += 1
                raise
            body = self._buf[_HEADER:_HEADER + PACKET_BYTES]
            self._buf = self._buf[_HEADER + PACKET_BYTES:]
            if head.startswith(b"SLINFO"):
                self.stats.info_packets += 1
                continue
            if head[:2] != b"SL":
                self.stats.protocol_errors += 1
                raise _Dropped("bad packet header %r (expected 'SL' and 6 hex digits)" % head)
            try:
                seq = int(head[2:], 16)
            except ValueError:
                self.stats.protocol_errors += 1
                raise _Dropped("bad packet header %r (expected 'SL' and 6 hex digits)" % head) from None
            records = decoder.feed(body) + decoder.flush()
            for rec in records:
                key = (rec.network, rec.station)
                last = self.seqnums.get(key)
                if last is not None and not 0 < (seq - last) % _SEQ_MOD < _SEQ_MOD // 2:
                    self.stats.duplicates += 1
                    log.info("SeedLink: dropped duplicate packet %06X of %s.%s (last %06X)",
                             seq, rec.network, rec.station, last)
                    continue
                self.seqnums[key] = seq
                self.stats.packets += 1
                if self.state_path is not None and time.monotonic() - self._saved_at >= self.state_every_s:
                    self.save_state()
                yield rec


def save_state(path: str, server: str, seqnums: Dict[Tuple[str, str], int]) -> None:
    """Write the last sequence numbers atomically (temporary file, fsync, rename)."""
    doc = {"format": _STATE_FORMAT, "version": _STATE_VERSION, "server": server,
           "seqnums": {"%s_%s" % key: seq for key, seq in sorted(seqnums.items())}}
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(doc, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_state(path: str, server: Optional[str] = None) -> Dict[Tuple[str, str], int]:
    """Read a state file written by :func:`save_state`; checks its format, version and server."""
    try:
        doc = read_json(path, "SeedLink state file", DataError)
    except DataError as exc:
        raise DataError("%s; it cannot be read: delete it to start afresh" % exc) from None
    if not isinstance(doc, dict) or doc.get("format") != _STATE_FORMAT:
        raise DataError("%r is not a SeedLink state file (format %r, expected %r)"
                        % (path, doc.get("format") if isinstance(doc, dict) else None, _STATE_FORMAT))
    if doc.get("version") != _STATE_VERSION:
        raise DataError("SeedLink state file %r has version %r; this fieldpick reads version %d: "
                        "delete it to start afresh" % (path, doc.get("version"), _STATE_VERSION))
    if server is not None and doc.get("server") != server:
        raise DataError("SeedLink state file %r belongs to server %r, not %r: sequence numbers do not "
                        "carry over between servers; use another state file" % (path, doc.get("server"), server))
    out = {}
    seqnums = doc.get("seqnums", {})
    if not isinstance(seqnums, dict):
        raise DataError("SeedLink state file %r: seqnums is not an object; delete it to start afresh" % path)
    for name, seq in seqnums.items():
        net, _, sta = name.partition("_")
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < _SEQ_MOD:
            raise DataError("SeedLink state file %r: sequence number %r of %s is not an integer 0..%d; "
                            "delete it to start afresh" % (path, seq, name, _SEQ_MOD - 1))
        out[(net, sta)] = seq
    return out
