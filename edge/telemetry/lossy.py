"""A bad link on purpose: a UDP relay that drops, duplicates, reorders and corrupts.

For tests, benchmarks and field rehearsals: point the station's
:class:`~fieldpick.edge.telemetry.link.UdpLink` at the relay's ``address``
and the relay at the receiver.  Both directions (packets and acks) suffer.
Seeded, so a run can be repeated.  ``blackout = True`` drops everything (an
outage) until set back to False.
"""

from __future__ import annotations

import logging
import random
import select
import socket
import threading
import time
from typing import Tuple

from ..errors import ConfigError

__all__ = ["LossyRelay"]

log = logging.getLogger(__name__)


class LossyRelay(object):
    """Relay datagrams between one station and ``target`` through a bad link.

    drop, duplicate, corrupt, reorder: probabilities per datagram.  A
    corrupted datagram has one random byte changed or is cut short; a
    reordered one is held back until a later datagram has gone through
    (or ``hold_s`` passes).
    """

    def __init__(self, target: Tuple[str, int], drop: float = 0.3, duplicate: float = 0.1, corrupt: float = 0.1,
                 reorder: float = 0.2, seed: int = 0, hold_s: float = 0.2):
        for name, v in (("drop", drop), ("duplicate", duplicate), ("corrupt", corrupt), ("reorder", reorder)):
            if not (0.0 <= v < 1.0):
                raise ConfigError("%s probability %r must lie in [0, 1)" % (name, v))
        self.target = target
        self.p = {"drop": drop, "duplicate": duplicate, "corrupt": corrupt, "reorder": reorder}
        self.hold_s = hold_s
        self.blackout = False
        self.counts = dict.fromkeys(("in", "out", "dropped", "duplicated", "corrupted", "reordered"), 0)
        self._rng = random.Random(seed)
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # faces the station
        self.front.bind(("127.0.0.1", 0))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # faces the receiver
        self.back.bind(("127.0.0.1", 0))
        self.back.connect(target)
        self.address = self.front.getsockname()
        self._station = None
        self._held = []  # (release time, socket, data, addr)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="LossyRelay", daemon=True)
        self._thread.start()

    def _forward(self, sock, data, addr):
        self.counts["in"] += 1
        if self.blackout or self._rng.random() < self.p["drop"]:
            self.counts["dropped"] += 1
            return
        copies = 2 if self._rng.random() < self.p["duplicate"] else 1
        self.counts["duplicated"] += copies - 1
        for _ in range(copies):
            out = data
            if self._rng.random() < self.p["corrupt"]:
                self.counts["corrupted"] += 1
                b = bytearray(out)
                if self._rng.random() < 0.5 and len(b) > 1:
                    b = b[: self._rng.randrange(1, len(b))]
                else:
                    i = self._rng.randrange(len(b))
                    b[i] ^= self._rng.randrange(1, 256)
                out = bytes(b)
            if self._rng.random() < self.p["reorder"]:
                self.counts["reordered"] += 1
                self._held.append((time.monotonic() + self.hold_s, sock, out, addr))
            else:
                self._send(sock, out, addr)
                self._release(force=True)

    def _send(self, sock, data, addr):
        try:
            if addr is None:
                sock.send(data)
            else:
                sock.sendto(data, addr)
            self.counts["out"] += 1
        except OSError as exc:
            log.debug("relay send: %s", exc)

    def _release(self, force=False):
        now = time.monotonic()
        keep = []
        for item in self._held:
            if force or item[0] <= now:
                self._send(item[1], item[2], item[3])
            else:
                keep.append(item)
        self._held = keep

    def _run(self):
        while not self._stop.is_set():
            ready = select.select([self.front, self.back], [], [], 0.02)[0]
            for sock in ready:
                try:
                    data, addr = sock.recvfrom(65535)
                except OSError:
                    continue
                if sock is self.front:
                    self._station = addr
                    self._forward(self.back, data, None)
                elif self._station is not None:
                    self._forward(self.front, data, self._station)
            self._release()

    def close(self):
        self._stop.set()
        self._thread.join(2.0)
        self.front.close()
        self.back.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
