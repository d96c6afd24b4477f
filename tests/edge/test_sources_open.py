"""open_source(): files, directories, SDS archives, stdin and seedlink:// all give Records."""

import io
import os
import subprocess
import sys

import numpy as np
import pytest

from fieldpick.edge.errors import ConfigError, DataError
from fieldpick.edge.sources import open_source, parse_time_ns
from fieldpick.edge.sources.mseed import MseedFileSource
from fieldpick.edge.sources.sds import SdsSource, trim_record
from fieldpick.edge.sources.seedlink import SeedLinkClient
from fieldpick.edge.sources.slserver import SeedLinkServer

obspy = pytest.importorskip("obspy")

DAY = obspy.UTCDateTime(2026, 11, 21)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _raw(cha, start, n, rate=1.0, net="XX", sta="STA", value=None):
    data = np.arange(n, dtype=np.int32) if value is None else np.full(n, value, np.int32)
    tr = obspy.Trace(data)
    tr.stats.update(dict(network=net, station=sta, location="00", channel=cha, sampling_rate=rate,
                         starttime=start))
    buf = io.BytesIO()
    tr.write(buf, format="MSEED", encoding="STEIM2", reclen=512)
    return buf.getvalue()


@pytest.fixture
def sds(tmp_path):
    """Two days (2026-325, 326) of XX.STA.00.{HHZ,HHN} and YY.B.00.HHZ at 1 Hz, whole days."""
    for day in (0, 1):
        t = DAY + 86400 * day
        for net, sta, cha in (("XX", "STA", "HHZ"), ("XX", "STA", "HHN"), ("YY", "B", "HHZ")):
            d = tmp_path / str(t.year) / net / sta / (cha + ".D")
            d.mkdir(parents=True, exist_ok=True)
            name = "%s.%s.00.%s.D.%d.%03d" % (net, sta, cha, t.year, t.julday)
            (d / name).write_bytes(_raw(cha, t, 86400, net=net, sta=sta, value=day))
    (tmp_path / "README").write_text("not data")
    return tmp_path


def test_parse_time_ns():
    assert parse_time_ns("1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert parse_time_ns("2026-11-21") == DAY.ns
    assert parse_time_ns("123") == 123 and parse_time_ns(None) is None
    with pytest.raises(ConfigError, match="time 'yesterday': expected YYYY-MM-DD"):
        parse_time_ns("yesterday")


def test_sds_selection_and_window_trim(sds):
    start, end = DAY.ns + 86400 * 10**9 - 10 * 10**9, DAY.ns + 86400 * 10**9 + 5 * 10**9
    with open_source(str(sds), network="XX", channel="HHZ", start_ns=start, end_ns=end) as src:
        assert isinstance(src, SdsSource) and len(src.files) == 2
        recs = list(src)
    assert {r.seed_id for r in recs} == {"XX.STA.00.HHZ"}
    samples = np.concatenate([r.samples for r in recs])
    # the last 10 s of day 1 (value 0) then the first 5 s of day 2 (value 1)
    np.testing.assert_array_equal(samples, [0] * 10 + [1] * 5)
    assert recs[0].start_ns == start and recs[-1].end_ns == end


def test_sds_url_with_wildcards(sds):
    url = "sds://%s?net=*&cha=HH?&start=2026-11-22T00:00:00&end=2026-11-22T00:00:02" % sds
    recs = list(open_source(url))
    assert sorted(r.seed_id for r in recs) == ["XX.STA.00.HHN", "XX.STA.00.HHZ", "YY.B.00.HHZ"]
    assert all(r.samples.tolist() == [1, 1] for r in recs)


def test_plain_directory_and_file(tmp_path):
    (tmp_path / "a.mseed").write_bytes(_raw("HHZ", DAY, 10))
    (tmp_path / "b.mseed").write_bytes(_raw("HHN", DAY, 5))
    src = open_source(str(tmp_path))
    assert isinstance(src, MseedFileSource)
    assert [(r.channel, len(r.samples)) for r in src] == [("HHZ", 10), ("HHN", 5)]
    assert [len(r.samples) for r in open_source(str(tmp_path / "b.mseed"))] == [5]


def test_stdin_pipe_in_a_real_process(tmp_path):
    raw = _raw("HHZ", DAY, 300)
    code = ("import sys; from fieldpick.edge.sources import open_source\n"
            "n = sum(len(r.samples) for r in open_source('-'))\nsys.stdout.write(str(n))")
    out = subprocess.run([sys.executable, "-c", code], input=raw, capture_output=True, check=True, timeout=60)
    assert out.stdout == b"300"


def test_seedlink_url_builds_a_client_that_fetches(tmp_path):
    with SeedLinkServer() as srv:
        raw = _raw("HHZ", DAY, 600, rate=100.0)
        for i in range(0, len(raw), 512):
            srv.add(raw[i:i + 512])
        url = "seedlink://127.0.0.1:%d?streams=XX_STA:HHZ&mode=TIME&start=2026-11-20&end=2026-11-22" % srv.port
        src = open_source(url + "&state=%s" % (tmp_path / "sl.json"), keepalive_s=2.0, max_reconnects=3)
        assert isinstance(src, SeedLinkClient) and src.keepalive_s == 2.0 and src.max_reconnects == 3
        assert sum(len(r.samples) for r in src) == 600
        assert (tmp_path / "sl.json").exists()  # the state file was written on the way out


@pytest.mark.parametrize(
    "spec,options,error,match",
    [
        ("ftp://x/y", {}, ConfigError, "unknown scheme 'ftp'"),
        ("seedlink://127.0.0.1:1", {}, ConfigError, "needs \\?streams="),
        ("seedlink://127.0.0.1:1?streams=XX_S&colour=red", {}, ConfigError, "unknown seedlink option 'colour'"),
        ("seedlink://127.0.0.1:1?streams=XX_S&keepalive=soon", {}, ConfigError, "must be a number of seconds"),
        ("sds:///nowhere", {}, DataError, "SDS root '/nowhere' is not a directory"),
        ("/nowhere.mseed", {}, DataError, "does not exist"),
        ("-", {"channel": "HHZ"}, ConfigError, "options channel are not used with '-'"),
        (42, {}, ConfigError, "expected a path"),
    ],
)
def test_bad_specs_are_errors(spec, options, error, match):
    with pytest.raises(error, match=match):
        open_source(spec, **options)


def test_sds_unknown_option_and_bad_window(sds):
    with pytest.raises(ConfigError, match="unknown SDS option 'colour'"):
        open_source("sds://%s?colour=red" % sds)
    with pytest.raises(ConfigError, match="end_ns 5 is not after start_ns 10"):
        SdsSource(str(sds), start_ns=10, end_ns=5)


@pytest.mark.parametrize("start,end,expect", [(None, None, [0, 1, 2, 3]), (1, 3, [1, 2]),
                                              (-5, 1, [0]), (4, None, None), (0.5e9, 2.5e9, [1, 2])])
def test_trim_record_at_one_hertz(start, end, expect):
    from fieldpick.edge.sources.base import Record

    rec = Record("XX", "S", "", "HHZ", 0, 1.0, np.arange(4, dtype=np.int32))
    s = None if start is None else int(start if abs(start) > 100 else start * 10**9)
    e = None if end is None else int(end if abs(end) > 100 else end * 10**9)
    part = trim_record(rec, s, e)
    assert (part.samples.tolist() if part is not None else None) == expect
