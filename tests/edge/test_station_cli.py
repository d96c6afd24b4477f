"""`fieldpick run`, `fieldpick replay` and `fieldpick demo` on real files: miniSEED
written by ObsPy, the committed tiny int8 model through the numpy interpreter."""

import csv
import io
import json
import os
import shutil

import numpy as np
import pytest

from fieldpick.edge import demo, replay
from fieldpick.edge import run as run_verb
from fieldpick.edge.card import InputSpec, ModelCard, Normalisation, OutputSpec
from fieldpick.edge.config import StationConfig
from fieldpick.edge.errors import FieldpickError
from fieldpick.edge.replay import energy_ratio_card
from fieldpick.edge.sources.merge import open_sources
from fieldpick.edge.station import EnergyRatioRunner, InterpreterRunner, Station, format_pick
from fieldpick.lab import synthetic

obspy = pytest.importorskip("obspy", reason="ObsPy writes the miniSEED these tests replay (workstation env)")
from obspy import Stream, Trace, UTCDateTime  # noqa: E402

T0 = 1_700_000_000 * 10 ** 9
HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "data", "tiny_int8.tflite")


@pytest.fixture(scope="module")
def mseed(tmp_path_factory):
    """20 minutes of synthetic ZNE counts as Steim-2 miniSEED, one channel after another."""
    data, truth = synthetic.continuous(1200, seed=21, event_rate_per_hour=30, start_ns=T0)
    data = np.round(data).astype(np.int32)
    st = Stream([Trace(data[c], header=dict(network="XX", station="SYN", location="", channel="HH" + comp,
                                            sampling_rate=100.0, starttime=UTCDateTime(T0 / 1e9)))
                 for c, comp in enumerate("ZNE")])
    path = tmp_path_factory.mktemp("mseed") / "syn.mseed"
    st.write(str(path), format="MSEED", encoding="STEIM2", reclen=512)
    return str(path), data


def test_replay_prints_the_offline_picks_as_csv(mseed, capsys):
    path, data = mseed
    want = Station(EnergyRatioRunner(energy_ratio_card()), StationConfig(), "XX.SYN..HHZ").feed_array(
        data.astype(np.float64), T0, 100.0)
    assert replay.main([path, "--runner", "energy-ratio"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == "time,station,phase,probability,uncertainty_s,amplitude,snr_db,polarity"
    assert lines[1:] == [format_pick(p, "csv").rstrip("\n") for p in want]
    assert len(want) > 3
    assert "1 station(s), 1200 s of 3-component data, %d picks" % len(want) in err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["phase"] for r in rows} <= {"P", "S"} and rows[0]["station"] == "XX.SYN..HHZ"


def test_replay_json_lines(mseed, capsys):
    path, _ = mseed
    assert replay.main([path, "--runner", "energy-ratio", "--format", "jsonl", "--mode", "continuous"]) == 0
    out, err = capsys.readouterr()
    picks = [json.loads(line) for line in out.splitlines()]
    assert picks and all(p["time"].startswith("2023-11-14T") and isinstance(p["time_ns"], int) for p in picks)
    assert "(continuous, model energy-ratio)" in err


def tiny_card(tmp_path):
    """A card for the committed 16-sample int8 test model: per 2-sample stride N/P/S, no offset."""
    model = tmp_path / "tiny.tflite"
    shutil.copy(TINY, model)
    card = ModelCard(name="tiny", architecture="tiny test conv", input=InputSpec(100.0, 16, normalisation=Normalisation()),
                     output=OutputSpec("stride_class_offset", ["N", "P", "S"], stride_samples=2),
                     thresholds={"P": 0.4, "S": 0.4}).attach(str(model))
    card.save(str(tmp_path / "tiny.json"))
    return str(tmp_path / "tiny.json")


def test_run_from_a_config_with_the_int8_model(mseed, tmp_path, capsys):
    _, data = mseed
    data = data[:, :12000]  # two minutes: 16-sample windows every 8 samples are many windows
    path = str(tmp_path / "two_minutes.mseed")
    Stream([Trace(data[c], header=dict(network="XX", station="SYN", location="", channel="HH" + comp,
                                       sampling_rate=100.0, starttime=UTCDateTime(T0 / 1e9)))
            for c, comp in enumerate("ZNE")]).write(path, format="MSEED", encoding="STEIM2", reclen=512)
    card_path = tiny_card(tmp_path)
    out_path = tmp_path / "picks.csv"
    cfg = {"model": card_path, "mode": "continuous", "sources": [path],
           "output": {"path": str(out_path), "format": "csv"}}
    (tmp_path / "station.json").write_text(json.dumps(cfg))
    assert run_verb.main(["--config", str(tmp_path / "station.json"), "--check"]) == 0
    assert "ok (model tiny, mode continuous)" in capsys.readouterr().out
    assert run_verb.main(["--config", str(tmp_path / "station.json")]) == 0
    rows = list(csv.DictReader(io.StringIO(out_path.read_text())))
    # the same picks as the Python API with the same runner
    card = ModelCard.load(card_path)
    st = Station(InterpreterRunner(card.model_path(card_path), card), StationConfig.from_dict(cfg), "XX.SYN..HHZ")
    want = st.feed_array(data.astype(np.float64), T0, 100.0)
    assert [r["time"] for r in rows] == [format_pick(p, "csv").split(",")[0] for p in want]
    assert st.stats["windows_run"] == st.stats["windows_total"] == (12000 - 16) // 8 + 1
    assert len(rows) > 0


@pytest.mark.parametrize("cfg, message", [
    ({"sources": ["x"], "mode": "sometimes"}, "mode is 'sometimes'; allowed: 'gated', 'continuous'"),
    ({"sources": ["x"], "trigger": {"sta": 1.0}}, "unknown key trigger.sta; allowed: channel"),
    ({"sources": []}, "sources is empty"),
    ({"sources": ["x"], "model": "missing.json"}, "cannot read model card missing.json"),
])
def test_run_rejects_bad_configs(tmp_path, capsys, cfg, message):
    (tmp_path / "station.json").write_text(json.dumps(cfg))
    with pytest.raises(FieldpickError, match=message):  # the CLI prints it and exits with status 2
        run_verb.main(["--config", str(tmp_path / "station.json")])


def test_demo_scores_a_synthetic_stream(capsys):
    assert demo.main(["--minutes", "10", "--runner", "energy-ratio"]) == 0
    out = capsys.readouterr().out
    assert "fieldpick demo will" in out and "phase  labels   picks  matched  precision  recall" in out
    assert "x real time" in out and "duty cycle" in out


class _Collect(object):
    def __init__(self):
        self.picks = []

    def write(self, entry, seq, picks):
        self.picks.extend(picks)

    def flush(self):
        pass


def test_run_sends_its_picks_through_telemetry(mseed, tmp_path):
    from fieldpick.edge.telemetry import packet as pk
    from fieldpick.edge.telemetry.endpoint import FileEndpoint
    from fieldpick.edge.telemetry.receive import Receiver, serve

    path, _ = mseed
    table = pk.StationTable.generate(["XX.SYN..HHZ"])
    table.save(str(tmp_path / "stations.json"))
    link = str(tmp_path / "packets.hex")
    card_path = tiny_card(tmp_path)
    cfg = {"model": card_path, "mode": "gated", "sources": [path], "output": {"path": str(tmp_path / "p.jsonl"),
                                                                              "format": "jsonl"},
           "telemetry": {"table": str(tmp_path / "stations.json"), "station": "XX.SYN..HHZ",
                         "journal": str(tmp_path / "journal"), "link": "file:" + link, "profile": "udp"}}
    (tmp_path / "station.json").write_text(json.dumps(cfg))
    assert run_verb.main(["--config", str(tmp_path / "station.json")]) == 0
    written = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert written, "the tiny untrained model should pick something in 20 minutes"
    sink = _Collect()
    ep = FileEndpoint(link)
    serve(Receiver(table, [sink]), [ep])
    ep.close()
    # every pick written locally also crossed the link (times to the packet's resolution)
    assert len(sink.picks) == len(written)
    got = sorted((p.time_ns, p.phase) for p in sink.picks)
    want = sorted((p["time_ns"], p["phase"]) for p in written)
    assert [ph for _, ph in got] == [ph for _, ph in want]
    assert max(abs(a - b) for (a, _), (b, _) in zip(got, want)) < 10 ** 7


def test_run_flushes_a_part_filled_packet_at_the_end_of_a_finite_stream(mseed, tmp_path):
    """max_delay_s of an hour: picks would wait for a fuller packet; the end of the
    replay must pack and send them anyway (then the journal is empty)."""
    from fieldpick.edge.telemetry import packet as pk
    from fieldpick.edge.telemetry.endpoint import FileEndpoint
    from fieldpick.edge.telemetry.receive import Receiver, serve

    path, _ = mseed
    table = pk.StationTable.generate(["XX.SYN..HHZ"])
    table.save(str(tmp_path / "stations.json"))
    link = str(tmp_path / "packets.hex")
    cfg = {"model": tiny_card(tmp_path), "mode": "gated", "sources": [path],
           "output": {"path": str(tmp_path / "p.jsonl"), "format": "jsonl"},
           "telemetry": {"table": str(tmp_path / "stations.json"), "station": "XX.SYN..HHZ",
                         "journal": str(tmp_path / "journal"), "link": "file:" + link, "profile": "iridium",
                         "max_delay_s": 3600}}
    (tmp_path / "station.json").write_text(json.dumps(cfg))
    assert run_verb.main(["--config", str(tmp_path / "station.json")]) == 0
    written = (tmp_path / "p.jsonl").read_text().splitlines()
    assert written
    sink = _Collect()
    ep = FileEndpoint(link)
    serve(Receiver(table, [sink]), [ep])
    ep.close()
    assert len(sink.picks) == len(written)


def _write_sds(root, data, start_ns, fs=100.0):
    """One day file per component in an SDS tree (ObsPy writes them)."""
    t0 = UTCDateTime(start_ns / 1e9)
    for c, comp in enumerate("ZNE"):
        d = root / str(t0.year) / "XX" / "SYN" / ("HH%s.D" % comp)
        d.mkdir(parents=True, exist_ok=True)
        name = "XX.SYN..HH%s.D.%04d.%03d" % (comp, t0.year, t0.julday)
        Trace(data[c], header=dict(network="XX", station="SYN", location="", channel="HH" + comp,
                                   sampling_rate=fs, starttime=t0)).write(str(d / name), format="MSEED",
                                                                          encoding="STEIM2", reclen=512)


@pytest.mark.parametrize("form", ["root", "url"])
def test_run_sources_select_and_trim_an_sds_archive(mseed, tmp_path, form):
    """An SDS root (or sds:// URL) goes through the SDS reader: the window
    [start, end) is kept, not the whole day, and components come interleaved in time."""
    _, data = mseed
    root = tmp_path / "sds"
    _write_sds(root, data, T0)
    start, end = T0 + 120 * 10 ** 9, T0 + 300 * 10 ** 9  # minutes 2 to 5 of the 20
    spec = str(root) if form == "root" else "sds://%s?cha=HH?&start=%d&end=%d" % (root, start, end)
    if form == "root":
        # a plain root selects everything: the whole 20 minutes, still merged in time order
        start, end = T0, T0 + 1200 * 10 ** 9
    (src,) = open_sources([spec])
    recs = list(src)
    assert {r.channel for r in recs} == {"HHZ", "HHN", "HHE"}
    assert min(r.start_ns for r in recs) == start
    assert max(r.start_ns + len(r.samples) * 10 ** 7 for r in recs) == end
    assert sum(len(r.samples) for r in recs) == 3 * (end - start) // 10 ** 7
    starts = [r.start_ns for r in recs]
    assert starts == sorted(starts)  # Z, N and E side by side, not one day after another
    z = np.concatenate([r.samples for r in recs if r.channel == "HHZ"])
    np.testing.assert_array_equal(z, data[0, (start - T0) // 10 ** 7:(end - T0) // 10 ** 7])


def test_replay_reads_lazily_in_time_order(mseed):
    """read_sorted merges without loading the file: an iterator, the records of a full
    sort in the same order, the decode counts complete before the first record."""
    from fieldpick.edge.sources.mseed import MseedFileSource

    path, _ = mseed
    records, stats = replay.read_sorted([path])
    assert not isinstance(records, (list, tuple))
    with MseedFileSource(path) as src:
        everything = sorted(src, key=lambda r: (r.start_ns, r.channel))
    assert stats.records == len(everything)
    got = list(records)
    assert [(r.channel, r.start_ns) for r in got] == [(r.channel, r.start_ns) for r in everything]


@pytest.mark.parametrize("join_s", [0.0, 7.5, 30.0])
def test_replay_joins_contiguous_records_without_changing_the_picks(mseed, join_s):
    """Joined records carry the same samples at the same times, and the station
    makes the same picks from them as from the records as stored."""
    from fieldpick.edge.station import StationSet

    path, data = mseed
    records, stats = replay.read_sorted([path], join_s)
    records = list(records)
    for c, comp in enumerate("ZNE"):
        mine = [r for r in records if r.channel == "HH" + comp]
        assert mine[0].start_ns == T0
        np.testing.assert_array_equal(np.concatenate([r.samples for r in mine]), data[c])
        if join_s:  # all but the last piece of each channel hold at least join_s seconds
            assert min(len(r.samples) for r in mine[:-1]) >= join_s * 100
    assert len(records) < stats.records if join_s else len(records) == stats.records
    cfg = StationConfig.from_dict({"mode": "gated"})
    ss = StationSet(EnergyRatioRunner(energy_ratio_card()), cfg)
    got = [p for r in records for p in ss.feed_record(r)] + ss.flush()
    want = Station(EnergyRatioRunner(energy_ratio_card()), cfg, "XX.SYN..HHZ").feed_array(data.astype(float), T0, 100.0)
    assert got and [(p.time_ns, p.phase) for p in got] == [(p.time_ns, p.phase) for p in want]


def test_time_order_merge_opens_a_stream_only_when_it_is_reached():
    """Streams of later days are opened when the merge gets to their first record,
    so a week of files holds one day's read buffers, not seven."""
    from collections import namedtuple

    from fieldpick.edge.sources.merge import _merge_lazily

    Rec = namedtuple("Rec", "start_ns channel")
    opened = []

    def stream(name, starts):
        def open_it():
            opened.append((name, len(got)))  # how many records had been merged when it was opened
            return iter([Rec(t, name) for t in starts])
        return open_it

    streams = [(200, stream("HHZ-2", [200, 300])), (0, stream("HHZ-1", [0, 100])),
               (0, stream("HHN-1", [0, 100])), (200, stream("HHN-2", [200, 300]))]
    got = []
    for rec in _merge_lazily(streams):
        got.append(rec)
    assert [(r.start_ns, r.channel) for r in got] == [(0, "HHN-1"), (0, "HHZ-1"), (100, "HHN-1"), (100, "HHZ-1"),
                                                      (200, "HHN-2"), (200, "HHZ-2"), (300, "HHN-2"), (300, "HHZ-2")]
    assert dict(opened) == {"HHZ-1": 0, "HHN-1": 0, "HHZ-2": 4, "HHN-2": 4}


def test_run_polls_the_uplink_by_the_clock_not_only_with_picks(mseed, tmp_path, monkeypatch):
    """With POLL_S = 0 the run loop polls after every record (acks and retransmissions
    are serviced while no pick arrives), then flushes once at the end."""
    from fieldpick.edge.telemetry import packet as pk

    calls = []
    real = run_verb._uplink

    class Counting(object):
        def __init__(self, up):
            self.up = up

        def __getattr__(self, name):
            attr = getattr(self.up, name)
            if name in ("poll", "flush", "close"):
                def wrapped(*a, **k):
                    calls.append(name)
                    return attr(*a, **k)
                return wrapped
            return attr

    monkeypatch.setattr(run_verb, "_uplink", lambda cfg: Counting(real(cfg)))
    monkeypatch.setattr(run_verb, "POLL_S", 0.0)
    path, _ = mseed
    pk.StationTable.generate(["XX.SYN..HHZ"]).save(str(tmp_path / "stations.json"))
    cfg = {"model": tiny_card(tmp_path), "mode": "gated", "sources": [path], "output": {"path": ""},
           "telemetry": {"table": str(tmp_path / "stations.json"), "station": "XX.SYN..HHZ",
                         "journal": str(tmp_path / "journal"), "link": "file:" + str(tmp_path / "p.hex"),
                         "profile": "udp"}}
    (tmp_path / "station.json").write_text(json.dumps(cfg))
    assert run_verb.main(["--config", str(tmp_path / "station.json")]) == 0
    records = sum(1 for _ in replay.read_sorted([path], 30.0)[0])  # as run joins them (~35 s each)
    assert 100 <= records <= 120
    assert calls.count("poll") == records + 1
    assert calls[-3:] == ["flush", "poll", "close"]
