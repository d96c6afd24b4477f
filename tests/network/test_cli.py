"""The verbs (picks, stations, associate) and `fieldpick receive --db` over a real loopback socket."""

import csv
import json
import socket
import subprocess
import sys

import pytest

from fieldpick.edge.cli import main
from fieldpick.edge.telemetry import packet as pk
from fieldpick.network.store import open_store

CODES = ("NC.KHMB..HHZ", "NC.KBBM..HHZ")


def test_receive_db_end_to_end_over_udp(tmp_path, store_url, make_table, make_picks):
    table = make_table(CODES)
    stations = str(tmp_path / "stations.json")
    table.save(stations)
    ew = str(tmp_path / "picks.ew")

    def run_receiver(packets, count):
        proc = subprocess.Popen(
            [sys.executable, "-m", "fieldpick.edge.cli", "receive", "--stations", stations, "--udp", "127.0.0.1:0",
             "--db", store_url, "--model", "default", "--earthworm", ew, "--ew-module", "7",
             "--ew-installation", "42", "--count", str(count), "--duration", "30"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        assert line.startswith("listening udp 127.0.0.1:"), line + proc.stderr.read()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(10)
        acks = []
        for data in packets:
            sock.sendto(data, ("127.0.0.1", int(line.rsplit(":", 1)[1])))
            acks.append(pk.decode_ack(sock.recv(100), table).seq)
        sock.close()
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        return acks, out

    a, b = table.by_code(CODES[0]), table.by_code(CODES[1])
    p1, p2 = make_picks(4), make_picks(3, code=CODES[1])
    first = [pk.encode_picks(p1, a, 1), pk.encode_picks(p1, a, 1), pk.encode_picks(p2, b, 5)]
    acks, out = run_receiver(first, 2)
    assert acks == [1, 1, 5] and "received 2 packets, 7 picks; replayed 1" in out
    # a restarted receiver without --state: the same packets again, and one new one
    second = [pk.encode_picks(p1, a, 1), pk.encode_picks(p2, b, 5), pk.encode_picks(make_picks(1, t=2 * 10**18), a, 2)]
    acks, _ = run_receiver(second, 3)
    assert acks == [1, 5, 2]
    with open_store(store_url) as s:
        rows = s.picks()
        assert len(rows) == 8  # exactly once, though the store was offered 14
        assert {r["model_name"] for r in rows} == {"fieldpick-default"}
        assert s.count("packets") == 3
    lines = open(ew).read().splitlines()
    assert [int(x.split()[3]) for x in lines] == list(range(len(lines)))  # one sequence across both runs
    assert all(x.split()[1:3] == ["7", "42"] for x in lines)


def _db(tmp_path):
    return "sqlite:///" + str(tmp_path / "cli.db")


def test_picks_verb_ingests_and_queries(tmp_path, capsys, make_picks):
    lines = tmp_path / "picks.jsonl"
    lines.write_text("".join(json.dumps(p.to_dict()) + "\n" for p in make_picks(6)))
    db = _db(tmp_path)
    assert main(["picks", "--db", db, "--ingest", str(lines), "--ingest", str(lines), "--model", "default"]) == 0
    out, err = capsys.readouterr()
    assert "6 picks, 6 new" in err and "6 picks, 0 new" in err
    rows = list(csv.DictReader(out.splitlines()))
    assert len(rows) == 6 and rows[0]["model_name"] == "fieldpick-default"
    assert main(["picks", "--db", db, "--phase", "S", "--since", "2026-11-22T03:04:08", "--format", "json"]) == 0
    got = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [g["phase"] for g in got] == ["S", "S", "S"] and got[0]["time_utc"] == "2026-11-22T03:04:08.178Z"
    out_path = str(tmp_path / "p.xml")
    assert main(["picks", "--db", db, "--format", "quakeml", "--out", out_path]) == 0
    obspy = pytest.importorskip("obspy")
    assert len(obspy.read_events(out_path)[0].picks) == 6
    assert main(["picks", "--db", db, "--format", "earthworm", "--module-id", "3"]) == 0
    assert capsys.readouterr().out.splitlines()[0].split()[:4] == ["8", "3", "255", "0"]


def test_picks_verb_errors_are_clear(tmp_path, capsys):
    assert main(["picks", "--db", _db(tmp_path) + "x", "--since", "yesterday"]) == 2
    assert "no database at" in capsys.readouterr().err
    open_store(_db(tmp_path)).close()
    assert main(["picks", "--db", _db(tmp_path), "--since", "yesterday"]) == 2
    assert "expected ISO 8601" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"time_ns": 1}\n')
    assert main(["picks", "--db", _db(tmp_path), "--ingest", str(bad)]) == 2
    assert "line 1 is not a pick" in capsys.readouterr().err


def test_stations_verb_imports_and_lists(tmp_path, capsys, make_picks):
    db = _db(tmp_path)
    table = tmp_path / "st.csv"
    table.write_text("# a comment\nnetwork,station,location,latitude,longitude,horizontals\n"
                     "NC,KHMB,,37.1,-122.2,HHN HHE\nNC,KBBM,,37.3,-122.0,\n")
    with open_store(db) as s:
        s.insert_picks(make_picks(2), received_ns=make_picks(2)[1].time_ns + 3 * 10**9)
        s.insert_soh("NC.KHMB.", make_picks(1)[0].time_ns, {"battery_v": 12.6})
    assert main(["stations", "--db", db, "--import", str(table), "--format", "json"]) == 0
    out, err = capsys.readouterr()
    rows = {r["station"]: r for r in map(json.loads, out.splitlines())}
    assert "2 stations" in err
    k = rows["NC.KHMB."]
    assert k["latitude"] == 37.1 and k["picks"] == 2 and k["latency_s"] == 3.0
    assert k["last_soh"]["battery_v"] == 12.6
    bad = tmp_path / "bad.csv"
    bad.write_text("network,station,location,latitude,longitude\nNC,X,,95,0\n")
    assert main(["stations", "--db", db, "--import", str(bad)]) == 2
    assert "latitude: '95' outside -90..90" in capsys.readouterr().err


def test_stationxml_import(tmp_path):
    obspy = pytest.importorskip("obspy")
    from obspy.core.inventory import Channel, Inventory, Network, Station
    from obspy.core.inventory.response import InstrumentSensitivity, Response

    from fieldpick.network.stations import read_stationxml

    chans = [Channel(c, "", 36.0, -117.5, 700.0, 0.0, azimuth=az, dip=dip, sample_rate=100)
             for c, az, dip in (("HHZ", 0, -90), ("HHN", 0, 0), ("HHE", 90, 0))]
    chans[0].response = Response(instrument_sensitivity=InstrumentSensitivity(6.3e8, 1.0, "M/S", "COUNTS"))
    inv = Inventory([Network("CI", [Station("XYZ", 36.0, -117.5, 700.0, channels=chans)])], source="test")
    path = str(tmp_path / "inv.xml")
    inv.write(path, format="STATIONXML")
    (row,) = read_stationxml(path)
    assert row["code"] == "CI.XYZ." and row["vertical"] == "HHZ" and row["horizontals"] == "HHE HHN"
    assert row["gain"] == pytest.approx(6.3e8) and row["elevation_m"] == 700.0
    assert obspy is not None


def test_associate_verb_writes_events(tmp_path, capsys):
    from fieldpick.edge.picks import Pick
    from fieldpick.network.synthetic import make_network
    from fieldpick.network.velocity import TravelTimes

    net = make_network(n_stations=8, n_events=2, size_km=50, span_s=60, missed=0.0, false=0.0, seed=2,
                       tt=TravelTimes(max_dist_km=100, max_depth_km=30))
    db = _db(tmp_path)
    table = tmp_path / "st.csv"
    table.write_text("network,station,location,latitude,longitude\n" + "".join(
        "XX,S%02d,,%.5f,%.5f\n" % (i, la, lo) for i, (la, lo) in enumerate(zip(net.lat, net.lon))))
    t0 = 1_562_261_629 * 10**9
    with open_store(db) as s:
        s.insert_picks([Pick(t0 + int(t * 1e9), "S" if sf else "P", 0.8, 0.03, 1.0, 10.0, "?", net.codes[k] + ".HHZ")
                        for k, sf, t in zip(net.sta, net.is_s, net.t)])
    assert main(["stations", "--db", db, "--import", str(table)]) == 0
    capsys.readouterr()
    assert main(["associate", "--db", db, "--format", "json"]) == 0
    out, err = capsys.readouterr()
    events = [json.loads(x) for x in out.splitlines()]
    assert "2 new events" in err and len(events) == 2
    lat, lon = net.projection.to_latlon(net.events[0, 0], net.events[0, 1])
    assert events[0]["latitude"] == pytest.approx(float(lat), abs=0.01)
    assert events[0]["longitude"] == pytest.approx(float(lon), abs=0.01)
    assert main(["associate", "--db", db]) == 0
    assert "0 new events" in capsys.readouterr().err


def test_live_association_in_the_receivers_writer(tmp_path):
    from fieldpick.edge.picks import Pick
    from fieldpick.network.ingest import DbWriter
    from fieldpick.network.stations import import_stations
    from fieldpick.network.synthetic import make_network
    from fieldpick.network.velocity import TravelTimes

    net = make_network(n_stations=8, n_events=3, size_km=50, span_s=900, missed=0.0, false=0.0, seed=6,
                       tt=TravelTimes(max_dist_km=100, max_depth_km=30), min_gap_s=250)
    store = open_store(_db(tmp_path))
    import_stations(store, [{"code": c, "latitude": float(a), "longitude": float(b)}
                            for c, a, b in zip(net.codes, net.lat, net.lon)])
    w = DbWriter(store, associate_s=0.0)
    t0 = 1_562_261_629 * 10**9
    seq = 0
    for k in range(3):  # each station sends its picks of an event in one packet, events in time order
        for j in range(8):
            m = (net.truth == k) & (net.sta == j)
            picks = [Pick(t0 + int(t * 1e9), "S" if sf else "P", 0.8, 0.03, 1.0, 10.0, "?", net.codes[j] + ".HHZ")
                     for sf, t in sorted(zip(net.is_s[m], net.t[m]), key=lambda x: x[1])]
            seq += 1
            w.write(type("Entry", (), {"id": j + 1})(), seq, picks)
            assert w.flush() == []  # the receiver's commit
        if k == 1:
            assert w.counts["events"] == 1  # the first event settled and was located; the second not yet
    w.close()  # the rest is associated on closing
    assert w.counts["events"] == 3
    with open_store(_db(tmp_path)) as s:
        assert s.count("events") == 3 and s.count("arrivals") == len(net.t)
