"""QuakeML (schema-valid, read back by ObsPy), SeisComP XML, Earthworm lines with lasting sequence numbers,
CSV and JSON lines, and the calibration they use."""

import io
import json

import numpy as np
import pytest

from fieldpick.edge.errors import ConfigError
from fieldpick.network.calibration import Calibration, fit_phase, load_tables, onset_weight
from fieldpick.network.earthworm import format_lines
from fieldpick.network.events import associate_store, load_events
from fieldpick.network.stations import import_stations
from fieldpick.network.store import open_store
from fieldpick.network.synthetic import make_network
from fieldpick.network.velocity import TravelTimes


def _default_sha():
    from fieldpick.edge.card import ModelCard
    from fieldpick.edge.station import default_card_path

    return ModelCard.load(default_card_path(), verify=False).sha256


SHA = _default_sha()  # the shipped default


def test_shipped_calibration_table_is_for_the_default_model():
    from fieldpick.edge.card import ModelCard
    from fieldpick.edge.station import default_card_path

    tables = load_tables()
    assert ModelCard.load(default_card_path(), verify=False).sha256 in tables
    cal = Calibration.for_model(SHA)
    assert cal.sigma(0.2, "P") < 0.1  # the default reports P sigma several times the measured scatter
    assert Calibration.for_model("f" * 64).sigma(0.2, "P") == 0.2  # unknown model: unchanged


def test_fit_recovers_a_known_scale():
    rng = np.random.default_rng(1)
    u = rng.uniform(0.1, 0.4, 4000)
    r = rng.normal(0, 1, u.size) * 0.25 * u
    fit = fit_phase(u, r)
    assert fit["scale"] == pytest.approx(0.25, rel=0.05)


def test_onset_weights():
    assert [onset_weight(s) for s in (0.01, 0.07, 0.15, 0.3, 1.0)] == [0, 1, 2, 3, 4]


def _store_with_events(url):
    """A store holding a 10-station synthetic network's picks (alternating P/S, model sha set) and its events."""
    from fieldpick.edge.picks import Pick

    tt = TravelTimes(max_dist_km=120, max_depth_km=30)
    net = make_network(n_stations=10, n_events=3, size_km=60, span_s=120, missed=0.0, false=0.0, seed=7, tt=tt)
    s = open_store(url)
    rows = []
    for i, c in enumerate(net.codes):
        rows.append({"code": c, "latitude": float(net.lat[i]), "longitude": float(net.lon[i]), "vertical": "HHZ",
                     "horizontals": "HHN HHE", "gain": 6.0e8})
    import_stations(s, rows)
    t0 = 1_562_261_629 * 10**9
    picks = [Pick(t0 + int(round(t * 1e9)), "S" if sf else "P", 0.8, 0.25 if sf else 0.2, 5000.0, 15.0,
                  "U" if not sf else "?", net.codes[k] + ".HHZ") for k, sf, t in zip(net.sta, net.is_s, net.t)]
    s.insert_picks(picks, model=("fieldpick-default", SHA))
    ids = associate_store(s)
    return s, net, ids


def test_associate_store_writes_events_once(tmp_path):
    s, net, ids = _store_with_events("sqlite:///" + str(tmp_path / "e.db"))
    with s:
        assert len(ids) == 3
        assert associate_store(s) == []  # associated picks are not taken again
        events = load_events(s)
        assert [e["n_p"] + e["n_s"] for e in events] == [len(e["arrivals"]) for e in events]
        assert all(e["magnitude"] is not None and e["magnitude_type"] == "ML" for e in events)
        assert s.count("arrivals") == len(net.t)


def test_quakeml_is_schema_valid_and_reads_back(tmp_path):
    obspy = pytest.importorskip("obspy")
    from fieldpick.network.quakeml import build_catalog, validate_quakeml, write_catalog

    s, net, _ = _store_with_events("sqlite:///" + str(tmp_path / "q.db"))
    with s:
        events = load_events(s)
        cat = build_catalog(events, {r["code"]: r for r in s.stations()}, s.picks()[:2])
    path = str(tmp_path / "events.xml")
    write_catalog(cat, path)
    assert validate_quakeml(path)
    back = obspy.read_events(path)
    assert len(back) == 4  # three events and the unassociated-picks holder
    ev = back[0]
    o = ev.preferred_origin()
    assert len(o.arrivals) == len(ev.picks) > 10
    assert o.depth_errors.uncertainty > 0 and o.quality.azimuthal_gap < 360
    for p in ev.picks:
        assert p.waveform_id.channel_code == ("HHN" if p.phase_hint == "S" else "HHZ")
        assert p.method_id.id.endswith(SHA) and p.creation_info.version == SHA
        assert p.creation_info.author == "fieldpick/fieldpick-default"
        assert p.onset in ("impulsive", "emergent")
        assert p.polarity == ("positive" if p.phase_hint == "P" else "undecidable")
    onsets = {p.phase_hint: p.onset for p in ev.picks}
    assert onsets == {"P": "impulsive", "S": "emergent"}  # calibrated: 0.2 s P sigma -> ~0.02 s
    assert ev.preferred_magnitude().magnitude_type == "ML"
    sc3 = str(tmp_path / "events.scml")
    write_catalog(cat, sc3, "SCML")
    assert len(obspy.read_events(sc3, format="SCML")) == 4
    with pytest.raises(ConfigError, match="allowed: QUAKEML, SCML"):
        write_catalog(cat, sc3, "KML")


def test_earthworm_sequence_survives_a_restart(store_url, make_picks):
    with open_store(store_url) as s:
        s.insert_picks(make_picks(3), model=("m", SHA))
        s.upsert_station("NC.KHMB.", horizontals="HHN HHE")
        rows = s.picks()
        first = format_lines(s, rows, module_id=12, installation_id=34)
    with open_store(store_url) as s:  # a new process would do the same
        second = format_lines(s, s.picks(), module_id=12, installation_id=34)
        other = format_lines(s, s.picks()[:1], module_id=13, installation_id=34)
    seqs = [int(x.split()[3]) for x in first + second]
    assert seqs == [0, 1, 2, 3, 4, 5]
    assert other[0].split()[:4] == ["8", "13", "34", "0"]
    p, sline = first[0].split(), first[1].split()
    assert p[4] == "KHMB.HHZ.NC.--" and sline[4] == "KHMB.HHN.NC.--"  # S on the horizontal
    assert p[5] == "U0" and p[-1] == "P" and sline[5] == "?1" and sline[-1] == "S"
    assert p[6] == "20261122030405.68"
    with pytest.raises(ConfigError, match="0..255"):
        format_lines(open_store(store_url), rows, module_id=256)


def test_csv_and_json_lines(tmp_path, make_picks):
    from fieldpick.network.csvout import pick_records, write_picks

    with open_store(str(tmp_path / "c.db")) as s:
        s.insert_picks(make_picks(2), model=("m", SHA))
        recs = pick_records(s.picks(), {})
    f = io.StringIO()
    write_picks(recs, f, "csv")
    lines = f.getvalue().splitlines()
    assert lines[0].startswith("id,station,channel,phase,time_utc") and len(lines) == 3
    assert lines[1].split(",")[4] == "2026-11-22T03:04:05.678Z"
    f = io.StringIO()
    write_picks(recs, f, "json")
    d = [json.loads(x) for x in f.getvalue().splitlines()]
    assert d[0]["weight"] == 0 and d[0]["sigma_s"] < d[0]["uncertainty_s"]


def test_local_magnitude_by_hand():
    from fieldpick.network.magnitude import event_ml, station_ml

    # 1 mm Wood-Anderson at 100 km is ML 3 (Hutton & Boore): 1e-3 m / 2080 displacement at T = 0.2 s
    v = 1e-3 / 2080.0 * 2 * np.pi / 0.2
    assert station_ml(v * 6e8, 6e8, 100.0) == pytest.approx(3.0)
    assert station_ml(10 * v * 6e8, 6e8, 100.0) == pytest.approx(4.0)
    assert station_ml(1000.0, None, 10.0) is None
    ml, n = event_ml(["A", "A", "B"], [v * 6e8, 10 * v * 6e8, v * 6e8], [6e8, 6e8, None], [100.0, 100.0, 50.0])
    assert (ml, n) == (pytest.approx(4.0), 1)  # the larger of A's two; B has no gain


def test_damaged_calibration_table_is_named(tmp_path):
    (tmp_path / "x.json").write_text('{"model_sha256": "ab", "phases": {"P": {"scale": 1}}}')
    with pytest.raises(ConfigError, match="x.json is not readable"):
        load_tables(str(tmp_path))
