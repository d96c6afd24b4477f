"""Pick packets: layout, quantisation, MTU profiles, authentication, fuzzing."""

import json
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fieldpick.edge.errors import ConfigError, DataError, PacketError
from fieldpick.edge.picks import Pick
from fieldpick.edge.telemetry import packet as pk

CODE = "NC.KHMB..HHZ"
T0 = 1_790_000_000_000_000_000  # 2026-09-21T...Z, a whole second


@pytest.fixture
def table():
    return pk.StationTable(
        [pk.StationEntry(7, CODE, bytes(range(32))), pk.StationEntry(8, "NC.KBBM..HHZ", bytes(range(1, 33)))]
    )


@pytest.fixture
def entry(table):
    return table.by_code(CODE)


def make_picks(n, step_ns=1_000_000_000, **kw):
    return [
        Pick(T0 + i * step_ns, "S" if i % 3 == 2 else "P", kw.get("probability", 0.8), 0.05, 1000.0, 20.0,
             "UD?"[i % 3], CODE)
        for i in range(n)
    ]


@pytest.mark.parametrize(
    "profile, mtu, picks_per_packet",
    [("iridium", 340, 35), ("rockblock", 270, 27), ("lora51", 51, 3), ("lora222", 222, 22), ("udp", 1200, 130)],
)
def test_capacity_per_profile(profile, mtu, picks_per_packet, entry):
    # (MTU - 14 header - 8 tag) // 9 per pick
    assert pk.capacity(profile) == picks_per_packet == (mtu - 22) // 9
    data = pk.encode_picks(make_picks(picks_per_packet), entry, 1, profile)
    assert len(data) == 22 + 9 * picks_per_packet <= mtu
    with pytest.raises(DataError, match="do not fit one packet; profile %r carries %d" % (profile, picks_per_packet)):
        pk.encode_picks(make_picks(picks_per_packet + 1), entry, 1, profile)


def test_iridium_bytes_per_pick_at_most_10(entry):
    n = pk.capacity("iridium")
    data = pk.encode_picks(make_picks(n), entry, 1, "iridium")
    assert len(data) / n == pytest.approx(337 / 35)  # 9.63 bytes per pick, header and tag shared
    assert len(data) / n <= 10


def test_header_layout_by_hand(entry):
    data = pk.encode_picks(make_picks(2), entry, 0x01020304, "udp")
    version_kind, sid, seq, base, count = struct.unpack(">BHI6sB", data[:14])
    assert (version_kind, sid, seq, count) == (0x10, 7, 0x01020304, 2)
    assert int.from_bytes(base, "big") == T0 // 1_000_000
    # second record: offset 1000 ms, flags phase P (0) | polarity 'D' (2 << 1) = 4
    rec = data[14 + 9: 14 + 18]
    assert int.from_bytes(rec[:3], "big") == 1000 and rec[3] == 4 and rec[4] == round(0.8 * 255)


def test_round_trip_within_quantisation(entry, table):
    picks = [
        Pick(T0 + 123_456_789, "P", 0.0, 0.0, 0.0, -64.0, "U", CODE),
        Pick(T0 + 4_000_000_000, "S", 1.0, 0.0123, 3.5e-9, 63.5, "D", CODE),
        Pick(T0 + 999_999, "P", 0.5, 2.0, 2.0 ** 31, 0.25, "?", CODE),
    ]
    out = pk.decode(pk.encode_picks(picks, entry, 5, "lora51"), table)
    assert out.station_id == 7 and out.seq == 5 and len(out.picks) == 3
    for a, b in zip(picks, out.picks):
        assert abs(a.time_ns - b.time_ns) <= 500_000  # 1 ms resolution
        assert (a.phase, a.polarity, a.station) == (b.phase, b.polarity, b.station)
        assert abs(a.probability - b.probability) <= 0.5 / 255
        assert b.uncertainty_s == pytest.approx(a.uncertainty_s, rel=0.02, abs=5e-4)  # 4 % log steps
        assert b.amplitude == pytest.approx(a.amplitude, rel=7e-4)  # 512 steps per octave
        assert abs(a.snr_db - b.snr_db) <= 0.25
    assert out.picks[0].time_ns == T0 + 123_000_000 and out.picks[2].time_ns == T0 + 1_000_000


@pytest.mark.parametrize("snr, expect", [(100.0, 63.5), (-100.0, -64.0), (float("inf"), 63.5)])
def test_out_of_range_values_are_clamped(snr, expect, entry, table):
    p = Pick(T0, "P", 0.5, 1e6, float("inf"), snr, "?", CODE)
    (q,) = pk.decode(pk.encode_picks([p], entry, 1), table).picks
    assert q.snr_db == expect
    assert q.uncertainty_s == pytest.approx(1e-3 * 1.04 ** 254)
    assert q.amplitude == 2.0 ** (65534 / 512 - 64)  # the largest code, just under 2 ** 64


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(amplitude=-1.0), "amplitude -1.0 must be >= 0"),
        (dict(snr_db=float("nan")), "snr_db nan must be a number"),
        (dict(time_ns=-5_000_000), "outside 1970"),
        (dict(station="NC.OTHER..HHZ"), "cannot go in a packet of station"),
    ],
)
def test_unencodable_picks_are_refused(bad, match, entry):
    fields = dict(time_ns=T0, phase="P", probability=0.5, station=CODE)
    fields.update(bad)
    with pytest.raises(DataError, match=match):
        pk.encode_picks([Pick(**fields)], entry, 1)


def test_group_picks_splits_on_capacity_and_span():
    picks = make_picks(7)
    assert [len(g) for g in pk.group_picks(picks, "lora51")] == [3, 3, 1]
    far = make_picks(2) + [Pick(T0 + 5 * 3600 * 10**9, "P", 0.5, station=CODE)]  # 5 h later: > u24 ms
    assert [len(g) for g in pk.group_picks(far, "udp")] == [2, 1]
    with pytest.raises(DataError, match="one packet spans at most 16777215 ms"):
        pk.encode_picks(far, pk.StationEntry(1, CODE, b"k" * 16), 1)


# ---------------------------------------------------------------- rejection


def rejected(data, table):
    with pytest.raises(pk.PacketRejected) as info:
        pk.decode(data, table)
    return info.value.reason


def test_every_single_byte_change_is_rejected(entry, table):
    data = pk.encode_picks(make_picks(3), entry, 9, "lora51")
    reasons = set()
    for i in range(len(data)):
        for flip in (0x01, 0x80, 0xFF):
            b = bytearray(data)
            b[i] ^= flip
            reasons.add(rejected(bytes(b), table))
    assert reasons <= {"forged", "malformed", "truncated", "unknown_station"}
    assert "forged" in reasons


def test_every_truncation_is_rejected(entry, table):
    data = pk.encode_picks(make_picks(3), entry, 9, "lora51")
    assert {rejected(data[:n], table) for n in range(len(data))} == {"truncated"}
    assert rejected(data + b"\x00", table) == "malformed"


def test_forged_with_another_key_and_unknown_station(entry, table):
    thief = pk.StationEntry(7, CODE, b"\x00" * 32)
    assert rejected(pk.encode_picks(make_picks(1), thief, 1), table) == "forged"
    stranger = pk.StationEntry(99, CODE, bytes(range(32)))
    assert rejected(pk.encode_picks(make_picks(1), stranger, 1), table) == "unknown_station"
    # a station cannot speak for another: station 8's key on station 7's id
    other = pk.StationEntry(7, CODE, bytes(range(1, 33)))
    assert rejected(pk.encode_picks(make_picks(1), other, 1), table) == "forged"


def test_ack_round_trip_and_kinds_do_not_mix(entry, table):
    ack = pk.encode_ack(entry, 100, 123)
    assert len(ack) == pk.ACK_BYTES == 19
    assert pk.decode_ack(ack, table) == pk.Ack(7, 100, 123)
    with pytest.raises(PacketError, match="expected a picks packet"):
        pk.decode(ack, table)
    with pytest.raises(PacketError, match="expected an ack"):
        pk.decode_ack(pk.encode_picks(make_picks(1), entry, 1), table)
    bad = bytearray(ack)
    bad[5] ^= 1
    with pytest.raises(PacketError, match="forged or altered"):
        pk.decode_ack(bytes(bad), table)


def test_wrong_version_names_it(entry, table):
    data = bytearray(pk.encode_picks(make_picks(1), entry, 1))
    data[0] = 0x20
    with pytest.raises(PacketError, match="format version 2; this receiver reads 1"):
        pk.decode(bytes(data), table)


# ---------------------------------------------------------------- station table


def test_table_save_load_and_errors(tmp_path, table):
    path = str(tmp_path / "stations.json")
    table.save(path)
    assert (tmp_path / "stations.json").stat().st_mode & 0o777 == 0o600
    again = pk.StationTable.load(path)
    assert [(e.id, e.code, e.key) for e in again] == [(e.id, e.code, e.key) for e in table]
    with pytest.raises(ConfigError, match="'XX.NOPE..HHZ' is not in the station table; known: NC.KBBM..HHZ, NC.KHMB..HHZ"):
        again.by_code("XX.NOPE..HHZ")
    d = json.load(open(path))
    d["stations"].append(dict(d["stations"][0]))
    with pytest.raises(ConfigError, match="station id 7 appears twice"):
        pk.StationTable.from_dict(d)
    with pytest.raises(ConfigError, match="version 2; this fieldpick reads version 1"):
        pk.StationTable.from_dict({"format": "fieldpick-stations", "version": 2})
    with pytest.raises(ConfigError, match="key must be at least 16 bytes, got 4"):
        pk.StationEntry(1, CODE, b"abcd")
    with pytest.raises(ConfigError, match="unknown link profile 'iridum'; allowed: iridium"):
        pk.capacity("iridum")


# ---------------------------------------------------------------- fuzzing

# 3,000 random inputs + 3,000 mutated valid packets; `pytest --hypothesis-show-statistics` shows them
FUZZ_EXAMPLES = 3000


def _decode_any(data, table):
    """The decoder's contract: a PickPacket or a PacketRejected, nothing else."""
    try:
        out = pk.decode(data, table)
    except pk.PacketRejected as exc:
        assert exc.reason in pk.PacketRejected.REASONS
        return None
    assert all(isinstance(p, Pick) for p in out.picks)
    return out


@pytest.mark.slow
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=400),
                 st.binary(max_size=400).map(lambda b: b"\x10\x00\x07" + b),  # picks header, known station
                 st.binary(max_size=16).map(lambda b: b"\x11\x00\x07" + b)))  # ack header, known station
def test_fuzz_random_bytes(table, data):
    assert _decode_any(data, table) is None  # random bytes never carry a valid tag
    with pytest.raises(pk.PacketRejected):
        pk.decode_ack(data, table)


@pytest.mark.slow
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(1, 35), st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=6),
       st.integers(0, 400))
def test_fuzz_mutated_valid_packets(table, entry, n, edits, cut):
    data = bytearray(pk.encode_picks(make_picks(n), entry, 3, "iridium"))
    original = bytes(data)
    for pos, val in edits:
        if pos < len(data):
            data[pos] = val
    data = bytes(data[: max(cut, 1)]) if cut < len(data) else bytes(data)
    out = _decode_any(data, table)
    assert (out is not None) == (data == original)

