"""A small SeedLink 3 server: serves 512-byte miniSEED records over the real protocol.

Meant for tests and for feeding recorded data to a station as if it came
live; not a replacement for ringserver or SeisComP's seedlink.  It speaks
HELLO, STATION, SELECT, DATA [seq], FETCH [seq], TIME begin [end], END,
INFO (any level, answered with one ``SLINFO  `` packet), BYE; packets are
``SL`` + six hex digits + the 512-byte record.  Sequence numbers count per
station from ``first_seq`` (0), modulo 2**24.  ``DATA`` without a sequence number starts with the next
packet added (real time), as SeedLink servers do.

Fault injection for tests: ``drop_at`` (packet counts, over all connections,
at which the server sends the 8-byte header and half of the record and then
closes the connection), ``refuse`` (connections closed right after accept)
and ``ignore_seq`` (resend from the start whatever sequence number is asked).

    server = SeedLinkServer()          # 127.0.0.1, a free port
    server.start()
    server.add(record_bytes)           # 512 bytes of miniSEED, any time
    ... SeedLinkClient("127.0.0.1", server.port, "XX_STA") ...
    server.stop()
"""

from __future__ import annotations

import datetime
import fnmatch
import logging
import select
import socket
import struct
import threading
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import DataError
from .mseed import btime_to_ns

__all__ = ["SeedLinkServer"]

log = logging.getLogger(__name__)

_RECORD = 512
_SEQ_MOD = 1 << 24


def _record_key(raw: bytes) -> Tuple[str, str, str, str, int]:
    """(net, sta, loc, cha, start_ns) of a 512-byte miniSEED record (header byte order detected)."""
    if len(raw) != _RECORD:
        raise DataError("a SeedLink packet holds a 512-byte record, got %d bytes" % len(raw))
    order = ">"
    year, doy = struct.unpack_from(">HH", raw, 20)
    if not (1900 <= year <= 2100 and 1 <= doy <= 366):
        order = "<"
        year, doy = struct.unpack_from("<HH", raw, 20)
    hour, minute, sec, _, ticks = struct.unpack_from(order + "BBBBH", raw, 24)
    code = [raw[a:b].decode("ascii", "ignore").strip() for a, b in ((18, 20), (8, 13), (13, 15), (15, 18))]
    return code[0], code[1], code[2], code[3], btime_to_ns(year, doy, hour, minute, sec, ticks)


def _parse_time(text: str) -> int:
    parts = [int(p) for p in text.split(",")]
    if len(parts) < 6:
        raise ValueError(text)
    dt = datetime.datetime(*parts[:6], tzinfo=datetime.timezone.utc)
    return int(dt.timestamp()) * 1_000_000_000


class SeedLinkServer:
    """Threaded SeedLink 3 server on ``host`` (loopback by default); ``port`` 0 picks one."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, drop_at: Sequence[int] = (),
                 refuse: int = 0, organisation: str = "fieldpick test server",
                 ignore_seq: bool = False, first_seq: int = 0):
        self.host = host
        self.organisation = organisation
        self.drop_at = sorted(int(k) for k in drop_at)
        self.refuse = int(refuse)
        self.ignore_seq = ignore_seq  # a faulty server: resend from the start on every FETCH/DATA n
        self.first_seq = int(first_seq) % _SEQ_MOD  # wire number of each station's first packet
        self.commands: List[str] = []  # every command line received, in order
        self.connections = 0
        self.sent = 0  # packets sent completely or in part, all connections
        # (net, sta), index in the station's ring, raw, key; on the wire the index is
        # sent as (first_seq + index) mod 2**24, so tests can cross the wrap
        self._packets: List[Tuple[Tuple[str, str], int, bytes, Tuple]] = []
        self._next_seq: Dict[Tuple[str, str], int] = {}  # next index per station
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads: List[threading.Thread] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, port))
        self._listener.listen(8)
        self.port = self._listener.getsockname()[1]

    # ---------------------------------------------------------------- control

    def add(self, raw: bytes) -> int:
        """Append a 512-byte record to its station's ring; returns its wire sequence number."""
        key = _record_key(bytes(raw))
        station = (key[0], key[1])
        with self._cond:
            seq = self._next_seq.get(station, 0)
            self._next_seq[station] = seq + 1
            self._packets.append((station, seq, bytes(raw), key))
            self._cond.notify_all()
        return (self.first_seq + seq) % _SEQ_MOD

    def start(self) -> "SeedLinkServer":
        t = threading.Thread(target=self._accept_loop, name="slserver-accept", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        try:
            self._listener.close()
        except OSError:
            pass
        for t in self._threads:
            t.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # ---------------------------------------------------------------- serving

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._listener], [], [], 0.05)
            if not ready:
                continue
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            if self.refuse > 0:
                self.refuse -= 1
                conn.close()
                continue
            t = threading.Thread(target=self._serve, args=(conn,), name="slserver-conn", daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        try:
            self._session(conn)
        except (OSError, ValueError) as exc:
            log.debug("slserver: connection ended: %s", exc)
        finally:
            conn.close()

    def _session(self, conn: socket.socket) -> None:
        reader = _Lines(conn, self._stop)
        selected: Dict[Tuple[str, str], dict] = {}
        current: Optional[dict] = None
        while True:
            line = reader.line()
            if line is None:
                return
            self.commands.append(line)
            words = line.split()
            verb = words[0].upper() if words else ""
            if verb == "HELLO":
                conn.sendall(b"SeedLink v3.1 (fieldpick slserver) :: SLPROTO:3.1 CAP\r\n"
                             + self.organisation.encode("ascii", "replace") + b"\r\n")
            elif verb == "STATION" and len(words) >= 3:
                current = {"patterns": [], "from_seq": None, "begin": None, "end": None, "fetch": False}
                selected[(words[2], words[1])] = current
                conn.sendall(b"OK\r\n")
            elif verb == "SELECT" and current is not None and len(words) == 2:
                pattern = words[1].split(".")[0]
                if not 1 <= len(pattern) <= 5:  # [LL]CCC[.T]
                    conn.sendall(b"ERROR\r\n")
                    continue
                current["patterns"].append(pattern)
                conn.sendall(b"OK\r\n")
            elif verb in ("DATA", "FETCH", "TIME") and current is not None:
                try:
                    self._action(current, verb, words[1:])
                except ValueError:
                    conn.sendall(b"ERROR\r\n")
                    continue
                conn.sendall(b"OK\r\n")
            elif verb == "END" and selected:
                self._stream(conn, reader, selected)
                return
            elif verb == "BYE":
                return
            elif verb == "INFO":
                conn.sendall(b"SLINFO  " + b" " * _RECORD)
            else:
                conn.sendall(b"ERROR\r\n")

    def _action(self, st: dict, verb: str, args: List[str]) -> None:
        st["fetch"] = verb == "FETCH"
        if verb == "TIME":
            st["begin"] = _parse_time(args[0])
            st["end"] = _parse_time(args[1]) if len(args) > 1 else None
            st["from_seq"] = 0
        elif args:
            st["from_seq"] = 0 if self.ignore_seq else (int(args[0], 16) - self.first_seq) % _SEQ_MOD
        else:  # real time: the next packet added
            st["from_seq"] = None

    def _stream(self, conn: socket.socket, reader: "_Lines", selected: Dict) -> None:
        with self._cond:
            for station, st in selected.items():
                if st["from_seq"] is None:
                    st["from_seq"] = self._next_seq.get(station, 0)
            finite = all(st["fetch"] or st["end"] is not None for st in selected.values())
        pos = 0
        while not self._stop.is_set():
            with self._cond:
                if pos >= len(self._packets) and not finite:
                    self._cond.wait(0.05)
                batch = self._packets[pos:]
            pos += len(batch)
            for station, seq, raw, key in batch:
                st = selected.get(station)
                if st is None or seq < st["from_seq"] or not self._wanted(st, key):
                    continue
                if self.drop_at and self.sent >= self.drop_at[0]:
                    self.drop_at.pop(0)
                    self.sent += 1
                    conn.sendall(b"SL%06X" % self._wire(seq) + raw[:_RECORD // 2])
                    log.info("slserver: dropping the connection inside packet %06X", self._wire(seq))
                    return
                conn.sendall(b"SL%06X" % self._wire(seq) + raw)
                self.sent += 1
            if finite and pos >= len(self._packets):
                conn.sendall(b"END")
                return
            line = reader.poll()
            if line is not None:
                self.commands.append(line)
                if line.upper().startswith("INFO"):
                    conn.sendall(b"SLINFO  " + b" " * _RECORD)
                elif line.upper().startswith("BYE"):
                    return

    def _wire(self, index: int) -> int:
        return (self.first_seq + index) % _SEQ_MOD

    @staticmethod
    def _wanted(st: dict, key: Tuple) -> bool:
        _, _, loc, cha, start = key
        if st["begin"] is not None and start < st["begin"]:
            return False
        if st["end"] is not None and start >= st["end"]:
            return False
        if not st["patterns"]:
            return True
        for pat in st["patterns"]:
            if len(pat) > 3:
                if fnmatch.fnmatchcase(loc.ljust(2) + cha, pat.replace(" ", "?").ljust(5, "?")):
                    return True
            elif fnmatch.fnmatchcase(cha, pat):
                return True
        return False


class _Lines:
    """Command lines from a socket (CR LF or LF), with a non-blocking poll."""

    def __init__(self, conn: socket.socket, stop: threading.Event):
        self.conn, self.stop, self.buf = conn, stop, b""

    def _take(self) -> Optional[str]:
        for sep in (b"\r\n", b"\n", b"\r"):
            if sep in self.buf:
                line, _, self.buf = self.buf.partition(sep)
                return line.decode("ascii", "replace").strip()
        return None

    def line(self) -> Optional[str]:
        while not self.stop.is_set():
            got = self._take()
            if got is not None:
                return got
            ready, _, _ = select.select([self.conn], [], [], 0.05)
            if ready:
                chunk = self.conn.recv(4096)
                if not chunk:
                    return None
                self.buf += chunk
        return None

    def poll(self) -> Optional[str]:
        got = self._take()
        if got is not None:
            return got
        ready, _, _ = select.select([self.conn], [], [], 0)
        if ready:
            chunk = self.conn.recv(4096)
            if not chunk:
                raise OSError("client closed the connection")
            self.buf += chunk
            return self._take()
        return None

