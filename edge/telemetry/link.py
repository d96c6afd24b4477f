"""Transports for pick packets: UDP, TCP, a serial line (termios), a file or stdout.

Station side, a :class:`Link`: ``send(packet) -> bool`` (False when the link
is down; the caller keeps the packet and retries), ``recv(timeout_s) ->
[ack, ...]`` and ``close()``.

Receiver side: the endpoints of :mod:`fieldpick.edge.telemetry.endpoint`,
which read this framing.

Framing: UDP carries one packet per datagram; TCP prefixes each packet with
its length (u16, big-endian); the serial line uses SLIP (RFC 1055); the file
link writes one packet per line in hex.  Framing only delimits packets;
integrity and authenticity come from the packet's HMAC tag.
"""

from __future__ import annotations

import binascii
import logging
import os
import select
import socket
import struct
import sys
import time
from typing import Callable, List, Optional, Tuple

from ..errors import ConfigError, TelemetryError

__all__ = [
    "Link",
    "UdpLink",
    "TcpLink",
    "SerialLink",
    "FileLink",
    "slip_encode",
    "SlipDecoder",
    "LengthDecoder",
    "parse_hostport",
    "open_tty",
    "open_link",
]

log = logging.getLogger(__name__)

MAX_FRAME = 4096  # no profile needs more; longer frames are garbage
_LEN = struct.Struct(">H")
Reply = Callable[[bytes], None]


def parse_hostport(text: str) -> Tuple[str, int]:
    """'HOST:PORT' -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not (0 <= int(port) <= 65535):
        raise ConfigError("address %r must read HOST:PORT with PORT in 0..65535" % (text,))
    return host or "127.0.0.1", int(port)


def socket_error(what: str, host: str, port: int, exc: OSError) -> ConfigError:
    """One line naming the address: unresolvable host, port in use, address not on this machine."""
    why = exc.strerror or str(exc)
    if isinstance(exc, socket.gaierror):
        why = "cannot resolve host %r (%s)" % (host, why)
    return ConfigError("cannot %s %s:%d: %s" % (what, host, port, why))


# ---------------------------------------------------------------- framing

SLIP_END, SLIP_ESC, SLIP_ESC_END, SLIP_ESC_ESC = 0xC0, 0xDB, 0xDC, 0xDD


def slip_encode(data: bytes) -> bytes:
    """One SLIP frame (RFC 1055), with a leading END to flush line noise."""
    body = bytes(data).replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc")
    return b"\xc0" + body + b"\xc0"


class SlipDecoder(object):
    """Feed bytes from a serial line, get whole frames; bad escapes drop the frame."""

    def __init__(self, max_frame: int = MAX_FRAME):
        self.max_frame = max_frame
        self._buf = bytearray()
        self._esc = False
        self._bad = False
        self.dropped = 0

    def feed(self, data: bytes) -> List[bytes]:
        frames = []
        for b in bytes(data):
            if b == SLIP_END:
                if self._buf and not self._bad:
                    frames.append(bytes(self._buf))
                elif self._bad:
                    self.dropped += 1
                self._buf = bytearray()
                self._esc = self._bad = False
            elif self._bad:
                continue
            elif self._esc:
                self._esc = False
                if b == SLIP_ESC_END:
                    self._buf.append(SLIP_END)
                elif b == SLIP_ESC_ESC:
                    self._buf.append(SLIP_ESC)
                else:
                    self._bad = True
            elif b == SLIP_ESC:
                self._esc = True
            else:
                self._buf.append(b)
            if len(self._buf) > self.max_frame:
                self._bad = True
                self._buf = bytearray()
        return frames


class LengthDecoder(object):
    """Feed bytes from a TCP stream, get whole u16-length-prefixed frames."""

    def __init__(self, max_frame: int = MAX_FRAME):
        self.max_frame = max_frame
        self._buf = bytearray()

    def feed(self, data: bytes) -> List[bytes]:
        self._buf.extend(data)
        frames = []
        while len(self._buf) >= 2:
            (n,) = _LEN.unpack_from(self._buf, 0)
            if n == 0 or n > self.max_frame:
                raise TelemetryError("stream frame of %d bytes; allowed 1..%d" % (n, self.max_frame))
            if len(self._buf) < 2 + n:
                break
            frames.append(bytes(self._buf[2:2 + n]))
            del self._buf[:2 + n]
        return frames


def length_frame(data: bytes) -> bytes:
    """A packet with its u16 big-endian length in front (the TCP framing)."""
    if not (0 < len(data) <= MAX_FRAME):
        raise TelemetryError("packet of %d bytes; a stream frame holds 1..%d" % (len(data), MAX_FRAME))
    return _LEN.pack(len(data)) + bytes(data)


# ---------------------------------------------------------------- station side


class Link(object):
    """Station side of a transport."""

    def send(self, data: bytes) -> bool:
        raise NotImplementedError

    def recv(self, timeout_s: float = 0.0) -> List[bytes]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class UdpLink(Link):
    """Datagrams to ``host:port``; acks come back to the same socket."""

    def __init__(self, host: str, port: int):
        self.address = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.connect(self.address)
        except OSError as exc:
            self.sock.close()
            raise socket_error("send udp to", host, port, exc) from None
        self.sock.setblocking(False)

    def send(self, data: bytes) -> bool:
        try:
            self.sock.send(data)
            return True
        except OSError as exc:  # ECONNREFUSED after an ICMP port-unreachable, ENETUNREACH...
            log.debug("udp send to %s:%d failed: %s", self.address[0], self.address[1], exc)
            return False

    def recv(self, timeout_s: float = 0.0) -> List[bytes]:
        out = []
        if not select.select([self.sock], [], [], max(0.0, timeout_s))[0]:
            return out
        while True:
            try:
                out.append(self.sock.recv(65535))
            except (BlockingIOError, InterruptedError):
                return out
            except OSError as exc:
                log.debug("udp recv: %s", exc)
                return out

    def close(self):
        self.sock.close()


class TcpLink(Link):
    """A TCP connection to ``host:port``, re-opened on the next send after it drops."""

    def __init__(self, host: str, port: int, connect_timeout_s: float = 5.0, reconnect_s: float = 1.0):
        self.address = (host, port)
        self.connect_timeout_s = connect_timeout_s
        self.reconnect_s = reconnect_s
        self.sock: Optional[socket.socket] = None
        self._decoder = LengthDecoder()
        self._next_try = 0.0

    def _connect(self) -> bool:
        if self.sock is not None:
            return True
        if time.monotonic() < self._next_try:
            return False
        try:
            s = socket.create_connection(self.address, timeout=self.connect_timeout_s)
        except OSError as exc:
            log.debug("tcp connect to %s:%d failed: %s", self.address[0], self.address[1], exc)
            self._next_try = time.monotonic() + self.reconnect_s
            return False
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = s
        self._decoder = LengthDecoder()
        log.info("tcp link to %s:%d up", *self.address)
        return True

    def _drop(self, why):
        log.info("tcp link to %s:%d down: %s", self.address[0], self.address[1], why)
        if self.sock is not None:
            self.sock.close()
        self.sock = None
        self._next_try = time.monotonic() + self.reconnect_s

    def send(self, data: bytes) -> bool:
        if not self._connect():
            return False
        try:
            self.sock.settimeout(self.connect_timeout_s)
            self.sock.sendall(length_frame(data))
            return True
        except OSError as exc:
            self._drop(exc)
            return False

    def recv(self, timeout_s: float = 0.0) -> List[bytes]:
        if self.sock is None:
            time.sleep(max(0.0, timeout_s))
            return []
        out = []
        if select.select([self.sock], [], [], max(0.0, timeout_s))[0]:
            try:
                self.sock.settimeout(0.0)
                chunk = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return out
            except OSError as exc:
                self._drop(exc)
                return out
            if not chunk:
                self._drop("closed by peer")
                return out
            try:
                out.extend(self._decoder.feed(chunk))
            except TelemetryError as exc:
                self._drop(exc)
        return out

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def open_tty(path: str, baudrate: int = 9600) -> int:
    """Open a serial device raw (8N1, no flow control, non-blocking); return its fd."""
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        _configure_tty(fd, baudrate)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _configure_tty(fd: int, baudrate: int) -> None:
    import termios

    speed = getattr(termios, "B%d" % baudrate, None) if isinstance(baudrate, int) else None
    if speed is None:
        allowed = sorted(int(n[1:]) for n in dir(termios) if n[:1] == "B" and n[1:].isdigit())
        raise ConfigError("baud rate %r not supported; allowed: %s" % (baudrate, ", ".join(map(str, allowed))))
    iflag, oflag, cflag, lflag, _, _, cc = termios.tcgetattr(fd)
    iflag &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP | termios.INLCR
               | termios.IGNCR | termios.ICRNL | termios.IXON | termios.IXOFF | termios.IXANY)
    oflag &= ~termios.OPOST
    lflag &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    cflag &= ~(termios.CSIZE | termios.PARENB | termios.CSTOPB)
    cflag |= termios.CS8 | termios.CREAD | termios.CLOCAL
    cc = list(cc)
    cc[termios.VMIN] = 0
    cc[termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, [iflag, oflag, cflag, lflag, speed, speed, cc])


def _write_all(fd: int, data: bytes, timeout_s: float) -> None:
    view = memoryview(data)
    deadline = time.monotonic() + timeout_s
    while view:
        try:
            n = os.write(fd, view)
            view = view[n:]
        except (BlockingIOError, InterruptedError):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TelemetryError("serial write timed out after %.1f s" % timeout_s) from None
            select.select([], [fd], [], left)


class SerialLink(Link):
    """A serial line (radio modem, RockBLOCK in transparent mode...) framed with SLIP.

    path: device such as '/dev/ttyUSB0' (opened raw at ``baudrate``), or
    fd: an already open descriptor (not configured, not closed by us).
    """

    def __init__(self, path: Optional[str] = None, baudrate: int = 9600, fd: Optional[int] = None,
                 write_timeout_s: float = 10.0):
        if (path is None) == (fd is None):
            raise ConfigError("SerialLink needs exactly one of path or fd")
        self._own = fd is None
        self.fd = open_tty(path, baudrate) if fd is None else fd
        self.write_timeout_s = write_timeout_s
        self.decoder = SlipDecoder()

    def send(self, data: bytes) -> bool:
        try:
            _write_all(self.fd, slip_encode(data), self.write_timeout_s)
            return True
        except (OSError, TelemetryError) as exc:
            log.warning("serial send failed: %s", exc)
            return False

    def recv(self, timeout_s: float = 0.0) -> List[bytes]:
        out = []
        if select.select([self.fd], [], [], max(0.0, timeout_s))[0]:
            try:
                out.extend(self.decoder.feed(os.read(self.fd, 4096)))
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                log.warning("serial read failed: %s", exc)
        return out

    def close(self):
        if self._own and self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class FileLink(Link):
    """One packet per line, in hex, to a file (appended, fsync-ed) or to stdout ('-').

    A one-way link: nothing is ever acknowledged, so the journal keeps every
    packet until a receiver that reads the file sends acks another way.
    """

    def __init__(self, path: str = "-"):
        self.path = path
        self._stream = sys.stdout if path == "-" else open(path, "a", encoding="ascii")

    def send(self, data: bytes) -> bool:
        try:
            self._stream.write(binascii.hexlify(bytes(data)).decode("ascii") + "\n")
            self._stream.flush()
            if self.path != "-":
                os.fsync(self._stream.fileno())
            return True
        except OSError as exc:
            log.warning("file link %s: %s", self.path, exc)
            return False

    def recv(self, timeout_s: float = 0.0) -> List[bytes]:
        time.sleep(max(0.0, timeout_s))
        return []

    def close(self):
        if self.path != "-":
            self._stream.close()


def open_link(spec: str, baudrate: int = 9600) -> Link:
    """A station link from a spec: 'udp://HOST:PORT', 'tcp://HOST:PORT',
    'serial:/dev/ttyUSB0', 'file:PATH' or '-' (stdout)."""
    if spec == "-":
        return FileLink("-")
    scheme, sep, rest = spec.partition(":")
    if sep and scheme in ("udp", "tcp") and rest.startswith("//"):
        host, port = parse_hostport(rest[2:])
        return UdpLink(host, port) if scheme == "udp" else TcpLink(host, port)
    if sep and scheme == "serial" and rest:
        return SerialLink(rest[2:] if rest.startswith("//") else rest, baudrate=baudrate)
    if sep and scheme == "file" and rest:
        return FileLink(rest[2:] if rest.startswith("//") else rest)
    raise ConfigError(
        "link %r not understood; allowed: 'udp://HOST:PORT', 'tcp://HOST:PORT', 'serial:DEVICE', "
        "'file:PATH', '-'" % (spec,)
    )
