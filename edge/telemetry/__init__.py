"""Telemetry: compact signed pick packets, a crash-safe journal, store-and-forward links.

Station side: :class:`Uplink` (``submit(picks)``, ``poll()``, ``close()``)
over a :class:`~.link.UdpLink`, :class:`~.link.TcpLink`,
:class:`~.link.SerialLink` or :class:`~.link.FileLink`.  Network side:
``fieldpick receive`` (:mod:`.receive`).  The wire format is in
:mod:`.packet` and docs/telemetry.md.  Standard library only.
"""

from .journal import Journal
from .link import FileLink, SerialLink, TcpLink, UdpLink
from .packet import PROFILES, StationEntry, StationTable, capacity
from .uplink import Uplink

__all__ = [
    "Journal",
    "Uplink",
    "UdpLink",
    "TcpLink",
    "SerialLink",
    "FileLink",
    "StationEntry",
    "StationTable",
    "PROFILES",
    "capacity",
]
