"""The numpy miniSEED reader against ObsPy (libmseed): every encoding, both byte orders,
ObsPy's own real test files, corrupt input, streaming, pipes and directories."""

import datetime
import glob
import io
import logging
import os
import struct
import threading
import warnings

import numpy as np
import pytest

from fieldpick.edge.errors import ConfigError, DataError
from fieldpick.edge.sources.mseed import (
    MseedDecoder,
    MseedFileSource,
    btime_to_ns,
    crc32c,
    decode_steim_reference,
    read_records,
    sampling_rate_from_factors,
)

obspy = pytest.importorskip("obspy")

START = obspy.UTCDateTime(2026, 11, 22, 1, 2, 3, 456789)
OBSPY_DATA = os.path.join(os.path.dirname(obspy.__file__), "io", "mseed", "tests", "data")


def _write(data, encoding, byteorder=">", reclen=512, start=START, rate=100.0, cha="HHZ"):
    tr = obspy.Trace(data)
    tr.stats.update(dict(network="XX", station="STA", location="00", channel=cha,
                         sampling_rate=rate, starttime=start))
    buf = io.BytesIO()
    tr.write(buf, format="MSEED", encoding=encoding, byteorder=byteorder, reclen=reclen)
    return buf.getvalue()


def _steim_signal(rng, steim, n=3000):
    """Segments whose differences need 4, 5, 6, 8, 10, 15, 16, 30 (Steim-2 max) or 32 bits."""
    top = 31 if steim == 1 else 29
    parts = [rng.integers(-(2 ** (b - 1)), 2 ** (b - 1), n // 10) // 2 for b in (4, 5, 6, 8, 10, 15, 16, 20, 26, top)]
    return np.cumsum(np.concatenate(parts)).astype(np.int64).clip(-(2 ** 30), 2 ** 30).astype(np.int32)


def _signal(rng, encoding):
    if encoding == "INT16":
        return rng.integers(-32768, 32768, 2000).astype(np.int16)
    if encoding == "INT32":
        return rng.integers(-(2 ** 31), 2 ** 31, 2000, dtype=np.int64).astype(np.int32)
    if encoding == "FLOAT32":
        return rng.normal(0, 1e3, 2000).astype(np.float32)
    if encoding == "FLOAT64":
        return rng.normal(0, 1e3, 2000)
    return _steim_signal(rng, 1 if encoding == "STEIM1" else 2)


def _concat(records):
    return np.concatenate([r.samples for r in records])


# ------------------------------------------------------------------ header arithmetic


@pytest.mark.parametrize(
    "when",
    [(1970, 1, 1), (2000, 2, 29, 23, 59, 59, 999900), (2024, 12, 31, 12), (1999, 6, 1, 0, 0, 7), (2100, 3, 1)],
)
def test_btime_to_ns_matches_datetime(when):
    dt = datetime.datetime(*when, tzinfo=datetime.timezone.utc)
    doy = dt.timetuple().tm_yday
    expect = int(dt.timestamp()) * 10**9 + dt.microsecond * 1000
    assert btime_to_ns(dt.year, doy, dt.hour, dt.minute, dt.second, dt.microsecond // 100) == expect


@pytest.mark.parametrize(
    "factor,multiplier,rate",
    [(100, 1, 100.0), (20, 2, 40.0), (1, -10, 0.1), (-10, 1, 0.1), (-10, -2, 0.05), (0, 5, 0.0), (40, 0, 0.0)],
)
def test_sampling_rate_from_factors(factor, multiplier, rate):
    assert sampling_rate_from_factors(factor, multiplier) == pytest.approx(rate)


# ------------------------------------------------------------------ ObsPy-written files


@pytest.mark.parametrize("reclen", [256, 512, 4096, 8192])
@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize("encoding", ["INT16", "INT32", "FLOAT32", "FLOAT64", "STEIM1", "STEIM2"])
def test_decode_equals_obspy_on_every_encoding(encoding, byteorder, reclen, rng):
    data = _signal(rng, encoding)
    raw = _write(data, encoding, byteorder, reclen)
    expect = obspy.read(io.BytesIO(raw))[0]
    records, offsets, stats = read_records(raw, keep_offsets=True)
    assert stats.n_skipped == 0 and stats.bytes_skipped == 0
    assert len(records) == len(raw) // reclen == len(offsets)
    got = _concat(records)
    assert got.dtype == expect.data.dtype.newbyteorder("=") or (encoding == "INT16" and got.dtype == np.int32)
    np.testing.assert_array_equal(got, expect.data)
    np.testing.assert_array_equal(got, data)
    r0 = records[0]
    assert (r0.network, r0.station, r0.location, r0.channel) == ("XX", "STA", "00", "HHZ")
    assert r0.start_ns == expect.stats.starttime.ns == START.ns  # microseconds from blockette 1001
    assert r0.sampling_rate == 100.0
    assert offsets == list(range(0, len(raw), reclen))


@pytest.mark.parametrize("steim,order", [(1, ">"), (1, "<"), (2, ">"), (2, "<")])
def test_fast_steim_equals_slow_reference(steim, order, rng):
    data = _steim_signal(rng, steim, 1000)
    raw = _write(data, "STEIM%d" % steim, order, 512)
    fast = read_records(raw)
    for i, rec in enumerate(fast):
        frames = raw[512 * i + 64:512 * (i + 1)]
        np.testing.assert_array_equal(decode_steim_reference(frames, len(rec.samples), steim, order), rec.samples)


def test_time_correction_is_added_unless_flagged_applied(rng):
    raw = bytearray(_write(rng.integers(-100, 100, 50).astype(np.int32), "STEIM2", ">", 512))
    struct.pack_into(">i", raw, 40, 12345)  # +1.2345 s, not yet applied
    assert read_records(bytes(raw))[0].start_ns == START.ns + 1_234_500_000
    assert obspy.read(io.BytesIO(bytes(raw)))[0].stats.starttime.ns == START.ns + 1_234_500_000
    raw[36] |= 0x02  # activity flag bit 1: already applied
    assert read_records(bytes(raw))[0].start_ns == START.ns


# ------------------------------------------------------------------ ObsPy's real test files

REAL = sorted(
    os.path.relpath(f, OBSPY_DATA) for f in glob.glob(os.path.join(OBSPY_DATA, "**", "*"), recursive=True)
    if os.path.isfile(f)
)
#: encodings this reader leaves out on purpose (they are skipped and counted)
NOT_DECODED = {"CDSN_encoding.mseed", "DWWSSN_encoding.mseed", "GEOSCOPE16_4_encoding.mseed",
               "SRO_encoding.mseed"}


@pytest.mark.skipif(not REAL, reason="ObsPy's miniSEED test files are not installed")
@pytest.mark.parametrize("name", REAL)
def test_real_obspy_files_record_by_record(name, caplog):
    with open(os.path.join(OBSPY_DATA, name), "rb") as fh:
        raw = fh.read()
    with caplog.at_level(logging.ERROR):
        records, offsets, stats = read_records(raw, keep_offsets=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            whole = obspy.read(io.BytesIO(raw), format="MSEED")
        except Exception:  # ObsPy gives up on some broken files; we only must not crash
            whole = None
        for rec, off, end in zip(records, offsets, offsets[1:] + [len(raw)]):
            tr = obspy.read(io.BytesIO(raw[off:end]), format="MSEED")[0]
            np.testing.assert_array_equal(tr.data[:len(rec.samples)], rec.samples)
            assert (tr.id, tr.stats.starttime.ns) == (rec.seed_id, rec.start_ns)
            assert tr.stats.sampling_rate == pytest.approx(rec.sampling_rate)
    if name in NOT_DECODED:
        assert records == [] and stats.skipped == {"unsupported encoding": len(whole)}
    elif whole is not None:  # every sample ObsPy decodes, we decode (ASCII text is not samples)
        numeric = [tr for tr in whole if tr.data.dtype.kind in "iuf"]
        assert sum(len(r.samples) for r in records) == sum(len(tr) for tr in numeric)


# ------------------------------------------------------------------ corrupt input


@pytest.fixture
def five(rng):
    """Five 512-byte Steim-2 records (ObsPy-written) and their decoded records."""
    raw = _write(np.cumsum(rng.integers(-300, 300, 2000)).astype(np.int32), "STEIM2", ">", 512)[:5 * 512]
    return raw, read_records(raw)


def _same(a, b):
    return [(r.start_ns, r.samples.tolist()) for r in a] == [(r.start_ns, r.samples.tolist()) for r in b]


def test_garbage_between_records_is_skipped_and_counted(five):
    raw, good = five
    bad = raw[:1024] + bytes(range(100)) + raw[1024:]
    records, _, stats = read_records(bad, keep_offsets=True)
    assert _same(records, good)
    assert stats.skipped == {"garbage between records": 1} and stats.bytes_skipped == 100


def test_truncated_record_is_skipped_and_the_next_kept(five):
    raw, good = five
    bad = raw[:1024 + 312] + raw[1536:]  # record 2 loses its last 200 bytes
    records, _, stats = read_records(bad, keep_offsets=True)
    assert _same(records, good[:2] + good[3:])
    assert stats.skipped == {"truncated record": 1}


def test_wrong_record_length_does_not_swallow_the_next_record(five):
    raw, good = five
    bad = bytearray(raw)
    assert bad[1536 + 62] == 9  # blockette 1000 (after 1001 at 48) of record 3: 2**9 bytes
    bad[1536 + 62] = 10
    records, _, stats = read_records(bytes(bad), keep_offsets=True)
    assert _same(records, good[:3] + good[4:])
    assert stats.skipped == {"truncated record": 1}


def test_integration_constant_mismatch_skips_only_that_record(five, caplog):
    raw, good = five
    bad = bytearray(raw)
    struct.pack_into(">i", bad, 512 + 64 + 8, 123456789)  # Xn of record 1
    with caplog.at_level(logging.WARNING, logger="fieldpick.edge.sources.mseed"):
        records, _, stats = read_records(bytes(bad), keep_offsets=True)
    assert _same(records, good[:1] + good[2:])
    assert stats.skipped == {"Steim integration constant mismatch": 1}
    assert "reverse constant 123456789" in caplog.text and "offset 512" in caplog.text


def test_bad_steim_code_skips_only_that_record(five):
    raw, good = five
    bad = bytearray(raw)
    ctrl_at = 2048 + 64 + 64  # control word of frame 1 of record 4
    struct.pack_into(">I", bad, ctrl_at, 0x3FFFFFFF)  # every word: nibble 3
    struct.pack_into(">I", bad, ctrl_at + 4, 0xC0000000)  # word 1: dnib 3, invalid with nibble 3
    records, _, stats = read_records(bytes(bad), keep_offsets=True)
    assert _same(records, good[:4])
    assert stats.skipped == {"bad Steim frame": 1}


def test_truncated_stream_end_is_counted(five):
    raw, good = five
    records, _, stats = read_records(raw[:-100], keep_offsets=True)
    assert _same(records, good[:4])
    assert stats.skipped == {"truncated record": 1} and stats.bytes_skipped == 412


def test_reference_decoder_rejects_bad_frames():
    frames = bytearray(64)
    struct.pack_into(">III", frames, 0, 0x00000000, 5, 5)
    with pytest.raises(DataError, match="3 samples declared, 0 differences"):
        decode_steim_reference(bytes(frames), 3, 2)


def test_unknown_default_encoding_is_a_config_error():
    with pytest.raises(ConfigError, match="default_encoding 2 is not one of"):
        MseedDecoder(default_encoding=2)


# ------------------------------------------------------------------ streaming, pipes, files


@pytest.mark.parametrize("chunk", [1, 47, 48, 511, 4096, 100000])
def test_streaming_equals_whole_buffer(chunk, rng):
    raw = (_write(_steim_signal(rng, 2, 3000), "STEIM2", ">", 512)
           + b"\x07garbage\x00" + _write(rng.normal(0, 1, 700).astype(np.float32), "FLOAT32", "<", 256))
    whole, _, stats_whole = read_records(raw, keep_offsets=True)
    dec = MseedDecoder()
    pieces = []
    for i in range(0, len(raw), chunk):
        pieces.extend(dec.feed(raw[i:i + chunk]))
    pieces.extend(dec.flush())
    assert [(r.seed_id, r.start_ns, r.samples.tolist()) for r in pieces] == \
        [(r.seed_id, r.start_ns, r.samples.tolist()) for r in whole]
    assert dec.stats.skipped == stats_whole.skipped == {"garbage between records": 1}


def test_pipe_source_reads_what_a_writer_thread_sends(five):
    raw, good = five
    rfd, wfd = os.pipe()

    def writer():
        with os.fdopen(wfd, "wb", buffering=0) as w:
            for i in range(0, len(raw), 100):
                w.write(raw[i:i + 100])

    t = threading.Thread(target=writer)
    t.start()
    with os.fdopen(rfd, "rb") as r, MseedFileSource(stream=r, chunk_bytes=300) as src:
        got = list(src)
    t.join()
    assert _same(got, good) and src.stats.records == 5


def test_directory_source_reads_files_in_path_order(tmp_path, rng):
    a = _write(np.arange(300, dtype=np.int32), "STEIM1", ">", 512, cha="HHE")
    b = _write(np.arange(300, dtype=np.int32) * -1, "INT32", "<", 4096, cha="HHN")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.mseed").write_bytes(b)
    (tmp_path / "a.mseed").write_bytes(a)
    got = list(MseedFileSource(str(tmp_path)))
    assert [r.channel for r in got][0] == "HHE" and got[-1].channel == "HHN"
    np.testing.assert_array_equal(_concat([r for r in got if r.channel == "HHN"]), -np.arange(300))


def test_missing_path_and_bad_arguments_are_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        MseedFileSource(str(tmp_path / "nope.mseed"))
    with pytest.raises(ConfigError, match="exactly one of paths= or stream=, got neither"):
        MseedFileSource()


# ------------------------------------------------------------------ miniSEED 3


def _crc32c_bitwise(data):
    """CRC-32C one bit at a time (reflected polynomial 0x82F63B78): slow and obvious."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _ms3(payload, encoding, nsamp, rate=100.0, sid=b"FDSN:XX_STA_00_H_H_Z", when=(2026, 326, 1, 2, 3, 456789123),
         extra=b'{"FDSN":{"Time":{"Quality":100}}}'):
    year, doy, hour, minute, sec, nanos = when
    head = struct.pack("<2sBBIHHBBBBdIIBBHI", b"MS", 3, 0, nanos, year, doy, hour, minute, sec, encoding,
                       rate, nsamp, 0, 1, len(sid), len(extra), len(payload))
    rec = bytearray(head + sid + extra + payload)
    struct.pack_into("<I", rec, 28, _crc32c_bitwise(rec))
    return bytes(rec)


def test_crc32c_check_value_and_bitwise_twin(rng):
    assert crc32c(b"123456789") == 0xE3069283  # the published CRC-32C check value
    data = rng.integers(0, 256, 1000).astype(np.uint8).tobytes()
    assert crc32c(data) == _crc32c_bitwise(data)


def test_ms3_steim2_payload_equals_obspy_on_the_same_frames(rng):
    ms2 = _write(_steim_signal(rng, 2, 400), "STEIM2", ">", 512)[:512]
    expect = obspy.read(io.BytesIO(ms2))[0]
    rec = read_records(_ms3(ms2[64:], 11, len(expect.data)))
    assert len(rec) == 1
    np.testing.assert_array_equal(rec[0].samples, expect.data)
    assert (rec[0].seed_id, rec[0].sampling_rate) == ("XX.STA.00.HHZ", 100.0)
    assert rec[0].start_ns == obspy.UTCDateTime(2026, 11, 22, 1, 2, 3).ns + 456789123


@pytest.mark.parametrize("dtype,code", [("<i2", 1), ("<i4", 3), ("<f4", 4), ("<f8", 5)])
def test_ms3_simple_encodings_and_sample_period(dtype, code, rng):
    x = (rng.normal(0, 1000, 50)).astype(dtype)
    rec = read_records(_ms3(x.tobytes(), code, 50, rate=-10.0))[0]  # negative: a period of 10 s
    np.testing.assert_array_equal(rec.samples, x)
    assert rec.sampling_rate == 0.1


def test_ms3_and_ms2_mixed_with_garbage_and_a_bad_crc(rng, caplog):
    a = _ms3(np.arange(10, dtype="<i4").tobytes(), 3, 10)
    bad = bytearray(_ms3(np.arange(20, dtype="<i4").tobytes(), 3, 20))
    bad[-1] ^= 0xFF
    ms2 = _write(np.arange(30, dtype=np.int32), "INT32", ">", 256)
    stream = a + b"junk!" + bytes(bad) + ms2 + a
    with caplog.at_level(logging.WARNING):
        records, _, stats = read_records(stream, keep_offsets=True)
    assert [len(r.samples) for r in records] == [10, 30, 10]
    assert stats.skipped == {"garbage between records": 1, "CRC mismatch": 1}
    assert "CRC-32C" in caplog.text
    dec = MseedDecoder()
    pieces = [r for i in range(0, len(stream), 13) for r in dec.feed(stream[i:i + 13])] + dec.flush()
    assert [len(r.samples) for r in pieces] == [10, 30, 10] and dec.stats.skipped == stats.skipped


def test_ms3_bad_identifier_is_skipped():
    rec = _ms3(np.arange(5, dtype="<i4").tobytes(), 3, 5, sid=b"XFDSN:XX_STA")
    records, _, stats = read_records(rec + _ms3(np.arange(3, dtype="<i4").tobytes(), 3, 3), keep_offsets=True)
    assert [len(r.samples) for r in records] == [3]
    assert stats.skipped == {"unsupported source identifier": 1}


# ------------------------------------------------------------------ fuzzing

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies
FUZZ_EXAMPLES = int(os.environ.get("FIELDPICK_FUZZ_EXAMPLES", "400"))  # more: set the variable


def _fuzz_base():
    rng = np.random.default_rng(7)
    a = _write(_steim_signal(rng, 2, 1200), "STEIM2", ">", 512)[:4 * 512]
    b = _write(rng.integers(-1000, 1000, 300).astype(np.int32), "STEIM1", "<", 256, cha="HHE")[:2 * 256]
    c = _write(rng.normal(0, 1, 100).astype(np.float64), "FLOAT64", ">", 1024, cha="HHN")[:1024]
    d = _ms3(np.arange(-20, 20, dtype="<i4").tobytes(), 3, 40, sid=b"FDSN:XX_STA_00_H_H_E")
    return a + b + c + d, [a[i:i + 512] for i in range(0, len(a), 512)] + [b[:256], b[256:512], c, d]


FUZZ_RAW, FUZZ_RECORDS = _fuzz_base()
FUZZ_DECODED = [read_records(r)[0] for r in FUZZ_RECORDS]

_mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, len(FUZZ_RAW) - 1), st.integers(1, 255)),
    st.tuples(st.just("insert"), st.integers(0, len(FUZZ_RAW)), st.binary(min_size=1, max_size=80)),
    st.tuples(st.just("delete"), st.integers(0, len(FUZZ_RAW) - 1), st.integers(1, 300)),
    st.tuples(st.just("truncate"), st.integers(0, len(FUZZ_RAW) - 1), st.just(0)),
)


@pytest.mark.slow
@hypothesis.settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True,
                     suppress_health_check=list(hypothesis.HealthCheck))
@hypothesis.given(st.lists(_mutation, min_size=1, max_size=4), st.integers(1, 700))
def test_fuzzed_streams_never_raise_and_keep_intact_records(mutations, chunk):
    raw = bytearray(FUZZ_RAW)
    for kind, pos, arg in mutations:
        pos = min(pos, len(raw))
        if kind == "flip" and pos < len(raw):
            raw[pos] ^= arg
        elif kind == "insert":
            raw[pos:pos] = arg
        elif kind == "delete":
            del raw[pos:pos + arg]
        elif kind == "truncate":
            del raw[pos:]
    raw = bytes(raw)
    dec = MseedDecoder()
    got = []
    for i in range(0, len(raw), chunk):
        got.extend(dec.feed(raw[i:i + chunk]))
    got.extend(dec.flush())
    seen = {(r.seed_id, r.start_ns, r.samples.tobytes()) for r in got}
    for rec_bytes, rec in zip(FUZZ_RECORDS, FUZZ_DECODED):
        at = raw.find(rec_bytes)
        # an intact record survives unless mutated bytes right before it pose as its predecessor
        intact_before = at >= 0 and (raw[:at] == FUZZ_RAW[:at]
                                     or any(at >= len(p) and raw[at - len(p):at] == p for p in FUZZ_RECORDS))
        if intact_before:
            assert (rec.seed_id, rec.start_ns, rec.samples.tobytes()) in seen
    for r in got:
        assert r.samples.ndim == 1 and len(r.samples) > 0 and r.sampling_rate > 0


def test_unreadable_file_in_a_directory_is_skipped_and_counted(tmp_path):
    (tmp_path / "a.mseed").write_bytes(_write(np.arange(10, dtype=np.int32), "STEIM1"))
    (tmp_path / "b.mseed").symlink_to(tmp_path / "gone.mseed")  # listed, cannot be opened
    (tmp_path / "c.mseed").write_bytes(_write(np.arange(5, dtype=np.int32), "INT32"))
    src = MseedFileSource(str(tmp_path))
    assert [len(r.samples) for r in src] == [10, 5] and src.stats.skipped == {"unreadable file": 1}


def test_header_only_scan_finds_what_a_decode_finds(tmp_path, rng):
    """headers_only: the same records (id, start, offset, sample count) and counts as a
    full decode, on a file of three channels with garbage, a log record and a bad record."""
    parts = [_write(_steim_signal(rng, 2), "STEIM2", ">", 512, cha=c) for c in ("HHZ", "HHN", "HHE")]
    raw = parts[0][:1536] + bytes(range(100)) + parts[0][1536:] + parts[1] + parts[2]
    raw += _write(np.frombuffer(b"a log line", np.uint8).astype("S1"), "ASCII", ">", 512, cha="LOG")
    raw += parts[2][:300]  # a truncated record at the end
    records, offsets, stats = read_records(raw, keep_offsets=True)
    dec = MseedDecoder(keep_offsets=True, headers_only=True)
    found = []
    for i in range(0, len(raw), 1000):  # any feed sizes
        found += dec.feed(raw[i:i + 1000])
    found += dec.flush()
    assert found == [(r.seed_id, r.start_ns, o, len(r.samples)) for r, o in zip(records, offsets)]
    assert (dec.stats.records, dec.stats.samples, dec.stats.no_data) == (stats.records, stats.samples, 1)
    assert dec.stats.skipped == stats.skipped == {"garbage between records": 1, "truncated record": 1}
    assert dec.stats.bytes_skipped == stats.bytes_skipped


def test_time_ordered_reading_counts_a_bad_steim_record_once(tmp_path, five):
    """`run` plans a file from headers, then decodes each channel once: a record whose
    frames fail shows only in the decode, and moves from records to skipped there."""
    from fieldpick.edge.sources.mseed import DecodeStats
    from fieldpick.edge.station import records_in_time_order

    raw, good = five
    bad = bytearray(raw)
    struct.pack_into(">i", bad, 512 + 64 + 8, 123456789)  # Xn of record 1
    path = tmp_path / "bad.mseed"
    path.write_bytes(bytes(bad))
    expect, _, ref = read_records(bytes(bad), keep_offsets=True)
    stats = DecodeStats()
    it = records_in_time_order([str(path)], stats=stats)
    assert stats.records == 5  # the plan, before anything is decoded
    got = list(it)
    assert _same(got, expect) and _same(got, good[:1] + good[2:])
    assert (stats.records, stats.samples, stats.skipped, stats.bytes_skipped) == (
        ref.records, ref.samples, ref.skipped, ref.bytes_skipped) == (
        4, sum(len(r.samples) for r in expect), {"Steim integration constant mismatch": 1}, 512)


def test_steim_record_without_a_whole_frame_is_skipped(five):
    """A data offset that leaves less than one 64-byte frame (found by the fuzzer: it raised)."""
    raw, good = five
    bad = bytearray(raw)
    struct.pack_into(">H", bad, 512 + 44, 500)  # record 1: data would start 12 bytes before its end
    for chunk in (1, 700, len(bad)):
        dec = MseedDecoder()
        got = []
        for i in range(0, len(bad), chunk):
            got += dec.feed(bytes(bad[i:i + chunk]))
        got += dec.flush()
        assert _same(got, good[:1] + good[2:])
        assert dec.stats.skipped == {"bad Steim frame": 1}
