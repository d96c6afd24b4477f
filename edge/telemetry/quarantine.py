"""Where the receiver keeps authentic packets it could not decode or store.

A packet whose tag checks (it came from a station that holds the key) but
whose contents cannot be used, say a pick dated outside the plausible date
window, or whose picks could not be written, is not dropped silently and
does not stop the receiver: it is written to the quarantine folder as one
small JSON file (the packet bytes in hex, the station, the sequence number
and the reason), counted, and acknowledged so that the station does not
resend it forever.  Packets that fail authentication are only counted: their
sender is unknown, and keeping them would let anyone fill the disk.

Each file is written whole (write, fsync, rename, fsync of the folder), so a
crash never leaves a half-written one.  At most ``max_files`` are kept; past
that, further packets are counted (``full``) and logged but not written.
"""

from __future__ import annotations

import binascii
import json
import logging
import os
import time
from typing import Optional

from ..limits import writable_folder

__all__ = ["Quarantine", "write_atomic"]

log = logging.getLogger(__name__)


def write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new one, never a mix."""
    tmp = "%s.tmp%d" % (path, os.getpid())
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Quarantine(object):
    """A folder of packets set aside; ``counts``: 'kept', 'full', 'failed'."""

    def __init__(self, directory: str, max_files: int = 10000):
        writable_folder(directory, "quarantine")
        self.directory = directory
        self.max_files = int(max_files)
        self.counts = {"kept": 0, "full": 0, "failed": 0}
        self._n = sum(1 for n in os.listdir(directory) if n.endswith(".json"))

    def keep(self, data: bytes, reason: str, message: str, station_id: Optional[int] = None,
             seq: Optional[int] = None) -> Optional[str]:
        """Write one packet with its reason; return the file's path (None when not written)."""
        if self._n >= self.max_files:
            self.counts["full"] += 1
            log.error("quarantine %s holds %d files (its limit); not keeping a packet (%s: %s)",
                      self.directory, self._n, reason, message)
            return None
        now = time.time_ns()
        name = "q-%d-%s-%s.json" % (now, "x" if station_id is None else station_id, "x" if seq is None else seq)
        path = os.path.join(self.directory, name)
        doc = {"reason": reason, "message": message, "station_id": station_id, "seq": seq,
               "received_ns": now, "packet_hex": binascii.hexlify(bytes(data)).decode("ascii")}
        try:
            write_atomic(path, (json.dumps(doc, sort_keys=True) + "\n").encode("utf-8"))
        except OSError as exc:
            self.counts["failed"] += 1
            log.error("cannot write quarantine file %s: %s", path, exc)
            return None
        self._n += 1
        self.counts["kept"] += 1
        log.warning("quarantined a packet of station %s seq %s in %s: %s: %s",
                    station_id, seq, path, reason, message)
        return path
