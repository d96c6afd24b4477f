"""Group commit in the receiver: one transaction for many packets, acks only after it, and a real SIGKILL."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from fieldpick.edge.errors import ConfigError
from fieldpick.edge.telemetry import packet as pk
from fieldpick.edge.telemetry.quarantine import Quarantine
from fieldpick.edge.telemetry.receive import Receiver
from fieldpick.network.ingest import DbWriter
from fieldpick.network.store import open_store

CODES = ("NC.KHMB..HHZ", "NC.KBBM..HHZ")


def _count(url):
    with open_store(url) as s:
        return s.count("picks")


def test_a_group_is_one_commit_and_acked_only_after_it(store_url, make_table, make_picks):
    table = make_table(CODES)
    a, b = table.by_code(CODES[0]), table.by_code(CODES[1])
    rx = Receiver(table, [DbWriter(open_store(store_url))], group_packets=4, group_ms=10000)
    acks = []
    packets = [pk.encode_picks(make_picks(3, t=10**18 + k * 10**10), a, k + 1) for k in range(3)]
    for data in packets:
        rx.offer(data, acks.append)
    rx.offer(packets[1], acks.append)  # a duplicate while its group is open: answered with the group
    assert acks == [] and _count(store_url) == 0 and rx.due_in() > 1.0
    rx.offer(pk.encode_picks(make_picks(2, code=CODES[1]), b, 9), acks.append)  # the fourth: commits
    assert [pk.decode_ack(x, table).seq for x in acks] == [1, 2, 2, 3, 9]
    assert _count(store_url) == 11 and rx.counts["commits"] == 1 and rx.counts["replayed"] == 1
    assert rx.due_in() is None
    assert pk.decode_ack(rx.handle(packets[0]), table).seq == 1  # committed before: acked at once
    rx.close()
    assert _count(store_url) == 11


def test_a_packet_the_store_refuses_is_set_aside_alone(store_url, make_table, make_picks, tmp_path):
    table = make_table(CODES[:1])
    entry = table.by_code(CODES[0])
    writer = DbWriter(open_store(store_url))
    real = writer.store._insert_rows

    def insert(rows):
        n = real(rows)
        if any(r[10] == 2 for r in rows):  # packet 2 fails after its picks were inserted
            raise RuntimeError("disk says no")
        return n

    writer.store._insert_rows = insert
    rx = Receiver(table, [writer], quarantine=Quarantine(str(tmp_path / "q")), group_packets=3, group_ms=10000)
    acks = []
    for k in range(3):
        rx.offer(pk.encode_picks(make_picks(2, t=(k + 1) * 10**18, step_ns=10**10), entry, k + 1), acks.append)
    assert sorted(pk.decode_ack(x, table).seq for x in acks) == [1, 2, 3]  # the bad one quarantined and acked
    with open_store(store_url) as s:
        assert sorted(r["packet_seq"] for r in s.picks()) == [1, 1, 3, 3]  # none of packet 2's picks
        assert s.count("packets") == 2
    assert rx.counts["quarantined"] == 1 and rx.counts["store_failed"] == 1 and rx.counts["packets"] == 2
    rx.close()


class _FailingFlush(object):
    def __init__(self):
        self.written = []

    def write(self, entry, seq, picks):
        self.written.append(seq)

    def flush(self):
        if self.written:
            raise OSError(28, "No space left on device")

    def close(self):
        pass


def test_a_failed_commit_sets_the_whole_group_aside(make_table, make_picks, tmp_path):
    table = make_table(CODES[:1])
    entry = table.by_code(CODES[0])
    q = Quarantine(str(tmp_path / "q"))
    rx = Receiver(table, [_FailingFlush()], quarantine=q, group_packets=2, group_ms=10000)
    acks = []
    for seq in (1, 2):
        rx.offer(pk.encode_picks(make_picks(1), entry, seq), acks.append)
    assert [pk.decode_ack(x, table).seq for x in acks] == [1, 2]  # kept in the quarantine, so acked
    assert rx.counts["quarantined"] == 2 and rx.counts["store_failed"] == 2 and rx.counts["packets"] == 0
    assert len([n for n in os.listdir(str(tmp_path / "q")) if n.endswith(".json")]) == 2


def test_group_settings_are_checked(make_table):
    with pytest.raises(ConfigError, match="allowed: an integer 1 .. 100000"):
        Receiver(make_table(CODES), group_packets=0, group_ms=5)
    with pytest.raises(ConfigError, match="allowed: 0 .. 10000"):
        Receiver(make_table(CODES), group_packets=10, group_ms=-1)
    assert Receiver(make_table(CODES), group_packets=50, group_ms=0).group_packets == 1


# ---------------------------------------------------------------- a real SIGKILL


def _start(stations, url, *group):
    proc = subprocess.Popen(
        [sys.executable, "-m", "fieldpick.edge.cli", "-vv", "receive", "--stations", stations, "--udp",
         "127.0.0.1:0", "--db", url, "--duration", "120"] + list(group),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("listening udp 127.0.0.1:"), line + proc.stderr.read()
    return proc, ("127.0.0.1", int(line.rsplit(":", 1)[1]))


def _acks(sock, table):
    got = set()
    while True:
        try:
            got.add(pk.decode_ack(sock.recv(100), table).seq)
        except (BlockingIOError, socket.timeout):
            return got


def test_sigkill_before_the_commit_loses_no_acked_pick_and_replays_once(tmp_path, store_url, make_table,
                                                                       make_picks):
    table = make_table(CODES[:1])
    stations = str(tmp_path / "stations.json")
    table.save(stations)
    entry = table.by_code(CODES[0])
    packets = {seq: pk.encode_picks(make_picks(3, t=seq * 10**17), entry, seq) for seq in range(1, 41)}
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        # 1: a group that is never committed: 10 packets (each twice) wait in a 10 s window, then SIGKILL
        proc, addr = _start(stations, store_url, "--group-ms", "10000", "--group-packets", "1000", "--group-wait")
        for seq in range(1, 11):
            sock.sendto(packets[seq], addr)
            sock.sendto(packets[seq], addr)
        written = 0
        while written < 10:  # the receiver logs each packet it wrote into the open transaction
            line = proc.stderr.readline()
            assert line, "receiver ended early"
            written += " with 3 picks" in line
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        sock.setblocking(False)
        assert _acks(sock, table) == set() and _count(store_url) == 0  # nothing acked, nothing claimed stored
        # 2: killed at an arbitrary moment while 30 more packets stream in through 20 ms groups
        proc, addr = _start(stations, store_url, "--group-ms", "20", "--group-packets", "8")
        sock.settimeout(0.02)
        acked, end = set(), time.monotonic() + 120
        while len(acked) < 12 and time.monotonic() < end:  # resend what is not acked, as stations do
            for seq in range(11, 41):
                if seq not in acked:
                    sock.sendto(packets[seq], addr)
                    sock.sendto(packets[seq], addr)
                acked |= _acks(sock, table)
                if len(acked) >= 12:
                    break
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        sock.settimeout(0.5)
        acked |= _acks(sock, table)
        with open_store(store_url) as s:
            stored = {r["packet_seq"] for r in s.picks()}
            assert len(acked) >= 12
            assert acked <= stored  # every acked packet's picks are in the database
        # 3: a restarted receiver gets every packet again, twice: each pick stored exactly once; its
        # groups are committed as soon as no packet is waiting, long before their 10 s
        proc, addr = _start(stations, store_url, "--group-ms", "10000")
        sock.settimeout(5)
        final = set()
        for seq in range(1, 41):
            for _ in range(2):
                sock.sendto(packets[seq], addr)
            while seq not in final:
                final.add(pk.decode_ack(sock.recv(100), table).seq)
        time.sleep(0.1)
        proc.terminate()
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert final == set(range(1, 41))
        with open_store(store_url) as s:
            rows = s.picks()
            assert len(rows) == 120 and len({(r["station"], r["phase"], r["time_ns"]) for r in rows}) == 120
            assert s.count("packets") == 40
    finally:
        sock.close()


def test_serve_commits_a_waiting_group_when_its_time_is_up(tmp_path, make_table, make_picks):
    """--group-wait: nothing else arrives and the group is far from full; the timer commits it."""
    import threading

    from fieldpick.edge.telemetry.endpoint import UdpEndpoint
    from fieldpick.edge.telemetry.receive import serve

    table = make_table(CODES[:1])
    url = "sqlite:///" + str(tmp_path / "t.db")
    rx = Receiver(table, [DbWriter(open_store(url))], group_packets=200, group_ms=300, group_wait=True)
    ep = UdpEndpoint("127.0.0.1", 0)
    got = {}

    def station():  # the receiver (and its SQLite connection) stays in this test's thread
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(30)
            t = time.monotonic()
            sock.sendto(pk.encode_picks(make_picks(2), table.by_code(CODES[0]), 1), ep.address)
            try:
                got["ack"] = pk.decode_ack(sock.recv(100), table).seq
                got["after_s"] = time.monotonic() - t
                got["stored"] = _count(url)
            finally:
                got["done"] = True

    th = threading.Thread(target=station)
    th.start()
    try:
        serve(rx, [ep], until=lambda: "done" in got, duration_s=60)
    finally:
        th.join(30)
        ep.close()
        rx.close()
    assert got["ack"] == 1 and got["stored"] == 2 and rx.counts["commits"] == 1
    assert got["after_s"] >= 0.3  # held for the group's 300 ms, then committed, then acknowledged
