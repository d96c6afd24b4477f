"""The pick store on SQLite and PostgreSQL: schema, migrations, exactly-once inserts, queries."""

import sqlite3

import pytest

from fieldpick.edge.errors import ConfigError, DataError
from fieldpick.network.store import SCHEMA_VERSION, open_store

T = 1_795_316_645 * 10**9 + 678_000_000


def test_fresh_store_has_every_migration(store_url):
    with open_store(store_url) as s:
        assert s.version() == SCHEMA_VERSION == 3
        for table in ("picks", "packets", "stations", "soh", "events", "origins", "arrivals", "commands"):
            assert s.count(table) == 0
    with open_store(store_url) as s:  # reopening applies nothing
        assert s.migrate() == []


def test_old_schema_is_upgraded_keeping_its_picks(store_url, make_picks):
    with open_store(store_url, target=1) as s:
        assert s.version() == 1
        assert s.insert_picks(make_picks(3)) == 3
    with open_store(store_url) as s:
        assert s.version() == 3
        assert s.count("picks") == 3
        assert s.next_counter("x") == [0]  # a table of migration 3


def test_newer_schema_is_refused(tmp_path):
    path = str(tmp_path / "new.db")
    open_store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version VALUES (99, 0)")
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match="schema version 99"):
        open_store(path)


def test_sqlite_uses_wal(tmp_path):
    with open_store("sqlite:///" + str(tmp_path / "w.db")) as s:
        assert s.query("PRAGMA journal_mode")[0][0] == "wal"


def test_bad_urls_are_named():
    with pytest.raises(ConfigError, match="three slashes"):
        open_store("sqlite://x.db")
    with pytest.raises(ConfigError, match="scheme not known"):
        open_store("mysql://x")


def test_duplicate_and_replayed_packets_never_double_a_pick(store_url, make_picks):
    with open_store(store_url) as s:
        p = make_picks(5)
        assert s.insert_picks(p, station_id=10, seq=1) == 5
        assert s.insert_picks(p, station_id=10, seq=1) == 0  # the same packet again
        assert s.insert_picks(p, station_id=10, seq=77) == 0  # replayed under a new sequence number
        assert s.insert_picks(p[:2] + make_picks(1, t=T + 10**12), station_id=10, seq=78) == 1
        assert s.insert_picks(p) == 0  # ingested from a file
        assert s.count("picks") == 6
        assert s.count("packets") == 3
        assert len({(r["station"], r["phase"], r["time_ns"]) for r in s.picks()}) == 6


def test_a_failed_transaction_leaves_nothing(store_url, make_picks):
    with open_store(store_url) as s:
        with pytest.raises(RuntimeError):
            with s.transaction():
                s.insert_picks(make_picks(2), station_id=1, seq=1)
                raise RuntimeError("crash between insert and commit")
        assert s.count("picks") == 0 and s.count("packets") == 0
        assert s.insert_picks(make_picks(2), station_id=1, seq=1) == 2


def test_queries_filter_by_station_phase_and_time(store_url, make_picks):
    with open_store(store_url) as s:
        s.insert_picks(make_picks(6))
        s.insert_picks(make_picks(4, code="CI.WBS..HHZ"))
        assert len(s.picks()) == 10
        assert len(s.picks(station="WBS")) == 4
        assert len(s.picks(station="NC.KHMB")) == 6
        assert len(s.picks(station="NC.KHMB.")) == 6
        assert [r["phase"] for r in s.picks(phase="S", station="CI.WBS")] == ["S", "S"]
        got = s.picks(since_ns=T + 2_500_000_000, until_ns=T + 7_500_000_000, station="KHMB")
        assert [r["time_ns"] - T for r in got] == [2_500_000_000, 5_000_000_000]
        with pytest.raises(DataError, match="phase 'X'"):
            s.picks(phase="X")


def test_stations_are_registered_and_advanced(store_url, make_picks):
    with open_store(store_url) as s:
        s.insert_picks(make_picks(2), station_id=10, seq=1, received_ns=T + 10**10)
        s.insert_picks(make_picks(1, t=T + 10**11), station_id=10, seq=2, received_ns=T + 2 * 10**11)
        (st,) = s.stations()
        assert st["code"] == "NC.KHMB." and st["vertical"] == "HHZ" and st["station_id"] == 10
        assert st["first_seen_ns"] == T + 10**10 and st["last_seen_ns"] == T + 2 * 10**11
        assert st["last_pick_ns"] == T + 10**11
        s.upsert_station("NC.KHMB.", latitude=37.5, longitude=-122.3, horizontals="HHN HHE")
        assert s.stations()[0]["latitude"] == 37.5 and s.stations()[0]["last_seen_ns"] == T + 2 * 10**11
        with pytest.raises(DataError, match="unknown station fields"):
            s.upsert_station("NC.KHMB.", colour="red")


def test_soh_is_stored_once_and_the_latest_returned(store_url):
    with open_store(store_url) as s:
        assert s.insert_soh("NC.KHMB.", T, {"disk_free_mb": 100})
        assert not s.insert_soh("NC.KHMB.", T, {"disk_free_mb": 100})
        assert s.insert_soh("NC.KHMB.", T + 60 * 10**9, {"disk_free_mb": 90})
        assert s.last_soh()["NC.KHMB."]["disk_free_mb"] == 90


def test_counters_continue_across_reopening(store_url):
    with open_store(store_url) as s:
        assert s.next_counter("ew", 3) == [0, 1, 2]
    with open_store(store_url) as s:
        assert s.next_counter("ew", 2, modulo=4) == [3, 0]
        assert s.next_counter("other") == [0]
