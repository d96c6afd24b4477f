"""Stores for the network tests: SQLite in a temporary folder and a real PostgreSQL server.

PostgreSQL: the server named by FIELDPICK_TEST_PG (``.ci/run`` starts one), or
one started here from the installed server binaries; tests that need it skip
with the reason only when neither is possible.  Every test gets its own
database on that server.
"""

import os
import uuid

import pytest

_PG = {}


def _server():
    if "dsn" in _PG or "why" in _PG:
        return _PG.get("dsn")
    dsn = os.environ.get("FIELDPICK_TEST_PG")
    if dsn:
        _PG["dsn"] = dsn
        return dsn
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _PG["why"] = "psycopg 3 is not installed (pip install 'fieldpick[network]')"
        return None
    from fieldpick.edge.errors import ConfigError
    from fieldpick.network.pgserver import TempPostgres

    try:
        server = TempPostgres()
        _PG["dsn"] = server.start()
        _PG["server"] = server
    except (ConfigError, OSError) as exc:
        _PG["why"] = "no PostgreSQL server could be started: %s" % exc
        return None
    return _PG["dsn"]


def pytest_sessionfinish(session, exitstatus):
    server = _PG.pop("server", None)
    if server is not None:
        server.stop()


@pytest.fixture
def pg_url():
    """A fresh, empty database on a real PostgreSQL server (dropped afterwards)."""
    dsn = _server()
    if dsn is None:
        pytest.skip(_PG["why"])
    import psycopg

    name = "fp_" + uuid.uuid4().hex[:12]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE DATABASE %s" % name)
    base, _, _ = dsn.rpartition("/")
    yield base + "/" + name
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """Each test that takes this runs on both backends."""
    if request.param == "sqlite":
        return "sqlite:///" + str(tmp_path / "picks.db")
    return request.getfixturevalue("pg_url")


CODE = "NC.KHMB..HHZ"
T = 1_795_316_645 * 10**9 + 678_000_000  # 2026-11-22T03:04:05.678Z


def _picks(n=3, code=CODE, t=T, step_ns=2_500_000_000):
    from fieldpick.edge.picks import Pick

    out = []
    for i in range(n):
        ph = "S" if i % 2 else "P"
        out.append(Pick(t + i * step_ns, ph, 0.9 - 0.1 * (i % 5), 0.2 + 0.01 * i, 100.0 + i, 12.0,
                        "U" if ph == "P" else "?", code))
    return out


def _table(codes=(CODE,)):
    from fieldpick.edge.telemetry import packet as pk

    return pk.StationTable([pk.StationEntry(10 + i, c, bytes([65 + i]) * 32) for i, c in enumerate(codes)])


@pytest.fixture
def make_picks():
    """make_picks(n, code, t, step_ns): n picks alternating P and S."""
    return _picks


@pytest.fixture
def make_table():
    """make_table(codes): a station table with fixed keys."""
    return _table
