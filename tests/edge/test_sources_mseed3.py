"""miniSEED 3 files written by pymseed (libmseed 3) decode to the samples written.

pymseed is not part of the workstation environment; the test skips without it
(``pip install pymseed`` in a scratch environment to run it)."""

import numpy as np
import pytest

from fieldpick.edge.sources.mseed import read_records

pymseed = pytest.importorskip("pymseed", reason="pymseed (libmseed 3) is the miniSEED 3 reference")


@pytest.mark.parametrize("reclen", [512, 4096])
@pytest.mark.parametrize("encoding", ["INT16", "INT32", "FLOAT32", "FLOAT64", "STEIM1", "STEIM2"])
def test_pymseed_written_ms3_decodes_exactly(encoding, reclen, tmp_path):
    rng = np.random.default_rng(5)
    if encoding.startswith("STEIM"):
        step = 2000 if encoding == "STEIM2" else 70000
        x, kind = np.cumsum(rng.integers(-step, step, 20000)).astype(np.int32), "i"
    elif encoding.startswith("INT"):
        top = 30000 if encoding == "INT16" else 2**31 - 1
        x, kind = rng.integers(-top, top, 5000).astype(np.int32), "i"
    else:
        x = rng.normal(0, 1, 5000).astype(np.float32 if encoding == "FLOAT32" else np.float64)
        kind = "f" if encoding == "FLOAT32" else "d"
    traces = pymseed.MS3TraceList()
    traces.add_data("FDSN:XX_STA_00_H_H_Z", x, kind, 100.0, starttime_str="2026-11-22T01:02:03.123456789Z")
    path = str(tmp_path / "x.ms3")
    traces.to_file(path, overwrite=True, max_record_length=reclen,
                   encoding=getattr(pymseed.DataEncoding, encoding), format_version=3)
    records, _, stats = read_records(path, keep_offsets=True)
    assert stats.n_skipped == 0
    np.testing.assert_array_equal(np.concatenate([r.samples for r in records]), x)
    assert records[0].start_ns == 1795309323123456789 and records[0].seed_id == "XX.STA.00.HHZ"
