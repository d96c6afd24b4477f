"""The SeedLink client against the project's SeedLink server on 127.0.0.1: real sockets,
real protocol (SL + hex sequence + 512-byte records), connections dropped mid-record."""

import io
import socket
import threading
import time

import numpy as np
import pytest

from fieldpick.edge.errors import ConfigError, DataError
from fieldpick.edge.sources.mseed import read_records
from fieldpick.edge.sources.seedlink import SeedLinkClient, StreamSpec, load_state, parse_streams
from fieldpick.edge.sources.slserver import SeedLinkServer

obspy = pytest.importorskip("obspy")

T0 = obspy.UTCDateTime(2026, 11, 22, 3, 0, 0)
FAST = dict(backoff_s=(0.01, 0.04), keepalive_s=1.0, timeout_s=10.0, connect_timeout_s=5.0)


def _records(net="XX", sta="STA", cha="HHZ", n=40, seed=1):
    """n 512-byte Steim-2 records (ObsPy-written), as bytes each."""
    rng = np.random.default_rng(seed)
    tr = obspy.Trace(np.cumsum(rng.integers(-200, 200, 400 * n)).astype(np.int32))
    tr.stats.update(dict(network=net, station=sta, location="00", channel=cha, sampling_rate=100.0,
                         starttime=T0))
    buf = io.BytesIO()
    tr.write(buf, format="MSEED", encoding="STEIM2", reclen=512)
    raw = buf.getvalue()
    return [raw[i:i + 512] for i in range(0, 512 * n, 512)]


def _key(rec):
    return (rec.seed_id, rec.start_ns, rec.samples.tobytes())


def _expected(raws):
    return [_key(read_records(r)[0]) for r in raws]


def _window(**kw):
    return dict(mode="TIME", start_ns=T0.ns - 10**9, end_ns=T0.ns + 10**13, **kw)


@pytest.fixture
def server():
    servers = []

    def make(**kw):
        s = SeedLinkServer(**kw).start()
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


@pytest.mark.parametrize("drop_at", [[], [5], [5, 17, 30], [0, 1, 2]])
def test_fetch_window_resumes_without_loss_or_duplicates(server, drop_at):
    raws = _records()
    srv = server(drop_at=drop_at)
    for r in raws:
        srv.add(r)
    client = SeedLinkClient("127.0.0.1", srv.port, "XX_STA", **_window(**FAST))
    got = [_key(r) for r in client]
    assert got == _expected(raws)
    assert client.stats.partial_packets == len(drop_at) == client.stats.reconnects
    assert client.stats.duplicates == 0 and client.seqnums == {("XX", "STA"): 39}
    # drop_at counts packets sent (whole or cut); each cut packet is asked for again
    cut, sent = [], 0
    for d in drop_at:
        cut.append((cut[-1] if cut else 0) + d - sent)
        sent = d + 1
    resumes = [c for c in srv.commands if c.startswith(("FETCH", "TIME"))][1:]
    assert resumes == [("FETCH %06X" % k) if k else resumes[0] for k in cut]
    assert all(c.startswith("TIME") for c, k in zip(resumes, cut) if k == 0)  # nothing delivered yet


def test_realtime_data_mode_resumes_after_a_drop_mid_record(server):
    raws = _records(n=20)
    srv = server(drop_at=[8])
    client = SeedLinkClient("127.0.0.1", srv.port, "XX_STA", **FAST)
    got = []

    def run():
        for rec in client:
            got.append(_key(rec))
            if len(got) == 20:
                client.close()

    t = threading.Thread(target=run)
    t.start()
    deadline = time.monotonic() + 10
    while "END" not in srv.commands and time.monotonic() < deadline:
        time.sleep(0.01)
    for r in raws:  # live data, after the client said END
        srv.add(r)
    t.join(timeout=20)
    assert not t.is_alive()
    assert got == _expected(raws)
    assert "DATA" in srv.commands and "DATA 000008" in srv.commands
    assert client.stats.partial_packets == 1 and client.stats.duplicates == 0


def test_duplicates_from_a_faulty_server_are_dropped(server):
    raws = _records(n=30)
    srv = server(drop_at=[10], ignore_seq=True)
    for r in raws:
        srv.add(r)
    client = SeedLinkClient("127.0.0.1", srv.port, "XX_STA", **_window(**FAST))
    got = [_key(r) for r in client]
    assert got == _expected(raws)
    assert client.stats.duplicates == 10  # packets 0..9 sent again after the reconnect


def test_two_stations_resume_each_from_its_own_sequence(server):
    a, b = _records("XX", "STA", n=12), _records("YY", "STB", n=12, seed=2)
    srv = server(drop_at=[7, 15])
    for ra, rb in zip(a, b):
        srv.add(ra)
        srv.add(rb)
    client = SeedLinkClient("127.0.0.1", srv.port, "XX_STA,YY_STB", **_window(**FAST))
    got = [_key(r) for r in client]
    assert sorted(got) == sorted(_expected(a) + _expected(b)) and len(set(got)) == 24
    assert [k for k in got if k[0].startswith("XX")] == _expected(a)
    assert client.seqnums == {("XX", "STA"): 11, ("YY", "STB"): 11}
    # first drop inside packet 7 (the 8th sent): XX got 0..3, YY 0..2 and loses its packet 3
    assert ["FETCH 000004", "FETCH 000003"] == [c for c in srv.commands if c.startswith("FETCH")][:2]


def test_selectors_pick_channels(server):
    z, n = _records(cha="HHZ", n=5), _records(cha="HHN", n=5, seed=3)
    srv = server()
    for r in z + n:
        srv.add(r)
    client = SeedLinkClient("127.0.0.1", srv.port, "XX_STA:00HHN", **_window(**FAST))
    got = [_key(r) for r in client]
    assert got == _expected(n)
    assert "SELECT 00HHN" in srv.commands


def test_keepalive_is_sent_when_the_link_is_quiet(server):
    srv = server()
    client = SeedLinkClient("127.0.0.1", srv.port, "XX_STA", keepalive_s=0.2, timeout_s=5.0)
    t = threading.Thread(target=lambda: list(client))
    t.start()
    deadline = time.monotonic() + 10
    while client.stats.info_packets < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    client.close()
    t.join(timeout=10)
    assert not t.is_alive()
    assert srv.commands.count("INFO ID") >= 2 and client.stats.info_packets >= 2
    assert client.stats.reconnects == 0


def test_backoff_doubles_up_to_its_limit_then_connects(server):
    raws = _records(n=3)
    srv = server(refuse=4)
    for r in raws:
        srv.add(r)
    pauses = []
    client = SeedLinkClient("127.0.0.1", srv.port, "XX_STA", sleep=pauses.append,
                            **_window(backoff_s=(0.5, 2.0)))
    got = [_key(r) for r in client]
    assert got == _expected(raws)
    assert pauses == [0.5, 1.0, 2.0, 2.0] == client.stats.backoff_s


def test_gives_up_after_max_reconnects_when_nothing_listens():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    pauses = []
    client = SeedLinkClient("127.0.0.1", port, "XX_STA", max_reconnects=2, sleep=pauses.append,
                            backoff_s=(0.25, 1.0))
    assert list(client) == []
    assert pauses == [0.25, 0.5] and client.stats.connections == 0


def test_server_error_reply_is_a_data_error(server):
    srv = server()
    client = SeedLinkClient("127.0.0.1", srv.port, "XX_STA:TOOLONGSEL", **FAST)
    with pytest.raises(DataError, match="answered 'ERROR' to 'SELECT TOOLONGSEL'"):
        list(client)


@pytest.mark.parametrize(
    "text,match",
    [("XXSTA", "expected NET_STA"), ("", "no SeedLink streams"), ("ABC_STA", "network of 1-2"),
     ("XX_TOOLONG", "station of 1-5")],
)
def test_parse_streams_rejects_bad_specs(text, match):
    with pytest.raises(ConfigError, match=match):
        parse_streams(text)


def test_parse_streams_and_client_options():
    assert parse_streams("xx_sta:HH? 00BHZ, YY_B") == [
        StreamSpec("XX", "STA", ("HH?", "00BHZ")), StreamSpec("YY", "B", ())]
    with pytest.raises(ConfigError, match="mode 'LIVE' is not one of DATA, FETCH, TIME"):
        SeedLinkClient("127.0.0.1", 1, "XX_STA", mode="live")
    with pytest.raises(ConfigError, match="TIME needs start_ns"):
        SeedLinkClient("127.0.0.1", 1, "XX_STA", mode="TIME")
    with pytest.raises(ConfigError, match="0 < keepalive_s < timeout_s"):
        SeedLinkClient("127.0.0.1", 1, "XX_STA", keepalive_s=5, timeout_s=1)


def test_state_file_resumes_a_restarted_client(server, tmp_path):
    raws = _records(n=30)
    srv = server()
    for r in raws:
        srv.add(r)
    state = str(tmp_path / "seedlink.json")
    first = SeedLinkClient("127.0.0.1", srv.port, "XX_STA", state_path=state, **_window(**FAST))
    got = []
    for rec in first:
        got.append(_key(rec))
        if len(got) == 12:
            break  # the station stops (the generator closes and saves)
    first.close()
    assert load_state(state, "127.0.0.1:%d" % srv.port) == {("XX", "STA"): 11}
    second = SeedLinkClient("127.0.0.1", srv.port, "XX_STA", state_path=state, **_window(**FAST))
    got += [_key(r) for r in second]
    assert got == _expected(raws)
    assert "FETCH 00000C" in srv.commands


@pytest.mark.parametrize(
    "content,match",
    [("{not json", "cannot be read"), ('{"format": "other"}', "is not a SeedLink state file"),
     ('{"format": "fieldpick-seedlink-state", "version": 9}', "has version 9; this fieldpick reads version 1"),
     ('{"format": "fieldpick-seedlink-state", "version": 1, "server": "a:1"}', "belongs to server 'a:1'")],
)
def test_bad_state_files_are_refused(tmp_path, content, match):
    path = tmp_path / "state.json"
    path.write_text(content)
    with pytest.raises(DataError, match=match):
        SeedLinkClient("127.0.0.1", 1, "XX_STA", state_path=str(path))


def test_sequence_numbers_wrap_at_2_to_the_24(server):
    raws = _records(n=8)
    srv = server(first_seq=0xFFFFFD, drop_at=[4])  # wire numbers FFFFFD FFFFFE FFFFFF 0 1 ...
    for r in raws:
        srv.add(r)
    client = SeedLinkClient("127.0.0.1", srv.port, "XX_STA", **_window(**FAST))
    got = [_key(r) for r in client]
    assert got == _expected(raws) and client.stats.duplicates == 0
    assert "FETCH 000001" in srv.commands  # packets FFFFFD..000000 delivered, 000001 cut
    assert client.seqnums == {("XX", "STA"): 4}
