"""Hostile command lines: every OS and decode error is one line naming the file or value, exit 2.

Tracebacks are left for bugs (and shown with -v)."""

import json
import os
import socket

import pytest

from fieldpick.edge import cli
from fieldpick.edge.telemetry.packet import StationTable

HERE = os.path.dirname(os.path.abspath(__file__))
TFLITE = os.path.join(HERE, "data", "tiny_int8.tflite")
CODE = "NC.KHMB..HHZ"


def run(capsys, *args):
    status = cli.main(list(args))
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if " error: " in x or "Traceback" in x]
    return status, lines, err


def one_line_error(capsys, *args, match=None):
    status, lines, err = run(capsys, *args)
    assert status == 2, err
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    if match is not None:
        assert match in lines[0], lines[0]
    return lines[0]


@pytest.fixture()
def table(tmp_path):
    path = str(tmp_path / "stations.json")
    StationTable.generate([CODE]).save(path)
    return path


def _config(tmp_path, **kw):
    cfg = {"sources": [str(tmp_path / "none.mseed")], "output": {"path": ""}, "model": "default"}
    cfg.update(kw)
    p = tmp_path / "station.json"
    p.write_text(json.dumps(cfg))
    return str(p)


def test_binary_config(tmp_path, capsys):
    p = tmp_path / "c.json"
    p.write_bytes(bytes(range(256)))
    one_line_error(capsys, "run", "--config", str(p), match="not UTF-8 JSON")


def test_deep_json_config(tmp_path, capsys):
    p = tmp_path / "c.json"
    p.write_text("[" * 100000 + "]" * 100000)
    one_line_error(capsys, "run", "--config", str(p), match="nests deeper")


def test_run_check_refuses_pre_s_1e9(tmp_path, capsys):
    one_line_error(capsys, "run", "--check", "--config", _config(tmp_path, trigger={"pre_s": 1e9}), match="pre_s")


def test_tflite_given_where_the_card_is_expected(tmp_path, capsys):
    one_line_error(capsys, "run", "--check", "--config", _config(tmp_path, model=TFLITE), match="model file, not its card")
    one_line_error(capsys, "replay", "--model", TFLITE, TFLITE, match="model file, not its card")
    one_line_error(capsys, "card", TFLITE, match="model file, not its card")


@pytest.mark.parametrize("make", ["missing", "file"])
def test_output_folder_missing_or_a_file(tmp_path, capsys, make):
    if make == "file":
        (tmp_path / "f").write_text("x")
        out = str(tmp_path / "f" / "picks.csv")
    else:
        out = str(tmp_path / "no" / "such" / "picks.csv")
    line = one_line_error(capsys, "run", "--config", _config(tmp_path, output={"path": out}))
    assert "picks.csv" in line


def test_journal_path_that_is_a_file(tmp_path, capsys, table):
    (tmp_path / "j").write_text("x")
    tel = {"table": table, "station": CODE, "journal": str(tmp_path / "j"), "link": "file:" + str(tmp_path / "l")}
    one_line_error(capsys, "run", "--config", _config(tmp_path, telemetry=tel), match="journal folder")


def test_unresolvable_host_in_a_link(tmp_path, capsys, table):
    tel = {"table": table, "station": CODE, "journal": str(tmp_path / "j"), "link": "udp://no-such-host.invalid:7400"}
    one_line_error(capsys, "run", "--config", _config(tmp_path, telemetry=tel), match="cannot resolve host")


def test_receive_on_an_unresolvable_or_foreign_address(capsys, table):
    one_line_error(capsys, "receive", "--stations", table, "--udp", "no-such-host.invalid:7400",
                   match="no-such-host.invalid")
    one_line_error(capsys, "receive", "--stations", table, "--udp", "192.0.2.1:7400", match="192.0.2.1:7400")
    one_line_error(capsys, "receive", "--stations", table, "--tcp", "192.0.2.1:7400", match="192.0.2.1:7400")


def test_receive_on_a_udp_port_in_use(capsys, table):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    try:
        port = s.getsockname()[1]
        one_line_error(capsys, "receive", "--stations", table, "--udp", "127.0.0.1:%d" % port, match="in use")
    finally:
        s.close()


def test_receive_missing_file_and_bad_outputs(tmp_path, capsys, table):
    one_line_error(capsys, "receive", "--stations", table, "--file", str(tmp_path / "nope.hex"), match="nope.hex")
    (tmp_path / "in.hex").write_text("")
    one_line_error(capsys, "receive", "--stations", table, "--file", str(tmp_path / "in.hex"),
                   "--csv", str(tmp_path / "no" / "x.csv"), match="does not exist")
    one_line_error(capsys, "receive", "--stations", table, "--file", str(tmp_path / "in.hex"),
                   "--csv", str(tmp_path), match="is a folder")
    one_line_error(capsys, "receive", "--stations", str(tmp_path / "in.hex"), "--file", str(tmp_path / "in.hex"),
                   match="not valid JSON")


def test_receive_binary_file_of_packets_is_read_not_a_crash(tmp_path, capsys, table):
    (tmp_path / "in.bin").write_bytes(bytes(range(256)) * 8)
    status, lines, err = run(capsys, "receive", "--stations", table, "--file", str(tmp_path / "in.bin"))
    assert status == 0 and not lines, err


@pytest.mark.parametrize("what", ["text", "empty", "null"])
def test_replay_of_nothing_readable_exits_nonzero(tmp_path, capsys, what):
    if what == "text":
        path = tmp_path / "t.txt"
        path.write_text("not miniSEED\n" * 10)
    elif what == "empty":
        path = tmp_path / "empty"
        path.mkdir()
    else:
        path = "/dev/null"
    one_line_error(capsys, "replay", "--runner", "energy-ratio", str(path), match="no miniSEED records")


def test_verbose_shows_the_traceback(tmp_path, capsys):
    p = tmp_path / "c.json"
    p.write_bytes(bytes(range(256)))
    status = cli.main(["-v", "run", "--config", str(p)])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" in err and "not UTF-8 JSON" in err
