"""The receiver: replay protection across restarts, CSV, Earthworm, QuakeML (ObsPy), the CLI."""

import csv
import os
import socket
import subprocess
import sys

import pytest

from fieldpick.edge.errors import ConfigError
from fieldpick.edge.picks import Pick
from fieldpick.edge.telemetry import packet as pk
from fieldpick.edge.telemetry.receive import (
    CsvWriter,
    EarthwormWriter,
    QuakeMLWriter,
    Receiver,
    ReplayWindow,
    iso_utc,
    main,
)

CODE = "NC.KHMB..HHZ"
T = 1_795_316_645 * 10**9 + 678_000_000  # 2026-11-22T03:04:05.678Z


@pytest.fixture
def table():
    return pk.StationTable([pk.StationEntry(12, CODE, b"k" * 32)])


def three_picks():
    return [
        Pick(T, "P", 0.9, 0.03, 123.0, 20.0, "U", CODE),
        Pick(T + 2_500_000_000, "S", 0.6, 0.15, 456.0, 8.0, "?", CODE),
        Pick(T + 3_000_000_000, "P", 0.4, 0.5, 7.0, 1.5, "D", CODE),
    ]


def packet(table, seq, picks=None):
    return pk.encode_picks(picks or three_picks(), table.by_code(CODE), seq)


def test_iso_utc_by_hand():
    assert iso_utc(T) == "2026-11-22T03:04:05.678000Z"
    assert iso_utc(T, 3) == "2026-11-22T03:04:05.678Z"
    assert iso_utc(0, 0) == "1970-01-01T00:00:00Z"


def test_replay_window_accepts_reordered_rejects_repeats():
    w = ReplayWindow()
    for seq in (100, 102, 101):  # 102 overtook 101 on the link
        assert w.is_new(1, seq)
        w.add(1, seq)
    t = w.tracks[1]
    assert (t.first, t.floor, t.seen) == (100, 103, set())
    assert w.cumulative(1) == 103
    assert not any(w.is_new(1, s) for s in (100, 101, 102))  # repeats
    assert w.is_new(1, 105) and w.is_new(2, 100)  # later, and another station


def test_replay_window_takes_a_backlog_older_than_first_contact():
    w = ReplayWindow(span=10)
    w.add(1, 1000)  # the receiver first hears a fresh packet; 995..999 are still queued
    for seq in (997, 995, 999, 998, 996):
        assert w.is_new(1, seq)
        w.add(1, seq)
        assert not w.is_new(1, seq)
    t = w.tracks[1]
    assert (t.first, t.floor, t.early) == (995, 1001, set())  # the backlog folded into the run
    assert not w.is_new(1, 989)  # further back than span: refused


def test_replay_window_gives_up_gaps_beyond_max_seen():
    w = ReplayWindow(max_seen=3)
    for seq in (10, 12, 14, 16, 18):  # 11, 13, 15, 17 never come
        w.add(1, seq)
    t = w.tracks[1]
    assert t.floor == 13 and t.seen == {14, 16, 18}  # gave up on 11 (logged)
    assert not w.is_new(1, 11) and w.is_new(1, 13)


def test_replay_rejected_after_receiver_restart(table, tmp_path):
    state = str(tmp_path / "state.json")
    csv_path = str(tmp_path / "picks.csv")
    rx = Receiver(table, [CsvWriter(csv_path)], state_path=state)
    ack = rx.handle(packet(table, 500))
    assert pk.decode_ack(ack, table) == pk.Ack(12, 501, 500)  # cumulative: everything from 500 to 501
    rx.close()
    again = Receiver(table, [CsvWriter(csv_path)], state_path=state)
    replay_ack = again.handle(packet(table, 500))  # an attacker (or the link) replays it
    assert pk.decode_ack(replay_ack, table).seq == 500  # acknowledged again, so the station stops
    assert again.counts["replayed"] == 1 and again.counts["packets"] == 0
    again.close()
    rows = list(csv.DictReader(open(csv_path)))
    assert len(rows) == 3  # written once


def test_rejections_are_counted_and_not_written(table, tmp_path):
    rx = Receiver(table, [CsvWriter(str(tmp_path / "p.csv"))])
    good = packet(table, 1)
    altered = bytearray(good)
    altered[20] ^= 4
    forged = pk.encode_picks(three_picks(), pk.StationEntry(12, CODE, b"x" * 32), 2)
    stranger = pk.encode_picks(three_picks(), pk.StationEntry(13, CODE, b"k" * 32), 2)
    for data in (bytes(altered), forged, good[:-1], stranger, b"", good + b"!"):
        assert rx.handle(data) is None
    assert {k: v for k, v in rx.counts.items() if v} == {
        "forged": 2, "truncated": 2, "unknown_station": 1, "malformed": 1}
    rx.close()
    assert open(str(tmp_path / "p.csv")).read().count("\n") == 1  # the header only


def test_csv_rows_by_hand(table, tmp_path):
    path = str(tmp_path / "p.csv")
    rx = Receiver(table, [CsvWriter(path)])
    rx.handle(packet(table, 7))
    rx.close()
    rows = list(csv.DictReader(open(path)))
    assert rows[0]["time_utc"] == "2026-11-22T03:04:05.678Z" and rows[0]["time_ns"] == str(T)
    assert (rows[1]["phase"], rows[1]["polarity"], rows[1]["onset_weight"], rows[1]["seq"]) == ("S", "?", "2", "7")
    assert rows[0]["probability"] == "0.9020"  # round(0.9 * 255) / 255 = 230 / 255


def test_earthworm_pick_scnl_lines_by_hand(table, tmp_path):
    path = str(tmp_path / "picks.ew")
    w = EarthwormWriter(path, msg_type=10, mod_id=5, inst_id=2)
    w.write(table.by_code(CODE), 1, three_picks())
    w.close()
    lines = open(path).read().splitlines()
    assert lines[0] == "10 5 2 0 KHMB.HHZ.NC.-- U0 20261122030405.68 123 0 0 P"
    assert lines[1] == "10 5 2 1 KHMB.HHZ.NC.-- ?2 20261122030408.18 456 0 0 S"
    assert lines[2] == "10 5 2 2 KHMB.HHZ.NC.-- D4 20261122030408.68 7 0 0 P"


def test_quakeml_is_read_by_obspy(table, tmp_path):
    obspy = pytest.importorskip("obspy", reason="obspy is the QuakeML reference; install fieldpick[dev]")
    path = str(tmp_path / "picks.xml")
    rx = Receiver(table, [QuakeMLWriter(path)])
    rx.handle(packet(table, 41))
    rx.handle(packet(table, 42, three_picks()[:1]))
    rx.close()
    cat = obspy.read_events(path, format="QUAKEML")
    assert len(cat) == 1
    picks = cat[0].picks
    assert len(picks) == 4
    p0, p1, p2 = picks[:3]
    assert p0.time == obspy.UTCDateTime("2026-11-22T03:04:05.678Z")
    assert p1.time - p0.time == pytest.approx(2.5, abs=1e-6)
    assert (p0.phase_hint, p1.phase_hint, p2.phase_hint) == ("P", "S", "P")
    assert (p0.polarity, p1.polarity, p2.polarity) == ("positive", "undecidable", "negative")
    assert (p0.onset, p1.onset, p2.onset) == ("impulsive", "emergent", "questionable")
    assert p0.waveform_id.get_seed_string() == CODE
    assert p2.time_errors.uncertainty == pytest.approx(0.5, rel=0.02)
    assert p0.evaluation_mode == "automatic"
    amps = {a.pick_id.id: a for a in cat[0].amplitudes}
    assert amps[p0.resource_id.id].generic_amplitude == pytest.approx(123.0, rel=1e-3)
    assert amps[p0.resource_id.id].snr == pytest.approx(10.0, rel=0.01)  # 20 dB
    from obspy.io.quakeml.core import _validate

    try:
        import lxml  # noqa: F401  (ObsPy's schema check needs it)
    except ImportError:
        return
    assert _validate(path)  # the QuakeML 1.2 XSD that ObsPy ships


# ---------------------------------------------------------------- the command line


def test_cli_make_table_refuses_to_overwrite(tmp_path, capsys):
    path = str(tmp_path / "stations.json")
    assert main(["--stations", path, "--make-table", CODE, "NC.KBBM..HHZ"]) == 0
    assert "wrote %s with 2 stations" % path in capsys.readouterr().out
    assert [e.code for e in pk.StationTable.load(path)] == [CODE, "NC.KBBM..HHZ"]
    with pytest.raises(ConfigError, match="exists; refusing to overwrite its keys"):
        main(["--stations", path, "--make-table", CODE])
    with pytest.raises(ConfigError, match="nothing to receive from; give --udp, --tcp, --serial or --file"):
        main(["--stations", path])


def test_cli_receives_udp_in_a_subprocess(table, tmp_path):
    stations = str(tmp_path / "stations.json")
    table.save(stations)
    out = {k: str(tmp_path / ("picks." + k)) for k in ("csv", "xml", "ew")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fieldpick.edge.cli", "receive", "--stations", stations, "--udp", "127.0.0.1:0",
         "--csv", out["csv"], "--quakeml", out["xml"], "--earthworm", out["ew"], "--count", "2",
         "--duration", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    line = proc.stdout.readline()
    assert line.startswith("listening udp 127.0.0.1:"), line + proc.stderr.read()
    port = int(line.rsplit(":", 1)[1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(10)
    acks = []
    for data in (b"junk", packet(table, 1), packet(table, 1), packet(table, 2)):
        sock.sendto(data, ("127.0.0.1", port))
        if data != b"junk":
            acks.append(pk.decode_ack(sock.recv(100), table).seq)
    sock.close()
    rest, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert acks == [1, 1, 2]
    assert "received 2 packets, 6 picks; replayed 1; rejected: truncated 1" in rest
    assert len(list(csv.DictReader(open(out["csv"])))) == 6
    assert len(open(out["ew"]).read().splitlines()) == 6
    assert open(out["xml"]).read().count("<pick ") == 6


def test_cli_reads_a_hex_file(table, tmp_path):
    stations = str(tmp_path / "stations.json")
    table.save(stations)
    hexfile = tmp_path / "in.hex"
    hexfile.write_text(packet(table, 9).hex() + "\n" + packet(table, 9).hex() + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "fieldpick.edge.cli", "receive", "--stations", stations, "--file", str(hexfile),
         "--csv", str(tmp_path / "o.csv")], capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert "received 1 packets, 3 picks; replayed 1" in proc.stdout
    assert os.path.getsize(str(tmp_path / "o.csv")) > 0
