"""Compact signed pick packets: the wire format from station to receiver.

Format version 1 (all integers big-endian; see docs/telemetry.md)::

    header, 14 bytes
      0   u8   (version << 4) | kind      version 1; kind 0 = picks, 1 = ack
      1   u16  station id                 from the shared station table
      3   u32  sequence number            per station, never reused
      7   u48  base time                  ms since 1970-01-01 UTC
     13   u8   number of pick records
    pick record, 9 bytes each
      0   u24  time offset                ms after the base time (< 4.66 h)
      3   u8   flags                      bit 0 phase (0 P, 1 S); bits 1-2 polarity
                                          (0 '?', 1 'U', 2 'D'); bits 3-7 zero
      4   u8   probability                round(p * 255)
      5   u8   uncertainty                0: 0 s; k: 1 ms * 1.04 ** (k - 1)
      6   u16  amplitude                  0: 0; k: 2 ** ((k - 1) / 512 - 64)
      8   i8   SNR                        0.5 dB steps, -64 .. +63.5 dB
    tag, 8 bytes
          HMAC-SHA256(station key, everything before)[:8]

An acknowledgement (kind 1) is 19 bytes: the version/kind byte, the station
id, ``cumulative`` (u32, informational: the receiver holds every sequence
number from its first contact with the station up to this one), the
acknowledged sequence number (u32) and the same 8-byte tag under the same
station key, so nobody without the key can make a station drop data.  The
station drops a packet from its backlog only on an ack naming it.

The onset quality (HYPO71 weight 0-4) is not sent separately: it is a
function of the uncertainty, which travels at finer resolution, and the
receiver derives it (:func:`onset_weight`).
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
import math
import os
import struct
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ..errors import ConfigError, DataError, PacketError
from ..limits import DEFAULT as DEFAULT_LIMITS
from ..limits import Limits, read_json
from ..picks import Pick

__all__ = [
    "FORMAT_VERSION",
    "KIND_PICKS",
    "KIND_ACK",
    "HEADER_BYTES",
    "RECORD_BYTES",
    "TAG_BYTES",
    "ACK_BYTES",
    "PROFILES",
    "StationEntry",
    "StationTable",
    "PacketRejected",
    "PickPacket",
    "Ack",
    "mtu_of",
    "capacity",
    "check_pick",
    "ImplausiblePick",
    "group_picks",
    "encode_picks",
    "decode",
    "encode_ack",
    "decode_ack",
    "onset_weight",
]

FORMAT_VERSION = 1
KIND_PICKS = 0
KIND_ACK = 1

_HEADER = struct.Struct(">BHI6sB")
_RECORD = struct.Struct(">3sBBBHb")
_ACK = struct.Struct(">BHII")
HEADER_BYTES = _HEADER.size  # 14
RECORD_BYTES = _RECORD.size  # 9
TAG_BYTES = 8
ACK_BYTES = _ACK.size + TAG_BYTES  # 19

#: link profile name -> largest packet the link carries, bytes
PROFILES = {
    "iridium": 340,  # Iridium SBD mobile-originated message
    "rockblock": 270,  # RockBLOCK (Iridium SBD through its gateway)
    "lora51": 51,  # LoRaWAN EU868 DR0-DR2
    "lora222": 222,  # LoRaWAN at the fastest data rates
    "udp": 1200,  # UDP over a cell modem, well under any path MTU
}

MAX_OFFSET_MS = (1 << 24) - 1  # a packet spans at most 4 h 39 min
MAX_BASE_MS = (1 << 48) - 1
MAX_RECORDS = 255
_POLARITY_CODE = {"?": 0, "U": 1, "D": 2}
_POLARITY = {v: k for k, v in _POLARITY_CODE.items()}
_UNC_STEP = 1.04
_UNC_UNIT_S = 1e-3
_AMP_STEPS_PER_OCTAVE = 512
_AMP_MIN_LOG2 = -64


# ---------------------------------------------------------------- station table


@dataclass(frozen=True)
class StationEntry:
    """One station: its id on the wire, its SEED code and its HMAC key (>= 16 bytes)."""

    id: int
    code: str
    key: bytes

    def __post_init__(self):
        if isinstance(self.id, bool) or not isinstance(self.id, int) or not (0 <= self.id <= 0xFFFF):
            raise ConfigError("station id %r must be an int in 0..65535" % (self.id,))
        if not isinstance(self.code, str) or self.code.count(".") != 3 or not self.code.split(".")[1]:
            raise ConfigError("station code %r must read 'NET.STA.LOC.CHA'" % (self.code,))
        if not isinstance(self.key, bytes) or len(self.key) < 16:
            raise ConfigError(
                "station %s: key must be at least 16 bytes, got %d"
                % (self.code, len(self.key) if isinstance(self.key, bytes) else -1)
            )


class StationTable:
    """The shared table: station id <-> 'NET.STA.LOC.CHA' and each station's key.

    Stored as JSON: ``{"format": "fieldpick-stations", "version": 1,
    "stations": [{"id": 1, "code": "NC.KHMB..HHZ", "key": "<hex>"}]}``.
    A station needs only its own entry; the receiver needs them all.
    """

    FORMAT = "fieldpick-stations"
    VERSION = 1

    def __init__(self, entries: Iterable[StationEntry]):
        self._by_id: Dict[int, StationEntry] = {}
        self._by_code: Dict[str, StationEntry] = {}
        for e in entries:
            if e.id in self._by_id:
                raise ConfigError("station id %d appears twice (%s, %s)" % (e.id, self._by_id[e.id].code, e.code))
            if e.code in self._by_code:
                raise ConfigError("station code %s appears twice (ids %d, %d)" % (e.code, self._by_code[e.code].id, e.id))
            self._by_id[e.id] = e
            self._by_code[e.code] = e

    def __len__(self):
        return len(self._by_id)

    def __iter__(self):
        return iter(sorted(self._by_id.values(), key=lambda e: e.id))

    def by_id(self, station_id: int) -> Optional[StationEntry]:
        return self._by_id.get(station_id)

    def by_code(self, code: str) -> StationEntry:
        try:
            return self._by_code[code]
        except KeyError:
            raise ConfigError(
                "station %r is not in the station table; known: %s" % (code, ", ".join(sorted(self._by_code)) or "none")
            ) from None

    @classmethod
    def generate(cls, codes: Sequence[str], first_id: int = 1) -> "StationTable":
        """A new table with fresh random 32-byte keys (``os.urandom``)."""
        return cls(StationEntry(first_id + i, c, os.urandom(32)) for i, c in enumerate(codes))

    def to_dict(self) -> dict:
        return {
            "format": self.FORMAT,
            "version": self.VERSION,
            "stations": [{"id": e.id, "code": e.code, "key": binascii.hexlify(e.key).decode("ascii")} for e in self],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "StationTable":
        if not isinstance(d, dict) or d.get("format") != cls.FORMAT:
            raise ConfigError("not a station table: format %r, expected %r" % (
                d.get("format") if isinstance(d, dict) else type(d).__name__, cls.FORMAT))
        if d.get("version") != cls.VERSION:
            raise ConfigError("station table version %r; this fieldpick reads version %d" % (d.get("version"), cls.VERSION))
        entries = []
        rows = d.get("stations", [])
        if not isinstance(rows, list):
            raise ConfigError("station table: stations is a %s; expected a list" % type(rows).__name__)
        for row in rows:
            if not isinstance(row, dict):
                raise ConfigError("station table row %r is not an object with id, code, key" % (row,))
            unknown = set(row) - {"id", "code", "key"}
            if unknown:
                raise ConfigError("station table row has unknown keys %s; allowed: id, code, key" % sorted(unknown))
            try:
                key = binascii.unhexlify(row["key"])
            except (KeyError, TypeError, binascii.Error):
                raise ConfigError("station %r: key must be a hex string" % (row.get("code"),)) from None
            entries.append(StationEntry(row.get("id"), row.get("code"), key))
        return cls(entries)

    @classmethod
    def load(cls, path: str) -> "StationTable":
        return cls.from_dict(read_json(path, "station table", ConfigError))

    def save(self, path: str) -> None:
        """Write the table (mode 0600: it holds keys), atomically."""
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


# ---------------------------------------------------------------- quantisation


def mtu_of(profile) -> int:
    """Bytes per packet for a profile name ('iridium', ...) or an int MTU."""
    if isinstance(profile, str):
        if profile not in PROFILES:
            raise ConfigError("unknown link profile %r; allowed: %s" % (profile, ", ".join(PROFILES)))
        return PROFILES[profile]
    if isinstance(profile, bool) or not isinstance(profile, int) or profile < HEADER_BYTES + RECORD_BYTES + TAG_BYTES:
        raise ConfigError(
            "MTU %r too small; a packet with one pick needs %d bytes"
            % (profile, HEADER_BYTES + RECORD_BYTES + TAG_BYTES)
        )
    return profile


def capacity(profile) -> int:
    """Picks per packet for a profile name or MTU (bytes)."""
    return min(MAX_RECORDS, (mtu_of(profile) - HEADER_BYTES - TAG_BYTES) // RECORD_BYTES)


def _ms(time_ns: int) -> int:
    return (time_ns + 500000) // 1000000


def _q_prob(p: float) -> int:
    return int(round(p * 255.0))


def _q_unc(u: float) -> int:
    if u < 0.5 * _UNC_UNIT_S:
        return 0
    if math.isinf(u):
        return 255
    k = int(round(math.log(u / _UNC_UNIT_S) / math.log(_UNC_STEP))) + 1
    return max(1, min(255, k))


def _dq_unc(k: int) -> float:
    return 0.0 if k == 0 else _UNC_UNIT_S * _UNC_STEP ** (k - 1)


def _q_amp(a: float) -> int:
    if a <= 0.0:
        return 0
    if math.isinf(a):
        return 0xFFFF
    k = int(round((math.log2(a) - _AMP_MIN_LOG2) * _AMP_STEPS_PER_OCTAVE)) + 1
    return max(1, min(0xFFFF, k))


def _dq_amp(k: int) -> float:
    return 0.0 if k == 0 else 2.0 ** ((k - 1) / _AMP_STEPS_PER_OCTAVE + _AMP_MIN_LOG2)


def _q_snr(s: float) -> int:
    return int(round(max(-64.0, min(63.5, s)) * 2.0))


class ImplausiblePick(DataError):
    """A pick whose time lies outside the plausible date window (refused before it is journaled)."""


def check_pick(pick: Pick) -> None:
    """Raise DataError unless ``pick`` can be encoded (checked before it is journaled)."""
    if not isinstance(pick, Pick):
        raise DataError("expected a fieldpick.edge.picks.Pick, got %s" % type(pick).__name__)
    if isinstance(pick.time_ns, bool) or not isinstance(pick.time_ns, int) or not DEFAULT_LIMITS.time_ok(pick.time_ns):
        raise ImplausiblePick("pick time_ns %r outside %d .. %d, the plausible years; not sent"
                              % (pick.time_ns, DEFAULT_LIMITS.min_year, DEFAULT_LIMITS.max_year))
    for name in ("probability", "uncertainty_s", "amplitude", "snr_db"):
        v = getattr(pick, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
            raise DataError("pick %s %r must be a number (not NaN)" % (name, v))
    if pick.amplitude < 0:
        raise DataError("pick amplitude %r must be >= 0 (a peak absolute value)" % (pick.amplitude,))


# ---------------------------------------------------------------- pick packets


@dataclass(frozen=True)
class PickPacket:
    """A decoded, authenticated picks packet."""

    station_id: int
    seq: int
    picks: Tuple[Pick, ...]


@dataclass(frozen=True)
class Ack:
    """A decoded, authenticated acknowledgement of ``seq`` (``cumulative``: see the module docstring)."""

    station_id: int
    cumulative: int
    seq: int


class PacketRejected(PacketError):
    """A packet failed a check; ``reason`` is one of REASONS (the receiver counts them)."""

    REASONS = ("truncated", "malformed", "unknown_station", "forged", "implausible")

    def __init__(self, reason: str, message: str, station_id: Optional[int] = None, seq: Optional[int] = None):
        assert reason in self.REASONS, reason
        super().__init__(message)
        self.reason = reason
        #: set when the tag checked: the packet is the station's own, its contents are bad
        self.station_id, self.seq = station_id, seq

    @property
    def authentic(self) -> bool:
        return self.seq is not None


def _tag(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).digest()[:TAG_BYTES]


def group_picks(picks: Sequence[Pick], profile) -> List[List[Pick]]:
    """Split picks, in order, into runs that each fit one packet.

    A run ends when the packet is full or when the next pick lies more than
    4 h 39 min (the u24 ms offset) from the earliest or latest in the run.
    """
    cap = capacity(profile)
    groups: List[List[Pick]] = []
    cur: List[Pick] = []
    lo = hi = 0
    for p in picks:
        t = _ms(p.time_ns)
        if cur and (len(cur) >= cap or max(hi, t) - min(lo, t) > MAX_OFFSET_MS):
            groups.append(cur)
            cur = []
        if not cur:
            lo = hi = t
        cur.append(p)
        lo, hi = min(lo, t), max(hi, t)
    if cur:
        groups.append(cur)
    return groups


def encode_picks(picks: Sequence[Pick], station: StationEntry, seq: int, profile="udp") -> bytes:
    """One signed packet holding ``picks`` (all of ``station``), at most the profile's MTU.

    Times are rounded to the nearest ms; the other fields are quantised as the
    module docstring says (values outside a field's range are clamped).
    """
    if not picks:
        raise DataError("a packet needs at least one pick")
    cap = capacity(profile)
    if len(picks) > cap:
        raise DataError("%d picks do not fit one packet; profile %r carries %d" % (len(picks), profile, cap))
    if not (0 <= seq <= 0xFFFFFFFF):
        raise DataError("sequence number %r outside 0..4294967295" % (seq,))
    for p in picks:
        check_pick(p)
        if p.station and p.station != station.code:
            raise DataError("pick of station %r cannot go in a packet of station %r" % (p.station, station.code))
    times = [_ms(p.time_ns) for p in picks]
    base = min(times)
    if max(times) - base > MAX_OFFSET_MS:
        raise DataError("picks span %d ms; one packet spans at most %d ms" % (max(times) - base, MAX_OFFSET_MS))
    parts = [_HEADER.pack((FORMAT_VERSION << 4) | KIND_PICKS, station.id, seq, base.to_bytes(6, "big"), len(picks))]
    for p, t in zip(picks, times):
        flags = (1 if p.phase == "S" else 0) | (_POLARITY_CODE[p.polarity] << 1)
        parts.append(
            _RECORD.pack(
                (t - base).to_bytes(3, "big"),
                flags,
                _q_prob(p.probability),
                _q_unc(p.uncertainty_s),
                _q_amp(p.amplitude),
                _q_snr(p.snr_db),
            )
        )
    body = b"".join(parts)
    return body + _tag(station.key, body)


def _kind_and_station(data: bytes) -> Tuple[int, int]:
    if len(data) < 3 + TAG_BYTES:
        raise PacketRejected("truncated", "packet of %d bytes is shorter than any valid packet" % len(data))
    version, kind = data[0] >> 4, data[0] & 0x0F
    if version != FORMAT_VERSION:
        raise PacketRejected("malformed", "packet format version %d; this receiver reads %d" % (version, FORMAT_VERSION))
    if kind not in (KIND_PICKS, KIND_ACK):
        raise PacketRejected("malformed", "packet kind %d; allowed: 0 (picks), 1 (ack)" % kind)
    return kind, struct.unpack_from(">H", data, 1)[0]


def _authenticate(data: bytes, table: StationTable, station_id: int) -> StationEntry:
    entry = table.by_id(station_id)
    if entry is None:
        raise PacketRejected("unknown_station", "packet from station id %d, which is not in the table" % station_id)
    body, tag = data[:-TAG_BYTES], data[-TAG_BYTES:]
    if not hmac.compare_digest(_tag(entry.key, body), tag):
        raise PacketRejected("forged", "packet tag does not match station %s's key (forged or altered)" % entry.code)
    return entry


def decode(data: bytes, table: StationTable, limits: Optional[Limits] = None) -> PickPacket:
    """Check and decode a picks packet; raise :class:`PacketRejected` otherwise.

    Nothing is decoded into picks before the tag has been verified.  A pick
    dated outside the plausible window (``limits``, default
    :data:`fieldpick.edge.limits.DEFAULT`) rejects the packet as 'implausible';
    rejections after the tag checked carry the station id and seq
    (``exc.authentic``).
    """
    data = bytes(data)
    kind, station_id = _kind_and_station(data)
    if kind != KIND_PICKS:
        raise PacketRejected("malformed", "expected a picks packet (kind 0), got kind %d" % kind)
    if len(data) < HEADER_BYTES + RECORD_BYTES + TAG_BYTES:
        raise PacketRejected("truncated", "picks packet of %d bytes; at least %d needed"
                             % (len(data), HEADER_BYTES + RECORD_BYTES + TAG_BYTES))
    count = data[HEADER_BYTES - 1]
    want = HEADER_BYTES + count * RECORD_BYTES + TAG_BYTES
    if len(data) != want:
        raise PacketRejected("truncated" if len(data) < want else "malformed",
                             "picks packet claims %d picks (%d bytes) but has %d bytes" % (count, want, len(data)))
    entry = _authenticate(data, table, station_id)
    _, _, seq, base6, _ = _HEADER.unpack_from(data, 0)
    base = int.from_bytes(base6, "big")
    lim = limits or DEFAULT_LIMITS
    picks = []
    for i in range(count):
        off3, flags, prob, unc, amp, snr = _RECORD.unpack_from(data, HEADER_BYTES + i * RECORD_BYTES)
        pol = (flags >> 1) & 3
        if flags >> 3 or pol not in _POLARITY:
            raise PacketRejected("malformed", "pick %d: flags 0x%02x; reserved bits set or polarity code 3"
                                 % (i, flags), station_id, seq)
        t_ns = (base + int.from_bytes(off3, "big")) * 1000000
        if not lim.time_ok(t_ns):
            raise PacketRejected("implausible", "pick %d: time %d ns lies outside the plausible years %d .. %d"
                                 % (i, t_ns, lim.min_year, lim.max_year), station_id, seq)
        picks.append(
            Pick(
                time_ns=t_ns,
                phase="S" if flags & 1 else "P",
                probability=prob / 255.0,
                uncertainty_s=_dq_unc(unc),
                amplitude=_dq_amp(amp),
                snr_db=snr / 2.0,
                polarity=_POLARITY[pol],
                station=entry.code,
            )
        )
    return PickPacket(station_id, seq, tuple(picks))


def encode_ack(station: StationEntry, cumulative: int, seq: int) -> bytes:
    """A signed acknowledgement of ``seq``; ``cumulative`` is the receiver's contiguous floor."""
    cumulative = min(max(int(cumulative), 0), 0xFFFFFFFF)  # the floor passes 2**32 - 1 after the last seq
    body = _ACK.pack((FORMAT_VERSION << 4) | KIND_ACK, station.id, cumulative, seq)
    return body + _tag(station.key, body)


def decode_ack(data: bytes, table: StationTable) -> Ack:
    """Check and decode an acknowledgement; raise :class:`PacketRejected` otherwise."""
    data = bytes(data)
    kind, station_id = _kind_and_station(data)
    if kind != KIND_ACK:
        raise PacketRejected("malformed", "expected an ack (kind 1), got kind %d" % kind)
    if len(data) != ACK_BYTES:
        raise PacketRejected("truncated" if len(data) < ACK_BYTES else "malformed",
                             "ack of %d bytes; an ack is %d bytes" % (len(data), ACK_BYTES))
    _authenticate(data, table, station_id)
    _, _, cumulative, seq = _ACK.unpack_from(data, 0)
    return Ack(station_id, cumulative, seq)


def onset_weight(uncertainty_s: float) -> int:
    """HYPO71-style quality weight 0 (best) .. 4 from the timing uncertainty, seconds.

    Bounds 0.05, 0.1, 0.2, 0.4 s: the classes most network pickers report.
    """
    for w, bound in enumerate((0.05, 0.1, 0.2, 0.4)):
        if uncertainty_s <= bound:
            return w
    return 4
