"""Reproducers of hostile or unlucky input: each decoder refuses it with a FieldpickError
(or skips and counts it) before it allocates or loops, and what was good is kept."""

import io
import json
import os
import struct

import numpy as np
import pytest

from fieldpick.edge.card import ModelCard
from fieldpick.edge.config import StationConfig
from fieldpick.edge.errors import CardError, ConfigError, DataError
from fieldpick.edge.limits import MAX_JSON_DEPTH, Limits, loads_json, year_start_ns
from fieldpick.edge.picks import Pick
from fieldpick.edge.sources.mseed import MseedDecoder, crc32c, read_records
from fieldpick.edge.telemetry import packet as pk
from fieldpick.edge.telemetry.quarantine import Quarantine
from fieldpick.edge.telemetry.receive import CsvWriter, Receiver, iso_utc

CODE = "NC.KHMB..HHZ"
T0 = 1_790_000_000_000_000_000


# ---------------------------------------------------------------- miniSEED


def _ms3(year=2026, rate=100.0, n=50, sid=b"FDSN:XX_STA_00_H_H_Z", nanos=0):
    """One miniSEED 3 record of int32 samples (encoding 3), CRC filled in."""
    data = np.arange(n, dtype="<i4").tobytes()
    head = struct.pack("<2sBBIHHBBBBdIIBBHI", b"MS", 3, 0, nanos, year, 100, 1, 2, 3, 3, rate, n, 0, 1,
                       len(sid), 0, len(data))
    rec = bytearray(head + sid + data)
    struct.pack_into("<I", rec, 28, crc32c(rec))
    return bytes(rec)


def test_ms3_reference_record_reads():
    recs = read_records(_ms3())
    assert len(recs) == 1 and recs[0].samples.tolist() == list(range(50))


@pytest.mark.parametrize("year", [10000, 65535, 1900, 2101])
def test_ms3_year_outside_the_window_is_skipped_and_counted(year):
    dec = MseedDecoder()
    out = dec.feed(_ms3(year=year) + _ms3()) + dec.flush()
    assert len(out) == 1 and out[0].start_ns < year_start_ns(2100)
    assert dec.stats.skipped == {"implausible start time": 1}


@pytest.mark.parametrize("rate", [1e-9, 1e9, float("inf"), float("nan")])
def test_ms3_implausible_rate_is_skipped(rate):
    dec = MseedDecoder()
    out = dec.feed(_ms3(rate=rate) + _ms3()) + dec.flush()
    assert len(out) == 1
    assert dec.stats.n_skipped + dec.stats.no_data == 1


def test_the_date_window_is_configurable():
    dec = MseedDecoder(limits=Limits(min_year=2027, max_year=2030))
    assert dec.feed(_ms3(year=2026)) + dec.flush() == []
    assert dec.stats.skipped == {"implausible start time": 1}


def test_ms3_record_claiming_gigabytes_does_not_make_a_stream_wait_for_them():
    rec = bytearray(_ms3())
    struct.pack_into("<I", rec, 36, 0xFFFFFF00)  # data length
    dec = MseedDecoder()
    out = dec.feed(bytes(rec) + _ms3()) + dec.flush()
    assert len(out) == 1 and "bad record length" in dec.stats.skipped


def _ms2_records():
    obspy = pytest.importorskip("obspy")
    tr = obspy.Trace(np.arange(600, dtype=np.int32))
    tr.stats.update(dict(network="XX", station="STA", location="00", channel="HHZ", sampling_rate=100.0,
                         starttime=obspy.UTCDateTime(2026, 11, 22)))
    buf = io.BytesIO()
    tr.write(buf, format="MSEED", encoding="INT32", reclen=512)
    return bytearray(buf.getvalue())


def test_blockette_chain_pointing_past_the_record_is_skipped_not_a_crash():
    data = _ms2_records()
    assert len(data) >= 4 * 512
    pos = struct.unpack_from(">H", data, 46)[0]
    while True:  # the last blockette of record 0
        nxt = struct.unpack_from(">H", data, pos + 2)[0]
        if not nxt:
            break
        pos = nxt
    struct.pack_into(">H", data, pos + 2, 1100)  # on past the 512-byte record, into the next ones
    struct.pack_into(">HH", data, 1100, 999, 0)
    dec = MseedDecoder()
    out = dec.feed(bytes(data)) + dec.flush()
    assert dec.stats.skipped.get("bad blockette chain") == 1
    assert sum(len(r.samples) for r in out) > 300  # the records after it are read


# ---------------------------------------------------------------- packets and the receiver


@pytest.fixture()
def entry():
    return pk.StationEntry(7, CODE, b"k" * 32)


def _packet(entry, seq, base_ms, n=2):
    """A correctly signed packet whose base time is ``base_ms`` (any value the format holds)."""
    good = pk.encode_picks([Pick(T0 + i * 10 ** 9, "P", 0.5, 0.01, 1.0, 3.0, "U", CODE) for i in range(n)],
                           entry, seq)
    body = bytearray(good[:-pk.TAG_BYTES])
    body[7:13] = base_ms.to_bytes(6, "big")
    return bytes(body) + pk._tag(entry.key, bytes(body))


def test_a_signed_packet_dated_year_10000_is_rejected_as_implausible(entry):
    table = pk.StationTable([entry])
    with pytest.raises(pk.PacketRejected, match="outside the plausible years") as info:
        pk.decode(_packet(entry, 5, (1 << 48) - 1), table)
    assert info.value.reason == "implausible" and info.value.authentic and info.value.seq == 5


@pytest.mark.parametrize("t", [year_start_ns(10000), -1, 2 ** 80])
def test_iso_utc_out_of_range_is_a_data_error(t):
    with pytest.raises(DataError, match="1970 .. 9999"):
        iso_utc(t)


def test_receiver_quarantines_a_poison_packet_acks_it_and_goes_on(entry, tmp_path):
    table = pk.StationTable([entry])
    q = Quarantine(str(tmp_path / "q"))
    out = tmp_path / "picks.csv"
    rx = Receiver(table, [CsvWriter(str(out))], state_path=str(tmp_path / "state.json"), quarantine=q)
    poison = _packet(entry, 5, (1 << 48) - 1)
    for _ in range(3):  # the station resends until acknowledged: kept once, acked each time
        ack = rx.handle(poison)
        assert pk.decode_ack(ack, table).seq == 5
    files = os.listdir(str(tmp_path / "q"))
    assert len(files) == 1 and not any(f.endswith(".tmp") for f in files)
    doc = json.loads((tmp_path / "q" / files[0]).read_text())
    assert doc["reason"] == "implausible" and doc["seq"] == 5 and bytes.fromhex(doc["packet_hex"]) == poison
    assert rx.counts["quarantined"] == 1 and rx.counts["implausible"] == 3
    good = pk.encode_picks([Pick(T0, "P", 0.5, 0.01, 1.0, 3.0, "U", CODE)], entry, 6)
    assert pk.decode_ack(rx.handle(good), table).seq == 6
    rx.close()
    assert rx.counts["packets"] == 1 and len(out.read_text().splitlines()) == 2
    rx2 = Receiver(table, [], state_path=str(tmp_path / "state.json"), quarantine=q)  # restarted
    assert pk.decode_ack(rx2.handle(poison), table).seq == 5
    assert len(os.listdir(str(tmp_path / "q"))) == 1


def test_a_packet_that_cannot_be_stored_is_quarantined(entry, tmp_path):
    class Failing(object):
        def write(self, entry, seq, picks):
            raise OSError(28, "No space left on device")

        def flush(self):
            pass

        def close(self):
            pass

    table = pk.StationTable([entry])
    rx = Receiver(table, [Failing()], quarantine=Quarantine(str(tmp_path / "q")))
    good = pk.encode_picks([Pick(T0, "P", 0.5, 0.01, 1.0, 3.0, "U", CODE)], entry, 9)
    assert pk.decode_ack(rx.handle(good), table).seq == 9
    assert rx.counts["store_failed"] == 1 and rx.counts["quarantined"] == 1
    assert json.loads(open(os.path.join(str(tmp_path / "q"), os.listdir(str(tmp_path / "q"))[0])).read())[
        "reason"] == "store_failed"


def test_unauthenticated_packets_are_counted_not_kept(entry, tmp_path):
    table = pk.StationTable([entry])
    rx = Receiver(table, [], quarantine=Quarantine(str(tmp_path / "q")))
    forged = pk.encode_picks([Pick(T0, "P", 0.5, 0.01, 1.0, 3.0, "U", CODE)], pk.StationEntry(7, CODE, b"z" * 32), 1)
    assert rx.handle(forged) is None and rx.handle(b"\x10" * 40) is None
    assert os.listdir(str(tmp_path / "q")) == [] and rx.counts["forged"] == 1


# ---------------------------------------------------------------- JSON files: cards, configs, tables


def test_deeply_nested_json_is_refused_without_recursion():
    text = "[" * 100000 + "]" * 100000
    with pytest.raises(ConfigError, match="nests deeper than %d" % MAX_JSON_DEPTH):
        loads_json(text, "config x")
    with pytest.raises(ConfigError, match="nests deeper"):
        StationConfig.from_json(text)


def test_binary_files_are_refused_by_every_json_loader(tmp_path):
    p = tmp_path / "bin.json"
    p.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ConfigError, match="station config .*is not UTF-8 JSON text"):
        StationConfig.load(str(p))
    with pytest.raises(CardError, match="not UTF-8 JSON text"):
        ModelCard.load(str(p))
    with pytest.raises(ConfigError, match="station table .*not UTF-8"):
        pk.StationTable.load(str(p))
    p.write_bytes(b'{"a": "\x00"}')
    with pytest.raises(ConfigError, match="NUL"):
        StationConfig.load(str(p))


def test_a_model_file_given_as_the_card_is_named(tmp_path):
    here = os.path.dirname(os.path.abspath(__file__))
    model = os.path.join(here, "data", "tiny_int8.tflite")
    with pytest.raises(CardError, match="is a model file, not its card"):
        ModelCard.load(model)


@pytest.mark.parametrize("block, match", [
    ({"trigger": {"pre_s": 1e9}}, "trigger.pre_s"),
    ({"trigger": {"post_s": 1e9}}, "trigger.post_s"),
    ({"trigger": {"block_s": 1e12}}, "trigger.block_s"),
    ({"trigger": {"lta_s": 1e9}}, "trigger.lta_s"),
    ({"trigger": {"on": 1e300, "off": 1.0}}, "trigger.on"),
    ({"picker": {"min_separation_s": 1e12}}, "picker.min_separation_s"),
    ({"limits": {"max_year": 10000}}, "limits.max_year"),
    ({"limits": {"min_rate_hz": 0.0}}, "limits.min_rate_hz"),
    ({"limits": {"min_year": 2050, "max_year": 2040}}, "limits.min_year"),
])
def test_config_numbers_out_of_range_are_refused(block, match):
    with pytest.raises(ConfigError, match=match):
        StationConfig.from_dict(block)


def test_config_limits_block_is_read():
    cfg = StationConfig.from_dict({"limits": {"min_year": 2000, "max_rate_hz": 1000}})
    assert cfg.limits == Limits(min_year=2000, max_rate_hz=1000.0)


@pytest.mark.parametrize("field, value, match", [
    ("sampling_rate_hz", 1e308, "sampling_rate_hz is 1e\\+308; allowed"),
    ("window_samples", 2 ** 64, "window_samples is 18446744073709551616; allowed: 1 .. 1048576"),
])
def test_card_numbers_out_of_range_are_refused(field, value, match):
    here = os.path.dirname(os.path.abspath(__file__))
    card = json.load(open(os.path.join(here, "..", "..", "edge", "models", "fieldpick-default.json")))
    card["input"][field] = value
    with pytest.raises(CardError, match=match):
        ModelCard.from_dict(card)


def test_station_table_with_rows_of_the_wrong_kind_is_a_config_error():
    with pytest.raises(ConfigError, match="not an object"):
        pk.StationTable.from_dict({"format": pk.StationTable.FORMAT, "version": 1, "stations": [1, 2]})
    with pytest.raises(ConfigError, match="expected a list"):
        pk.StationTable.from_dict({"format": pk.StationTable.FORMAT, "version": 1, "stations": {"a": 1}})


def test_chain_past_the_record_without_blockette_1000_is_skipped_not_a_crash():
    data = _ms2_records()
    for off in range(0, len(data), 512):  # no blockette 1000: the length is found from the next header
        struct.pack_into(">HB", data, off + 46, 1072, 0)
        data[off + 39] = 1
    dec = MseedDecoder()
    dec.feed(bytes(data))
    dec.flush()
    assert dec.stats.skipped.get("bad blockette chain", 0) >= 1


def test_the_ack_of_the_last_sequence_number_is_encodable(entry):
    table = pk.StationTable([entry])
    rx = Receiver(table)
    good = pk.encode_picks([Pick(T0, "P", 0.5, 0.01, 1.0, 3.0, "U", CODE)], entry, 0xFFFFFFFF)
    ack = pk.decode_ack(rx.handle(good), table)
    assert ack.seq == 0xFFFFFFFF and ack.cumulative == 0xFFFFFFFF
