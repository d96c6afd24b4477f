"""Transports over real sockets, a pty pair and files, and a link that misbehaves on purpose."""

import os
import threading

import pytest

from fieldpick.edge.errors import ConfigError, DataError, TelemetryError
from fieldpick.edge.picks import Pick
from fieldpick.edge.telemetry import packet as pk
from fieldpick.edge.telemetry.endpoint import FileEndpoint, SerialEndpoint, TcpEndpoint, UdpEndpoint
from fieldpick.edge.telemetry.link import (
    FileLink,
    LengthDecoder,
    SerialLink,
    SlipDecoder,
    TcpLink,
    UdpLink,
    parse_hostport,
    slip_encode,
)
from fieldpick.edge.telemetry.lossy import LossyRelay
from fieldpick.edge.telemetry.receive import Receiver, serve
from fieldpick.edge.telemetry.uplink import Uplink

CODE = "NC.KHMB..HHZ"
T0 = 1_790_000_000_000_000_000


class Collect(object):
    """A writer that keeps what the receiver writes."""

    def __init__(self):
        self.picks = []

    def write(self, entry, seq, picks):
        self.picks.extend(picks)

    def flush(self):
        pass

    def close(self):
        pass


class Running(object):
    """A receiver serving endpoints in a thread, stopped on exit."""

    def __init__(self, table, endpoints):
        self.sink = Collect()
        self.receiver = Receiver(table, [self.sink])
        self.endpoints = endpoints
        self._stop = threading.Event()
        self._thread = threading.Thread(target=serve, args=(self.receiver, endpoints),
                                        kwargs=dict(until=self._stop.is_set))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
        for ep in self.endpoints:
            ep.close()


@pytest.fixture
def table():
    return pk.StationTable([pk.StationEntry(3, CODE, b"0123456789abcdef0123456789abcdef")])


def day_of_picks(n, spacing_s=86.4):
    return [Pick(T0 + int(i * spacing_s * 1e9), "PS"[i % 2], 0.5 + (i % 50) / 100, 0.04, 100.0 + i, 10.0, "U", "")
            for i in range(n)]


def times(picks):
    return sorted(p.time_ns for p in picks)


# ---------------------------------------------------------------- framing


def test_slip_round_trip_escapes_and_resyncs():
    frames = [b"\xc0\xdb plain", b"", b"\xdb\xdc\xdd", bytes(range(256))]
    stream = b"noise" + b"".join(slip_encode(f) for f in frames)
    dec = SlipDecoder()
    out = []
    for i in range(0, len(stream), 7):  # arbitrary chunking of the serial byte stream
        out.extend(dec.feed(stream[i:i + 7]))
    assert out == [b"noise", frames[0], frames[2], frames[3]]  # empty frames vanish
    assert slip_encode(b"\xc0") == b"\xc0\xdb\xdc\xc0"
    bad = SlipDecoder()
    assert bad.feed(b"\xc0ab\xdbXcd\xc0ok\xc0") == [b"ok"] and bad.dropped == 1


def test_length_decoder_chunks_and_rejects_garbage():
    dec = LengthDecoder()
    assert dec.feed(b"\x00\x03ab") == []
    assert dec.feed(b"c\x00\x01z") == [b"abc", b"z"]
    with pytest.raises(TelemetryError, match="stream frame of 65535 bytes; allowed 1..4096"):
        LengthDecoder().feed(b"\xff\xff")


@pytest.mark.parametrize("text, expect", [("127.0.0.1:9", ("127.0.0.1", 9)), (":7000", ("127.0.0.1", 7000))])
def test_parse_hostport(text, expect):
    assert parse_hostport(text) == expect


def test_parse_hostport_rejects():
    with pytest.raises(ConfigError, match="address 'localhost' must read HOST:PORT"):
        parse_hostport("localhost")


# ---------------------------------------------------------------- each transport end to end


@pytest.mark.parametrize("kind", ["udp", "tcp"])
def test_socket_transports_deliver_and_ack(kind, table, tmp_path):
    endpoint = UdpEndpoint() if kind == "udp" else TcpEndpoint()
    link = (UdpLink if kind == "udp" else TcpLink)(*endpoint.address[:2])
    with Running(table, [endpoint]) as rx:
        up = Uplink(str(tmp_path / "j"), table.by_code(CODE), link, profile="rockblock", retry_s=0.5,
                    max_delay_s=60.0)
        up.submit(day_of_picks(60))  # 27 + 27 sent at once; 6 wait for max_delay_s
        assert len(up.journal.pending) == 6
        assert up.drain(10.0)
        up.close()
    assert times(rx.sink.picks) == times(day_of_picks(60))
    assert rx.receiver.counts["packets"] == 3 and up.stats["acked"] == 3


def test_tcp_link_survives_receiver_restart(table, tmp_path):
    first = TcpEndpoint()
    port = first.address[1]
    link = TcpLink("127.0.0.1", port, reconnect_s=0.05)
    up = Uplink(str(tmp_path / "j"), table.by_code(CODE), link, profile="lora222", retry_s=0.2, max_retry_s=0.4)
    with Running(table, [first]) as rx1:
        up.submit(day_of_picks(22))
        assert up.drain(5.0)
    up.submit(day_of_picks(44)[22:])  # link down: journaled and kept
    up.poll(0.1)
    assert up.backlog >= 1
    with Running(table, [TcpEndpoint("127.0.0.1", port)]) as rx2:
        assert up.drain(10.0)
    up.close()
    assert times(rx1.sink.picks + rx2.sink.picks) == times(day_of_picks(44))


def test_serial_line_over_a_pty_pair(table, tmp_path):
    master, slave = os.openpty()
    endpoint = SerialEndpoint(fd=master)
    link = SerialLink(os.ttyname(slave), baudrate=115200)  # opened raw through termios
    try:
        with Running(table, [endpoint]) as rx:
            up = Uplink(str(tmp_path / "j"), table.by_code(CODE), link, profile="iridium", retry_s=0.5)
            up.submit(day_of_picks(70))
            assert up.drain(10.0)
            up.close()
    finally:
        os.close(slave)
    assert times(rx.sink.picks) == times(day_of_picks(70))
    assert rx.receiver.counts["packets"] == 2


def test_serial_rejects_unknown_baud_rate():
    master, slave = os.openpty()
    try:
        with pytest.raises(ConfigError, match="baud rate 12345 not supported; allowed: .*9600"):
            SerialLink(os.ttyname(slave), baudrate=12345)
    finally:
        os.close(master)
        os.close(slave)


def test_file_link_is_read_back_by_the_file_endpoint(table, tmp_path):
    path = str(tmp_path / "packets.hex")
    up = Uplink(str(tmp_path / "j"), table.by_code(CODE), FileLink(path), profile="lora51")
    up.submit(day_of_picks(10))
    up.flush()
    assert up.backlog == 4  # a one-way link: nothing is acknowledged, all stay journaled
    up.close()
    with open(path, "a") as f:
        f.write("not hex at all\n")
    sink = Collect()
    rx = Receiver(table, [sink])
    ep = FileEndpoint(path)
    serve(rx, [ep])
    ep.close()
    assert times(sink.picks) == times(day_of_picks(10)) and ep.bad_lines == 1


def test_submit_refuses_foreign_picks_before_journaling(table, tmp_path):
    up = Uplink(str(tmp_path / "j"), table.by_code(CODE), FileLink(str(tmp_path / "x.hex")))
    good = day_of_picks(1)[0]
    alien = Pick(T0, "P", 0.5, station="XX.OTHER..HHZ")
    with pytest.raises(DataError, match="pick of station 'XX.OTHER..HHZ' submitted to the uplink of 'NC.KHMB..HHZ'"):
        up.submit([good, alien])
    assert up.journal.next_pick == 0 and up.stats["submitted"] == 0  # all or nothing
    up.close()


# ---------------------------------------------------------------- the bad link


@pytest.mark.parametrize(
    "profile, n, seed", [("lora51", 150, 1), pytest.param("iridium", 1000, 2, marks=pytest.mark.slow)]
)
def test_lossy_link_delivers_every_pick_exactly_once(profile, n, seed, table, tmp_path):
    endpoint = UdpEndpoint()
    with Running(table, [endpoint]) as rx, LossyRelay(
        endpoint.address, drop=0.3, duplicate=0.2, corrupt=0.15, reorder=0.3, seed=seed
    ) as relay:
        up = Uplink(str(tmp_path / "j"), table.by_code(CODE), UdpLink(*relay.address), profile=profile,
                    retry_s=0.15, max_retry_s=0.6, window=16)
        for batch in range(0, n, 7):
            up.submit(day_of_picks(n)[batch:batch + 7])
            up.poll(0.0)
        assert up.drain(60.0)
        up.close()
    got = times(rx.sink.picks)
    assert got == times(day_of_picks(n))  # every pick, once
    c = relay.counts
    assert c["dropped"] > 0.2 * c["in"] and c["duplicated"] > 0 and c["corrupted"] > 0 and c["reordered"] > 0
    assert rx.receiver.counts["replayed"] > 0  # duplicates seen and not written again
    assert rx.receiver.counts["forged"] + rx.receiver.counts["truncated"] > 0  # corruption caught


def test_day_long_outage_is_recovered_in_full(table, tmp_path):
    """100 picks over 24 h (simulated clock) into a dead link, then the link returns."""
    endpoint = UdpEndpoint()
    fake = [0.0]
    with Running(table, [endpoint]) as rx, LossyRelay(endpoint.address, drop=0.0, duplicate=0.0, corrupt=0.0,
                                                      reorder=0.0) as relay:
        relay.blackout = True
        up = Uplink(str(tmp_path / "j"), table.by_code(CODE), UdpLink(*relay.address), profile="lora222",
                    max_delay_s=600.0, retry_s=60.0, max_retry_s=1800.0, clock=lambda: fake[0])
        picks = day_of_picks(100, spacing_s=864.0)
        for p in picks:
            fake[0] = (p.time_ns - T0) / 1e9
            up.submit([p])
            up.poll(0.0)
        assert rx.receiver.counts["packets"] == 0 and up.backlog > 0
        # while the link looked down only full packets (22 picks) were made after the first one
        assert up.stats["packets"] <= 1 + 100 // 22
        relay.blackout = False
        start = fake[0]
        tries_before = up.stats["sent"] + up.stats["resent"]
        while up.backlog and fake[0] - start < 6 * 3600:
            fake[0] += 10.0
            up.poll(0.01)
        up.close()
    assert times(rx.sink.picks) == times(picks)  # every pick, exactly once
    assert up.stats["packets"] <= 2 + 100 // 22
    # a clean link after the outage: about one transmission per packet, no storm of resends
    assert up.stats["sent"] + up.stats["resent"] - tries_before <= 2 * up.stats["packets"]


def test_from_config_two_stations_share_one_link(tmp_path):
    table = pk.StationTable.generate([CODE, "NC.KBBM..HHZ"])
    table.save(str(tmp_path / "stations.json"))
    endpoint = UdpEndpoint()
    cfg = {"table": str(tmp_path / "stations.json"), "station": [CODE, "NC.KBBM..HHZ"],
           "journal": str(tmp_path / "journal"), "link": "udp://127.0.0.1:%d" % endpoint.address[1],
           "profile": "lora51", "retry_s": 0.2}
    with Running(table, [endpoint]) as rx:
        up = Uplink.from_config(cfg)
        a = Pick(T0, "P", 0.9, station=CODE)
        b = Pick(T0 + 10**9, "S", 0.8, station="NC.KBBM..HHZ")
        assert up.send(a) == 1 and up.submit([b]) == 1
        with pytest.raises(DataError, match="pick of station 'XX.X..HHZ'; this box sends for: NC.KHMB..HHZ, NC.KBBM..HHZ"):
            up.submit([a, Pick(T0, "P", 0.5, station="XX.X..HHZ")])
        assert up.drain(10.0)
        up.close()
    assert sorted((p.station, p.time_ns) for p in rx.sink.picks) == [("NC.KBBM..HHZ", T0 + 10**9), (CODE, T0)]
    assert sorted(os.listdir(str(tmp_path / "journal"))) == ["NC.KBBM..HHZ", CODE]


@pytest.mark.parametrize(
    "change, match",
    [
        ({"retries": 3}, "unknown telemetry keys retries; allowed: table, station"),
        ({"link": "http://x:1"}, "link 'http://x:1' not understood; allowed: 'udp://HOST:PORT'"),
        ({"station": "XX.NOPE..HHZ"}, "'XX.NOPE..HHZ' is not in the station table"),
        ({"profile": "lora"}, "unknown link profile 'lora'; allowed: iridium"),
    ],
)
def test_from_config_errors_name_the_value(change, match, table, tmp_path):
    table.save(str(tmp_path / "stations.json"))
    cfg = {"table": str(tmp_path / "stations.json"), "station": CODE, "journal": str(tmp_path / "j"),
           "link": "file:%s" % (tmp_path / "out.hex")}
    cfg.update(change)
    with pytest.raises(ConfigError, match=match):
        Uplink.from_config(cfg)
