"""Receiver side of the transports: endpoints that a ``selectors`` selector drives.

An :class:`Endpoint` is registered in a selector; when readable, ``read()``
returns ``[(packet, reply), ...]`` where ``reply(ack_bytes)`` sends an
acknowledgement back the way the packet came.  The framing is that of the
station side (:mod:`fieldpick.edge.telemetry.link`).
"""

from __future__ import annotations

import binascii
import errno
import logging
import os
import socket
import sys
from typing import List, Optional, Tuple

from ..errors import ConfigError, TelemetryError
from .link import LengthDecoder, Reply, SerialLink, length_frame, socket_error

__all__ = ["Endpoint", "UdpEndpoint", "TcpEndpoint", "SerialEndpoint", "FileEndpoint"]

log = logging.getLogger(__name__)


class Endpoint(object):
    """Receiver side of a transport, driven by a selector."""

    def register(self, selector) -> None:
        raise NotImplementedError

    def read(self, key) -> List[Tuple[bytes, Reply]]:
        raise NotImplementedError

    @property
    def finished(self) -> bool:
        """True once the source can deliver nothing more (end of a file)."""
        return False

    def close(self) -> None:
        pass


class UdpEndpoint(Endpoint):
    """Listen for datagrams on host:port (port 0 picks a free one: see ``address``)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise socket_error("listen on udp", host, port, exc) from None
        self.sock.setblocking(False)
        self.address = self.sock.getsockname()

    def register(self, selector):
        selector.register(self.sock, 1, self)

    def read(self, key):
        out = []
        for _ in range(256):
            try:
                data, peer = self.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # e.g. ECONNREFUSED from an earlier reply
                log.debug("udp endpoint: %s", exc)
                continue
            out.append((data, self._replier(peer)))
        return out

    def _replier(self, peer):
        def reply(ack):
            try:
                self.sock.sendto(ack, peer)
            except OSError as exc:
                log.debug("udp ack to %s failed: %s", peer, exc)

        return reply

    def close(self):
        self.sock.close()


class TcpEndpoint(Endpoint):
    """Accept TCP connections on host:port; each carries length-prefixed packets."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
            self.sock.listen(16)
        except OSError as exc:
            self.sock.close()
            raise socket_error("listen on tcp", host, port, exc) from None
        self.sock.setblocking(False)
        self.address = self.sock.getsockname()
        self._selector = None
        self._conns = {}  # socket -> LengthDecoder

    def register(self, selector):
        self._selector = selector
        selector.register(self.sock, 1, self)

    def read(self, key):
        if key.fileobj is self.sock:
            try:
                conn, peer = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return []
            conn.setblocking(False)
            self._conns[conn] = LengthDecoder()
            self._selector.register(conn, 1, self)
            log.info("tcp endpoint: connection from %s:%d", *peer[:2])
            return []
        conn = key.fileobj
        try:
            chunk = conn.recv(65536)
        except (BlockingIOError, InterruptedError):
            return []
        except OSError as exc:
            chunk = b""
            log.info("tcp endpoint: %s", exc)
        if not chunk:
            self._close_conn(conn)
            return []
        try:
            frames = self._conns[conn].feed(chunk)
        except TelemetryError as exc:
            log.warning("tcp endpoint: dropping a connection: %s", exc)
            self._close_conn(conn)
            return []
        return [(f, self._replier(conn)) for f in frames]

    def _replier(self, conn):
        def reply(ack):
            try:
                conn.settimeout(2.0)
                conn.sendall(length_frame(ack))
            except OSError as exc:
                log.debug("tcp ack failed: %s", exc)
            finally:
                try:
                    conn.setblocking(False)
                except OSError:
                    pass

        return reply

    def _close_conn(self, conn):
        if self._selector is not None:
            try:
                self._selector.unregister(conn)
            except (KeyError, ValueError):
                pass
        self._conns.pop(conn, None)
        conn.close()

    def close(self):
        for conn in list(self._conns):
            self._close_conn(conn)
        self.sock.close()


class SerialEndpoint(Endpoint):
    """Read SLIP-framed packets from a serial device (or an open fd); acks go back the same line."""

    def __init__(self, path: Optional[str] = None, baudrate: int = 9600, fd: Optional[int] = None):
        self.link = SerialLink(path=path, baudrate=baudrate, fd=fd)

    def register(self, selector):
        selector.register(self.link.fd, 1, self)

    def read(self, key):
        try:
            chunk = os.read(self.link.fd, 4096)
        except (BlockingIOError, InterruptedError):
            return []
        except OSError as exc:
            if exc.errno != errno.EIO:  # EIO: the other end of a pty closed
                log.warning("serial endpoint: %s", exc)
            return []
        return [(f, self._reply) for f in self.link.decoder.feed(chunk)]

    def _reply(self, ack):
        self.link.send(ack)

    def close(self):
        self.link.close()


class FileEndpoint(Endpoint):
    """Read hex lines written by :class:`FileLink` (a file, or '-' for stdin); no acks."""

    def __init__(self, path: str = "-"):
        self.path = path
        if path != "-" and os.path.isdir(path):
            raise ConfigError("--file %s is a folder; give a file of hex lines" % path)
        # undecodable bytes become U+FFFD: such a line is not hex and is counted as bad
        self._stream = sys.stdin if path == "-" else open(path, "r", encoding="ascii", errors="replace")
        self._done = False
        self.bad_lines = 0

    def register(self, selector):
        if self.path == "-":
            selector.register(self._stream, 1, self)

    def read(self, key=None):
        out = []
        lines = [self._stream.readline()] if self.path == "-" else self._stream.readlines()
        for line in lines:
            if line == "" and self.path == "-":
                self._done = True
            line = line.strip()
            if not line:
                continue
            try:
                out.append((binascii.unhexlify(line), _no_reply))
            except (binascii.Error, ValueError):
                self.bad_lines += 1
                log.warning("file endpoint %s: a line that is not hex (%d characters)", self.path, len(line))
        if self.path != "-":
            self._done = True
        return out

    @property
    def finished(self):
        return self._done

    def close(self):
        if self.path != "-":
            self._stream.close()


def _no_reply(ack):
    return None
