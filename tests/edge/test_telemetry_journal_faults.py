"""The journal under faults: a full disk or I/O errors, bit flips, foreign entries in its folder."""

import errno
import os

import pytest

from fieldpick.edge.errors import JournalError
from fieldpick.edge.picks import Pick
from fieldpick.edge.telemetry import journal as journal_mod
from fieldpick.edge.telemetry import packet as pk
from fieldpick.edge.telemetry.journal import Journal
from fieldpick.edge.telemetry.link import Link
from fieldpick.edge.telemetry.uplink import Uplink

CODE = "NC.KHMB..HHZ"
T0 = 1_790_000_000_000_000_000


def picks(start, n):
    return [Pick(T0 + (start + i) * 10**9, "P", 0.75, 0.02, 10.0 * (start + i), 6.0, "U", CODE) for i in range(n)]


class _Disk(object):
    """Files the journal opens fail with ``err`` while ``full`` (writes and fsyncs reach the real file otherwise)."""

    def __init__(self, monkeypatch, err=errno.ENOSPC):
        self.full = False
        self.err = err
        self.failures = 0
        real_open, real_fsync = open, os.fsync
        disk = self

        class F(object):
            def __init__(self, f):
                self._f = f

            def write(self, data):
                if disk.full:
                    disk.failures += 1
                    self._f.write(data[: len(data) // 2])  # a part reaches the file, as on a real full disk
                    raise OSError(disk.err, os.strerror(disk.err))
                return self._f.write(data)

            def __getattr__(self, name):
                return getattr(self._f, name)

            def __enter__(self):
                return self

            def __exit__(self, *a):
                self._f.close()

        def fake_open(path, mode="r", *a, **k):
            f = real_open(path, mode, *a, **k)
            return F(f) if "b" in mode and ("a" in mode or "x" in mode or "w" in mode) else f

        monkeypatch.setattr(journal_mod, "open", fake_open, raising=False)
        del real_fsync


class _NullLink(Link):
    def __init__(self):
        self.sent = []

    def send(self, data):
        self.sent.append(data)
        return True

    def recv(self, timeout_s=0.0):
        return []

    def close(self):
        pass


def test_full_disk_is_reported_kept_and_resumed(tmp_path, monkeypatch):
    disk = _Disk(monkeypatch)
    d = str(tmp_path / "j")
    j = Journal(d, first_seq=1)
    j.append_picks(picks(0, 2))
    seg = os.path.join(d, sorted(os.listdir(d))[0])
    size = os.path.getsize(seg)
    disk.full = True
    for _ in range(3):  # every call reports the same clear error, never a ValueError of a closed file
        with pytest.raises(JournalError, match="No space left") as info:
            j.append_picks(picks(2, 1))
        assert info.value.errno == errno.ENOSPC
    assert os.path.getsize(seg) == size  # the half-written record was cut off
    assert [n for n, _ in j.pending] == [0, 1]
    disk.full = False
    assert j.append_picks(picks(2, 1)) == [2]  # space is back: it resumes
    j.close()
    with Journal(d) as j2:
        assert [p.time_ns for _, p in j2.pending] == [p.time_ns for p in picks(0, 3)]
        assert j2.stats["truncated_bytes"] == 0


def test_eio_on_every_write_never_breaks_the_journal(tmp_path, monkeypatch):
    disk = _Disk(monkeypatch, errno.EIO)
    d = str(tmp_path / "j")
    j = Journal(d, first_seq=1, segment_bytes=4096, budget_bytes=8192)
    disk.full = True
    for i in range(20):
        with pytest.raises(JournalError, match="Input/output error"):
            j.append_picks(picks(i, 1))
    disk.full = False
    j.append_picks(picks(0, 1))
    j.close()
    assert [p for _, p in Journal(d).pending] == picks(0, 1)


def test_full_disk_frees_delivered_segments_first(tmp_path, monkeypatch):
    disk = _Disk(monkeypatch)
    d = str(tmp_path / "j")
    j = Journal(d, first_seq=1, segment_bytes=4096, budget_bytes=1 << 20)
    entry = pk.StationEntry(1, CODE, b"k" * 32)
    for i in range(40):  # delivered: packed and acknowledged
        j.append_picks(picks(i, 1))
        data = pk.encode_picks(picks(i, 1), entry, j.next_seq)
        seq = j.append_packet(data, last_pick=i)
        j.ack([seq])
    before = len(os.listdir(d))
    assert before >= 3
    real_remove = os.remove

    def remove(path):  # deleting a segment frees space
        disk.full = False
        real_remove(path)

    monkeypatch.setattr(os, "remove", remove)
    disk.full = True
    j.append_picks(picks(100, 1))  # succeeds after deleting delivered segments
    assert len(os.listdir(d)) < before
    assert j.stats["deleted_segments"] >= 1
    j.close()
    assert [p for _, p in Journal(d).pending] == picks(100, 1)


def test_uplink_keeps_picks_in_memory_until_the_disk_is_freed(tmp_path, monkeypatch):
    disk = _Disk(monkeypatch)
    d = str(tmp_path / "j")
    entry = pk.StationEntry(1, CODE, b"k" * 32)
    link = _NullLink()
    up = Uplink(Journal(d, first_seq=1), entry, link, max_delay_s=0.0)
    up.submit(picks(0, 2))
    disk.full = True
    assert up.submit(picks(2, 3)) == 3  # the station goes on
    assert up.stats["journal_errors"] >= 1
    assert up.backlog >= 3
    disk.full = False
    up.flush()
    up.close()
    sent = [pk.decode(x, pk.StationTable([entry])) for x in link.sent]
    assert sorted(p.time_ns for packet in sent for p in packet.picks) == [p.time_ns for p in picks(0, 5)]


def test_uplink_refuses_an_implausible_pick_alone(tmp_path):
    entry = pk.StationEntry(1, CODE, b"k" * 32)
    link = _NullLink()
    up = Uplink(Journal(str(tmp_path / "j"), first_seq=1), entry, link, max_delay_s=0.0)
    bad = Pick(253402300800 * 10**9, "P", 0.75, 0.02, 1.0, 6.0, "U", CODE)  # year 10000
    assert up.submit([bad] + picks(0, 2)) == 2
    assert up.stats["implausible_picks"] == 1
    up.flush()
    up.close()
    assert Journal(str(tmp_path / "j")).next_pick == 2


def test_bit_flip_in_the_newest_segment_keeps_later_records_and_never_reuses_a_seq(tmp_path):
    d = str(tmp_path / "j")
    entry = pk.StationEntry(1, CODE, b"k" * 32)
    with Journal(d, first_seq=10) as j:
        j.append_picks(picks(0, 3))
        j.append_packet(pk.encode_picks(picks(0, 3), entry, 10), last_pick=2)
        seg = os.path.join(d, sorted(os.listdir(d))[0])
        flip_at = os.path.getsize(seg) - 20  # inside the packet record
        j.append_picks(picks(3, 3))  # waiting picks after the damaged record
    data = bytearray(open(seg, "rb").read())
    data[flip_at] ^= 0x40
    open(seg, "wb").write(bytes(data))
    with Journal(d) as j:
        assert [p for _, p in j.pending][-3:] == picks(3, 3)  # not lost
        assert j.next_seq > 10  # the damaged packet's number is not used again
        assert j.stats["corrupt_segments"] == 1
        j.append_picks(picks(6, 1))
    assert open(seg, "rb").read() == bytes(data)  # the damaged file is kept as it is
    with Journal(d) as j:
        assert [p for _, p in j.pending][-4:] == picks(3, 4)


def test_a_folder_where_a_segment_should_be_is_left_alone(tmp_path):
    d = str(tmp_path / "j")
    with Journal(d, first_seq=1) as j:
        j.append_picks(picks(0, 1))
    os.mkdir(os.path.join(d, "seg-0000000002.fpj"))
    with Journal(d) as j:
        assert j.stats["foreign_entries"] == 1
        assert [p for _, p in j.pending] == picks(0, 1)
        j.append_picks(picks(1, 1))
    with Journal(d, segment_bytes=4096) as j:
        assert [p for _, p in j.pending] == picks(0, 2)


def test_journal_path_that_is_a_file_is_a_clear_error(tmp_path):
    p = tmp_path / "f"
    p.write_text("x")
    with pytest.raises(JournalError, match="is a file"):
        Journal(str(p))


def test_a_huge_file_named_like_a_segment_is_not_read(tmp_path):
    d = str(tmp_path / "j")
    with Journal(d, first_seq=1) as j:
        j.append_picks(picks(0, 1))
    with open(os.path.join(d, "seg-0000000009.fpj"), "wb") as f:
        f.truncate(65 << 20)  # sparse: 65 MiB of nothing
    with Journal(d, segment_bytes=4096, budget_bytes=1 << 20) as j:
        assert j.stats["foreign_entries"] == 1
        assert [p for _, p in j.pending] == picks(0, 1)
        j.append_picks(picks(1, 1))
    assert os.path.getsize(os.path.join(d, "seg-0000000009.fpj")) == 65 << 20  # left alone
    with Journal(d) as j:
        assert [p for _, p in j.pending] == picks(0, 2)
