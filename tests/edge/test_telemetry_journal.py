"""The station journal: framing, torn-tail recovery, acks, disk budget, and a real SIGKILL."""

import os
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib

import pytest

from fieldpick.edge.errors import ConfigError, JournalError
from fieldpick.edge.picks import Pick
from fieldpick.edge.telemetry import packet as pk
from fieldpick.edge.telemetry.endpoint import UdpEndpoint
from fieldpick.edge.telemetry.journal import MAGIC, Journal
from fieldpick.edge.telemetry.link import UdpLink
from fieldpick.edge.telemetry.receive import Receiver, serve
from fieldpick.edge.telemetry.uplink import Uplink

CODE = "NC.KHMB..HHZ"
T0 = 1_790_000_000_000_000_000


def picks(start, n):
    return [Pick(T0 + (start + i) * 10**9, "P", 0.75, 0.02, 10.0 * i, 6.0, "U", CODE) for i in range(n)]


def segments(d):
    return sorted(f for f in os.listdir(d) if f.endswith(".fpj"))


def test_reopen_restores_pending_unacked_and_counters(tmp_path):
    d = str(tmp_path / "j")
    with Journal(d, first_seq=100) as j:
        assert j.append_picks(picks(0, 5)) == [0, 1, 2, 3, 4]
        assert j.append_packet(b"packet-a", last_pick=2) == 100
        assert j.append_packet(b"packet-b", last_pick=3) == 101
        assert j.ack([100, 555]) == [100]  # 555 was never sent: ignored
    with Journal(d) as j:
        assert [n for n, _ in j.pending] == [4]
        assert j.pending[0][1] == picks(0, 5)[4]  # picks come back exactly
        assert dict(j.unacked) == {101: b"packet-b"}
        assert (j.next_seq, j.next_pick) == (102, 5)
    assert segments(d) == ["seg-0000000001.fpj"]


def test_last_record_cut_at_every_byte_is_truncated(tmp_path):
    d = str(tmp_path / "j")
    with Journal(d, first_seq=1) as j:
        j.append_picks(picks(0, 2))
        size_before = os.path.getsize(os.path.join(d, segments(d)[0]))
        j.append_picks(picks(2, 1))
    path = os.path.join(d, segments(d)[0])
    full = open(path, "rb").read()
    for cut in range(size_before, len(full)):  # every torn length of the last record
        with open(path, "wb") as f:
            f.write(full[:cut])
        with Journal(d) as j:
            assert [n for n, _ in j.pending] == [0, 1]
            assert j.stats["truncated_bytes"] == cut - size_before
        assert os.path.getsize(path) == size_before
    with open(path, "wb") as f:
        f.write(full)
    with Journal(d) as j:
        assert [n for n, _ in j.pending] == [0, 1, 2]


def test_flipped_bit_in_tail_is_cut_there_and_appends_continue(tmp_path):
    d = str(tmp_path / "j")
    with Journal(d, first_seq=1) as j:
        j.append_picks(picks(0, 1))
        j.append_picks(picks(1, 1))
    path = os.path.join(d, segments(d)[0])
    data = bytearray(open(path, "rb").read())
    data[-3] ^= 0x10  # inside the JSON of the second record: CRC fails
    open(path, "wb").write(bytes(data))
    with Journal(d) as j:
        assert [n for n, _ in j.pending] == [0]
        assert j.append_picks(picks(7, 1)) == [1]  # numbering continues after the last good record
    with Journal(d) as j:
        assert [p.time_ns for _, p in j.pending] == [T0, T0 + 7 * 10**9]


def test_foreign_file_is_refused_not_overwritten(tmp_path):
    d = tmp_path / "j"
    d.mkdir()
    (d / "seg-0000000001.fpj").write_bytes(b"NOPE and more")
    with pytest.raises(JournalError, match="is not a fieldpick journal segment.*move it out of"):
        Journal(str(d))
    assert (d / "seg-0000000001.fpj").read_bytes() == b"NOPE and more"


def test_bad_sizes_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="segment_bytes 100 too small"):
        Journal(str(tmp_path), segment_bytes=100)
    with pytest.raises(ConfigError, match="at least twice segment_bytes"):
        Journal(str(tmp_path), segment_bytes=4096, budget_bytes=5000)


def test_budget_drops_acknowledged_segments_first(tmp_path):
    d = str(tmp_path / "j")
    j = Journal(d, segment_bytes=4096, budget_bytes=3 * 4096, first_seq=0)
    blob = b"x" * 1500  # a pick record + a packet record is ~1.7 kB: two packets per segment
    for i in range(12):
        j.append_picks(picks(i, 1))
        j.append_packet(blob, last_pick=i)
        if i == 3:
            j.ack([0, 1, 2, 3])  # the first two segments are settled
    # 6 segments written, over budget twice: both settled segments went, nothing unacknowledged
    assert (j.stats["deleted_segments"], j.stats["dropped_packets"]) == (2, 0)
    assert segments(d)[0] == "seg-0000000003.fpj"
    assert list(j.unacked) == list(range(4, 12))
    # no acks any more: now the oldest unacknowledged segments go, the newest stay
    for i in range(12, 20):
        j.append_picks(picks(i, 1))
        j.append_packet(blob, last_pick=i)
    assert (j.stats["deleted_segments"], j.stats["dropped_packets"]) == (6, 8)
    assert list(j.unacked) == list(range(12, 20))
    assert j.disk_bytes() <= 3 * 4096 + 4096  # checked when a segment starts: at most one over
    j.close()
    with Journal(d, segment_bytes=4096, budget_bytes=3 * 4096) as again:
        assert list(again.unacked) == list(range(12, 20)) and again.next_seq == 20


def test_new_journal_starts_seq_at_unix_time(tmp_path):
    before = int(time.time())
    with Journal(str(tmp_path / "j")) as j:
        assert before <= j.next_seq <= int(time.time()) + 1


# ---------------------------------------------------------------- a real SIGKILL

CHILD = r"""
import sys
from fieldpick.edge.picks import Pick
from fieldpick.edge.telemetry.packet import StationTable
from fieldpick.edge.telemetry.link import UdpLink
from fieldpick.edge.telemetry.uplink import Uplink
table, journal, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
entry = StationTable.load(table).by_code("%s")
up = Uplink(journal, entry, UdpLink("127.0.0.1", port), profile="lora51", max_delay_s=3600.0)
i = 0
while True:
    up.submit([Pick(%d + i * 10**9, "P", 0.5, 0.01, float(i), 3.0, "?", "")])
    sys.stdout.write("%%d\n" %% i)  # journaled (fsync) when submit returned
    sys.stdout.flush()
    i += 1
""" % (CODE, T0)


class Collect(object):
    def __init__(self):
        self.times = []

    def write(self, entry, seq, picks):
        self.times.extend(p.time_ns for p in picks)

    def flush(self):
        pass

    def close(self):
        pass


@pytest.mark.parametrize("kill_after", [40, 77])
def test_sigkill_mid_write_loses_no_journaled_pick(tmp_path, kill_after):
    table = pk.StationTable.generate([CODE])
    table.save(str(tmp_path / "stations.json"))
    ep = UdpEndpoint()
    sink = Collect()
    rec = Receiver(table, [sink])
    stop = threading.Event()
    th = threading.Thread(target=serve, args=(rec, [ep]), kwargs=dict(until=stop.is_set))
    th.start()
    journal = str(tmp_path / "journal")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "stations.json"), journal, str(ep.address[1])],
        stdout=subprocess.PIPE, text=True,
    )
    confirmed = -1
    try:
        while confirmed < kill_after:
            line = child.stdout.readline()
            assert line, "the child sender died on its own"
            confirmed = int(line)
        os.kill(child.pid, signal.SIGKILL)  # while it keeps writing
    finally:
        child.wait(10)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    # restart the station on the same journal and let it catch up
    up = Uplink(journal, table.by_code(CODE), UdpLink(*ep.address[:2]), profile="lora51", retry_s=0.2)
    try:
        assert up.drain(20.0)
    finally:
        up.close()
        stop.set()
        th.join(5)
        ep.close()
    received = sorted(sink.times)
    want = [T0 + i * 10**9 for i in range(confirmed + 1)]
    assert set(want) <= set(received)  # every pick the child was told is journaled arrived
    assert len(received) == len(set(received))  # and only once
    # picks journaled after the last line we read arrive too: a gap-free prefix of what was submitted
    assert received == [T0 + i * 10**9 for i in range(len(received))]
    assert MAGIC == open(os.path.join(journal, segments(journal)[0]), "rb").read(4)


HALF_WRITE = r"""
import os, signal, sys
from fieldpick.edge.picks import Pick
from fieldpick.edge.telemetry.journal import Journal
j = Journal(sys.argv[1], first_seq=1)
j.append_picks([Pick(%d + i, "P", 0.5, station="%s") for i in range(5)])
real = j._file


class HalfThenDie(object):
    def write(self, frame):
        real.write(frame[: len(frame) // 2])
        real.flush()
        os.fsync(real.fileno())
        os.kill(os.getpid(), signal.SIGKILL)

    def __getattr__(self, name):
        return getattr(real, name)


j._file = HalfThenDie()
j.append_picks([Pick(%d + 100 + i, "S", 0.5, station="%s") for i in range(5)])
""" % (T0, CODE, T0, CODE)


def test_sigkill_half_way_through_a_record(tmp_path):
    d = str(tmp_path / "j")
    proc = subprocess.run([sys.executable, "-c", HALF_WRITE, d], capture_output=True, timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    size = os.path.getsize(os.path.join(d, segments(d)[0]))
    with Journal(d) as j:
        assert [p.time_ns for _, p in j.pending] == [T0 + i for i in range(5)]
        assert j.stats["truncated_bytes"] > 0
        assert j.append_picks(picks(0, 1)) == [5]
    assert os.path.getsize(os.path.join(d, segments(d)[0])) > size - j.stats["truncated_bytes"]
    with Journal(d) as j:
        assert len(j.pending) == 6 and j.stats["truncated_bytes"] == 0


def test_unreadable_record_with_good_crc_is_skipped_not_cut(tmp_path):
    d = str(tmp_path / "j")
    with Journal(d, first_seq=1) as j:
        j.append_picks(picks(0, 1))
    path = os.path.join(d, segments(d)[0])
    payload = struct.pack("<Q", 1) + b'[{"time_ns": "not a number"}]'  # a PICKS record we cannot read
    with open(path, "ab") as f:
        f.write(struct.pack("<IIB", len(payload), zlib.crc32(bytes([2]) + payload), 2) + payload)
    with Journal(d) as j:
        j.append_picks(picks(5, 1))  # written after the odd record
    with Journal(d) as j:
        assert [p.time_ns for _, p in j.pending] == [T0, T0 + 5 * 10**9]
        assert j.stats["unreadable_records"] == 1 and j.stats["truncated_bytes"] == 0
