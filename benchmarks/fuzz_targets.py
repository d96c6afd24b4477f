"""What benchmarks/fuzz.py feeds the decoders: the seeded mutator, the corpora, the decoders.

A corpus of valid inputs per decoder is made at start (miniSEED 2 written by
ObsPy when it is installed and by a small writer here, miniSEED 3 records,
the bundled and the test .tflite models, signed packets and acks, journal
segments, model cards, station configs, station tables, SeedLink state
files).  :func:`make_input` makes input i of a decoder's run from (decoder,
seed, i) alone: the seeded mutator (bit flips, interesting values, inserted,
deleted, repeated or spliced ranges, truncation) applied to a corpus item.
``SELFTESTS`` holds a decoder that misbehaves on purpose, for the harness's
own tests.
"""

import io
import json
import os
import random
import shutil
import struct
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
T0_NS = 1_790_000_000 * 10 ** 9
CODE = "NC.KHMB..HHZ"


# ---------------------------------------------------------------- the mutator

_INTERESTING = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
                0x7FFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF, 2100, 10000, 1 << 24, 1 << 30]


def mutate(data, rng, corpus=()):
    """1-8 random edits of ``data`` (bytes); seeded by ``rng`` (a random.Random)."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(10)
        n = len(b)
        if n == 0:
            b.extend(rng.randbytes(rng.randint(1, 16)) if hasattr(rng, "randbytes")
                     else bytes(rng.randrange(256) for _ in range(rng.randint(1, 16))))
            continue
        p = rng.randrange(n)
        if op == 0:  # flip a bit
            b[p] ^= 1 << rng.randrange(8)
        elif op == 1:  # a random byte
            b[p] = rng.randrange(256)
        elif op in (2, 3):  # an interesting integer, 1/2/4/8 bytes, either order
            size = rng.choice((1, 2, 4, 8))
            v = rng.choice(_INTERESTING) & ((1 << (8 * size)) - 1)
            raw = v.to_bytes(size, rng.choice(("little", "big")))
            b[p:p + size] = raw[: max(0, min(size, n - p))]
        elif op == 4:  # delete a range
            del b[p:p + rng.randint(1, max(1, min(64, n - p)))]
        elif op == 5:  # insert random bytes
            b[p:p] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
        elif op == 6:  # repeat a range
            q = rng.randint(p, min(n, p + 256))
            b[p:p] = b[p:q] * rng.randint(1, 4)
        elif op == 7:  # truncate
            del b[rng.randrange(n):]
        elif op == 8 and corpus:  # splice a piece of another input
            other = rng.choice(corpus)
            if other:
                a = rng.randrange(len(other))
                piece = other[a:a + rng.randint(1, 512)]
                b[p:p + len(piece)] = piece
        else:  # copy a range elsewhere (overwrite)
            q = rng.randrange(n)
            size = rng.randint(1, 64)
            b[q:q + size] = b[p:p + size]
    return bytes(b)


# ---------------------------------------------------------------- corpora


def _ms2_ours(n, rate=100.0, start_ns=T0_NS, reclen=512, cha="HHZ", order=">"):
    """miniSEED 2 records of int32 samples (encoding 3) with blockettes 1000 and 1001."""
    out = bytearray()
    per = (reclen - 64) // 4
    seq = 1
    for a in range(0, n, per):
        k = min(per, n - a)
        t = start_ns + int(round(a * 1e9 / rate))
        secs, ns = divmod(t, 10 ** 9)
        tm = time.gmtime(secs)
        head = struct.pack(order + "6scc5s2s3s2sHHBBBBHHhhBBBBiHH", b"%06d" % seq, b"D", b" ", b"STA  ", b"00",
                           cha.encode(), b"XX", tm.tm_year, tm.tm_yday, tm.tm_hour, tm.tm_min, tm.tm_sec, 0,
                           ns // 100000, k, int(rate), 1, 0, 0, 0, 2, 0, 64, 48)
        b1000 = struct.pack(order + "HHBBBx", 1000, 56, 3, 1 if order == ">" else 0, reclen.bit_length() - 1)
        b1001 = struct.pack(order + "HHbbxB", 1001, 0, 0, (ns // 1000) % 100, 0)
        data = struct.pack(order + "%di" % k, *range(a, a + k))
        rec = head + b1000 + b1001 + data
        out += rec + b"\x00" * (reclen - len(rec))
        seq += 1
    return bytes(out)


def _ms2_obspy():
    try:
        import numpy as np
        import obspy
    except ImportError:
        return []
    out = []
    rng = np.random.default_rng(3)
    for enc, reclen in (("STEIM2", 512), ("STEIM1", 512), ("INT16", 256), ("FLOAT32", 512), ("STEIM2", 4096)):
        dtype = np.float32 if enc == "FLOAT32" else np.int32
        x = np.cumsum(rng.integers(-50, 50, 1500)).astype(dtype)
        if enc == "INT16":
            x = x.astype(np.int16)
        tr = obspy.Trace(x)
        tr.stats.update(dict(network="XX", station="STA", location="00", channel="HHZ", sampling_rate=100.0,
                             starttime=obspy.UTCDateTime(2026, 11, 22, 1, 2, 3)))
        buf = io.BytesIO()
        tr.write(buf, format="MSEED", encoding=enc, reclen=reclen)
        out.append(buf.getvalue())
    return out


def _ms3(year=2026, n=60, rate=100.0, encoding=3):
    import numpy as np

    from fieldpick.edge.sources.mseed import crc32c

    sid = b"FDSN:XX_STA_00_H_H_Z"
    data = np.arange(n, dtype="<i4").tobytes() if encoding == 3 else np.arange(n, dtype="<f4").tobytes()
    head = struct.pack("<2sBBIHHBBBBdIIBBHI", b"MS", 3, 0, 500, year, 200, 3, 4, 5, encoding, rate, n, 0, 1,
                       len(sid), 0, len(data))
    rec = bytearray(head + sid + data)
    struct.pack_into("<I", rec, 28, crc32c(rec))
    return bytes(rec)


def _table():
    from fieldpick.edge.telemetry import packet as pk

    return pk.StationTable([pk.StationEntry(3, CODE, b"fuzz-key-0123456789abcdef0123456")])


def _picks(n, start=0):
    from fieldpick.edge.picks import Pick

    return [Pick(T0_NS + (start + i) * 700_000_000, "PS"[i % 2], 0.3 + 0.01 * i, 0.02 * (i + 1), 10.0 * i,
                 3.0 * i - 5, "?UD"[i % 3], CODE) for i in range(n)]


def _packets():
    from fieldpick.edge.telemetry import packet as pk

    entry = _table().by_id(3)
    out = [pk.encode_picks(_picks(n), entry, 100 + n) for n in (1, 2, 5, 30)]
    out.append(pk.encode_ack(entry, 100, 101))
    return out


def _journals():
    """Journal folders as one blob each: segment files joined with a 4-byte length before each."""
    from fieldpick.edge.telemetry import packet as pk
    from fieldpick.edge.telemetry.journal import Journal

    entry = _table().by_id(3)
    blobs = []
    for variant in range(3):
        d = tempfile.mkdtemp(prefix="fpfuzz-j")
        try:
            with Journal(d, first_seq=50, segment_bytes=4096, budget_bytes=1 << 20) as j:
                for k in range(4 + 6 * variant):
                    j.append_picks(_picks(3, 3 * k))
                    if k % 2:
                        seq = j.next_seq
                        j.append_packet(pk.encode_picks(_picks(3, 3 * k), entry, seq), last_pick=3 * k + 2)
                        if variant:
                            j.ack([seq])
            blob = b""
            for name in sorted(os.listdir(d)):
                data = open(os.path.join(d, name), "rb").read()
                blob += struct.pack("<I", len(data)) + data
            blobs.append(blob)
        finally:
            shutil.rmtree(d, ignore_errors=True)
    return blobs


def _cards():
    out = []
    for name in sorted(os.listdir(os.path.join(REPO, "edge", "models"))):
        if name.endswith(".json"):
            out.append(open(os.path.join(REPO, "edge", "models", name), "rb").read())
    return out


def _configs():
    docs = [
        {"mode": "gated", "trigger": {"pre_s": 8.0, "band_hz": [1.0, 20.0]}, "sources": ["x.mseed"]},
        {"mode": "continuous", "overlap": 0.25, "batch": 4, "buffer": {"max_lag_s": 30.0},
         "picker": {"thresholds": {"P": 0.4}}, "limits": {"min_year": 2000, "max_year": 2050}},
        {"output": {"path": "-", "format": "jsonl"}, "telemetry": {"table": "t.json", "station": CODE,
                                                                   "journal": "/tmp/j", "link": "udp://h:1"}},
    ]
    return [json.dumps(d, indent=1).encode() for d in docs]


def _station_tables():
    return [json.dumps(_table().to_dict()).encode()]


def _seedlink_states():
    return [json.dumps({"format": "fieldpick-seedlink-state", "version": 1, "server": "h:18000",
                        "seqnums": {"XX_STA": 12, "NC_KHMB": 0xABCDE}}).encode()]


# ---------------------------------------------------------------- decoders


def _run_mseed(data):
    from fieldpick.edge.sources.mseed import MseedDecoder, read_records

    read_records(data)
    dec = MseedDecoder(headers_only=len(data) % 2 == 0)  # the streaming path, in uneven pieces
    cut = len(data) // 3
    dec.feed(data[:cut])
    dec.feed(data[cut:])
    dec.flush()


def _run_tflite(data):
    import numpy as np

    from fieldpick.edge.tflite.interpreter import Interpreter

    it = Interpreter(data)
    for d in it.get_input_details():
        it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
    it.invoke()


_TABLE = None


def _run_packet(data):
    from fieldpick.edge.telemetry import packet as pk
    from fieldpick.edge.telemetry.receive import Receiver

    global _TABLE
    if _TABLE is None:
        _TABLE = _table()
    for fn in (pk.decode, pk.decode_ack):
        try:
            fn(data, _TABLE)
        except pk.PacketRejected:
            pass
    Receiver(_TABLE).handle(data)


def _run_packet_signed(data):
    """The body mutated, then signed again with the station's key: the paths after the tag check."""
    from fieldpick.edge.telemetry import packet as pk

    global _TABLE
    if _TABLE is None:
        _TABLE = _table()
    key = _TABLE.by_id(3).key
    body = bytearray(data[:-pk.TAG_BYTES] if len(data) > pk.TAG_BYTES else data)
    if len(body) >= 3:
        body[0] = (body[0] & 0x0F) | 0x10  # the format version the receiver reads
        body[1:3] = b"\x00\x03"  # the station's id
    _run_packet(bytes(body) + pk._tag(key, bytes(body)))


_SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def _run_journal(data):
    from fieldpick.edge.telemetry.journal import Journal

    d = tempfile.mkdtemp(prefix="fpfuzz-", dir=_SCRATCH)  # memory-backed where there is one: cheap fsyncs
    try:
        pos, k = 0, 1
        while pos + 4 <= len(data) and k < 50:
            (n,) = struct.unpack_from("<I", data, pos)
            seg = data[pos + 4:pos + 4 + min(n, 1 << 20)]
            path = os.path.join(d, "seg-%010d.fpj" % k)
            if n & 0x80000000:  # now and then a folder where a segment should be
                os.mkdir(path)
            else:
                with open(path, "wb") as f:
                    f.write(seg)
            pos += 4 + len(seg)
            k += 1
        j = Journal(d, segment_bytes=4096, budget_bytes=1 << 16)
        j.append_picks(_picks(2))
        j.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _run_card(data):
    from fieldpick.edge.card import ModelCard

    ModelCard.from_json(data)


def _run_config(data):
    from fieldpick.edge.config import StationConfig

    StationConfig.from_json(data)


def _run_station_table(data):
    from fieldpick.edge.errors import ConfigError
    from fieldpick.edge.limits import loads_json
    from fieldpick.edge.telemetry.packet import StationTable

    StationTable.from_dict(loads_json(data, "station table", ConfigError))


def _run_seedlink_state(data):
    from fieldpick.edge.sources.seedlink import load_state

    d = tempfile.mkdtemp(prefix="fpfuzz-", dir=_SCRATCH)
    try:
        path = os.path.join(d, "state.json")
        with open(path, "wb") as f:
            f.write(data)
        load_state(path)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _tflite_corpus():
    out = [open(os.path.join(REPO, "edge", "models", "fieldpick-default.tflite"), "rb").read()]
    data = os.path.join(REPO, "tests", "edge", "data")
    for name in ("tiny_int8.tflite", "tiny_fp32.tflite"):
        p = os.path.join(data, name)
        if os.path.exists(p):
            out.append(open(p, "rb").read())
    return out


#: decoder name -> (corpus maker, run function)
DECODERS = {
    "mseed2": (lambda: _ms2_obspy() + [_ms2_ours(900), _ms2_ours(700, order="<", reclen=256)], _run_mseed),
    "mseed3": (lambda: [_ms3(), _ms3(n=10, encoding=4) + _ms3(year=2027), _ms3(rate=-10.0)], _run_mseed),
    "tflite": (_tflite_corpus, _run_tflite),
    "packet": (_packets, _run_packet),
    "packet_signed": (_packets, _run_packet_signed),
    "journal": (_journals, _run_journal),
    "card": (_cards, _run_card),
    "config": (_configs, _run_config),
    "station_table": (_station_tables, _run_station_table),
    "seedlink_state": (_seedlink_states, _run_seedlink_state),
}


# ---------------------------------------------------------------- self-tests of the isolation


def _run_selftest(data):
    """Misbehaves on purpose, chosen by the input's CRC: a Python loop, a loop inside C that never
    looks at signals (PBKDF2 of a billion rounds), a segmentation fault, a 64 GiB allocation, 48 MiB
    written; else returns."""
    import zlib

    k = zlib.crc32(data) % 40
    if k == 1:
        while True:
            pass
    elif k == 2:
        import hashlib

        hashlib.pbkdf2_hmac("sha256", data, b"salt", 10 ** 9)
    elif k == 3:
        import ctypes

        ctypes.string_at(0)
    elif k == 4:
        bytearray(64 << 30)
    elif k == 5:
        return len(b"\x01" * (48 << 20))


SELFTESTS = {"selftest": (lambda: [b"fieldpick", b"0123456789" * 4], _run_selftest)}


def _lookup(name):
    return DECODERS[name] if name in DECODERS else SELFTESTS[name]


def make_input(name, seed, i, corpus):
    """Input ``i`` of decoder ``name``'s run with ``seed``: the same bytes in any process."""
    rng = random.Random("%s:%d:%d" % (name, seed, i))
    base = corpus[0] if name == "tflite" and rng.random() < 0.2 else rng.choice(corpus)
    return mutate(base, rng, corpus)
