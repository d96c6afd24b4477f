"""The pick store: one schema in SQLite (the embedded default, WAL) or PostgreSQL.

A store is opened from a URL: ``sqlite:///path/picks.db`` (or a plain file
path) or ``postgresql://user@host:port/dbname`` (psycopg 3, imported only
then).  The schema is created and brought up to date by numbered
migrations (:data:`MIGRATIONS`, recorded in ``schema_version``); a database
written by a newer fieldpick is refused rather than guessed at.

Inserts are idempotent.  A pick is keyed by (station, phase, time_ns): a
packet that arrives twice, a replay of the same packet under a new sequence
number after a station's journal was rebuilt, or a file ingested twice all
leave exactly one row.  Packets are keyed by (station id, sequence number).

Times are integers, ns since 1970-01-01 UTC, as everywhere in fieldpick.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from fieldpick.edge.errors import ConfigError, DataError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Store", "open_store", "PICK_COLUMNS"]

# Statements use '?' placeholders and two tokens the dialect fills in:
# {pk} an auto-numbered integer primary key, {blob} a byte string column.
MIGRATIONS: List[Tuple[int, str, List[str]]] = [
    (1, "stations, packets, picks, state-of-health reports", [
        """CREATE TABLE stations (
            code TEXT PRIMARY KEY,            -- NET.STA.LOC
            network TEXT NOT NULL, station TEXT NOT NULL, location TEXT NOT NULL,
            vertical TEXT, horizontals TEXT,  -- channel codes, e.g. 'HHZ' and 'HHN HHE'
            station_id INTEGER,               -- id on the wire (station table)
            latitude DOUBLE PRECISION, longitude DOUBLE PRECISION, elevation_m DOUBLE PRECISION,
            gain DOUBLE PRECISION,            -- counts per m/s of ground velocity
            first_seen_ns BIGINT, last_seen_ns BIGINT, last_pick_ns BIGINT)""",
        """CREATE TABLE packets (
            station_id INTEGER NOT NULL, seq BIGINT NOT NULL, station TEXT NOT NULL,
            received_ns BIGINT NOT NULL, n_picks INTEGER NOT NULL,
            PRIMARY KEY (station_id, seq))""",
        """CREATE TABLE picks (
            id {pk},
            station TEXT NOT NULL, channel TEXT NOT NULL, phase TEXT NOT NULL, time_ns BIGINT NOT NULL,
            probability DOUBLE PRECISION NOT NULL, uncertainty_s DOUBLE PRECISION NOT NULL,
            amplitude DOUBLE PRECISION NOT NULL, snr_db DOUBLE PRECISION NOT NULL, polarity TEXT NOT NULL,
            station_id INTEGER, packet_seq BIGINT, model_name TEXT, model_sha256 TEXT,
            received_ns BIGINT NOT NULL,
            UNIQUE (station, phase, time_ns))""",
        "CREATE INDEX picks_time ON picks (time_ns)",
        """CREATE TABLE soh (
            id {pk}, station TEXT NOT NULL, time_ns BIGINT NOT NULL, received_ns BIGINT NOT NULL,
            report TEXT NOT NULL, UNIQUE (station, time_ns))""",
    ]),
    (2, "events, origins, arrivals", [
        """CREATE TABLE events (
            id {pk}, public_id TEXT NOT NULL UNIQUE, created_ns BIGINT NOT NULL,
            preferred_origin_id BIGINT, event_type TEXT NOT NULL)""",
        """CREATE TABLE origins (
            id {pk}, event_id BIGINT NOT NULL REFERENCES events (id),
            time_ns BIGINT NOT NULL, latitude DOUBLE PRECISION NOT NULL, longitude DOUBLE PRECISION NOT NULL,
            depth_km DOUBLE PRECISION NOT NULL,
            time_err_s DOUBLE PRECISION, lat_err_km DOUBLE PRECISION, lon_err_km DOUBLE PRECISION,
            depth_err_km DOUBLE PRECISION, rms_s DOUBLE PRECISION, gap_deg DOUBLE PRECISION,
            n_p INTEGER, n_s INTEGER, n_stations INTEGER,
            magnitude DOUBLE PRECISION, magnitude_type TEXT, magnitude_n INTEGER,
            velocity_model TEXT, created_ns BIGINT NOT NULL)""",
        """CREATE TABLE arrivals (
            origin_id BIGINT NOT NULL REFERENCES origins (id), pick_id BIGINT NOT NULL REFERENCES picks (id),
            phase TEXT NOT NULL, residual_s DOUBLE PRECISION, distance_km DOUBLE PRECISION,
            azimuth_deg DOUBLE PRECISION, weight DOUBLE PRECISION,
            PRIMARY KEY (origin_id, pick_id))""",
        "CREATE INDEX arrivals_pick ON arrivals (pick_id)",
    ]),
    (3, "commands to stations, named counters (Earthworm sequence numbers)", [
        """CREATE TABLE commands (
            id {pk}, station TEXT NOT NULL, created_ns BIGINT NOT NULL, command TEXT NOT NULL,
            sent_ns BIGINT, acked_ns BIGINT)""",
        "CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
    ]),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]

PICK_COLUMNS = ("id", "station", "channel", "phase", "time_ns", "probability", "uncertainty_s", "amplitude",
                "snr_db", "polarity", "station_id", "packet_seq", "model_name", "model_sha256", "received_ns")

_DIALECT = {
    "sqlite": {"{pk}": "INTEGER PRIMARY KEY AUTOINCREMENT", "{blob}": "BLOB"},
    "postgresql": {"{pk}": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", "{blob}": "BYTEA"},
}


def now_ns() -> int:
    return time.time_ns()


def split_code(code: str) -> Tuple[str, str, str, str]:
    """'NET.STA.LOC.CHA' -> its four parts; a DataError naming the code otherwise."""
    parts = code.split(".")
    if len(parts) != 4 or not parts[1]:
        raise DataError("station code %r must read 'NET.STA.LOC.CHA'" % (code,))
    return parts[0], parts[1], parts[2], parts[3]


def _pick_rows(picks, station_id, seq, model, received_ns) -> List[tuple]:
    """Rows of the picks table; a DataError naming a station code that is not NET.STA.LOC.CHA."""
    rows = []
    for p in picks:
        net, sta, loc, cha = split_code(p.station)
        rows.append(("%s.%s.%s" % (net, sta, loc), cha, p.phase, int(p.time_ns), float(p.probability),
                     float(p.uncertainty_s), float(p.amplitude), float(p.snr_db), p.polarity, station_id, seq,
                     model[0], model[1], received_ns))
    return rows


def open_store(url: str, create: bool = True, target: Optional[int] = None) -> "Store":
    """Open (and migrate, up to ``target``: default all) the store at ``url``: ``sqlite:///PATH``, a
    path, or ``postgresql://...``."""
    if not isinstance(url, str) or not url:
        raise ConfigError("database URL %r; expected sqlite:///PATH or postgresql://USER@HOST:PORT/DB" % (url,))
    if url.startswith(("postgresql://", "postgres://")):
        try:
            import psycopg
        except ImportError:
            raise ConfigError("a PostgreSQL store needs psycopg 3: pip install 'fieldpick[network]'") from None
        try:
            conn = psycopg.connect(url, autocommit=False)
        except psycopg.Error as exc:
            raise ConfigError("cannot connect to %s: %s" % (_redact(url), str(exc).strip())) from None
        return Store(conn, "postgresql", url, create, target)
    path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else url
    if url.startswith("sqlite://") and not url.startswith("sqlite:///"):
        raise ConfigError("database URL %r: a SQLite URL reads sqlite:///PATH (three slashes)" % url)
    if "://" in path:
        raise ConfigError("database URL %r: scheme not known; allowed: sqlite:///PATH, postgresql://..." % url)
    if not create and not os.path.exists(path):
        raise ConfigError("no database at %s" % path)
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return Store(conn, "sqlite", path, create, target)


def _redact(url: str) -> str:
    if "@" in url and ":" in url.split("@")[0][len("postgresql://"):]:
        head, tail = url.split("@", 1)
        return head.rsplit(":", 1)[0] + ":***@" + tail
    return url


class Store(object):
    """A connection to the pick store with the operations the network side needs.

    Writes happen in explicit transactions (``with store.transaction():``);
    reads outside one see committed data.
    """

    def __init__(self, conn, dialect: str, where: str, create: bool = True, target: Optional[int] = None):
        self.conn = conn
        self.dialect = dialect
        self.where = where
        self._depth = 0
        self.migrate(create=create, target=target)

    # ------------------------------------------------------------ plumbing

    def _sql(self, text: str) -> str:
        for token, value in _DIALECT[self.dialect].items():
            text = text.replace(token, value)
        return text.replace("?", "%s") if self.dialect == "postgresql" else text

    def execute(self, sql: str, params: Sequence = ()):
        cur = self.conn.cursor()
        cur.execute(self._sql(sql), tuple(params))
        return cur

    def executemany(self, sql: str, rows: Iterable[Sequence]):
        cur = self.conn.cursor()
        cur.executemany(self._sql(sql), [tuple(r) for r in rows])
        return cur

    def query(self, sql: str, params: Sequence = ()) -> List[tuple]:
        cur = self.execute(sql, params)
        rows = cur.fetchall()
        if self._depth == 0 and self.dialect == "postgresql":
            self.conn.commit()  # end the implicit read transaction
        return rows

    def query_dicts(self, sql: str, params: Sequence = ()) -> List[dict]:
        cur = self.execute(sql, params)
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
        if self._depth == 0 and self.dialect == "postgresql":
            self.conn.commit()
        return rows

    def transaction(self):
        return _Transaction(self)

    def rollback(self) -> None:
        """Abandon an open transaction (after a failed commit); quietly does nothing when none is open."""
        self._depth = 0
        try:
            self.conn.rollback() if self.dialect == "postgresql" else self.conn.execute("ROLLBACK")
        except Exception:  # no transaction open any more, or the connection is gone
            pass

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------ schema

    def version(self) -> int:
        if self.dialect == "sqlite":
            have = self.query("SELECT name FROM sqlite_master WHERE type='table' AND name='schema_version'")
        else:
            have = self.query("SELECT table_name FROM information_schema.tables WHERE table_name='schema_version' "
                              "AND table_schema = current_schema()")
        if not have:
            return 0
        rows = self.query("SELECT MAX(version) FROM schema_version")
        return int(rows[0][0] or 0)

    def migrate(self, create: bool = True, target: Optional[int] = None) -> List[int]:
        """Apply the migrations above the database's version (up to ``target``); the versions applied."""
        target = SCHEMA_VERSION if target is None else target
        have = self.version()
        if have > SCHEMA_VERSION:
            raise ConfigError("database %s has schema version %d; this fieldpick reads up to %d: upgrade fieldpick"
                              % (self.where, have, SCHEMA_VERSION))
        if have == 0 and not create:
            raise ConfigError("database %s holds no fieldpick schema" % self.where)
        done = []
        for version, _, statements in MIGRATIONS:
            if version <= have or version > target:
                continue
            with self.transaction():
                if version == 1:
                    self.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_ns BIGINT NOT NULL)")
                for st in statements:
                    self.execute(st)
                self.execute("INSERT INTO schema_version (version, applied_ns) VALUES (?, ?)", (version, now_ns()))
            done.append(version)
        return done

    # ------------------------------------------------------------ stations

    def upsert_station(self, code: str, **fields) -> None:
        """Create or update a station row (NET.STA.LOC); ``fields`` are columns of ``stations``."""
        allowed = {"vertical", "horizontals", "station_id", "latitude", "longitude", "elevation_m", "gain",
                   "first_seen_ns", "last_seen_ns", "last_pick_ns"}
        bad = set(fields) - allowed
        if bad:
            raise DataError("unknown station fields %s; allowed: %s" % (sorted(bad), ", ".join(sorted(allowed))))
        parts = code.split(".")
        if len(parts) != 3 or not parts[1]:
            raise DataError("station %r must read 'NET.STA.LOC'" % (code,))
        with self.transaction():
            self.execute("INSERT INTO stations (code, network, station, location) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT (code) DO NOTHING", (code, parts[0], parts[1], parts[2]))
            if fields:
                names = sorted(fields)
                self.execute("UPDATE stations SET %s WHERE code = ?" % ", ".join("%s = ?" % n for n in names),
                             [fields[n] for n in names] + [code])

    def stations(self) -> List[dict]:
        return self.query_dicts("SELECT * FROM stations ORDER BY code")

    # ------------------------------------------------------------ picks

    def insert_picks(self, picks: Sequence, station_id: Optional[int] = None, seq: Optional[int] = None,
                     received_ns: Optional[int] = None, model: Tuple[Optional[str], Optional[str]] = (None, None)
                     ) -> int:
        """Insert ``picks`` (:class:`~fieldpick.edge.picks.Pick`) once each; the number that were new.

        With ``station_id`` and ``seq`` the packet is recorded too, and a packet
        seen before inserts nothing.  Stations are registered on first sight
        and their last-seen times advanced.
        """
        if station_id is not None and seq is not None:
            return self.insert_packets([(station_id, seq, picks)], received_ns, model)[1]
        received_ns = now_ns() if received_ns is None else int(received_ns)
        if not picks:
            return 0
        rows = _pick_rows(picks, station_id, seq, model, received_ns)
        with self.transaction():
            new = self._insert_rows(rows)
            self._touch_stations(rows, received_ns)
        return new

    def insert_packets(self, packets: Sequence[Tuple[int, int, Sequence]], received_ns: Optional[int] = None,
                       model: Tuple[Optional[str], Optional[str]] = (None, None)) -> Tuple[int, int]:
        """Record several packets, (station id, seq, picks) each, and insert their picks in one
        transaction; (packets that were new, picks that were new).  A packet seen before inserts
        nothing; a pick held already is not inserted again."""
        received_ns = now_ns() if received_ns is None else int(received_ns)
        todo = [(int(sid), int(seq), list(picks), _pick_rows(picks, sid, seq, model, received_ns))
                for sid, seq, picks in packets if picks]  # every code checked before the transaction
        if not todo:
            return 0, 0
        with self.transaction():
            fresh = self._new_packets([(sid, seq, picks[0].station, received_ns, len(picks))
                                       for sid, seq, picks, _ in todo])
            rows = [r for sid, seq, _, rs in todo if (sid, seq) in fresh for r in rs]
            new = self._insert_rows(rows) if rows else 0
            if rows:
                self._touch_stations(rows, received_ns)
        return len(fresh), new

    def _new_packets(self, rows) -> set:
        """Insert packet rows; the (station id, seq) of those not there before."""
        sql = "INSERT INTO packets (station_id, seq, station, received_ns, n_picks) VALUES %s " \
              "ON CONFLICT (station_id, seq) DO NOTHING"
        if self.dialect == "postgresql":  # one round trip for the whole group
            cur = self.execute(sql % ", ".join(["(?, ?, ?, ?, ?)"] * len(rows)) + " RETURNING station_id, seq",
                               [x for r in rows for x in r])
            return {(int(a), int(b)) for a, b in cur.fetchall()}
        fresh = set()
        for r in rows:  # SQLite is in-process; RETURNING needs 3.35
            if self.execute(sql % "(?, ?, ?, ?, ?)", r).rowcount == 1:
                fresh.add((r[0], r[1]))
        return fresh

    def _insert_rows(self, rows) -> int:
        cur = self.executemany("INSERT INTO picks (station, channel, phase, time_ns, probability, uncertainty_s, "
                               "amplitude, snr_db, polarity, station_id, packet_seq, model_name, model_sha256, "
                               "received_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                               "ON CONFLICT (station, phase, time_ns) DO NOTHING", rows)
        return max(0, cur.rowcount)

    def _touch_stations(self, rows, received_ns) -> None:
        seen = {}
        for r in rows:  # code, channel, ..., time_ns at 3, station_id at 9
            cha, last, sid = seen.get(r[0], (r[1], 0, r[9]))
            seen[r[0]] = (cha, max(last, r[3]), sid)
        for code, (cha, last_pick, sid) in sorted(seen.items()):
            self._touch_station(code, cha, sid, received_ns, last_pick)

    def _touch_station(self, code, channel, station_id, received_ns, last_pick_ns):
        net, sta, loc = code.split(".")
        self.execute("INSERT INTO stations (code, network, station, location, vertical, station_id, first_seen_ns, "
                     "last_seen_ns, last_pick_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (code) DO UPDATE SET "
                     "last_seen_ns = CASE WHEN stations.last_seen_ns IS NULL OR stations.last_seen_ns < ? "
                     "THEN ? ELSE stations.last_seen_ns END, "
                     "last_pick_ns = CASE WHEN stations.last_pick_ns IS NULL OR stations.last_pick_ns < ? "
                     "THEN ? ELSE stations.last_pick_ns END, "
                     "first_seen_ns = COALESCE(stations.first_seen_ns, ?), "
                     "vertical = COALESCE(stations.vertical, ?), station_id = COALESCE(stations.station_id, ?)",
                     (code, net, sta, loc, channel, station_id, received_ns, received_ns, last_pick_ns,
                      received_ns, received_ns, last_pick_ns, last_pick_ns, received_ns, channel, station_id))

    def picks(self, station: Optional[str] = None, phase: Optional[str] = None, since_ns: Optional[int] = None,
              until_ns: Optional[int] = None, limit: Optional[int] = None) -> List[dict]:
        """Picks in time order; ``station`` matches NET.STA, NET.STA.LOC or a bare STA."""
        where, params = [], []
        if station:
            parts = station.split(".")
            if len(parts) == 1:
                where.append("station LIKE ?")
                params.append("%%.%s.%%" % parts[0])
            elif len(parts) == 2:
                where.append("station LIKE ?")
                params.append("%s.%s.%%" % tuple(parts))
            else:
                where.append("station = ?")
                params.append(".".join(parts[:3]))
        if phase:
            if phase not in ("P", "S"):
                raise DataError("phase %r; allowed: P, S" % (phase,))
            where.append("phase = ?")
            params.append(phase)
        if since_ns is not None:
            where.append("time_ns >= ?")
            params.append(int(since_ns))
        if until_ns is not None:
            where.append("time_ns < ?")
            params.append(int(until_ns))
        sql = "SELECT %s FROM picks" % ", ".join(PICK_COLUMNS)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY time_ns, station, phase"
        if limit:
            sql += " LIMIT %d" % int(limit)
        return self.query_dicts(sql, params)

    def count(self, table: str) -> int:
        if table not in ("picks", "packets", "stations", "soh", "events", "origins", "arrivals", "commands"):
            raise DataError("no table %r" % table)
        return int(self.query("SELECT COUNT(*) FROM %s" % table)[0][0])

    # ------------------------------------------------------------ state of health

    def insert_soh(self, station: str, time_ns: int, report: dict, received_ns: Optional[int] = None) -> bool:
        received_ns = now_ns() if received_ns is None else received_ns
        with self.transaction():
            cur = self.execute("INSERT INTO soh (station, time_ns, received_ns, report) VALUES (?, ?, ?, ?) "
                               "ON CONFLICT (station, time_ns) DO NOTHING",
                               (station, int(time_ns), int(received_ns), json.dumps(report, sort_keys=True)))
            return cur.rowcount == 1

    def last_soh(self) -> Dict[str, dict]:
        rows = self.query("SELECT s.station, s.time_ns, s.report FROM soh s JOIN (SELECT station, MAX(time_ns) AS t "
                          "FROM soh GROUP BY station) m ON s.station = m.station AND s.time_ns = m.t")
        return {r[0]: dict(json.loads(r[2]), time_ns=int(r[1])) for r in rows}

    # ------------------------------------------------------------ counters

    def next_counter(self, name: str, n: int = 1, modulo: Optional[int] = None) -> List[int]:
        """Reserve ``n`` consecutive values of a named counter (kept across restarts)."""
        with self.transaction():
            self.execute("INSERT INTO counters (name, value) VALUES (?, 0) ON CONFLICT (name) DO NOTHING", (name,))
            row = self.execute("SELECT value FROM counters WHERE name = ?" +
                               (" FOR UPDATE" if self.dialect == "postgresql" else ""), (name,)).fetchone()
            start = int(row[0])
            self.execute("UPDATE counters SET value = ? WHERE name = ?", (start + n, name))
        values = list(range(start, start + n))
        return [v % modulo for v in values] if modulo else values


class _Transaction(object):
    """Nestable: only the outermost level begins and commits (or rolls back)."""

    def __init__(self, store: Store):
        self.store = store

    def __enter__(self):
        s = self.store
        if s._depth == 0 and s.dialect == "sqlite":
            s.conn.execute("BEGIN IMMEDIATE")
        s._depth += 1
        return s

    def __exit__(self, exc_type, exc, tb):
        s = self.store
        s._depth -= 1
        if s._depth == 0:
            if exc_type is None:
                s.conn.commit() if s.dialect == "postgresql" else s.conn.execute("COMMIT")
            else:
                s.conn.rollback() if s.dialect == "postgresql" else s.conn.execute("ROLLBACK")
        return False

